"""Losing the whole lower site of a stacked (three-node) volume: ``python -m flows.site_loss``.

Both lower nodes die at once while the application writes on the lower Primary (every record
acknowledged only after fsync) and bulk traffic keeps the link to the third node busy. The third node is
promoted and mounts the volume: what it holds is the recovery point. With the upper tier's protocol A the
lower Primary acknowledged writes before the third node had them, so records in flight can be missing
there — the drill counts them (records, bytes, and the file they belong to) and never hides them; with
protocol C nothing acknowledged may be missing.

The application then writes on the third node, and the site fails back: both lower nodes return, the lower
resource resyncs between them, the upper resource comes up stacked on the original Primary and resyncs from
the third node, and the volume moves back there. Every byte is verified on all three nodes against what
the third node held (a manifest of the drill's files) and every acknowledged record is read back on each.
Exits 1 if a node lost anything beyond the recovery point, or anything at all with protocol C.
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
from tasks.drbd.roles import switch_primary
from tasks.drbd.stacked import StackedVolume
from tasks.events import DATA_LOST, SITE_LOSS_COMPLETED, cluster_resource, emit
from tasks.executor import SshTarget
from tasks.manifest import Entry, differences, tree_manifest
from tasks.nodes import confirm_down, fault_outcome, fire_fault, restart_node
from tasks.pictures import ack_timeline_png, save_picture
from tasks.settings import Settings, load_settings
from tasks.writes import (
    AckedWrites,
    AckLog,
    Writer,
    WriterCheck,
    acked_writes,
    check_writers,
    records_path,
    remove_drill_files,
    start_traffic,
    stop_traffic,
    traffic_running,
)

TRAFFIC_UNIT = "hsf-site-loss-traffic"


class RecoveryPoint(BaseModel):
    """What the third node held of the acknowledged writes when it was promoted."""

    protocol: str = Field(description="The upper tier's protocol: A (asynchronous) or C.")
    acked: int = Field(description="Records acknowledged on the lost site before it died.")
    lost_records: dict[str, list[int]] = Field(
        description="Acknowledged, missing on the third node, by writer."
    )
    lost_bytes: int
    files: list[str] = Field(description="The files those records belonged to.")

    @property
    def lost(self) -> int:
        return sum(len(seqs) for seqs in self.lost_records.values())

    def describe(self) -> str:
        if not self.lost:
            return (
                f"0 bytes: all {self.acked} acknowledged records on the third node (protocol {self.protocol})"
            )
        return (
            f"{self.lost_bytes:,} bytes: {self.lost} of {self.acked} acknowledged records missing on the "
            f"third node (protocol {self.protocol}), in {', '.join(self.files)}"
        )


class SiteLossReport(BaseModel):
    resource: str
    lower: str
    third_node: str
    site: list[str] = Field(description="The lower nodes lost together.")
    primary: str = Field(description="The lower Primary before the loss, and again after the failback.")
    started_at: str
    observed: list[str]
    service_s: float = Field(description="The loss → the third node mounted the volume.")
    recovery_point: RecoveryPoint
    failback_s: float = Field(description="The site powered on → the volume served there again, in sync.")
    upper_resynced_kib: int = Field(description="What the failback's upper resync copied to the site (KiB).")
    traffic_mib: int = Field(description="Background traffic started before the loss (MiB, unacknowledged).")
    traffic_under_way: bool = Field(description="It was still writing when the site died.")
    traffic_arrived_mib: float = Field(description="Of it, what the third node held (MiB).")
    manifest_files: int = Field(description="Files of the drill compared byte for byte on every node.")
    manifest_differences: dict[str, list[str]] = Field(
        description="Per node: files that differ from the third's."
    )
    commands: list[str] = Field(description="What the flow ran for service on the third node.")
    writes: AckedWrites
    picture: str = ""

    def beyond_recovery_point(self) -> list[WriterCheck]:
        """Checks that lost a record the third node had: lost by the failback, not by the site's loss."""
        allowed = self.recovery_point.lost_records
        return [c for c in self.writes.checks if set(c.lost) - set(allowed.get(c.writer, []))]

    @property
    def failed(self) -> bool:
        differs = any(self.manifest_differences.values())
        synchronous_loss = self.recovery_point.protocol == "C" and self.recovery_point.lost > 0
        return differs or synchronous_loss or bool(self.beyond_recovery_point())

    def verdict(self) -> str:
        if self.failed:
            broken = [c.summary() for c in self.beyond_recovery_point()] + [
                f"{node}: {len(diff)} files differ"
                for node, diff in self.manifest_differences.items()
                if diff
            ]
            what = "; ".join(broken) or "protocol C lost acknowledged writes"
            return f"FAILED: {what}"
        nodes = ", ".join(sorted(self.manifest_differences))
        return f"every byte the third node held is on {nodes}; nothing lost beyond the recovery point"

    def traffic_line(self) -> str:
        if not self.traffic_mib:
            return "none (site_loss.traffic_mib = 0)"
        when = "still writing at the loss" if self.traffic_under_way else "finished before the loss"
        return (
            f"{self.traffic_mib} MiB started, {when}; {self.traffic_arrived_mib} MiB of it on the third node"
        )

    def render(self) -> str:
        outage = self.writes.outage.describe() if self.writes.outage else "not measured"
        rows = [
            ("loss", f"{' and '.join(self.site)} {self.started_at}"),
            ("traffic", self.traffic_line()),
            ("service", f"{self.third_node} mounted {self.resource} {self.service_s:.1f} s after the loss"),
            ("write outage", outage),
            ("recovery point", self.recovery_point.describe()),
            ("failback", f"{self.primary} serves again {self.failback_s:.1f} s after the site powered on"),
            ("upper resync", f"{self.upper_resynced_kib:,} KiB from {self.third_node}"),
            (
                "verified",
                f"{self.manifest_files} files byte for byte on {len(self.manifest_differences)} nodes",
            ),
            ("commands", "; ".join(f"`{c}`" for c in self.commands) or "none"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(
            [
                f"Site loss, DRBD {self.resource} stacked on {self.lower}, third copy on {self.third_node}",
                *(f"  {k:<{width}}  {v}" for k, v in rows),
                *(f"  {line}" for line in self.observed),
                *(f"  {c.summary()}" for c in self.writes.checks),
                *([f"Picture: {self.picture}"] if self.picture else []),
                "",
                f"Recovery point: {self.recovery_point.describe()}",
                f"Failback: {self.verdict()}",
            ]
        )


@flow(name="site-loss")
def site_loss(settings: Settings | None = None) -> SiteLossReport:
    """Lose both lower nodes of the stacked volume, serve from the third, fail back, verify everywhere."""
    settings = settings or load_settings()
    if settings.third_node is None:
        raise Refused("drbd.topology is 'two-node': there is no third node to survive the loss of both nodes")
    refuse_dry_run(settings, "the site-loss drill", "its proof is a real fault")
    with run_context(settings, changes_state=True):
        return _drill(settings)


class _Clock:
    def __init__(self) -> None:
        self.fault_at = time.monotonic()
        self.observed: list[str] = []

    def note(self, what: str) -> None:
        self.observed.append(f"{time.monotonic() - self.fault_at:+.1f} s: {what}")
        get_run_logger().info("%s", self.observed[-1])


def _drill(settings: Settings) -> SiteLossReport:
    drbd, writes = settings.drbd, settings.writes

    # Phase 1: the stacked volume in sync, the application writing on the lower Primary, traffic under way.
    primary = setup(settings).primary
    volume = stacked_volume(settings)
    targets, lower, upper, third = volume.targets, volume.lower, volume.upper, volume.third
    site = [n.name for n in lower.nodes]
    volume.wait_redundant(primary, drbd.sync_timeout_s)
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    directory = f"{drbd.mountpoint}/drills/site-loss-{started_at.replace(':', '')}"
    acks = AckLog()
    max_s = 2 * settings.failover.boot_timeout_s + 2 * drbd.sync_timeout_s
    on_site = Writer(targets[primary], directory, f"{primary}-app", acks, writes, max_s)
    on_site.start(writes.first_acks, 120)
    traffic = settings.site_loss.traffic_mib
    traffic_name = "traffic.bin"
    if traffic:
        start_traffic(targets[primary], f"{directory}/{traffic_name}", traffic, TRAFFIC_UNIT)
    resyncs_before = len(steps.resyncs(targets[third], upper.minor))
    clock = _Clock()
    try:
        on_site.keep_writing(2.0, settings.faults.timeout_s)
    except BaseException:
        on_site.abandon()
        stop_traffic(targets[primary], TRAFFIC_UNIT)
        raise

    # Phase 2: the site dies; the third node is promoted and serves what it holds.
    under_way = bool(traffic) and traffic_running(targets[primary], TRAFFIC_UNIT)
    clock.fault_at = time.monotonic()
    strikes = [fire_fault.submit(settings, targets[node]) for node in site]  # both at once
    for strike in strikes:
        strike.result()
    on_site.abandon()
    busy = "the traffic still writing" if under_way else "no traffic under way"
    clock.note(f"{' and '.join(site)} {fault_outcome(settings.fault)} ({busy})")
    for node in site:
        confirm_down(settings, targets[node])
    state = steps.wait_peer_lost(targets[third], upper, settings.faults.timeout_s)
    clock.note(f"{third} lost the site ({state.summary()})")
    with current_executor().recording() as recorded:
        steps.promote(targets[third], upper)
        steps.mount(targets[third], upper.third.device, drbd.mountpoint)
    service_s = round(time.monotonic() - clock.fault_at, 1)
    clock.note(f"{third} serves {upper.name} at {drbd.mountpoint}")
    point = _recovery_point(
        targets[third], directory, acks, on_site.name, writes.payload_bytes, upper.protocol
    )
    clock.note(f"recovery point: {point.describe()}")
    on_third = Writer(targets[third], directory, f"{third}-app", acks, writes, max_s)
    on_third.start(writes.first_acks, settings.faults.timeout_s)

    # Phase 3: the site returns and fails back: lower resync, the upper resource stacked again and
    # resynced from the third node, the volume moved back to the original Primary.
    powered_at = time.monotonic()
    returns = {node: restart_node.submit(settings, targets[node]) for node in site}
    for node, back in returns.items():
        clock.note(f"{node} answers SSH ({back.result():.1f} s after it was powered on)")
    _fail_back(settings, volume, primary, clock)
    on_third.stop()
    finished_at = time.monotonic()
    upper_kib = sum(steps.resyncs(targets[third], upper.minor)[resyncs_before:])
    held = tree_manifest(targets[third], directory)
    ends = {primary: targets[primary], third: targets[third]}
    switch_primary(ends, upper, drbd.mountpoint, old=third, new=primary)
    failback_s = round(time.monotonic() - powered_at, 1)
    clock.note(f"{primary} serves {upper.name} again")

    # Phase 4: every byte the third node held, and every acknowledged record, on all three nodes.
    names = [on_site.name, on_third.name]

    def read(target: SshTarget) -> tuple[list[WriterCheck], dict[str, Entry]]:
        checks = check_writers(target, directory, acks, names, writes.payload_bytes)
        return checks, tree_manifest(target, directory)

    found = volume.read_everywhere(primary, read)
    checks = [check for node_checks, _ in found.values() for check in node_checks]
    result = acked_writes(acks, checks, clock.fault_at, finished_at)
    report = SiteLossReport(
        resource=upper.name,
        lower=lower.name,
        third_node=third,
        site=site,
        primary=primary,
        started_at=started_at,
        observed=clock.observed,
        service_s=service_s,
        recovery_point=point,
        failback_s=failback_s,
        upper_resynced_kib=upper_kib,
        traffic_mib=traffic,
        traffic_under_way=under_way,
        traffic_arrived_mib=round(held[traffic_name].size / 2**20, 1) if traffic_name in held else 0.0,
        manifest_files=len(held),
        manifest_differences={node: differences(held, manifest) for node, (_, manifest) in found.items()},
        commands=[f"{c.target}: {c.command}" for c in recorded],
        writes=result,
    )
    if not report.failed:
        remove_drill_files(targets[primary], directory)
    png = ack_timeline_png(result, f"site loss: {' and '.join(site)} → {third}", "site lost")
    picture = save_picture(png, writes.reports_dir, f"site-loss-{upper.name}-{started_at}")
    report = report.model_copy(update={"picture": str(picture)})
    _publish(report, settings.cluster_name)
    return report


def _recovery_point(
    third: SshTarget, directory: str, acks: AckLog, writer: str, payload_bytes: int, protocol: str
) -> RecoveryPoint:
    """The site's acknowledged records read on the promoted third node: the ones missing are the RPO."""
    [check] = check_writers(third, directory, acks, [writer], payload_bytes)
    return RecoveryPoint(
        protocol=protocol,
        acked=check.acked,
        lost_records={writer: check.lost} if check.lost else {},
        lost_bytes=check.lost_bytes,
        files=[records_path(directory, writer)] if check.lost else [],
    )


def _fail_back(settings: Settings, volume: StackedVolume, primary: str, clock: _Clock) -> None:
    """The returned site: the lower resource up and in sync on both nodes, Primary on ``primary``; the upper
    resource stacked there as Secondary, resynced from the third node (the site's own copy is older: DRBD
    finds that by the data generations, and a crashed Primary's activity log is copied back too)."""
    drbd = settings.drbd
    targets, lower, upper = volume.targets, volume.lower, volume.upper
    for node in lower.nodes:
        steps.load_module(targets[node.name])
        steps.up(targets[node.name], lower)
    steps.wait_connected(targets[primary], lower, drbd.connect_timeout_s)
    steps.wait_synced(targets[primary], lower, drbd.sync_timeout_s)
    clock.note(f"{lower.name} in sync on the site")
    steps.promote(targets[primary], lower)
    stacked.hold_address(targets[primary], volume.address, str(lower.node(primary).address))
    steps.up(targets[primary], upper)
    steps.wait_connected(targets[primary], upper, drbd.connect_timeout_s)
    clock.note(f"{upper.name} stacked on {primary} again: {volume.states(primary)[1].summary()}")
    volume.wait_redundant(primary, drbd.sync_timeout_s)
    clock.note(f"{upper.name} resynced from {volume.third}")


def _publish(report: SiteLossReport, cluster: str) -> None:
    create_markdown_artifact(
        key="site-loss",
        markdown="\n\n".join(
            (
                f"# Site loss: {' and '.join(report.site)} lost, {report.third_node} served",
                f"**Recovery point:** {report.recovery_point.describe()}",
                f"**Failback:** {report.verdict()}",
                *([f"Picture of the acknowledged writes: `{report.picture}`"] if report.picture else []),
                f"```\n{report.render()}\n```",
            )
        ),
        description=f"site loss: RPO {report.recovery_point.lost_bytes} bytes",
    )
    create_table_artifact(
        key="site-loss-verification",
        table=[check.row() for check in report.writes.checks],
        description="Acknowledged records read back on every node after the failback",
    )
    summary = {
        "drill": "site-loss",
        "resource": report.resource,
        "site": report.site,
        "third_node": report.third_node,
        "protocol": report.recovery_point.protocol,
        "rpo_records": report.recovery_point.lost,
        "rpo_bytes": report.recovery_point.lost_bytes,
        "rpo_files": report.recovery_point.files,
        "service_s": report.service_s,
        "failback_s": report.failback_s,
        "acked": report.writes.acked,
        "failed": report.failed,
    }
    emit(SITE_LOSS_COMPLETED, resource=cluster_resource(cluster), payload=summary)
    if report.recovery_point.lost or report.failed:
        payload = {**summary, "lost_records": report.writes.lost_records()}
        emit(DATA_LOST, resource=cluster_resource(cluster), payload=payload)


def _run(settings: Settings) -> int:
    report = site_loss(settings)
    print(report.render())
    return 1 if report.failed else 0


def main() -> int:
    return run_cli(_run)


if __name__ == "__main__":
    sys.exit(main())
