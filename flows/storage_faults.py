"""Storage faults on the fault-tolerant volume: ``python -m flows.storage_faults NAME``.

Each fault strikes while the primary's application writes (every record acknowledged only after
fsync) and is observed from the primary's own DRBD state; the volume keeps serving on the same primary
throughout, and every acknowledged record is read back at the end. DRBD runs alone here (cluster.manager
= "none"): nobody promotes anything, so what these faults prove is that the primary rides them out.

- ``secondary-killed``: the secondary is killed (``failover.fault``). The primary stalls until DRBD
  declares its peer lost, then writes on; the secondary, brought back (a repair: power, ``drbdadm up``),
  resyncs.
- ``long-outage``: the same, but the primary writes ``faults.away_mib`` MiB more while its peer is away.
  The resync copies what DRBD's bitmap marked as changed — about what was written, not the whole disk.
- ``link-cut``: DRBD's replication link is cut inside the secondary for ``link_cut.hold_s`` while the
  primary writes, then healed. DRBD reconnects by itself and resyncs only what was written; the
  secondary is never Primary (no split-brain).
- ``disk-failure`` (lab only): the primary's backing disk vanishes (``tasks/disks.py``). DRBD detaches it
  (``on-io-error detach``) and the primary serves from its peer's disk without a pause; the disk is put
  back and attached (a repair) and resyncs from the peer.
- ``power-cycle`` (lab only: it takes the service down): both nodes lose power at once. When they are
  back, ``python -m flows.setup`` (run here as a subflow, standing in for the operator) brings DRBD up,
  promotes and mounts; the filesystem replays its journal and every acknowledged record must be there.

Each report says how long the application could not write, how long until both disks were UpToDate
again after the fault's end, what the resync copied next to what was written, and the commands a
human had to run. The drill's files are removed at the end: faults chain on a volume as they found it.
Exits 1 if an acknowledged record was lost.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from flows.setup import setup
from tasks.cli import CheckFailed, run_cli
from tasks.cluster import drbd_resource, node_targets, secret_block_name, shared_secret
from tasks.context import current_executor, refuse_dry_run, run_context
from tasks.disks import pull_disk, put_back_disk
from tasks.drbd import steps
from tasks.drbd.model import DrbdResource
from tasks.drbd.plan import Refused
from tasks.drbd.probes import DrbdState
from tasks.drbd.roles import rejoin
from tasks.events import DATA_LOST, STORAGE_FAULT_COMPLETED, cluster_resource, emit
from tasks.executor import RecordedCommand
from tasks.faults import LAB_ONLY_STORAGE_FAULTS, STORAGE_FAULTS, StorageFault
from tasks.lab.host import wait_until
from tasks.network import cut_link, heal_link
from tasks.nodes import confirm_down, fault_outcome, fire_fault, restart_node
from tasks.pacemaker.steps import SplitBrain
from tasks.pictures import ack_timeline_png, save_picture
from tasks.settings import Settings, load_settings
from tasks.writes import (
    AckedWrites,
    AckLog,
    Writer,
    acked_writes,
    check_writers,
    remove_drill_files,
    write_bulk,
)


class StorageFaultReport(BaseModel):
    fault: StorageFault
    resource: str
    primary: str = Field(description="The node that served the volume before and after the fault.")
    peer: str
    started_at: str
    observed: list[str] = Field(description="What the drill saw, in order, seconds from the fault.")
    lasted_s: float = Field(description="The fault → its end (the node powered on, the link healed, …).")
    written_bytes: int = Field(
        description="What the application wrote while the peer was out of date (acknowledged records and "
        "bulk data; the filesystem's own metadata comes on top)."
    )
    resynced_kib: int = Field(
        description="What the resyncs after the fault copied, as DRBD announced them (KiB)."
    )
    volume_kib: int = Field(description="The replicated volume's size, for scale.")
    redundant_s: float = Field(description="The fault's end → connected and both disks UpToDate.")
    manual_commands: list[str] = Field(
        description="State-changing commands a human had to run for service ('node: command')."
    )
    repair_commands: list[str] = Field(
        description="Commands that repaired the struck node or disk ('node: command'): not for service."
    )
    peer_roles: list[str] = Field(description="Every role the peer's DRBD reported meanwhile.")
    writes: AckedWrites
    picture: str = ""

    @property
    def two_primaries(self) -> bool:
        return "Primary" in self.peer_roles

    def answers(self) -> tuple[str, str]:
        w = self.writes
        lost = (
            f"No. All {w.acked} acknowledged writes read back intact on {self.primary}."
            if not w.lost
            else f"YES: {w.lost} acknowledged writes ({w.lost_bytes:,} bytes) lost: "
            + "; ".join(c.summary() for c in w.checks if c.lost)
        )
        outage = w.outage.describe() if w.outage else "not measured"
        return lost, f"{outage}."

    def resync_line(self) -> str:
        share = self.resynced_kib / self.volume_kib if self.volume_kib else 0.0
        return (
            f"{self.resynced_kib:,} KiB ({share:.0%} of the volume) for {self.written_bytes // 1024:,} KiB "
            "written"
        )

    def render(self) -> str:
        lost, outage = self.answers()
        rows = [
            ("fault", f"{self.fault} at {self.started_at}: {self.primary} serves, {self.peer} is its peer"),
            ("lasted", f"{self.lasted_s:.1f} s"),
            ("write outage", outage),
            ("resync", self.resync_line()),
            ("fault's end → redundant", f"{self.redundant_s:.1f} s"),
            ("commands for service", "; ".join(f"`{c}`" for c in self.manual_commands) or "none"),
            ("repair", "; ".join(f"`{c}`" for c in self.repair_commands) or "none"),
            (f"{self.peer}'s roles", "/".join(self.peer_roles) or "not seen"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(
            [
                f"Storage fault {self.fault}, DRBD {self.resource}",
                *(f"  {k:<{width}}  {v}" for k, v in rows),
                *(f"  {line}" for line in self.observed),
                *(f"  {c.summary()}" for c in self.writes.checks),
                *([f"Picture: {self.picture}"] if self.picture else []),
                "",
                f"Was any acknowledged write lost?  {lost}",
            ]
        )


@flow(name="storage-fault")
def storage_fault(
    settings: Settings | None = None, fault: StorageFault = "secondary-killed"
) -> StorageFaultReport:
    """One storage fault (``fault``) against the fault-tolerant volume, observed and undone."""
    settings = settings or load_settings()
    if fault not in STORAGE_FAULTS:
        raise Refused(f"unknown storage fault {fault!r}; the faults are: {', '.join(STORAGE_FAULTS)}")
    refuse_dry_run(settings, f"the {fault} fault", "its proof is a real fault")
    if fault in LAB_ONLY_STORAGE_FAULTS and settings.target != "lab":
        raise Refused(
            f"{fault} {LAB_ONLY_STORAGE_FAULTS[fault]}: it runs on the lab only, never on a host of yours"
        )
    if settings.cluster.manager != "none":
        raise Refused(
            f"the {fault} fault strikes the fault-tolerant volume (cluster.manager = 'none'); under "
            f"{settings.cluster.manager} the cluster manager reacts to it, which this drill does not watch"
        )
    with run_context(settings, changes_state=True):
        return _drill(settings, fault)


class _Drill:
    """One fault's run: the nodes, the writer on the primary, and what was seen since the fault."""

    def __init__(self, settings: Settings, primary: str, fault: StorageFault, directory: str) -> None:
        self.settings, self.fault, self.directory = settings, fault, directory
        self.targets = node_targets(settings)
        self.resource: DrbdResource = drbd_resource(settings, shared_secret(secret_block_name(settings)))
        self.primary, self.peer = primary, self.resource.peer_of(primary).name
        self.minor = self.resource.node(primary).minor
        self.acks = AckLog()
        self.max_s = 4 * settings.faults.timeout_s + 2 * settings.failover.boot_timeout_s
        self.writers = [self._writer(f"{primary}-{fault}")]
        self.observed: list[str] = []
        self.peer_roles: set[str] = set()
        self.fault_at = self.ended_at = self.redundant_at = time.monotonic()
        self.bulk_bytes = 0
        self.resyncs_seen = 0  # resyncs in the primary's kernel log before the fault (0 after a reboot)
        self.manual: list[str] = []
        self.repair: list[str] = []

    def _writer(self, name: str) -> Writer:
        target = self.targets[self.primary]
        return Writer(target, self.directory, name, self.acks, self.settings.writes, self.max_s)

    @property
    def writer(self) -> Writer:
        """The application's writer now (a new one once the application was restarted)."""
        return self.writers[-1]

    def restart_application(self) -> None:
        """The service is back: the application starts again and writes (the outage ends here)."""
        self.writers.append(self._writer(f"{self.primary}-{self.fault}-2"))
        self.writer.start(self.settings.writes.first_acks, self.settings.faults.timeout_s)
        self.note(f"the application writes again on {self.primary}")

    def struck(self, what: str, at: float | None = None) -> None:
        """The fault took effect ``at`` (default: now, as its command returned); every figure's clock
        starts there."""
        self.fault_at = self.ended_at = time.monotonic() if at is None else at
        self.observed.append(f"+0.0 s: {what}")
        get_run_logger().info("+0.0 s: %s", what)

    def note(self, what: str) -> None:
        line = f"{time.monotonic() - self.fault_at:+.1f} s: {what}"
        self.observed.append(line)
        get_run_logger().info("%s", line)

    def state(self) -> DrbdState:
        """The primary's DRBD state; the peer's role as the primary knows it is kept too."""
        state = steps.drbd_state(self.targets[self.primary], self.minor)
        if state.peer_role != "Unknown":
            self.peer_roles.add(state.peer_role)
        return state

    def wait_peer_lost(self) -> None:
        state = steps.wait_peer_lost(
            self.targets[self.primary], self.resource, self.settings.faults.timeout_s
        )
        self.note(f"{self.primary} lost its peer ({state.summary()})")

    def writes_on(self) -> None:
        """The application is acknowledged again: ``writes.first_acks`` times, over ``writes.after_s``."""
        writes, since = self.settings.writes, time.monotonic()
        wanted = len(self.acks) + writes.first_acks

        def acked() -> bool:
            self.state()
            if not self.writer.running:
                raise self.writer.failure()
            latest = self.acks.acks()[-1].at if len(self.acks) else since
            return len(self.acks) >= wanted and latest - since >= writes.after_s

        wait_until(acked, self.settings.faults.timeout_s, f"{self.primary} to acknowledge writes again", 0.5)
        self.note(f"{self.primary} writes on ({len(self.acks)} records acknowledged so far)")

    def out_of_sync(self) -> None:
        """What the primary's bitmap holds just before the fault ends: what the resync will copy."""
        state = self.state()
        self.note(f"{self.primary} marks {state.out_of_sync_kib or 0:,} KiB out of sync ({state.summary()})")

    def end(self, what: str) -> None:
        self.ended_at = time.monotonic()
        self.note(what)

    def wait_redundant(self) -> float:
        """Connected and both disks UpToDate again; returns seconds since the fault's end."""

        def redundant() -> bool:
            state = self.state()
            if state.connection == "StandAlone":
                raise SplitBrain(f"{self.primary}'s DRBD is StandAlone after the fault: {state.summary()}")
            return state.healthy

        wait_until(redundant, self.settings.faults.timeout_s, f"{self.resource.name} to resync", 0.5)
        self.redundant_at = time.monotonic()
        self.note(f"both disks UpToDate ({self.state().summary()})")
        return round(self.redundant_at - self.ended_at, 1)

    def resynced_kib(self) -> int:
        """What the resyncs since the fault copied, as DRBD announced each in the primary's kernel log."""
        return sum(steps.resyncs(self.targets[self.primary], self.minor)[self.resyncs_seen :])

    def written_bytes(self) -> int:
        """Acknowledged records and bulk data written between the fault and both disks UpToDate again:
        while the peer was out of date."""
        payload = self.settings.writes.payload_bytes
        return self.acks.bytes_between(self.fault_at, self.redundant_at, payload) + self.bulk_bytes

    @staticmethod
    def recorded(commands: list[RecordedCommand]) -> list[str]:
        return [f"{c.target}: {c.command}" for c in commands]


# -- the faults: inject, observe, end ----------------------------------------------------------------


def _peer_away(drill: _Drill, bulk_mib: int) -> None:
    """secondary-killed / long-outage: the peer dies, the primary writes on (``bulk_mib`` more), the peer
    is brought back as a repair."""
    settings, peer = drill.settings, drill.targets[drill.peer]
    fired_at = time.monotonic()  # a node dies as the command starts, not when it returns
    fire_fault(settings, peer)
    drill.struck(f"{drill.peer} {fault_outcome(settings.fault)}", at=fired_at)
    confirm_down(settings, peer)
    drill.wait_peer_lost()
    drill.writes_on()
    if bulk_mib:
        path = f"{drill.directory}/away.bin"
        drill.bulk_bytes = write_bulk(drill.targets[drill.primary], path, bulk_mib)
        drill.note(f"{drill.primary} wrote {bulk_mib} MiB more ({path}, fsynced)")
    drill.out_of_sync()
    with current_executor().recording() as commands:
        drill.end(f"{drill.peer} powered on")
        back = rejoin(settings, drill.targets, drill.resource, drill.peer)
    drill.note(f"{drill.peer} answered SSH after {back.returned_s:.1f} s and was brought up")
    drill.repair = drill.recorded(commands)


def _link_cut(drill: _Drill) -> None:
    settings, peer = drill.settings, drill.targets[drill.peer]
    cut_link(peer, [node.port for node in drill.resource.nodes])
    drill.struck(f"replication link cut inside {drill.peer}")
    try:
        drill.wait_peer_lost()
        drill.writes_on()
        hold_until = drill.fault_at + settings.link_cut.hold_s

        def held() -> bool:
            drill.state()
            return time.monotonic() >= hold_until

        wait_until(held, settings.link_cut.hold_s + 30, "the end of the cut", interval_s=0.5)
        drill.out_of_sync()
    finally:
        heal_link(peer)  # never leave the link cut
    drill.end("link healed")


def _disk_failure(drill: _Drill) -> None:
    settings, primary = drill.settings, drill.targets[drill.primary]
    disk = drill.resource.node(drill.primary).disk
    pulled = pull_disk(primary, disk)
    drill.struck(f"{drill.primary}'s backing disk {disk} pulled ({pulled.device} unplugged)")
    with current_executor().recording() as commands:
        try:
            wait_until(
                lambda: drill.state().disk == "Diskless",
                settings.faults.timeout_s,
                f"{drill.primary}'s DRBD to detach its failed disk",
                interval_s=0.2,
            )
            drill.note(f"{drill.primary} detached its disk ({drill.state().summary()})")
            drill.writes_on()
        finally:
            put_back_disk(primary, pulled)  # never leave the disk unplugged
        drill.end(f"{disk} put back")
        steps.attach(primary, drill.resource)
    drill.repair = drill.recorded(commands)


def _power_cycle(drill: _Drill) -> None:
    settings = drill.settings
    nodes = [drill.primary, drill.peer]
    fired_at = time.monotonic()
    for node in nodes:  # as close to "at once" as two commands get
        fire_fault(settings, drill.targets[node])
    drill.struck(f"{' and '.join(nodes)} {fault_outcome(settings.fault)}", at=fired_at)
    drill.writer.abandon()
    for node in nodes:
        confirm_down(settings, drill.targets[node])
    drill.end("power back")
    returns = {node: restart_node.submit(settings, drill.targets[node]) for node in nodes}
    for node, back in returns.items():
        drill.note(f"{node} answers SSH ({back.result():.1f} s after it was powered on)")
    drill.resyncs_seen = 0  # the primary's kernel log begins at this boot
    with current_executor().recording() as commands:
        built = setup(settings)
    if built.primary != drill.primary:
        raise CheckFailed(
            f"after the power cycle setup made {built.primary} the primary, not {drill.primary}"
        )
    drill.note(f"python -m flows.setup: {drill.primary} serves again")
    drill.manual = ["python -m flows.setup", *drill.recorded(commands)]
    drill.restart_application()


FAULTS: Mapping[StorageFault, Callable[[_Drill], None]] = {
    "secondary-killed": lambda drill: _peer_away(drill, 0),
    "long-outage": lambda drill: _peer_away(drill, drill.settings.faults.away_mib),
    "link-cut": _link_cut,
    "disk-failure": _disk_failure,
    "power-cycle": _power_cycle,
}


def _drill(settings: Settings, fault: StorageFault) -> StorageFaultReport:
    # Phase 1: the volume as configured, in sync, and the application writing on the primary.
    built = setup(settings)
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    directory = f"{settings.drbd.mountpoint}/faults/{fault}-{started_at.replace(':', '')}"
    drill = _Drill(settings, built.primary, fault, directory)
    primary = drill.targets[drill.primary]
    steps.wait_synced(primary, drill.resource, settings.drbd.sync_timeout_s)
    volume_kib = steps.device_size(primary, drill.resource.node(drill.primary).device) // 1024
    drill.resyncs_seen = len(steps.resyncs(primary, drill.minor))
    drill.writer.start(settings.writes.first_acks, 120)

    # Phase 2: the fault, observed until it ends; then both disks UpToDate again.
    try:
        FAULTS[fault](drill)
        redundant_s = drill.wait_redundant()
    except BaseException:
        for writer in drill.writers:
            if not writer.abandoned:
                writer.abandon()
        raise
    for writer in drill.writers:
        if not writer.abandoned:
            writer.stop()
    finished_at = time.monotonic()

    # Phase 3: every acknowledged record read back on the primary; the drill's files removed.
    names = [writer.name for writer in drill.writers]
    checks = check_writers(primary, directory, drill.acks, names, settings.writes.payload_bytes)
    writes = acked_writes(drill.acks, checks, drill.fault_at, finished_at)
    if not writes.lost:
        remove_drill_files(primary, directory)
    report = StorageFaultReport(
        fault=fault,
        resource=drill.resource.name,
        primary=drill.primary,
        peer=drill.peer,
        started_at=started_at,
        observed=drill.observed,
        lasted_s=round(drill.ended_at - drill.fault_at, 1),
        written_bytes=drill.written_bytes(),
        resynced_kib=drill.resynced_kib(),
        volume_kib=volume_kib,
        redundant_s=redundant_s,
        manual_commands=drill.manual,
        repair_commands=drill.repair,
        peer_roles=sorted(drill.peer_roles),
        writes=writes,
    )
    png = ack_timeline_png(writes, f"{fault}: {drill.primary} writes", fault)
    picture = save_picture(png, settings.writes.reports_dir, f"{fault}-{drill.resource.name}-{started_at}")
    report = report.model_copy(update={"picture": str(picture)})
    _publish(report, settings.cluster_name)
    return report


def _publish(report: StorageFaultReport, cluster: str) -> None:
    lost, outage = report.answers()
    create_markdown_artifact(
        key=f"storage-fault-{report.fault}",
        markdown="\n\n".join(
            (
                f"# Storage fault {report.fault}: {report.primary} serves, {report.peer} is its peer",
                f"**Was any acknowledged write lost?** {lost}",
                f"**Write outage:** {outage}",
                f"**Resync:** {report.resync_line()}, {report.redundant_s:.1f} s after the fault's end",
                *([f"Picture of the acknowledged writes: `{report.picture}`"] if report.picture else []),
                f"```\n{report.render()}\n```",
            )
        ),
        description=f"{report.fault}: {report.writes.lost} acknowledged writes lost",
    )
    create_table_artifact(
        key=f"storage-fault-{report.fault}-verification",
        table=[check.row() for check in report.writes.checks],
        description="Acknowledged records read back on the primary",
    )
    summary = {
        "fault": report.fault,
        "resource": report.resource,
        "primary": report.primary,
        "peer": report.peer,
        "acked": report.writes.acked,
        "acked_lost": report.writes.lost,
        "write_outage_s": report.writes.outage.gap_s if report.writes.outage else None,
        "resynced_kib": report.resynced_kib,
        "written_bytes": report.written_bytes,
        "redundant_s": report.redundant_s,
        "manual_commands": report.manual_commands,
    }
    emit(STORAGE_FAULT_COMPLETED, resource=cluster_resource(cluster), payload=summary)
    if report.writes.lost:
        emit(
            DATA_LOST,
            resource=cluster_resource(cluster),
            payload={**summary, "drill": "storage-fault", "lost_records": report.writes.lost_records()},
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.storage_faults", description=__doc__.splitlines()[0]
    )
    parser.add_argument("fault", choices=STORAGE_FAULTS, help="the fault to inject")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks of failures")
    args = parser.parse_args(argv)

    def act(settings: Settings) -> int:
        report = storage_fault(settings, fault=args.fault)
        print(report.render())
        return 1 if report.writes.lost or report.two_primaries else 0

    return run_cli(act, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
