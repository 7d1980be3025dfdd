"""Node loss in high-availability mode: ``python -m flows.ha_node_loss``.

With OCFS2 mounted on both dual-primary nodes, an acknowledged-writes workload (``tasks/writes.py``)
runs on each node into one shared directory, and one node is destroyed. The survivor's acknowledgements
give its write outage (o2cb must declare the peer dead and replay its journal slot before the cluster
lock allows writes again), and both writers' records are read back on the survivor: what the dead node
was told is safe must be there (protocol C). Then the node is brought back — o2cb, DRBD attach + resync,
promote, mount — and every file and every acknowledged record is verified from both. Exits 1 if an
acknowledged record or a file was lost.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from tasks.cli import run_cli
from tasks.cluster import drbd_resource, node_targets, o2cb_cluster, secret_block_name, shared_secret
from tasks.context import current_executor, refuse_dry_run, run_context
from tasks.drbd import steps
from tasks.drbd.plan import Refused
from tasks.drbd.roles import rejoin
from tasks.events import DATA_LOST, HA_NODE_LOSS_COMPLETED, cluster_resource, emit
from tasks.lab.host import wait_until
from tasks.manifest import contents, tree_manifest
from tasks.nodes import confirm_down, fault_outcome, fire_fault, restart_node
from tasks.ocfs2 import steps as ocfs2
from tasks.pictures import ack_timeline_png, save_picture
from tasks.settings import Settings, load_settings
from tasks.writes import AckedWrites, AckLog, Writer, acked_writes, check_writers, records_path, write_outage

# The survivor's writes must be back within this: o2cb's dead-node timeout and the journal replay take
# tens of seconds with the defaults, so it only bounds a cluster that never recovers.
WRITES_BACK_TIMEOUT_S = 600.0


class NodeLossReport(BaseModel):
    killed: str
    fault: str = Field("destroy", description="How the node was killed (failover.fault).")
    survivor: str
    heartbeat_threshold: int
    idle_timeout_ms: int
    baseline_write_s: float = Field(
        description="The survivor's slowest acknowledged write (write + fsync on the node) before the kill."
    )
    stall_s: float = Field(
        description="The survivor's write outage (writes.outage.gap_s): its last acknowledged write before "
        "the stall → its first after, what its application saw."
    )
    writes_after_kill: int = Field(description="Records the survivor acknowledged after the kill.")
    returned_s: float
    resync_s: float
    files_checked: int
    files_verified_on: dict[str, int]
    writes: AckedWrites = Field(
        default_factory=lambda: AckedWrites(checks=[], outage=None),
        description="Both writers' records: read on the survivor before the rejoin, then on every node "
        "(empty: no workload ran, and only the files decide).",
    )
    checked_before_rejoin: int = Field(
        0, description="The first writes.checks, read on the survivor alone before the rejoin."
    )
    picture: str = Field("", description="The acknowledged records over time (PNG).")

    @property
    def files_intact(self) -> bool:
        return all(count == self.files_checked for count in self.files_verified_on.values())

    @property
    def intact(self) -> bool:
        return self.files_intact and not self.writes.lost

    def verdict(self) -> str:
        wrong = [
            *([f"{self.writes.lost} ACKNOWLEDGED RECORD(S) LOST"] if self.writes.lost else []),
            *([] if self.files_intact else ["FILES DIFFER after the rejoin"]),
        ]
        return "; ".join(wrong) or "every acknowledged record and every file intact on every node"

    def render(self) -> str:
        verified = ", ".join(f"{n}: {c}/{self.files_checked}" for n, c in self.files_verified_on.items())
        outage = self.writes.outage.describe() if self.writes.outage else f"{self.stall_s:.1f} s"
        before, after = (
            self.writes.checks[: self.checked_before_rejoin],
            self.writes.checks[self.checked_before_rejoin :],
        )
        return "\n".join(
            (
                f"HA node loss: {self.killed} {fault_outcome(self.fault)} while {self.survivor} kept writing",
                f"  o2cb: heartbeat threshold {self.heartbeat_threshold}, idle {self.idle_timeout_ms} ms",
                f"  slowest write before the kill   {self.baseline_write_s:.2f} s",
                f"  survivor's write outage         {outage}",
                f"  records acked after the kill    {self.writes_after_kill}",
                f"  {'back on SSH':<31} {self.returned_s:.1f} s",
                f"  resync after rejoin             {self.resync_s:.1f} s",
                f"  files verified (sha256)         {verified}",
                *(["  acknowledged records on the survivor before the rejoin:"] if before else []),
                *(f"    {c.summary()}" for c in before),
                *(["  acknowledged records after the rejoin:"] if after else []),
                *(f"    {c.summary()}" for c in after),
                *([f"  picture: {self.picture}"] if self.picture else []),
                f"Verdict: {self.verdict()}",
            )
        )


@flow(name="ha-node-loss")
def ha_node_loss(settings: Settings | None = None) -> NodeLossReport:
    settings = settings or load_settings()
    refuse_dry_run(settings, "the HA node-loss drill", "its proof is a real node loss under load")
    with run_context(settings, changes_state=True):
        return _drill(settings)


def _writing_again(times: list[float], fired_at: float, for_s: float, cover_s: float) -> bool:
    """The survivor's writes are back: its acknowledgements reach ``cover_s`` past the fault, the
    longest gap between them since the fault has ended, and records were acknowledged for ``for_s``
    seconds after it (an acknowledgement still on its way when the node died is not the end of the
    stall)."""
    if not times or times[-1] - fired_at < cover_s:
        return False
    outage = write_outage(times, fired_at, time.monotonic())
    return outage is not None and outage.to_s is not None and times[-1] - (fired_at + outage.to_s) >= for_s


def _drill(settings: Settings) -> NodeLossReport:
    log = get_run_logger()
    targets = node_targets(settings)
    resource = drbd_resource(settings, shared_secret(secret_block_name(settings)), dual_primary=True)
    cluster = o2cb_cluster(settings)
    drbd, workload = settings.drbd, settings.writes
    survivor, killed = settings.primary, resource.peer_of(settings.primary).name
    device = resource.node(survivor).device
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # Phase 1: refuse unless both nodes are Primary with OCFS2 mounted.
    probes = steps.probe_nodes(targets, resource, drbd.mountpoint)
    for node, probe in probes.items():
        if not (
            probe.state.healthy
            and probe.state.role == "Primary"
            and probe.mount
            and probe.mount.fstype == "ocfs2"
        ):
            raise Refused(f"{node}: not in HA mode ({probe.state.summary()}); run flows.ha_upgrade first")

    # Phase 2: both nodes write acknowledged records into one shared directory; one node is killed. The
    # survivor writes on through the stall until it has written for after_s seconds again.
    directory = f"{drbd.mountpoint}/ha-writes/acked"
    acks = AckLog()
    max_s = WRITES_BACK_TIMEOUT_S + workload.after_s + 300  # a bound: stop() ends the survivor's writer
    writers = {
        node: Writer(targets[node], directory, f"{node}-ha", acks, workload, max_s) for node in targets
    }
    # A previous run's records would pass for this run's (the writers append, numbering from 1).
    current_executor().run(
        ["rm", "-f", *(records_path(directory, w.name) for w in writers.values())], targets[survivor]
    )
    on_survivor = writers[survivor]
    running: list[Writer] = []
    try:
        for writer in writers.values():
            running.append(writer)
            writer.start(workload.first_acks, 120)
        fault_at = time.monotonic()
        fire_fault(settings, targets[killed])
        writers[killed].abandon()
        fired_at = time.monotonic()
        cover_s = cluster.dead_after_s + workload.after_s
        wait_until(
            lambda: (
                on_survivor.error is not None
                or _writing_again(
                    [a.at for a in acks.acks(on_survivor.name)], fired_at, workload.after_s, cover_s
                )
            ),
            WRITES_BACK_TIMEOUT_S,
            f"{survivor} to acknowledge writes through o2cb's recovery and for {workload.after_s:g} s "
            "after the stall",
            interval_s=0.5,
        )
    finally:
        for writer in running:
            if not writer.abandoned:
                writer.stop()  # raises the writer's own error, if it had one
    ended_at = time.monotonic()
    confirm_down(settings, targets[killed])  # after the measurement: the check must not delay it
    booting = restart_node.submit(settings, targets[killed])  # it boots while the survivor is read
    try:
        names = [w.name for w in writers.values()]
        checks = check_writers(targets[survivor], directory, acks, names, workload.payload_bytes)
        before_rejoin = contents(tree_manifest(targets[survivor], drbd.mountpoint))
    except BaseException:
        booting.wait()  # never two restarts at once: whoever repairs it may restart it too
        raise
    survivor_acks = acks.acks(on_survivor.name)
    writes = acked_writes(acks, checks, fault_at, ended_at, application=[on_survivor.name])
    log.info("%s %s; %s", killed, fault_outcome(settings.fault), "; ".join(writes.lines()))

    # Phase 3: the lost node rejoins (DRBD resync, then o2cb, promote, mount); every file and every
    # acknowledged record on both.
    rejoined = rejoin(settings, targets, resource, killed, returned_s=booting.result())
    ocfs2.start_o2cb(targets[killed], cluster)
    steps.promote(targets[killed], resource)
    ocfs2.mount_ocfs2(targets[killed], device, drbd.mountpoint)
    verified = {}
    after_rejoin = []
    for node, target in targets.items():
        found = contents(tree_manifest(target, drbd.mountpoint))
        verified[node] = sum(1 for path, digest in before_rejoin.items() if found.get(path) == digest)
        after_rejoin += check_writers(target, directory, acks, names, workload.payload_bytes)
    writes = writes.model_copy(update={"checks": checks + after_rejoin})
    report = NodeLossReport(
        killed=killed,
        fault=settings.fault,
        survivor=survivor,
        heartbeat_threshold=cluster.heartbeat_threshold,
        idle_timeout_ms=cluster.idle_timeout_ms,
        baseline_write_s=round(max((a.took_s for a in survivor_acks if a.at <= fault_at), default=0.0), 3),
        stall_s=writes.outage.gap_s if writes.outage else 0.0,
        writes_after_kill=sum(1 for a in survivor_acks if a.at > fault_at),
        returned_s=round(rejoined.returned_s, 1),
        resync_s=round(rejoined.resync_s, 1),
        files_checked=len(before_rejoin),
        files_verified_on=verified,
        writes=writes,
        checked_before_rejoin=len(checks),
    )
    title = f"HA node loss: {killed} {fault_outcome(settings.fault)}, {survivor} writes on"
    png = ack_timeline_png(writes, title, f"{settings.fault} {killed}")
    picture = save_picture(png, workload.reports_dir, f"ha-node-loss-{started_at}")
    report = report.model_copy(update={"picture": str(picture)})
    publish(report, settings.cluster_name)
    return report


def publish(report: NodeLossReport, cluster: str) -> None:
    """The report as markdown and table artifacts, then the events automations react to."""
    verdict = report.verdict()
    create_markdown_artifact(
        key="ha-node-loss",
        markdown="\n\n".join(
            (
                f"# HA node loss\n\n**{verdict}**",
                *([f"Picture of the acknowledged writes: `{report.picture}`"] if report.picture else []),
                f"```\n{report.render()}\n```",
            )
        ),
        description=f"write stall {report.stall_s:.1f} s; {verdict}",
    )
    create_table_artifact(
        key="ha-node-loss-verification",
        table=[
            {"node": node, "files verified": count, "files checked": report.files_checked}
            for node, count in report.files_verified_on.items()
        ],
        description="Files written before the rejoin, verified by sha256 on each node afterwards",
    )
    create_table_artifact(
        key="ha-node-loss-acknowledged-writes",
        table=[
            {"checked": "before the rejoin" if i < report.checked_before_rejoin else "after", **check.row()}
            for i, check in enumerate(report.writes.checks)
        ],
        description="Both writers' acknowledged records, read back on the survivor, then on both nodes",
    )
    payload = {
        "killed": report.killed,
        "survivor": report.survivor,
        "stall_s": report.stall_s,
        "resync_s": report.resync_s,
        "files_checked": report.files_checked,
        "files_verified_on": report.files_verified_on,
        "acked": report.writes.acked,
        "acked_lost": report.writes.lost,
        "write_outage_s": report.writes.outage.gap_s if report.writes.outage else None,
        "intact": report.intact,
    }
    emit(HA_NODE_LOSS_COMPLETED, resource=cluster_resource(cluster), payload=payload)
    if not report.intact:
        lost = {"lost_bytes": report.writes.lost_bytes, "lost_records": report.writes.lost_records()}
        emit(
            DATA_LOST,
            resource=cluster_resource(cluster),
            payload={**payload, **lost, "drill": "ha-node-loss"},
        )


def _print_drill(settings: Settings) -> int:
    report = ha_node_loss(settings)
    print(report.render())
    return 0 if report.intact else 1  # intact: no file and no acknowledged record lost


if __name__ == "__main__":
    raise SystemExit(run_cli(_print_drill))
