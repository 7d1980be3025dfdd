"""The failover drill, the project's main job: ``python -m flows.failover``.

Builds (or confirms) the replicated volume, writes a dataset with a sha256 manifest on the primary,
starts an application on it that appends records and is told each is safe only after fsync, kills the
primary in the middle of that stream, detects the loss from the survivor's own DRBD state, promotes and
mounts the survivor, restarts the application there, verifies every byte and every acknowledged
record; then brings the old primary back, lets it resync as secondary, switches roles back and verifies
both again. The report answers, from evidence: was data lost — at rest or acknowledged — how long the
application could not write, and what had to be done on the other node. Exits 1 if any byte was lost.

Under ``cluster.manager = "pacemaker"`` the drill only watches after the kill: the cluster fences,
promotes and mounts by itself, the flow verifies every byte and shows that it ran no state-changing
command on the survivor; the old primary must rejoin as secondary by itself (no switch back: the
cluster keeps the volume where it runs).

A drill that fails midway never leaves the volume without a primary: it checks the nodes, restores
service where it safely can (or says exactly what to run, and where), publishes a partial report of
what it saw, and then fails with its original error (exit 4 for a failed command or a timeout). Under
Pacemaker it never acts behind the cluster: its partial report shows what crm_mon sees.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Any, Literal

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import PrefectFuture
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from blocks.prefect_blocks import cluster_settings
from flows.setup import setup
from tasks.cli import run_cli
from tasks.cluster import drbd_resource, node_targets, pacemaker_cluster, secret_block_name, shared_secret
from tasks.context import current_executor, refuse_dry_run, run_context
from tasks.drbd import steps
from tasks.drbd.model import DrbdResource
from tasks.drbd.plan import Refused
from tasks.drbd.roles import Recovery, Rejoined, rejoin, restore_service, switch_primary
from tasks.events import DATA_LOST, FAILOVER_COMPLETED, cluster_resource, emit
from tasks.executor import SshTarget
from tasks.manifest import Entry, contents, lost_files, tree_manifest
from tasks.nodes import confirm_down, fault_outcome, fire_fault, restart_node
from tasks.pacemaker import steps as pm_steps
from tasks.pictures import ack_timeline_png, resync_png, save_picture, timeline_png
from tasks.settings import Settings
from tasks.step import step
from tasks.writes import AckedWrites, AckLog, Writer, WriterCheck, acked_writes, check_writers


class Verification(BaseModel):
    node: str
    files_ok: int
    bytes_ok: int
    bytes_lost: int
    lost_files: list[str] = Field(default_factory=list)


class VolumeOutcome(BaseModel):
    """A further volume (``drbd.volumes``) through the drill: the lost node was Primary of every volume, so
    the survivor takes them all over at once; each has a dataset of its own, verified like the first's."""

    resource: str
    mountpoint: str
    dataset_files: int
    dataset_bytes: int
    promote_s: float = 0.0
    mount_s: float = 0.0
    verified_s: float = Field(0.0, description="Kill → every byte of its dataset verified on the survivor.")
    verified: list[Verification] = Field(
        default_factory=list, description="On the survivor after the failover, then on both after the resync."
    )
    resync_s: float | None = Field(None, description="Old primary attached → both disks UpToDate again.")
    resynced_bytes: int | None = Field(None, description="What that resync copied (DRBD's own figure).")

    @property
    def bytes_lost(self) -> int:
        return max((v.bytes_lost for v in self.verified), default=0)

    def row(self) -> tuple[str, str]:
        lost = f"{self.bytes_lost:,} of {self.dataset_bytes:,} bytes lost"
        resync = (
            f"; resync {self.resync_s:.1f} s, {(self.resynced_bytes or 0) >> 10:,} KiB copied"
            if self.resync_s is not None
            else ""
        )
        return (
            f"volume {self.resource} ({self.mountpoint})",
            f"verified {self.verified_s:.1f} s after the kill (promote {self.promote_s:.1f} s, mount "
            f"{self.mount_s:.1f} s), {lost} ({len(self.verified)} checks: "
            f"{', '.join(v.node for v in self.verified)}){resync}",
        )


class FailoverReport(BaseModel):
    resource: str
    killed: str = Field(description="The primary that was killed.")
    survivor: str
    fault: str
    dataset_files: int
    dataset_bytes: int
    detection_s: float = Field(description="Kill → survivor's DRBD reports the peer lost.")
    promote_s: float
    mount_s: float
    rto_s: float = Field(description="Kill → every byte verified on the survivor.")
    after_failover: Verification
    survivor_commands: list[str] = Field(description="State-changing commands run on the survivor.")
    down_s: float = Field(
        0.0,
        description="Survivor saw the loss → the killed node confirmed off SSH (real hosts; 0 in the lab).",
    )
    returned_s: float = Field(description="Restart of the killed node → it answers SSH.")
    resync_s: float = Field(description="Old primary attached → both disks UpToDate again.")
    resynced_bytes: int | None = Field(None, description="What that resync copied (DRBD's own figure).")
    written_away_bytes: int | None = Field(
        None,
        description="What the acknowledged records put on the survivor while the old primary was away.",
    )
    volume_bytes: int | None = Field(None, description="The replicated volume's size, for scale.")
    after_rejoin: list[Verification]
    started_at: str
    manager: Literal["none", "pacemaker"] = Field(
        "none", description="Who failed over: the flow, or Pacemaker."
    )
    fenced_s: float | None = Field(None, description="Kill → the cluster confirmed the node fenced.")
    fenced_by: str | None = Field(None, description="The node that fenced it.")
    member_s: float | None = Field(None, description="Old primary on SSH → an online cluster member again.")
    unfenced_s: float | None = Field(None, description="Old primary on SSH → the fencing constraint removed.")
    cluster_before: str = Field("", description="crm_mon on the survivor before the fault.")
    cluster_after: str = Field("", description="crm_mon on the survivor at the end.")
    writes: AckedWrites | None = Field(
        None, description="The application's acknowledged records through the fault, read back on each node."
    )
    picture: str = Field("", description="The acknowledged records over time (PNG).")
    rejoin_at_s: float | None = Field(None, description="Kill → the old primary's restart began.")
    timeline_picture: str = Field("", description="The drill's phases on one time axis (PNG).")
    resync_curve: list[tuple[float, float]] = Field(
        default_factory=list, description="The rejoin's resync: (seconds since attached, percent synced)."
    )
    resync_picture: str = Field("", description="That curve (PNG).")
    dataset_s: float | None = Field(None, description="Writing the dataset and hashing it on the primary.")
    switch_back_s: float | None = Field(
        None,
        description="After the resync: verified on the survivor, switched back, verified on the old primary.",
    )
    volumes: list[VolumeOutcome] = Field(
        default_factory=list, description="drbd.volumes: the further volumes, failed over with this one."
    )

    @property
    def bytes_lost(self) -> int:
        own = [self.after_failover.bytes_lost, *(v.bytes_lost for v in self.after_rejoin)]
        return max([*own, *(volume.bytes_lost for volume in self.volumes)])

    @property
    def acked_lost(self) -> int:
        """Acknowledged records missing or corrupt on some node: data lost, like a lost byte."""
        return self.writes.lost if self.writes else 0

    def writes_answer(self) -> str:
        if self.writes is None:
            return ""
        w = self.writes
        outage = f" The application could not write for {w.outage.gap_s:.1f} s." if w.outage else ""
        if not w.lost:
            nodes = " and ".join(sorted({c.node for c in w.checks}))
            return (
                f" None of the {w.acked} writes acknowledged to the application (after fsync, "
                f"{len(w.timeline)} writers) vanished: every one read back intact on {nodes}.{outage}"
            )
        return f" ACKNOWLEDGED WRITES LOST: {w.lost} ({w.lost_bytes:,} bytes).{outage}"

    def volumes_answer(self) -> str:
        if not self.volumes:
            return ""
        names = ", ".join(volume.resource for volume in self.volumes)
        whose = [volume.resource for volume in self.volumes if volume.bytes_lost]
        if whose:
            return f" Volumes that lost bytes: {', '.join(whose)}."
        total = sum(volume.dataset_bytes for volume in self.volumes)
        return (
            f" The other volumes ({names}) failed over with it: all {total:,} bytes of theirs verified too."
        )

    def answers(self) -> tuple[str, str]:
        where = "after rejoin or on another volume" if self.volumes else "after rejoin"
        lost = (
            (
                f"No. All {self.dataset_bytes:,} bytes ({self.dataset_files} files) verified by sha256 on "
                f"{self.survivor} after {self.killed} was {fault_outcome(self.fault)}, and again "
                + (
                    f"after {self.killed} had rejoined and resynced."
                    if self.manager == "pacemaker"
                    else "on both nodes after the resync."
                )
                if self.bytes_lost == 0
                else f"YES: {self.bytes_lost:,} of {self.dataset_bytes:,} bytes lost "
                f"({', '.join(self.after_failover.lost_files) or where})."
            )
            + self.volumes_answer()
            + self.writes_answer()
        )
        commands = "; ".join(f"`{c}`" for c in self.survivor_commands) or "none"
        if self.manager == "pacemaker":
            fenced = f"fenced {self.killed} and " if self.fenced_s is not None else "(STONITH disabled) "
            manual = (
                f"No: Pacemaker {fenced}promoted {self.survivor} by itself; the flow only watched (no "
                f"state-changing command ran on {self.survivor} between the kill and the verified data)."
                if not self.survivor_commands
                else f"Yes: the flow ran {commands} on {self.survivor} (this drill should only watch)."
            )
            return lost, manual
        manual = (
            f"Yes. DRBD does not promote by itself: on {self.survivor} it took {commands} "
            f"(run by this flow; without a cluster manager an operator runs them)."
            if self.survivor_commands
            else "No: nothing had to run on the surviving node."
        )
        return lost, manual

    def rows(self) -> list[tuple[str, str]]:
        if self.manager != "pacemaker":
            return self.manual_rows()
        fenced = (
            [(f"fenced (by {self.fenced_by or 'the cluster'})", f"{self.fenced_s:.1f} s")]
            if self.fenced_s is not None
            else [("fenced", "no: STONITH is disabled")]
        )
        return [
            ("fault", f"{self.fault} on {self.killed} at {self.started_at}"),
            ("detection (kill → membership lost)", f"{self.detection_s:.1f} s"),
            *fenced,
            ("promoted by Pacemaker", f"{self.promote_s:.1f} s"),
            ("mounted by Pacemaker", f"{self.mount_s:.1f} s"),
            ("RTO (kill → every byte verified)", f"{self.rto_s:.1f} s"),
            *self.writes_rows(),
            ("bytes lost", f"{self.bytes_lost:,} of {self.dataset_bytes:,}"),
            ("old primary back on SSH", f"{self.returned_s:.1f} s"),
            ("… an online member again", f"+{self.member_s or 0:.1f} s"),
            ("… resynced as secondary", f"+{self.resync_s:.1f} s"),
            ("… fencing constraint removed", f"+{self.unfenced_s or 0:.1f} s"),
        ]

    def manual_rows(self) -> list[tuple[str, str]]:
        return [
            ("fault", f"{self.fault} on {self.killed} at {self.started_at}"),
            ("detection (kill → survivor sees peer lost)", f"{self.detection_s:.1f} s"),
            *([("killed node confirmed off SSH", f"+{self.down_s:.1f} s")] if self.down_s else []),
            ("promote survivor", f"{self.promote_s:.1f} s"),
            ("mount (journal replay)", f"{self.mount_s:.1f} s"),
            ("RTO (kill → every byte verified)", f"{self.rto_s:.1f} s"),
            *self.writes_rows(),
            ("bytes lost", f"{self.bytes_lost:,} of {self.dataset_bytes:,}"),
            ("old primary back on SSH", f"{self.returned_s:.1f} s"),
            ("resync after rejoin", f"{self.resync_s:.1f} s"),
            *self.resync_rows(),
            *(volume.row() for volume in self.volumes),
        ]

    def resync_rows(self) -> list[tuple[str, str]]:
        """What the rejoin copied against what changed: the crashed primary's activity log bounds the rest."""
        if self.resynced_bytes is None or self.written_away_bytes is None:
            return []
        share = f" ({self.resynced_bytes / self.volume_bytes:.0%} of the volume)" if self.volume_bytes else ""
        return [
            ("… copied", f"{self.resynced_bytes >> 10:,} KiB{share}"),
            (f"… written while {self.killed} was away", f"{self.written_away_bytes >> 10:,} KiB"),
        ]

    def phases(self) -> list[tuple[str, float, float]]:
        """The drill's phases as (label, start, end) in seconds from the kill, for its timeline picture.
        The rejoin's phases need ``rejoin_at_s`` (reports of older runs lack it)."""
        if self.manager == "pacemaker":
            fenced = self.fenced_s if self.fenced_s is not None else self.detection_s
            phases = [
                ("membership lost", 0.0, self.detection_s),
                *(
                    [(f"fenced by {self.fenced_by or 'the cluster'}", self.detection_s, fenced)]
                    if self.fenced_s
                    else []
                ),
                ("promoted by Pacemaker", fenced, self.promote_s),
                ("mounted by Pacemaker", self.promote_s, self.mount_s),
                ("every byte verified (RTO)", self.mount_s, self.rto_s),
            ]
        else:
            t = self.detection_s
            phases = [("survivor sees the peer lost", 0.0, t)]
            if self.down_s:
                phases.append(("killed node confirmed off SSH", t, t + self.down_s))
                t += self.down_s
            phases += [
                ("promote survivor", t, t + self.promote_s),
                ("mount (journal replay)", t + self.promote_s, t + self.promote_s + self.mount_s),
                ("every byte verified (RTO)", t + self.promote_s + self.mount_s, self.rto_s),
            ]
        if self.rejoin_at_s is not None:
            booted = round(self.rejoin_at_s + self.returned_s, 2)
            phases += [
                (f"{self.killed} boots", self.rejoin_at_s, booted),
                (
                    f"{self.killed} {'rejoins' if self.manager == 'pacemaker' else 'attaches'} and resyncs",
                    booted,
                    round(booted + self.resync_s, 2),
                ),
            ]
        return phases

    def writes_rows(self) -> list[tuple[str, str]]:
        if self.writes is None:
            return []
        outage = self.writes.outage
        return [
            ("write outage (last ack → first ack)", f"{outage.gap_s:.1f} s" if outage else "not measured"),
            ("acknowledged writes lost", f"{self.writes.lost} of {self.writes.acked}"),
        ]

    def render(self) -> str:
        lost, manual = self.answers()
        rows = self.rows()
        width = max(len(r[0]) for r in rows)
        by = " (Pacemaker)" if self.manager == "pacemaker" else ""
        cluster = [
            *([f"Cluster before: {self.cluster_before}"] if self.cluster_before else []),
            *([f"Cluster after:  {self.cluster_after}"] if self.cluster_after else []),
        ]
        return "\n".join(
            [
                f"Failover drill{by}, DRBD {self.resource}: {self.killed} → {self.survivor}",
                *(f"  {k:<{width}}  {v}" for k, v in rows),
                *cluster,
                *(f"  {check.summary()}" for check in (self.writes.checks if self.writes else [])),
                *([f"Picture: {self.picture}"] if self.picture else []),
                *([f"Timeline: {self.timeline_picture}"] if self.timeline_picture else []),
                *([f"Resync: {self.resync_picture}"] if self.resync_picture else []),
                "",
                f"Have you lost data after destroying one node?  {lost}",
                f"Was it necessary to do something on the other node to get the data?  {manual}",
            ]
        )


PHASES = {
    "dataset": "writing the dataset and its sha256 manifest on the primary",
    "kill": "the fault, until the survivor saw its peer lost and the killed node stopped answering",
    "failover": "promoting, mounting and verifying every byte on the survivor",
    "rejoin": "bringing the killed node back and resyncing it as secondary",
    "switch back": "switching roles back and verifying every byte on the returned node",
    "watch": "watching Pacemaker fence, promote and mount on the survivor, then verifying every byte",
}
WRITER_MAX_S = 900.0  # a writer the fault did not stop ends by itself even if nothing asks it to

FIGURES = {
    "detection_s": "detection (kill → survivor sees peer lost)",
    "fenced_s": "fenced by the cluster",
    "down_s": "killed node confirmed off SSH",
    "promote_s": "promote survivor",
    "mount_s": "mount (journal replay)",
    "rto_s": "RTO (kill → every byte verified)",
    "returned_s": "old primary back on SSH",
    "resync_s": "resync after rejoin",
}


class FailoverProgress(BaseModel):
    """What the drill has seen so far. When it fails midway this is its partial report: the phase it
    reached, the figures measured until then, every verification, and what the recovery found and did
    (or what an operator must run)."""

    resource: str
    killed: str = Field(description="The primary the drill kills (setup's primary).")
    survivor: str
    fault: str
    started_at: str
    phase: str = Field("dataset", description="The phase running now (a key of PHASES).")
    fired: bool = Field(False, description="The fault was fired at the killed node.")
    dataset_files: int = 0
    dataset_bytes: int = 0
    figures: dict[str, float] = Field(default_factory=dict, description="Measured so far (keys of FIGURES).")
    verified: list[Verification] = Field(default_factory=list)
    survivor_commands: list[str] = Field(default_factory=list)
    error: str = Field("", description="The error the drill failed with.")
    recovery: Recovery | None = None
    volume_recoveries: dict[str, Recovery] = Field(
        default_factory=dict,
        description="drbd.volumes: what the recovery found and did for each further one.",
    )
    cluster: str = Field("", description="crm_mon on the survivor after the failure (manager pacemaker).")
    acked: dict[str, int] = Field(
        default_factory=dict, description="Records acknowledged to the application so far, per writer."
    )

    def report(
        self, after_failover: Verification, after_rejoin: list[Verification], **extra: object
    ) -> FailoverReport:
        """The finished drill's report from what it saw (``extra``: the fields of one kind of drill)."""
        figures = self.figures
        return FailoverReport.model_validate(
            {
                "resource": self.resource,
                "killed": self.killed,
                "survivor": self.survivor,
                "fault": self.fault,
                "dataset_files": self.dataset_files,
                "dataset_bytes": self.dataset_bytes,
                "detection_s": figures["detection_s"],
                "promote_s": figures["promote_s"],
                "mount_s": figures["mount_s"],
                "rto_s": figures["rto_s"],
                "after_failover": after_failover,
                "survivor_commands": self.survivor_commands,
                "returned_s": figures["returned_s"],
                "resync_s": figures["resync_s"],
                "after_rejoin": after_rejoin,
                "started_at": self.started_at,
                **extra,
            }
        )

    def render(self) -> str:
        error, *more = self.error.splitlines() or [""]
        fault = (
            f"{self.fault} fired at {self.killed} (what it did: see the nodes below)"
            if self.fired
            else f"not fired: {self.killed} was not touched"
        )
        rows = [
            ("failed while", PHASES.get(self.phase, self.phase)),
            ("error", error),
            *(("", line) for line in more),
            *(
                [("dataset", f"{self.dataset_files} files, {self.dataset_bytes:,} bytes")]
                if self.dataset_files
                else []
            ),
            ("fault", fault),
            *((FIGURES.get(k, k), f"{v:.1f} s") for k, v in self.figures.items()),
            *(
                (
                    f"verified on {v.node}",
                    f"{v.files_ok} files, {v.bytes_ok:,} bytes intact, {v.bytes_lost:,} lost"
                    + (f" ({', '.join(v.lost_files)})" if v.lost_files else ""),
                )
                for v in self.verified
            ),
        ]
        if self.acked:
            acked = ", ".join(f"{writer} {count}" for writer, count in self.acked.items())
            rows.append(("acknowledged writes (not checked)", acked))
        if self.survivor_commands:
            rows.append((f"ran on {self.survivor}", "; ".join(f"`{c}`" for c in self.survivor_commands)))
        width = max(len(label) for label, _ in rows)
        if self.recovery:
            recovery = [self.recovery.summary(), *(f"  {seen.describe()}" for seen in self.recovery.seen)]
            for name, further in self.volume_recoveries.items():
                recovery += [
                    f"{name}: {further.summary()}",
                    *(f"  {seen.describe()}" for seen in further.seen),
                ]
        elif self.cluster:
            recovery = [
                "Service: left to Pacemaker (the flow does not act behind it); crm_mon:",
                self.cluster,
            ]
        else:
            recovery = [
                "Service: not checked (see the log): check `cat /proc/drbd` and the mount on both nodes."
            ]
        return "\n".join(
            [
                f"Failover drill FAILED, DRBD {self.resource}: {self.killed} → {self.survivor} "
                f"(started {self.started_at})",
                *(f"  {label:<{width}}  {value}" for label, value in rows),
                *recovery,
            ]
        )


@step(name="write-dataset", timeout_seconds=900)
def write_dataset(target: SshTarget, directory: str, files: int, file_mib: int) -> None:
    """Random files on the volume, flushed to disk (their manifest is read afterwards)."""
    run = current_executor().run
    run(["mkdir", "-p", directory], target)
    for i in range(1, files + 1):
        argv = ["dd", "if=/dev/urandom", f"of={directory}/f{i:04d}.bin", "bs=1M", f"count={file_mib}"]
        run([*argv, "status=none"], target, timeout=600)
    run(["sync"], target, timeout=300)


def verify_dataset(target: SshTarget, directory: str, manifest: dict[str, Entry]) -> Verification:
    """Hash every file on ``target`` and compare with the manifest kept by the flow (not the volume's)."""
    lost = lost_files(manifest, tree_manifest(target, directory))
    files = contents(manifest)
    return Verification(
        node=target.name,
        files_ok=len(files) - len(lost),
        bytes_ok=sum(manifest[p].size for p in files if p not in lost),
        bytes_lost=sum(manifest[p].size for p in lost),
        lost_files=lost,
    )


@step(name="remove-old-datasets", timeout_seconds=300)
def remove_old_datasets(target: SshTarget, mountpoint: str) -> None:
    argv = [
        "find",
        mountpoint,
        "-mindepth",
        "1",
        "-maxdepth",
        "1",
        "-name",
        "drill-*",
        "-exec",
        "rm",
        "-rf",
        "{}",
        "+",
    ]
    current_executor().run(argv, target, timeout=240)


@flow(name="failover-drill")
def failover_drill(settings: Settings | None = None, cluster: str | None = None) -> FailoverReport:
    settings = settings or cluster_settings(cluster)
    refuse_dry_run(
        settings,
        "the failover drill",
        "its proof is a real kill of the primary (HSF_DRY_RUN=true python -m flows.setup shows the plan)",
    )
    if settings.fault == "none":
        raise Refused("failover.fault is 'none': the drill kills a node, so it must be enabled explicitly")
    with run_context(settings, changes_state=True):
        return _drill(settings)


def _drill(settings: Settings) -> FailoverReport:
    built = setup(settings)
    targets = node_targets(settings)
    resource = drbd_resource(settings, shared_secret(secret_block_name(settings)))
    primary = built.primary  # the primary setup left mounted (it may adopt one other than settings')
    elsewhere = [f"{v.resource} is Primary on {v.primary}" for v in built.volumes if v.primary != primary]
    if elsewhere:
        raise Refused(
            f"{resource.name} is Primary on {primary}, but {'; '.join(elsewhere)}: the drill kills one node, "
            "so every volume must be Primary there (switch them, or set primary_node). Nothing was changed."
        )
    progress = FailoverProgress(
        resource=resource.name,
        killed=primary,
        survivor=resource.peer_of(primary).name,
        fault=settings.fault,
        started_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    application = _Application(settings, progress)
    volumes = _FurtherVolumes(settings, targets, progress.started_at)
    try:
        if settings.cluster.manager == "pacemaker":  # one volume: the settings refuse drbd.volumes there
            report = _watched_phases(settings, targets, resource, progress, application)
        else:
            report = _phases(settings, targets, resource, progress, application, volumes)
    except Exception as exc:
        application.stop_quietly()
        progress.acked = application.acked()
        _after_failure(settings, targets, resource, progress, exc, volumes)
        raise
    if report.writes is not None:
        png = ack_timeline_png(
            report.writes,
            f"Failover drill: {report.killed} → {report.survivor}, acknowledged writes",
            f"{fault_outcome(report.fault)} {report.killed}",
        )
        picture = save_picture(
            png, settings.writes.reports_dir, f"failover-{resource.name}-{report.started_at}"
        )
        report = report.model_copy(update={"picture": str(picture)})
    timeline = timeline_png(
        report.phases(),
        f"Failover drill: {report.killed} → {report.survivor}, {fault_outcome(report.fault)} {report.killed}",
        rto_s=report.rto_s,
    )
    path = save_picture(
        timeline, settings.writes.reports_dir, f"failover-timeline-{resource.name}-{report.started_at}"
    )
    report = report.model_copy(update={"timeline_picture": str(path)})
    if report.resync_curve:
        copied = f"{report.resynced_bytes or 0:,} bytes in {report.resync_s:.1f} s"
        title = f"Resync of {report.killed} after it rejoined (DRBD {resource.name})"
        path = save_picture(
            resync_png(report.resync_curve, title, copied),
            settings.writes.reports_dir,
            f"failover-resync-{resource.name}-{report.started_at}",
        )
        report = report.model_copy(update={"resync_picture": str(path)})
    _publish(report, settings.cluster_name)
    return report


class _Application:
    """The drill's application: acknowledged writers, one on the primary until it dies, one restarted on
    the survivor once it serves (as a cluster or an operator would restart it)."""

    def __init__(self, settings: Settings, progress: FailoverProgress) -> None:
        self.settings = settings.writes
        self.directory = f"{settings.drbd.mountpoint}/drill-{progress.started_at.replace(':', '')}-acked"
        self.log = AckLog()
        self.writers: list[Writer] = []

    def start(self, target: SshTarget, first_acks: int) -> Writer:
        name = f"{target.name}-{len(self.writers) + 1}"
        writer = Writer(target, self.directory, name, self.log, self.settings, max_s=WRITER_MAX_S)
        self.writers.append(writer)
        return writer.start(first_acks, timeout_s=120)

    def check(self, target: SshTarget) -> list[WriterCheck]:
        names = [w.name for w in self.writers]
        return check_writers(target, self.directory, self.log, names, self.settings.payload_bytes)

    def acked(self) -> dict[str, int]:
        return {w.name: len(self.log.acks(w.name)) for w in self.writers}

    def stop_quietly(self) -> None:
        """A failed drill: stop the writers that still run, without hiding the drill's error."""
        for writer in self.writers:
            if not writer.abandoned:
                try:
                    writer.stop(timeout_s=30)
                except Exception as exc:
                    get_run_logger().warning("could not stop the writer %s: %s", writer.name, exc)


def _phases(
    settings: Settings,
    targets: dict[str, SshTarget],
    resource: DrbdResource,
    progress: FailoverProgress,
    application: _Application,
    volumes: _FurtherVolumes,
) -> FailoverReport:
    """The drill after setup; ``progress`` records what it has seen, for a partial report."""
    log = get_run_logger()
    executor = current_executor()
    drbd = settings.drbd
    primary, survivor = progress.killed, progress.survivor
    figures = progress.figures

    # Phase 1: a dataset whose every byte is recorded (one on each further volume, at once), and the
    # application writing on the primary.
    started = time.monotonic()
    volumes.write_datasets(primary)
    directory, manifest = _dataset(settings, targets[primary], progress)
    volumes.datasets_written()
    dataset_s = round(time.monotonic() - started, 2)
    first = application.start(targets[primary], settings.writes.first_acks)

    # Phase 2: kill the primary; the survivor takes over (every state-changing command is recorded).
    progress.phase = "kill"
    with executor.recording() as commands:
        try:
            killed_at = time.monotonic()
            progress.fired = True
            fire_fault(settings, targets[primary])
            first.abandon()
            try:
                seen = steps.wait_peer_lost(targets[survivor], resource, timeout_s=120).summary()
            except TimeoutError:
                confirm_down(settings, targets[primary])  # a fault that did nothing: say that instead
                raise
            detected_at = time.monotonic()
            figures["detection_s"] = round(detected_at - killed_at, 2)
            log.info("%s lost its peer after %.1f s: %s", survivor, detected_at - killed_at, seen)
            # Never promote next to a live primary: the killed node must no longer answer.
            figures["down_s"] = round(confirm_down(settings, targets[primary]), 2)
            progress.phase = "failover"
            volumes.take_over(survivor, killed_at)
            figures["promote_s"] = round(steps.promote(targets[survivor], resource), 2)
            device = resource.node(survivor).device
            figures["mount_s"] = round(steps.mount(targets[survivor], device, drbd.mountpoint), 2)
            second = application.start(targets[survivor], 1)  # what the operator restarts next
            after_failover = verify_dataset(targets[survivor], directory, manifest)
            figures["rto_s"] = round(time.monotonic() - killed_at, 2)
            progress.verified.append(after_failover)
            volumes.taken_over()
        finally:
            progress.survivor_commands = [c.command for c in commands if c.target == survivor]
    # Phase 3: the old primary boots while the application writes on the survivor and its records are
    # read back; then it rejoins as secondary, takes over again, and proves its copy.
    rejoin_at_s = round(time.monotonic() - killed_at, 2)
    booting = restart_node.submit(settings, targets[primary])
    try:
        second.keep_writing(settings.writes.after_s, timeout_s=settings.writes.after_s + 300)
        second.stop()
        ended_at = time.monotonic()
        checks = application.check(targets[survivor])
    except BaseException:
        booting.wait()  # never two restarts at once: the recovery may restart it too
        raise
    progress.phase = "rejoin"
    returned_s = booting.result()
    volumes.rejoin(primary, returned_s)
    rejoined = rejoin(settings, targets, resource, primary, returned_s=returned_s)
    figures["returned_s"], figures["resync_s"] = round(rejoined.returned_s, 1), round(rejoined.resync_s, 1)
    resynced_at = time.monotonic()
    volumes.switch_back(survivor, primary)
    on_survivor = verify_dataset(targets[survivor], directory, manifest)
    progress.verified.append(on_survivor)
    progress.phase = "switch back"
    switch_primary(targets, resource, drbd.mountpoint, old=survivor, new=primary)
    on_returned = verify_dataset(targets[primary], directory, manifest)
    progress.verified.append(on_returned)
    switch_back_s = round(time.monotonic() - resynced_at, 2)
    checks += application.check(targets[primary])

    return progress.report(
        after_failover,
        [on_survivor, on_returned],
        down_s=figures["down_s"],
        rejoin_at_s=rejoin_at_s,
        dataset_s=dataset_s,
        switch_back_s=switch_back_s,
        resynced_bytes=rejoined.resynced_kib << 10,
        resync_curve=rejoined.resync_curve,
        written_away_bytes=application.log.bytes_between(
            killed_at, resynced_at, settings.writes.payload_bytes
        ),
        volume_bytes=steps.device_size(targets[primary], resource.node(primary).device),  # Primary again
        writes=acked_writes(application.log, checks, killed_at, ended_at),
        volumes=volumes.switched_back(),
    )


def _dataset(
    settings: Settings, primary: SshTarget, progress: FailoverProgress
) -> tuple[str, dict[str, Entry]]:
    """Phase 1 of both drills: random files on the primary, and the manifest the flow keeps of them."""
    directory, manifest = volume_dataset.fn(settings, primary, progress.started_at)
    progress.dataset_files, progress.dataset_bytes = dataset_size(manifest)
    return directory, manifest


def dataset_size(manifest: dict[str, Entry]) -> tuple[int, int]:
    """Files and bytes of a dataset (the manifest also lists its directories)."""
    dataset = contents(manifest)
    return len(dataset), sum(manifest[p].size for p in dataset)


@step(name="volume-dataset", timeout_seconds=1800)
def volume_dataset(settings: Settings, primary: SshTarget, started_at: str) -> tuple[str, dict[str, Entry]]:
    """Random files on the volume's mountpoint on the primary, and the manifest the flow keeps of them."""
    mountpoint = settings.drbd.mountpoint
    remove_old_datasets(primary, mountpoint)
    directory = f"{mountpoint}/drill-{started_at.replace(':', '')}"
    write_dataset(primary, directory, settings.failover.dataset_files, settings.failover.file_mib)
    manifest = tree_manifest(primary, directory)
    files, size = dataset_size(manifest)
    get_run_logger().info(
        "wrote %d files (%d bytes) with their sha256 on %s:%s", files, size, primary.name, mountpoint
    )
    return directory, manifest


@step(name="volume-take-over", timeout_seconds=900)
def take_over_volume(
    survivor: SshTarget,
    resource: DrbdResource,
    mountpoint: str,
    directory: str,
    manifest: dict[str, Entry],
    killed_at: float,
) -> VolumeOutcome:
    """A further volume on the survivor: promoted, mounted, every byte of its dataset verified."""
    promote_s = steps.promote(survivor, resource)
    mount_s = steps.mount(survivor, resource.node(survivor.name).device, mountpoint)
    verified = verify_dataset(survivor, directory, manifest)
    files, size = dataset_size(manifest)
    return VolumeOutcome(
        resource=resource.name,
        mountpoint=mountpoint,
        dataset_files=files,
        dataset_bytes=size,
        promote_s=round(promote_s, 2),
        mount_s=round(mount_s, 2),
        verified_s=round(time.monotonic() - killed_at, 2),
        verified=[verified],
    )


@step(name="volume-rejoin", timeout_seconds=3600)
def rejoin_volume(
    settings: Settings, targets: dict[str, SshTarget], resource: DrbdResource, node: str, returned_s: float
) -> Rejoined:
    """A further volume on the returned node: up, connected, resynced as secondary."""
    return rejoin(settings, targets, resource, node, returned_s=returned_s)


@step(name="volume-switch-back", timeout_seconds=900)
def switch_back_volume(
    targets: dict[str, SshTarget],
    resource: DrbdResource,
    mountpoint: str,
    old: str,
    new: str,
    directory: str,
    manifest: dict[str, Entry],
) -> list[Verification]:
    """A further volume after its resync: verified on the survivor, switched back, verified on ``new``."""
    on_survivor = verify_dataset(targets[old], directory, manifest)
    switch_primary(targets, resource, mountpoint, old=old, new=new)
    return [on_survivor, verify_dataset(targets[new], directory, manifest)]


class _FurtherVolumes:
    """The volumes beside the first (``drbd.volumes``) through the drill: each phase of each is a task
    submitted before the first volume's own work in that phase and collected after it, so they all run at
    once (one node was lost: every volume fails over, rejoins and switches back together)."""

    def __init__(self, settings: Settings, targets: dict[str, SshTarget], started_at: str) -> None:
        self.targets, self.started_at = targets, started_at
        self.settings = settings.each_volume()[1:]
        self.resources = [drbd_resource(v, shared_secret(secret_block_name(v))) for v in self.settings]
        for resource in self.resources:
            current_executor().add_secret(resource.shared_secret.get_secret_value())
        self.pending: list[PrefectFuture[Any]] = []
        self.datasets: list[tuple[str, dict[str, Entry]]] = []
        self.outcomes: list[VolumeOutcome] = []

    def _results(self) -> list[Any]:
        pending, self.pending = self.pending, []
        return [future.result() for future in pending]

    def write_datasets(self, primary: str) -> None:
        self.pending = [
            volume_dataset.submit(v, self.targets[primary], self.started_at) for v in self.settings
        ]

    def datasets_written(self) -> None:
        self.datasets = self._results()

    def take_over(self, survivor: str, killed_at: float) -> None:
        self.pending = [
            take_over_volume.submit(
                self.targets[survivor], resource, v.drbd.mountpoint, directory, manifest, killed_at
            )
            for v, resource, (directory, manifest) in zip(
                self.settings, self.resources, self.datasets, strict=True
            )
        ]

    def taken_over(self) -> None:
        self.outcomes = self._results()

    def rejoin(self, node: str, returned_s: float) -> None:
        self.pending = [
            rejoin_volume.submit(v, self.targets, resource, node, returned_s)
            for v, resource in zip(self.settings, self.resources, strict=True)
        ]

    def switch_back(self, old: str, new: str) -> None:
        for outcome, rejoined in zip(self.outcomes, self._results(), strict=True):
            outcome.resync_s, outcome.resynced_bytes = (
                round(rejoined.resync_s, 1),
                rejoined.resynced_kib << 10,
            )
        self.pending = [
            switch_back_volume.submit(
                self.targets, resource, v.drbd.mountpoint, old, new, directory, manifest
            )
            for v, resource, (directory, manifest) in zip(
                self.settings, self.resources, self.datasets, strict=True
            )
        ]

    def recover(self, prefer: str) -> dict[str, Recovery]:
        """After a failed drill: let what still runs end, then see that each further volume is served,
        as the first is (:func:`restore_service`: nothing, mount, or promote and mount, or the commands)."""
        for future in self.pending:
            future.wait()
        self.pending = []
        return {
            resource.name: restore_service(self.targets, resource, v.drbd.mountpoint, prefer=prefer)
            for v, resource in zip(self.settings, self.resources, strict=True)
        }

    def switched_back(self) -> list[VolumeOutcome]:
        for outcome, verified in zip(self.outcomes, self._results(), strict=True):
            outcome.verified += verified
        return self.outcomes


def _watched_phases(
    settings: Settings,
    targets: dict[str, SshTarget],
    resource: DrbdResource,
    progress: FailoverProgress,
    application: _Application,
) -> FailoverReport:
    """The drill under Pacemaker: after the fault the flow only reads the survivor's state (crm_mon,
    /proc/drbd, the files' hashes) until the cluster has failed over by itself and every byte verified."""
    log = get_run_logger()
    executor = current_executor()
    cib = pacemaker_cluster(settings).cib
    timeout_s = settings.cluster.start_timeout_s
    primary, survivor = progress.killed, progress.survivor
    figures = progress.figures

    # Phase 1: both disks UpToDate (a resync still running would make the kill lose data by design),
    # then the dataset.
    steps.wait_synced(targets[primary], resource, settings.drbd.sync_timeout_s)
    directory, manifest = _dataset(settings, targets[primary], progress)
    before = pm_steps.cluster_status(targets[survivor])
    cluster_before = before.summary() if before else "pacemaker does not answer"
    fencings_before = len(pm_steps.fencings_of(targets[survivor], primary))
    first = application.start(targets[primary], settings.writes.first_acks)

    # Phase 2: the fault; from here to the verified data the flow changes nothing on the survivor (the
    # application it restarts there is the workload, not an operator's command).
    progress.phase = "kill"
    with executor.recording() as commands:
        try:
            killed_at = time.monotonic()
            progress.fired = True
            fire_fault(settings, targets[primary])
            first.abandon()
            progress.phase = "watch"
            seen = pm_steps.watch_takeover(
                targets[survivor], primary, cib, killed_at, fencings_before, timeout_s
            )
            figures["detection_s"], figures["promote_s"] = seen.membership_lost_s, seen.promoted_s
            figures["mount_s"] = seen.mounted_s
            if seen.fenced_s is not None:
                figures["fenced_s"] = seen.fenced_s
            log.info("Pacemaker failed over by itself: %s", seen)
            second = application.start(targets[survivor], 1)
            after_failover = verify_dataset(targets[survivor], directory, manifest)
            figures["rto_s"] = round(time.monotonic() - killed_at, 2)
            progress.verified.append(after_failover)
        finally:
            progress.survivor_commands = [c.command for c in commands if c.target == survivor]
    second.keep_writing(settings.writes.after_s, timeout_s=settings.writes.after_s + 300)
    second.stop()
    ended_at = time.monotonic()
    checks = application.check(targets[survivor])

    # Phase 3: the old primary returns; the cluster makes it a resynced secondary by itself.
    progress.phase = "rejoin"
    rejoin_at_s = round(time.monotonic() - killed_at, 2)
    figures["returned_s"] = round(restart_node(settings, targets[primary]), 1)
    rejoined = pm_steps.watch_rejoin(
        targets[survivor], primary, cib, resource.node(survivor).minor, settings.drbd.sync_timeout_s
    )
    on_survivor = verify_dataset(targets[survivor], directory, manifest)
    progress.verified.append(on_survivor)
    after = pm_steps.cluster_status(targets[survivor])
    figures["resync_s"] = rejoined.resynced_s
    return progress.report(
        after_failover,
        [on_survivor],
        manager="pacemaker",
        rejoin_at_s=rejoin_at_s,
        fenced_s=seen.fenced_s,
        fenced_by=seen.fenced_by,
        member_s=rejoined.member_s,
        unfenced_s=rejoined.unfenced_s,
        cluster_before=cluster_before,
        cluster_after=after.summary() if after else "pacemaker does not answer",
        writes=acked_writes(application.log, checks, killed_at, ended_at),
    )


def _after_failure(
    settings: Settings,
    targets: dict[str, SshTarget],
    resource: DrbdResource,
    progress: FailoverProgress,
    exc: Exception,
    volumes: _FurtherVolumes,
) -> None:
    """A drill failed midway: one node must still serve the volume, and what it saw is published.

    Never raises (the drill's own error follows): a recovery or publication that fails is logged.
    """
    log = get_run_logger()
    progress.error = f"{type(exc).__name__}: {exc}"
    log.error("failover drill failed while %s; checking the volume is served", PHASES[progress.phase])
    # Before the fault the primary serves; after it the survivor holds the newest data.
    prefer = progress.survivor if progress.fired else progress.killed
    try:
        if settings.cluster.manager == "pacemaker":  # never act behind the cluster: show what it sees
            progress.cluster = pm_steps.cluster_summary(targets[prefer])
        else:
            progress.recovery = restore_service(targets, resource, settings.drbd.mountpoint, prefer=prefer)
            progress.volume_recoveries = volumes.recover(prefer)
    except Exception as failed:  # restore_service reports; this is its own bug
        log.error("the recovery check itself failed: %s: %s", type(failed).__name__, failed)
    try:
        _publish_failure(progress)
    except Exception as failed:  # the drill's error matters more than its artifact
        log.error("could not publish the partial report: %s: %s", type(failed).__name__, failed)


def _publish_failure(progress: FailoverProgress) -> None:
    """The partial report: in the log, and as the drill's markdown artifact (the same key as a report)."""
    text = progress.render()
    get_run_logger().error("%s", text)
    service = progress.recovery.summary() if progress.recovery else "Service: not checked."
    create_markdown_artifact(
        key=f"failover-{progress.resource}",
        markdown="\n\n".join(
            (
                f"# Failover drill FAILED: {progress.killed} → {progress.survivor}",
                f"**Failed while** {PHASES.get(progress.phase, progress.phase)}.",
                f"**{service}**",
                f"```\n{text}\n```",
            )
        ),
        description=f"FAILED while {progress.phase}: {progress.error.splitlines()[0][:200]}",
    )


def _publish(report: FailoverReport, cluster: str) -> None:
    """The report as markdown and table artifacts, then the events automations react to."""
    lost, manual = report.answers()
    create_markdown_artifact(
        key=f"failover-{report.resource}",
        markdown="\n\n".join(
            (
                f"# Failover drill: {report.killed} → {report.survivor}",
                f"**Have you lost data after destroying one node?** {lost}",
                f"**Was it necessary to do something on the other node to get the data?** {manual}",
                *([f"Picture of the acknowledged writes: `{report.picture}`"] if report.picture else []),
                *([f"Timeline of the drill: `{report.timeline_picture}`"] if report.timeline_picture else []),
                *([f"Resync after the rejoin: `{report.resync_picture}`"] if report.resync_picture else []),
                f"```\n{report.render()}\n```",
            )
        ),
        description=f"RTO {report.rto_s:.1f} s, {report.bytes_lost} bytes and {report.acked_lost} "
        "acknowledged writes lost",
    )
    create_table_artifact(
        key=f"failover-{report.resource}-verification",
        table=[v.model_dump() for v in (report.after_failover, *report.after_rejoin)],
        description="Per-node verification against the sha256 manifest",
    )
    summary = {
        "resource": report.resource,
        "killed": report.killed,
        "survivor": report.survivor,
        "rto_s": report.rto_s,
        "detection_s": report.detection_s,
        "bytes_lost": report.bytes_lost,
        "dataset_bytes": report.dataset_bytes,
        "acked": report.writes.acked if report.writes else 0,
        "acked_lost": report.acked_lost,
        "write_outage_s": report.writes.outage.gap_s if report.writes and report.writes.outage else None,
        "resync_s": report.resync_s,
        "resynced_bytes": report.resynced_bytes,
        "written_away_bytes": report.written_away_bytes,
    }
    emit(FAILOVER_COMPLETED, resource=cluster_resource(cluster), payload=summary)
    if report.bytes_lost or report.acked_lost:
        lost_files = sorted({f for v in (report.after_failover, *report.after_rejoin) for f in v.lost_files})
        lost_records = report.writes.lost_records() if report.writes else {}
        emit(
            DATA_LOST,
            resource=cluster_resource(cluster),
            payload={**summary, "drill": "failover", "lost_files": lost_files, "lost_records": lost_records},
        )


def ui_hint(resource: str) -> str:
    """Where the report is kept: the runs and artifacts live in Prefect's database, shown by its UI."""
    return (
        "Reports in the Prefect UI: `.venv/bin/prefect server start`, open http://127.0.0.1:4200, then "
        f"Runs → this failover-drill run → Artifacts (or Artifacts → failover-{resource}); "
        "README: 'Prefect UI, deployments, events and the team server'."
    )


def _run_drill(settings: Settings) -> int:
    report = failover_drill(settings)
    print(report.render())
    if settings.target == "lab":
        print(
            "\nThe lab is still running for a look around (python -m flows.lab status);"
            " make lab-down removes it."
        )
    print(ui_hint(report.resource))
    return 1 if report.bytes_lost or report.acked_lost else 0


def main() -> int:
    return run_cli(_run_drill)


if __name__ == "__main__":
    sys.exit(main())
