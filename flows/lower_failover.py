"""The lower-tier failover of a stacked (three-node) volume: ``python -m flows.lower_failover``.

The lower Primary dies while the application writes (every record acknowledged only after fsync). The
surviving lower node takes the upper resource over with drbd-utils' ``drbdupper`` sequence — promote the
lower resource, hold the stacked address, bring the upper resource up stacked, promote it, mount — and the
application writes there again; the third node reconnects to the moved address and keeps replicating. The
dead node returns as the lower Secondary and resyncs. Then every acknowledged record is read back on all
three nodes (each mounts the volume in turn), and the volume goes back to the node that served it before.
DRBD runs without a cluster manager here: the flow is the operator, and the report lists its commands.
Exits 1 if an acknowledged record was lost.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from flows.setup import setup
from tasks.cli import run_cli
from tasks.cluster import stacked_volume
from tasks.context import current_executor, refuse_dry_run, run_context
from tasks.drbd import stacked, steps
from tasks.drbd.plan import Refused
from tasks.drbd.roles import rejoin
from tasks.events import DATA_LOST, STACKED_FAILOVER_COMPLETED, cluster_resource, emit
from tasks.nodes import fault_outcome, kill_node, restart_node
from tasks.pictures import ack_timeline_png, save_picture
from tasks.settings import Settings, load_settings
from tasks.writes import AckedWrites, AckLog, Writer, acked_writes, check_writers, remove_drill_files


class LowerFailoverReport(BaseModel):
    resource: str = Field(description="The upper resource (it holds the filesystem).")
    lower: str
    third_node: str
    failed: str = Field(description="The lower Primary that was killed.")
    survivor: str = Field(description="The lower node that took the upper resource over.")
    started_at: str
    observed: list[str] = Field(description="What the drill saw, in order, seconds from the fault.")
    service_s: float = Field(description="The fault → the volume mounted on the survivor.")
    third_reconnected_s: float = Field(
        description="The fault → the third node connected to the survivor (it replicates again)."
    )
    redundant_s: float = Field(description="The fault → all three copies in sync (the dead node back).")
    upper_resynced_kib: int = Field(description="What the third node's resync copied after the move (KiB).")
    commands: list[str] = Field(
        description="What the flow ran on the survivor for service ('node: command')."
    )
    writes: AckedWrites
    picture: str = ""

    def lost_line(self) -> str:
        w = self.writes
        if not w.lost:
            nodes = ", ".join(sorted({c.node for c in w.checks}))
            return f"No. All {w.acked} acknowledged writes read back intact on {nodes}."
        return f"YES: {w.lost} acknowledged writes ({w.lost_bytes:,} bytes) lost: " + "; ".join(
            c.summary() for c in w.checks if c.lost
        )

    def render(self) -> str:
        outage = self.writes.outage.describe() if self.writes.outage else "not measured"
        rows = [
            ("fault", f"{self.failed} {self.started_at}: the lower Primary of {self.lower} killed"),
            ("service", f"{self.survivor} mounted {self.resource} {self.service_s:.1f} s after the fault"),
            ("write outage", outage),
            (
                "third node",
                f"{self.third_node} replicates from {self.survivor} at +{self.third_reconnected_s:.1f} s",
            ),
            ("its resync", f"{self.upper_resynced_kib:,} KiB"),
            (
                "three copies",
                f"in sync again at +{self.redundant_s:.1f} s ({self.failed} back as lower Secondary)",
            ),
            ("commands", "; ".join(f"`{c}`" for c in self.commands) or "none"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(
            [
                f"Lower-tier failover, DRBD {self.resource} stacked on {self.lower}",
                *(f"  {k:<{width}}  {v}" for k, v in rows),
                *(f"  {line}" for line in self.observed),
                *(f"  {c.summary()}" for c in self.writes.checks),
                *([f"Picture: {self.picture}"] if self.picture else []),
                "",
                f"Was any acknowledged write lost?  {self.lost_line()}",
            ]
        )


@flow(name="lower-tier-failover")
def lower_failover(settings: Settings | None = None) -> LowerFailoverReport:
    """Kill the lower Primary of the stacked volume; the survivor takes the upper resource over."""
    settings = settings or load_settings()
    if settings.third_node is None:
        raise Refused(
            "drbd.topology is 'two-node': the lower-tier failover drills a stacked volume (python -m "
            "flows.failover drills this one)"
        )
    refuse_dry_run(settings, "the lower-tier failover", "its proof is a real fault")
    with run_context(settings, changes_state=True):
        return _drill(settings)


def _drill(settings: Settings) -> LowerFailoverReport:
    log = get_run_logger()
    drbd, writes = settings.drbd, settings.writes

    # Phase 1: the stacked volume as configured, all three copies in sync, the application writing.
    failed = setup(settings).primary
    volume = stacked_volume(settings)
    survivor = volume.other_lower(failed)
    targets, lower, upper = volume.targets, volume.lower, volume.upper
    volume.wait_redundant(failed, drbd.sync_timeout_s)
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    directory = f"{drbd.mountpoint}/drills/lower-failover-{started_at.replace(':', '')}"
    acks = AckLog()
    max_s = 2 * settings.failover.boot_timeout_s + drbd.sync_timeout_s
    first = Writer(targets[failed], directory, f"{failed}-app", acks, writes, max_s)
    first.start(writes.first_acks, 120)
    resyncs_before = len(steps.resyncs(targets[settings.third_node or ""], upper.minor))
    observed: list[str] = []

    def note(what: str) -> None:
        observed.append(f"{time.monotonic() - fault_at:+.1f} s: {what}")
        log.info("%s", observed[-1])

    # Phase 2: the lower Primary dies; the survivor runs the drbdupper sequence and the application.
    fault_at = time.monotonic()
    kill_node(settings, targets[failed])
    first.abandon()
    note(f"{failed} {fault_outcome(settings.fault)}")
    state = steps.wait_peer_lost(targets[survivor], lower, settings.faults.timeout_s)
    note(f"{survivor} lost its lower peer ({state.summary()})")
    with current_executor().recording() as recorded:
        steps.promote(targets[survivor], lower)
        stacked.start_upper(targets[survivor], upper, volume.address)
        steps.mount(targets[survivor], upper.node(survivor).device, drbd.mountpoint)
    service_s = round(time.monotonic() - fault_at, 1)
    note(f"{survivor} serves {upper.name} at {drbd.mountpoint}")
    booting = restart_node.submit(settings, targets[failed])  # it boots while the survivor serves
    try:
        second = Writer(targets[survivor], directory, f"{survivor}-app", acks, writes, max_s)
        second.start(writes.first_acks, settings.faults.timeout_s)
        steps.wait_connected(targets[survivor], upper, drbd.connect_timeout_s)
        third_s = round(time.monotonic() - fault_at, 1)
        note(f"{volume.third} connected to {survivor} ({volume.states(survivor)[1].summary()})")
        second.keep_writing(writes.after_s, settings.faults.timeout_s)
    except BaseException:
        booting.wait()  # never two restarts at once: whoever repairs it may restart it too
        raise

    # Phase 3: the dead node returns as the lower Secondary; all three copies in sync again.
    lower_nodes = {n.name: targets[n.name] for n in lower.nodes}
    back = rejoin(settings, lower_nodes, lower, failed, returned_s=booting.result())
    note(f"{failed} answered SSH after {back.returned_s:.1f} s and resynced as lower Secondary")
    volume.wait_redundant(survivor, drbd.sync_timeout_s)
    redundant_s = round(time.monotonic() - fault_at, 1)
    note("all three copies in sync")
    second.stop()
    finished_at = time.monotonic()
    upper_kib = sum(steps.resyncs(targets[volume.third], upper.minor)[resyncs_before:])

    # Phase 4: every acknowledged record read on all three nodes; the volume back where it was served.
    names = [first.name, second.name]
    found = volume.read_everywhere(
        survivor, lambda t: check_writers(t, directory, acks, names, writes.payload_bytes), end_on=failed
    )
    checks = [check for node_checks in found.values() for check in node_checks]
    result = acked_writes(acks, checks, fault_at, finished_at)
    if not result.lost:
        remove_drill_files(targets[failed], directory)
    report = LowerFailoverReport(
        resource=upper.name,
        lower=lower.name,
        third_node=volume.third,
        failed=failed,
        survivor=survivor,
        started_at=started_at,
        observed=observed,
        service_s=service_s,
        third_reconnected_s=third_s,
        redundant_s=redundant_s,
        upper_resynced_kib=upper_kib,
        commands=[f"{c.target}: {c.command}" for c in recorded],
        writes=result,
    )
    png = ack_timeline_png(result, f"lower-tier failover: {failed} → {survivor}", "lower Primary killed")
    picture = save_picture(png, writes.reports_dir, f"lower-failover-{upper.name}-{started_at}")
    report = report.model_copy(update={"picture": str(picture)})
    _publish(report, settings.cluster_name)
    return report


def _publish(report: LowerFailoverReport, cluster: str) -> None:
    create_markdown_artifact(
        key="lower-tier-failover",
        markdown="\n\n".join(
            (
                f"# Lower-tier failover: {report.failed} → {report.survivor}, third node {report.third_node}",
                f"**Was any acknowledged write lost?** {report.lost_line()}",
                f"**Service back:** {report.service_s:.1f} s after the fault",
                f"```\n{report.render()}\n```",
            )
        ),
        description=f"lower-tier failover: {report.writes.lost} acknowledged writes lost",
    )
    create_table_artifact(
        key="lower-tier-failover-verification",
        table=[check.row() for check in report.writes.checks],
        description="Acknowledged records read back on every node",
    )
    summary = {
        "drill": "lower-tier-failover",
        "resource": report.resource,
        "failed": report.failed,
        "survivor": report.survivor,
        "third_node": report.third_node,
        "acked": report.writes.acked,
        "acked_lost": report.writes.lost,
        "service_s": report.service_s,
        "third_reconnected_s": report.third_reconnected_s,
        "redundant_s": report.redundant_s,
        "commands": report.commands,
    }
    emit(STACKED_FAILOVER_COMPLETED, resource=cluster_resource(cluster), payload=summary)
    if report.writes.lost:
        payload = {**summary, "lost_records": report.writes.lost_records()}
        emit(DATA_LOST, resource=cluster_resource(cluster), payload=payload)


def _run(settings: Settings) -> int:
    report = lower_failover(settings)
    print(report.render())
    return 1 if report.writes.lost else 0


def main() -> int:
    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
