"""The fault matrix: ``python -m flows.faults [--only NAME ...] [--runs N]``.

Runs the catalogue of faults (``tasks/faults.py``) that applies to the current volume — its mode is
Pacemaker's when cluster.manager is "pacemaker", HA when both nodes are Primary with OCFS2 mounted,
fault-tolerant otherwise — each ``--runs`` times, through the drill flows that already prove them (as
subflows: each drill keeps its own report, artifacts and events). Every drill's report becomes one
:class:`~tasks.faults.FaultOutcome` — the write outage the application saw, the time until fully
redundant again, bytes lost, the commands someone had to run — and is checked against what the
catalogue says the design promises. The matrix is published as a table, a markdown report and a
picture, with one ``hsf.fault.outcome`` event per outcome. Exits 1 if any fault lost a byte, 4 if any
ended in a state the catalogue does not expect.

A drill that fails stops the matrix: its own error handling has left the volume served (or said what
to run), but the next fault would strike a volume in a state nobody checked. What was measured so far
is published — the failed run as an outcome whose problem is the error — and the drill's error is
raised (its exit code, tasks/cli.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger

from flows.backup_faults import backup_fault
from flows.failover import failover_drill
from flows.ha_node_loss import ha_node_loss
from flows.link_cut import link_cut_drill
from flows.orchestration_faults import orchestration_fault
from flows.split_brain import split_brain_drill
from flows.storage_faults import storage_fault
from tasks.borg.remote import client_access
from tasks.cli import run_cli
from tasks.cluster import (
    borg_passphrase_block_name,
    drbd_resource,
    node_targets,
    secret_block_name,
    shared_secret,
    stored_secret,
)
from tasks.context import refuse_dry_run, run_context
from tasks.disks import full_filesystem_for
from tasks.drbd import steps
from tasks.drbd.plan import Refused
from tasks.events import FAULT_OUTCOME, cluster_resource, emit
from tasks.faults import (
    CATALOGUE,
    LAB_ONLY_BACKUP_FAULTS,
    LAB_ONLY_ORCHESTRATION_FAULTS,
    LAB_ONLY_STORAGE_FAULTS,
    BackupFault,
    FaultOutcome,
    FaultSpec,
    Mode,
    OrchestrationFault,
    StorageFault,
    acked_loss,
    check_names,
    exit_code,
    failed_outcome,
    matrix_rows,
    mode_of,
    render_matrix,
    select,
    summarise,
)
from tasks.nodes import fault_outcome
from tasks.pictures import fault_matrix_png, save_picture
from tasks.settings import Settings, load_settings
from tasks.writes import AckedWrites, WriterCheck, record_size

# A fault that strikes what only the lab may lose, with what it does.
LAB_ONLY_FAULTS: dict[str, str] = {
    **{str(fault): what for fault, what in LAB_ONLY_STORAGE_FAULTS.items()},
    **{str(fault): what for fault, what in LAB_ONLY_ORCHESTRATION_FAULTS.items()},
}

# The drills' reports as the adapters read them. Flow modules take only flows from each other
# (tests/unit/test_layering.py), so each report is described here by the fields it is read for.


class FailoverReportLike(Protocol):
    killed: str
    survivor: str
    fault: str
    rto_s: float
    returned_s: float
    resync_s: float
    fenced_s: float | None
    survivor_commands: list[str]
    writes: AckedWrites | None

    @property
    def bytes_lost(self) -> int: ...


class LinkCutReportLike(Protocol):
    primary: str
    secondary: str
    constraint_s: float
    held_s: float
    acked_during_cut: int
    resynced_s: float
    writes: AckedWrites

    @property
    def two_primaries(self) -> bool: ...


class SplitBrainReportLike(Protocol):
    @property
    def mode(self) -> Mode: ...

    stalls: dict[str, float]
    survivor: str
    victim: str
    detection: dict[str, str]
    rescued: dict[str, str]
    rescue_dir: str
    resync_s: float
    nodes_agree: bool
    checks: list[WriterCheck]
    rescue_check: WriterCheck
    discarded_acked: int
    rescued_acked: int
    resolution_commands: list[str]

    @property
    def acked_gone(self) -> int: ...


class NodeLossReportLike(Protocol):
    killed: str
    survivor: str
    fault: str
    returned_s: float
    resync_s: float
    files_checked: int
    writes: AckedWrites

    @property
    def files_intact(self) -> bool: ...


class BackupFaultReportLike(Protocol):
    @property
    def fault(self) -> str: ...

    error: str
    archives_before: list[str]
    archives_after: list[str]
    sources_changed: list[str]
    recovered_s: float | None
    checkpoints: list[str]
    manual_commands: list[str]

    @property
    def archives_lost(self) -> list[str]: ...

    def problems(self) -> list[str]: ...


class StorageFaultReportLike(Protocol):
    @property
    def fault(self) -> str: ...

    primary: str
    peer: str
    observed: list[str]
    lasted_s: float
    written_bytes: int
    resynced_kib: int
    volume_kib: int
    redundant_s: float
    manual_commands: list[str]
    writes: AckedWrites

    @property
    def two_primaries(self) -> bool: ...


class OrchestrationFaultReportLike(Protocol):
    @property
    def fault(self) -> str: ...

    killed: str
    killed_while: str
    rerun: str
    repeated: list[str]
    problems: list[str]
    unserved_s: float | None
    bytes_lost: int
    acked_lost: int


def failover_outcome(report: FailoverReportLike, run: int, mode: Mode) -> FaultOutcome:
    """``primary-killed`` from the failover drill: the commands it ran on the survivor are the manual ones
    (under Pacemaker there must be none); fully redundant once the old primary, back, has resynced."""
    records, acked_bytes = acked_loss(report.writes)
    outage = report.writes.outage if report.writes else None
    if mode == "pacemaker":
        fenced = "fenced it and " if report.fenced_s is not None else ""
        served = f"Pacemaker {fenced}promoted {report.survivor} by itself"
    else:
        count = len(report.survivor_commands)
        served = f"{report.survivor} promoted by hand ({count} command{'s' if count != 1 else ''})"
    return FaultOutcome(
        fault="primary-killed",
        run=run,
        mode=mode,
        outage_s=outage.gap_s if outage else None,
        redundant_s=round(report.returned_s + report.resync_s, 1),
        bytes_lost=report.bytes_lost + acked_bytes,
        acked_lost=records,
        manual_commands=list(report.survivor_commands),
        summary=f"{report.killed} {fault_outcome(report.fault)}; {served}, every byte verified "
        f"{report.rto_s:.1f} s after the fault; {report.killed} resynced {report.resync_s:.1f} s after it "
        "was back",
    )


def link_cut_outcome(report: LinkCutReportLike, run: int) -> FaultOutcome:
    """``link-cut`` from the link-cut drill: nobody acts (the flow only cuts and heals); fully redundant
    once resynced after the heal."""
    records, acked_bytes = acked_loss(report.writes)
    outage = report.writes.outage
    primaries = (
        f"{report.secondary} became Primary TOO"
        if report.two_primaries
        else f"{report.secondary} never Primary"
    )
    return FaultOutcome(
        fault="link-cut",
        run=run,
        mode="pacemaker",
        outage_s=outage.gap_s if outage else None,
        redundant_s=report.resynced_s,
        bytes_lost=acked_bytes,
        acked_lost=records,
        two_primaries=report.two_primaries,
        summary=f"link cut inside {report.secondary} for {report.held_s:.1f} s: {report.primary} fenced it "
        f"after {report.constraint_s:.1f} s and wrote on ({report.acked_during_cut} writes acknowledged "
        f"meanwhile), {primaries}; resynced {report.resynced_s:.1f} s after the heal",
    )


def split_brain_outcome(report: SplitBrainReportLike, run: int) -> FaultOutcome:
    """``split-brain`` from the split-brain drill. The victim's acknowledged writes are discarded by design:
    only those gone for good count as lost (the survivor's own, and discarded ones not saved aside). The
    manual commands are the ones the drill recorded while it resolved the split-brain."""
    victim_writer = report.rescue_check.writer
    not_saved = set(report.rescue_check.lost)
    gone = {
        (check.writer, seq)
        for check in report.checks
        for seq in check.lost
        if check.writer != victim_writer or seq in not_saved
    }
    payload = {check.writer: check.payload_bytes for check in [*report.checks, report.rescue_check]}
    victim, survivor = report.victim, report.survivor
    agree = "both nodes agree" if report.nodes_agree else "the nodes DISAGREE"
    if report.mode == "ha":
        paused = ", ".join(f"{node} {s:.1f} s" for node, s in report.stalls.items())
        split = f"DRBD's link cut under OCFS2 on two Primaries (writes paused: {paused})"
    else:
        split = f"{victim} promoted beside {survivor} while cut off"
    return FaultOutcome(
        fault="split-brain",
        run=run,
        mode=report.mode,
        # Single-primary: the operator's second Primary writes throughout, there is no outage to measure;
        # HA: the application on each side waits while OCFS2 declares its peer dead.
        outage_s=max(report.stalls.values()) if report.stalls else None,
        redundant_s=report.resync_s,
        bytes_lost=sum(record_size(writer, seq, payload[writer]) for writer, seq in gone),
        acked_lost=report.acked_gone,
        copies_intact=report.nodes_agree,
        two_primaries=True,
        manual_commands=list(report.resolution_commands),
        summary=f"{split}; the resolution discarded "
        f"{report.discarded_acked} acknowledged writes of {victim}, {report.rescued_acked} of them saved in "
        f"{victim}:{report.rescue_dir}; {agree} after a {report.resync_s:.1f} s resync",
    )


def node_loss_outcome(report: NodeLossReportLike, run: int) -> FaultOutcome:
    """``ha-node-loss`` from the HA node-loss drill: the survivor serves by itself (the drill runs nothing
    on it for service; the rejoin is a repair); fully redundant once the lost node, back, has resynced."""
    records, acked_bytes = acked_loss(report.writes)
    outage = report.writes.outage
    files = (
        f"all {report.files_checked} files intact on both nodes"
        if report.files_intact
        else "FILES MISSING OR DIFFERENT after the rejoin"
    )
    return FaultOutcome(
        fault="ha-node-loss",
        run=run,
        mode="ha",
        outage_s=outage.gap_s if outage else None,
        redundant_s=round(report.returned_s + report.resync_s, 1),
        bytes_lost=acked_bytes,
        acked_lost=records,
        copies_intact=report.files_intact,
        summary=f"{report.killed} {fault_outcome(report.fault)} while both nodes wrote; {report.survivor} "
        f"wrote on by itself; {report.killed} resynced {report.resync_s:.1f} s after it was back; {files}",
    )


def storage_fault_outcome(report: StorageFaultReportLike, run: int) -> FaultOutcome:
    """A fault of flows.storage_faults: the primary serves throughout, unless the fault took both nodes
    down; the commands it reports for service are the manual ones (the repair of a struck node or disk is
    not); fully redundant once resynced after the fault's end."""
    records, acked_bytes = acked_loss(report.writes)
    served = (
        f"the volume was down until `{report.manual_commands[0]}` served it on {report.primary} again"
        if report.manual_commands
        else f"{report.primary} served throughout"
    )
    outage = report.writes.outage
    written_kib, share = report.written_bytes >> 10, report.resynced_kib / max(report.volume_kib, 1)
    first, *_ = report.observed or [report.fault]
    return FaultOutcome(
        fault=report.fault,
        run=run,
        mode="fault-tolerant",
        outage_s=outage.gap_s if outage else None,
        redundant_s=report.redundant_s,
        bytes_lost=acked_bytes,
        acked_lost=records,
        two_primaries=report.two_primaries,
        manual_commands=list(report.manual_commands),
        resynced_bytes=report.resynced_kib << 10,
        written_bytes=report.written_bytes,
        summary=f"{first.split(': ', 1)[-1]}; {served}; the fault lasted "
        f"{report.lasted_s:.1f} s; the resync copied {report.resynced_kib:,} KiB ({share:.0%} of the volume) "
        f"for {written_kib:,} KiB written and both disks were UpToDate {report.redundant_s:.1f} s after the "
        "fault's end",
    )


def backup_fault_outcome(report: BackupFaultReportLike, run: int, mode: Mode) -> FaultOutcome:
    """A fault of flows.backup_faults: an archive lost or a source changed is data lost; a struck run that
    did not fail, or failed in more than a line, is a broken promise. Fully working again: the server
    fault's next good backup."""
    lost = report.archives_lost
    kept = f"{len(report.archives_after)} archives after {len(report.archives_before)}"
    failed = report.error.splitlines()[0] if report.error else "it did NOT fail"
    return FaultOutcome(
        fault=report.fault,
        run=run,
        mode=mode,
        outage_s=None,  # no application writes through a backup fault
        redundant_s=report.recovered_s,
        bytes_lost=0,
        copies_intact=not lost and not report.sources_changed,
        manual_commands=list(report.manual_commands),
        summary=f"failed with: {failed}; {kept}"
        + (f", LOST: {', '.join(lost)}" if lost else ", none lost")
        + ("; the sources CHANGED" if report.sources_changed else "; the sources untouched")
        + (f"; working again {report.recovered_s:.1f} s after the fault" if report.recovered_s else "")
        + (f"; checkpoints reported: {', '.join(report.checkpoints)}" if report.checkpoints else ""),
        problems=report.problems(),
    )


def orchestration_fault_outcome(report: OrchestrationFaultReportLike, run: int) -> FaultOutcome:
    """A fault of flows.orchestration_faults: the re-run is what a human runs; what it repeated of what must
    happen once is checked by the catalogue; the volume unserved from the kill to the re-run's mount is the
    outage (drill-killed; a brand-new volume served nothing yet)."""
    return FaultOutcome(
        fault=report.fault,
        run=run,
        mode="fault-tolerant",
        outage_s=report.unserved_s,
        redundant_s=None,
        bytes_lost=report.bytes_lost,
        acked_lost=report.acked_lost,
        manual_commands=[report.rerun],
        repeated=list(report.repeated),
        summary=f"killed {report.killed} ({report.killed_while}); `{report.rerun}` again resumed"
        + (f", repeating {'; '.join(report.repeated)}" if report.repeated else " and repeated nothing")
        + (f"; the volume was unserved {report.unserved_s:.1f} s" if report.unserved_s is not None else ""),
        problems=list(report.problems),
    )


def _backup(fault: BackupFault) -> Callable[[Settings, int, Mode], FaultOutcome]:
    return lambda settings, run, mode: backup_fault_outcome(backup_fault(settings, fault=fault), run, mode)


def _storage(fault: StorageFault) -> Callable[[Settings, int, Mode], FaultOutcome]:
    return lambda settings, run, mode: storage_fault_outcome(storage_fault(settings, fault=fault), run)


def _orchestration(fault: OrchestrationFault) -> Callable[[Settings, int, Mode], FaultOutcome]:
    return lambda settings, run, mode: orchestration_fault_outcome(
        orchestration_fault(settings, fault=fault), run
    )


def _link_cut(settings: Settings, run: int, mode: Mode) -> FaultOutcome:
    """Under Pacemaker the link-cut drill watches the manager's fencing; without one, the storage fault."""
    if mode == "pacemaker":
        return link_cut_outcome(link_cut_drill(settings), run)
    return _storage("link-cut")(settings, run, mode)


# How each fault of the catalogue runs: its drill flow, as a subflow, and the adapter of its report.
RUNNERS: dict[str, Callable[[Settings, int, Mode], FaultOutcome]] = {
    "primary-killed": lambda settings, run, mode: failover_outcome(failover_drill(settings), run, mode),
    "secondary-killed": _storage("secondary-killed"),
    "long-outage": _storage("long-outage"),
    "link-cut": _link_cut,
    "disk-failure": _storage("disk-failure"),
    "power-cycle": _storage("power-cycle"),
    "split-brain": lambda settings, run, mode: split_brain_outcome(split_brain_drill(settings), run),
    "backup-server-down": _backup("backup-server-down"),
    "restore-disk-full": _backup("restore-disk-full"),
    "segment-corrupted": _backup("segment-corrupted"),
    "wrong-passphrase": _backup("wrong-passphrase"),
    "ha-node-loss": lambda settings, run, mode: node_loss_outcome(ha_node_loss(settings), run),
    "setup-killed": _orchestration("setup-killed"),
    "drill-killed": _orchestration("drill-killed"),
}


@flow(name="fault-matrix")
def fault_matrix(
    settings: Settings | None = None, only: list[str] | None = None, runs: int = 1
) -> list[FaultOutcome]:
    """Every fault of the catalogue that applies to the volume (``only``: these), ``runs`` times each."""
    settings = settings or load_settings()
    refuse_dry_run(settings, "the fault matrix", "its proof is each drill's real fault")
    if runs < 1:
        raise Refused(f"the fault matrix needs at least one run of each fault (runs = {runs})")
    try:
        check_names(CATALOGUE, only or [])
    except ValueError as exc:
        raise Refused(str(exc)) from None
    with run_context(settings, changes_state=True):
        return _matrix(settings, only, runs)


def detect_mode(settings: Settings) -> Mode:
    """The volume's mode, from the settings or, without a cluster manager, from the nodes (read-only)."""
    if settings.cluster.manager == "pacemaker":
        return "pacemaker"
    targets = node_targets(settings)
    resource = drbd_resource(settings, shared_secret(secret_block_name(settings)), dual_primary=True)
    return mode_of(settings.cluster.manager, steps.probe_nodes(targets, resource, settings.drbd.mountpoint))


def available(settings: Settings, specs: list[FaultSpec]) -> tuple[list[FaultSpec], list[str]]:
    """The faults that can strike what is configured, and one line for each that cannot: backup faults need
    a repository (its passphrase stored), and the server's own fault the lab's backup VM."""
    has_repository = stored_secret(borg_passphrase_block_name(settings)) is not None
    run, skipped = [], []
    for spec in specs:
        if spec.layer == "backup" and not has_repository:
            skipped.append(f"{spec.name}: needs a Borg repository (python -m flows.backup init)")
        elif spec.name in LAB_ONLY_BACKUP_FAULTS and not (
            settings.target == "lab" and settings.backup.server
        ):
            skipped.append(f"{spec.name}: strikes the lab's backup VM only (target 'lab', backup.server set)")
        elif spec.name in LAB_ONLY_FAULTS and settings.target != "lab":
            skipped.append(f"{spec.name}: {LAB_ONLY_FAULTS[spec.name]}, on the lab only (target 'lab')")
        elif (small := _sources_too_small(settings, spec)) is not None:
            skipped.append(f"{spec.name}: {small}")
        else:
            run.append(spec)
    return run, skipped


def _sources_too_small(settings: Settings, spec: FaultSpec) -> str | None:
    """Why a restore cannot fill a disk here (too little to restore), read before any fault runs: a refusal
    midway would stop the faults after it."""
    if spec.name != "restore-disk-full":
        return None
    try:
        full_filesystem_for(client_access(settings).target, settings.backup.sources)
    except Refused as exc:
        return str(exc)
    return None


def _matrix(settings: Settings, only: list[str] | None, runs: int) -> list[FaultOutcome]:
    log = get_run_logger()
    mode = detect_mode(settings)
    specs, skipped = select(CATALOGUE, mode, only)
    specs, unavailable = available(settings, specs)
    skipped += unavailable
    for line in skipped:
        log.warning("skipped %s", line)
    log.info("the volume runs %s: %s", mode, ", ".join(spec.name for spec in specs) or "no fault applies")
    outcomes: list[FaultOutcome] = []
    try:
        for spec in specs:
            for run in range(1, runs + 1):
                log.info("fault %s, run %d of %d", spec.name, run, runs)
                started = time.monotonic()
                try:
                    outcome = RUNNERS[spec.name](settings, run, mode)
                except Exception as exc:
                    outcomes.append(failed_outcome(spec.name, run, mode, exc))
                    raise
                took = round(time.monotonic() - started, 1)
                outcomes.append(spec.judge(outcome.model_copy(update={"took_s": took})))
                log.info("%s run %d: %s", spec.name, run, "; ".join(outcomes[-1].problems) or "as expected")
    except Exception:
        try:
            publish(outcomes, runs, skipped, settings.writes.reports_dir, settings.cluster_name)
        except Exception as failed:  # the drill's error matters more than the matrix's artifacts
            log.error("could not publish the fault matrix: %s: %s", type(failed).__name__, failed)
        raise
    publish(outcomes, runs, skipped, settings.writes.reports_dir, settings.cluster_name)
    return outcomes


def publish(
    outcomes: Sequence[FaultOutcome], runs: int, skipped: Sequence[str], reports_dir: Path, cluster: str
) -> Path:
    """The matrix as a table and a markdown report with its picture (saved in ``reports_dir``), and one
    event per outcome; returns the picture's path."""
    text = render_matrix(outcomes, runs)
    get_run_logger().info("%s", text)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    picture = save_picture(fault_matrix_png(outcomes), reports_dir, f"fault-matrix-{stamp}")
    summaries = summarise(outcomes)
    specs = {spec.name: spec for spec in CATALOGUE}
    wrong = [s.fault for s in summaries if s.verdict != "as expected"]
    lost = [s.fault for s in summaries if s.verdict == "data lost"]
    if lost:
        verdict = f"DATA LOST: {', '.join(lost)}"
    elif wrong:
        verdict = f"Not as the design promises: {', '.join(wrong)}"
    else:
        verdict = "Every fault ended as the design promises." if summaries else "No fault ran."
    create_markdown_artifact(
        key="fault-matrix-report",
        markdown="\n\n".join(
            (
                "# Fault matrix",
                f"**{verdict}**",
                f"```\n{text}\n```",
                *(["Skipped:\n" + "\n".join(f"- {line}" for line in skipped)] if skipped else []),
                "What the design promises:\n"
                + "\n".join(
                    f"- **{s.fault}** ({s.mode}): {specs[s.fault].expect[s.mode].promise}" for s in summaries
                ),
                "What happened:\n" + "\n".join(f"- **{o.fault}** run {o.run}: {o.summary}" for o in outcomes),
                f"Picture of the matrix: `{picture}`",
            )
        ),
        description=f"{len(outcomes)} runs of {len(summaries)} faults: {verdict}",
    )
    create_table_artifact(
        key="fault-matrix",
        table=matrix_rows(outcomes),
        description="One row per run of each fault: outage, time to redundancy, loss, commands, verdict",
    )
    for outcome in outcomes:
        emit(
            FAULT_OUTCOME,
            resource=cluster_resource(cluster),
            payload={**outcome.model_dump(), "verdict": outcome.verdict, "data_lost": outcome.data_lost},
        )
    return picture


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of runs, at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.faults", description=__doc__.splitlines()[0])
    names = ", ".join(dict.fromkeys(spec.name for spec in CATALOGUE))
    parser.add_argument(
        "--only", action="append", metavar="NAME", help=f"run only this fault (repeatable): {names}"
    )
    parser.add_argument("--runs", type=_at_least_one, default=1, metavar="N", help="runs of each fault")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks of failures")
    args = parser.parse_args(argv)

    def act(settings: Settings) -> int:
        outcomes = fault_matrix(settings, only=args.only, runs=args.runs)
        print(render_matrix(outcomes, args.runs))
        return exit_code(outcomes)

    return run_cli(act, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
