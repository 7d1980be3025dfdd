"""flows/faults.py: each drill's report as a fault outcome (on the hand-made reports the drills' own
publishing is tested with), the matrix's refusals before any node is touched, the mode read from the
replayed nodes, a matrix whose drill fails, and what it publishes in Prefect (the drills themselves run
in the lab tier)."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from matplotlib import image
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.client.schemas.objects import Artifact
from prefect.events.worker import EventsWorker
from prefect.runtime import flow_run

from flows import faults
from flows.backup_faults import BackupFaultReport, backup_fault
from flows.faults import (
    backup_fault_outcome,
    failover_outcome,
    fault_matrix,
    link_cut_outcome,
    node_loss_outcome,
    orchestration_fault_outcome,
    split_brain_outcome,
    storage_fault_outcome,
)
from flows.orchestration_faults import OrchestrationFaultReport, orchestration_fault
from flows.storage_faults import storage_fault
from tasks import events
from tasks.context import DryRunRefused, run_context
from tasks.drbd.plan import Refused
from tasks.executor import CommandError
from tasks.faults import CATALOGUE, FaultOutcome, Mode
from tasks.settings import Settings, load_settings
from tasks.writes import record_size
from tests.flow.conftest import Replay, local_repository_settings
from tests.flow.flows.test_drill_reports import (
    MIB,
    _events_for,
    failover_report,
    ha_split_brain_report,
    link_cut_report,
    node_loss_report,
    split_brain_report,
    storage_fault_report,
)

SPECS = {spec.name: spec for spec in CATALOGUE}
LOST_31_32 = record_size("nodea-1", 31, 512) + record_size("nodea-1", 32, 512)


def test_every_fault_of_the_catalogue_has_a_drill_to_run_it() -> None:
    assert set(faults.RUNNERS) == set(SPECS)


def test_a_manual_failover_as_an_outcome() -> None:
    outcome = SPECS["primary-killed"].judge(failover_outcome(failover_report([]), 1, "fault-tolerant"))
    assert outcome.model_dump() == {
        "fault": "primary-killed", "run": 1, "mode": "fault-tolerant", "outage_s": 9.6, "redundant_s": 51.6,
        "bytes_lost": 0, "acked_lost": 0, "copies_intact": True, "two_primaries": False,
        "resynced_bytes": None, "written_bytes": None, "manual_commands": ["drbdadm primary r0"],
        "repeated": [],
        "summary": "nodea destroyed; nodeb promoted by hand (1 command), every byte verified 8.8 s after "
        "the fault; nodea resynced 28.2 s after it was back",
        "took_s": None,  # the matrix times the drill, not the adapter
        "problems": [],
    }  # fmt: skip


def test_a_failover_that_lost_data_or_needed_a_hand_under_pacemaker() -> None:
    lost = SPECS["primary-killed"].judge(
        failover_outcome(failover_report(["/mnt/r0/drill-x/f0005.bin"]), 2, "fault-tolerant")
    )
    assert (lost.bytes_lost, lost.acked_lost, lost.verdict) == (20 * MIB + LOST_31_32, 2, "data lost")
    assert lost.problems == [
        f"lost {20 * MIB + LOST_31_32:,} bytes, 2 acknowledged writes among them (the design promises none)"
    ]
    watched = failover_report([]).model_copy(update={"manager": "pacemaker", "fenced_s": 32.2})
    outcome = SPECS["primary-killed"].judge(failover_outcome(watched, 1, "pacemaker"))
    assert outcome.summary.startswith("nodea destroyed; Pacemaker fenced it and promoted nodeb by itself, ")
    assert outcome.problems == ["needed `drbdadm primary r0` by hand (the design promises none)"]
    clean = watched.model_copy(update={"survivor_commands": [], "writes": None})
    assert SPECS["primary-killed"].judge(failover_outcome(clean, 1, "pacemaker")).outage_s is None
    assert SPECS["primary-killed"].judge(failover_outcome(clean, 1, "pacemaker")).problems == []


def test_a_link_cut_as_an_outcome() -> None:
    outcome = SPECS["link-cut"].judge(link_cut_outcome(link_cut_report(True), 1))
    assert (outcome.mode, outcome.outage_s, outcome.redundant_s, outcome.manual_commands) == (
        "pacemaker", 9.6, 7.2, [],
    )  # fmt: skip
    assert outcome.summary == (
        "link cut inside nodea for 34.8 s: nodeb fenced it after 11.3 s and wrote on (41 writes acknowledged "
        "meanwhile), nodea never Primary; resynced 7.2 s after the heal"
    )
    assert outcome.problems == []
    two = link_cut_report(False).model_copy(update={"secondary_roles": ["Primary", "Secondary"]})
    bad = SPECS["link-cut"].judge(link_cut_outcome(two, 2))
    lost = record_size("nodeb-1", 31, 512) + record_size("nodeb-1", 32, 512)
    assert bad.problems == [
        f"lost {lost:,} bytes, 2 acknowledged writes among them (the design promises none)",
        "two Primaries at once (the design promises never)",
    ]


def test_a_storage_fault_as_an_outcome() -> None:
    outcome = SPECS["link-cut"].judge(storage_fault_outcome(storage_fault_report(True), 1))
    assert (outcome.mode, outcome.outage_s, outcome.redundant_s, outcome.manual_commands) == (
        "fault-tolerant", 9.6, 7.6, [],
    )  # fmt: skip
    assert (outcome.resynced_bytes, outcome.written_bytes) == (5312 << 10, 287 << 10)
    assert outcome.summary == (
        "replication link cut inside nodea; nodeb served throughout; the fault lasted 20.6 s; the resync "
        "copied 5,312 KiB (1% of the volume) for 287 KiB written and both disks were UpToDate 7.6 s after "
        "the fault's end"
    )
    assert outcome.problems == []
    # both nodes powered off: nobody served throughout, and the summary says who brought the volume back
    cycled = storage_fault_report(True).model_copy(
        update={"fault": "power-cycle", "manual_commands": ["python -m flows.setup", "nodeb: drbdadm up r0"]}
    )
    assert "; the volume was down until `python -m flows.setup` served it on nodeb again; " in (
        storage_fault_outcome(cycled, 1).summary
    )
    whole = storage_fault_report(False).model_copy(
        update={"resynced_kib": 1048508, "peer_roles": ["Primary"]}
    )
    bad = SPECS["link-cut"].judge(storage_fault_outcome(whole, 2))
    lost = record_size("nodeb-link-cut", 31, 512) + record_size("nodeb-link-cut", 32, 512)
    assert bad.problems == [
        f"lost {lost:,} bytes, 2 acknowledged writes among them (the design promises none)",
        "two Primaries at once (the design promises never)",
        "the resync copied 1,048,508 KiB for 287 KiB written (more than 33,342 KiB: the design promises "
        "about what changed)",
    ]


def drill_killed_report(**overrides: object) -> OrchestrationFaultReport:
    """The drill-killed fault as the lab measured it."""
    fields: dict[str, object] = {
        "fault": "drill-killed", "resource": "r0", "started_at": "2026-11-26T22:41:20Z",
        "killed": "python -m flows.failover, 19.7 s after it started",
        "killed_while": "nodea: off; nodeb: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate",
        "victim_log": "/var/lib/ha-storage-flows/reports/drill-killed-2026-11-26T224120Z/failover.log",
        "rerun": "python -m flows.failover",
        "rerun_steps": [
            "nodea: drbdadm up r0", "nodea: drbdadm primary r0", "nodea: mount /dev/drbd0 /mnt/r0",
        ],
        "repeated": [], "mounted": {"nodea": ["/mnt/r0"], "nodeb": []}, "unserved_s": 68.8,
    }  # fmt: skip
    fields.update(overrides)
    return OrchestrationFaultReport.model_validate(fields)


def test_an_orchestration_fault_as_an_outcome() -> None:
    outcome = SPECS["drill-killed"].judge(orchestration_fault_outcome(drill_killed_report(), 1))
    assert (outcome.mode, outcome.outage_s, outcome.manual_commands, outcome.problems) == (
        "fault-tolerant", 68.8, ["python -m flows.failover"], [],
    )  # fmt: skip
    assert outcome.summary == (
        "killed python -m flows.failover, 19.7 s after it started (nodea: off; nodeb: cs:Connected "
        "ro:Secondary/Primary ds:UpToDate/UpToDate); `python -m flows.failover` again resumed and repeated "
        "nothing; the volume was unserved 68.8 s"
    )
    again = drill_killed_report(
        repeated=["nodea: a promotion forced again (`drbdadm primary --force r0`)"],
        problems=["the volume is mounted on 2 nodes (nodea, nodeb)"],
        bytes_lost=1090,
        acked_lost=1,
    )
    bad = SPECS["drill-killed"].judge(orchestration_fault_outcome(again, 2))
    assert bad.verdict == "data lost"
    assert bad.problems == [
        "the volume is mounted on 2 nodes (nodea, nodeb)",
        "lost 1,090 bytes, 1 acknowledged write among them (the design promises none)",
        "the re-run repeated: nodea: a promotion forced again (`drbdadm primary --force r0`) (the design "
        "promises once)",
    ]


def test_orchestration_faults_run_on_the_lab_only_and_never_dry(replay: Callable[..., Replay]) -> None:
    nodes = replay("fault-tolerant")  # an inventory: hosts the project did not create
    with pytest.raises(
        Refused, match=r"^setup-killed builds a throwaway resource .*: it runs on the lab only"
    ):
        orchestration_fault(fault="setup-killed")
    with pytest.raises(Refused, match=r"^drill-killed kills the failover drill .*: it runs on the lab only"):
        orchestration_fault(fault="drill-killed")
    assert nodes.changed == [] and nodes.probed == []
    replay("fault-tolerant", dry_run=True)
    with pytest.raises(DryRunRefused, match=r"^the drill-killed fault does not dry-run: "):
        orchestration_fault(fault="drill-killed")


def backup_fault_report(**overrides: object) -> BackupFaultReport:
    """The backup-server-down fault as the lab measured it."""
    fields: dict[str, object] = {
        "fault": "backup-server-down", "repository": "ssh://borg@10.77.0.13:22/var/backups/hsf-borg",
        "client": "nodea", "started_at": "2026-01-01T00:00:00Z",
        "observed": ["+1.3 s: backup destroyed while borg create ran"],
        "error": "borg create failed: Connection closed by remote host. Is borg working on the server?",
        "archives_before": ["home-1", "home-2", "home-3"],
        "archives_after": ["home-1", "home-2", "home-3", "home-4"],
        "sources_changed": [], "recovered_s": 107.4,
    }  # fmt: skip
    fields.update(overrides)
    return BackupFaultReport.model_validate(fields)


def test_a_backup_fault_as_an_outcome() -> None:
    outcome = SPECS["backup-server-down"].judge(backup_fault_outcome(backup_fault_report(), 1, "ha"))
    assert (outcome.mode, outcome.outage_s, outcome.redundant_s, outcome.verdict) == (
        "ha", None, 107.4, "as expected",
    )  # fmt: skip
    assert outcome.summary == (
        "failed with: borg create failed: Connection closed by remote host. Is borg working on the server?; "
        "4 archives after 3, none lost; the sources untouched; working again 107.4 s after the fault"
    )
    # An archive gone or a source changed is data lost; a fault that was not felt is not as promised.
    lost = backup_fault_outcome(backup_fault_report(archives_after=["home-1", "home-4"]), 1, "ha")
    assert lost.verdict == "data lost" and "LOST: home-2, home-3" in lost.summary
    changed = backup_fault_outcome(backup_fault_report(sources_changed=["missing: alice/photo.raw"]), 1, "ha")
    assert changed.verdict == "data lost" and "the sources CHANGED" in changed.summary
    unfelt = SPECS["wrong-passphrase"].judge(
        backup_fault_outcome(
            backup_fault_report(fault="wrong-passphrase", error="", recovered_s=None), 1, "ha"
        )
    )
    assert unfelt.problems == ["the struck run did not fail (wrong-passphrase): the fault was not felt"]
    full = backup_fault_report(fault="restore-disk-full", error="borg extract failed: Permission denied")
    assert backup_fault_outcome(full, 1, "ha").problems == [
        "the restore failed, but not for want of space: borg extract failed: Permission denied"
    ]
    # The segment-corrupted fault: older archives must restore, the damaged one must not.
    damaged = {"home-1": True, "home-2": False, "home-9": False}
    broken = backup_fault_report(fault="segment-corrupted", restores=damaged, damaged_archive="home-9")
    assert backup_fault_outcome(broken, 1, "ha").problems == [
        "archives that the damage did not touch no longer restore: home-2"
    ]
    unfelt = backup_fault_report(
        fault="segment-corrupted", restores={"home-9": True}, damaged_archive="home-9"
    )
    assert backup_fault_outcome(unfelt, 1, "ha").problems == [
        "the damaged archive home-9 still restores: the damage was not felt"
    ]


def test_a_backup_fault_report_reads_as_a_table() -> None:
    text = backup_fault_report().render()
    assert text.splitlines()[:4] == [
        "Backup fault backup-server-down",
        "  fault                 backup-server-down at 2026-01-01T00:00:00Z on "
        "ssh://borg@10.77.0.13:22/var/backups/hsf-borg (client nodea)",
        "  failed with           borg create failed: Connection closed by remote host. Is borg working on "
        "the server?",
        "  archives              3 before, 4 after",
    ]
    assert "  working again after   107.4 s" in text


def test_a_split_brain_counts_only_the_acknowledged_writes_gone_for_good() -> None:
    outcome = SPECS["split-brain"].judge(split_brain_outcome(split_brain_report(True), 1))
    # 61 acknowledged writes of the victim discarded by the resolution, all saved aside: nothing lost.
    assert (outcome.bytes_lost, outcome.acked_lost, outcome.copies_intact, outcome.outage_s) == (
        0,
        0,
        True,
        None,
    )
    assert outcome.two_primaries and outcome.redundant_s == 1.2
    assert outcome.manual_commands == split_brain_report(True).resolution_commands  # as the drill recorded
    assert outcome.summary == (
        "nodeb promoted beside nodea while cut off; the resolution discarded 61 acknowledged writes of "
        "nodeb, 61 of them saved in nodeb:/var/lib/hsf/sb/x; both nodes agree after a 1.2 s resync"
    )
    assert outcome.problems == []


def test_a_split_brain_whose_rescue_missed_writes_and_whose_nodes_disagree() -> None:
    report = split_brain_report(False)
    outcome = SPECS["split-brain"].judge(split_brain_outcome(report, 1))
    gone = record_size("nodeb-split", 60, 512) + record_size("nodeb-split", 61, 512)
    assert (outcome.acked_lost, outcome.bytes_lost) == (report.acked_gone, gone) == (2, gone)
    assert outcome.problems == [
        f"lost {gone:,} bytes, 2 acknowledged writes among them (the design promises none)",
        "the nodes' files are missing or differ afterwards (the design promises identical copies)",
    ]
    # The survivor's own acknowledged writes count whole.
    checks = [c.model_copy(update={"lost": [5]}) if c.writer == "nodea-split" else c for c in report.checks]
    survivor_lost = report.model_copy(update={"checks": checks})
    assert split_brain_outcome(survivor_lost, 1).bytes_lost == gone + record_size("nodea-split", 5, 512)


def test_a_split_brain_of_the_ha_volume_as_an_outcome() -> None:
    report = ha_split_brain_report()
    outcome = SPECS["split-brain"].judge(split_brain_outcome(report, 1))
    # each side paused while OCFS2 evicted its peer: the longer pause is the application's outage
    assert (outcome.mode, outcome.outage_s, outcome.redundant_s, outcome.two_primaries) == (
        "ha",
        7.2,
        1.3,
        True,
    )
    assert (outcome.bytes_lost, outcome.acked_lost, outcome.copies_intact) == (0, 0, True)
    assert outcome.manual_commands[-2:] == [
        "nodeb: drbdadm primary r0",
        "nodeb: mount -t ocfs2 /dev/drbd0 /mnt/r0",
    ]
    assert outcome.summary == (
        "DRBD's link cut under OCFS2 on two Primaries (writes paused: nodea 4.2 s, nodeb 7.2 s); the "
        "resolution discarded 336 acknowledged writes of nodeb, 336 of them saved in "
        "nodeb:/var/lib/hsf/sb/x; both nodes agree after a 1.3 s resync"
    )
    assert outcome.problems == []


def test_an_ha_node_loss_as_an_outcome() -> None:
    outcome = SPECS["ha-node-loss"].judge(node_loss_outcome(node_loss_report(True), 1))
    assert (outcome.mode, outcome.outage_s, outcome.redundant_s, outcome.manual_commands) == (
        "ha",
        9.6,
        26.0,
        [],
    )
    assert outcome.summary == (
        "nodeb destroyed while both nodes wrote; nodea wrote on by itself; nodeb resynced 1.0 s after it was "
        "back; all 9 files intact on both nodes"
    )
    assert outcome.problems == []
    bad = SPECS["ha-node-loss"].judge(node_loss_outcome(node_loss_report(False), 1))
    lost = record_size("nodeb-ha", 31, 512) + record_size("nodeb-ha", 32, 512)
    assert bad.problems == [
        f"lost {lost:,} bytes, 2 acknowledged writes among them (the design promises none)",
        "the nodes' files are missing or differ afterwards (the design promises identical copies)",
    ]


# Refusals, before any node is touched.


def test_a_dry_run_is_refused(replay: Callable[..., Replay]) -> None:
    nodes = replay("fault-tolerant", dry_run=True)
    with pytest.raises(DryRunRefused, match=r"^the fault matrix does not dry-run: "):
        fault_matrix()
    assert nodes.changed == [] and nodes.probed == []


def test_an_unknown_fault_or_no_run_is_refused_in_one_line(replay: Callable[..., Replay]) -> None:
    nodes = replay("fault-tolerant")
    known = f"the catalogue has: {', '.join(SPECS)}"
    with pytest.raises(Refused, match=rf"^unknown fault 'primary-kiled'; {known}$"):
        fault_matrix(only=["link-cut", "primary-kiled"])
    with pytest.raises(
        Refused, match=r"^the fault matrix needs at least one run of each fault \(runs = 0\)$"
    ):
        fault_matrix(runs=0)
    assert nodes.changed == [] and nodes.probed == []


def test_the_command_line_says_so_in_one_line(
    replay: Callable[..., Replay], capsys: pytest.CaptureFixture[str]
) -> None:
    nodes = replay("fault-tolerant")
    assert faults.main(["--only", "nope"]) == 3
    assert capsys.readouterr().err.splitlines() == [
        f"refused: unknown fault 'nope'; the catalogue has: {', '.join(SPECS)}"
    ]
    with pytest.raises(SystemExit) as exit:
        faults.main(["--runs", "0"])
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith("'0' is not a whole number of runs, at least 1")
    assert nodes.changed == [] and nodes.probed == []


def test_faults_that_strike_what_only_the_lab_may_lose_are_refused_on_hosts_of_yours(
    replay: Callable[..., Replay], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    nodes = replay("fault-tolerant")  # an inventory: hosts the project did not create
    with pytest.raises(Refused, match=r"^disk-failure unplugs the primary's disk: it runs on the lab only"):
        storage_fault(fault="disk-failure")
    with pytest.raises(
        Refused, match=r"^power-cycle powers both nodes off at once .*: it runs on the lab only"
    ):
        storage_fault(fault="power-cycle")
    with pytest.raises(Refused, match=r"^segment-corrupted strikes the backup server .* never on a server"):
        backup_fault(fault="segment-corrupted")
    assert nodes.changed == [] and nodes.probed == []
    monkeypatch.setenv("HSF_WRITES__REPORTS_DIR", str(tmp_path))
    monkeypatch.setattr(faults, "detect_mode", lambda settings: "fault-tolerant")
    assert fault_matrix(only=["disk-failure", "wrong-passphrase"]) == []
    assert "skipped disk-failure: unplugs the primary's disk, on the lab only (target 'lab')" in nodes.logs
    assert "skipped wrong-passphrase: needs a Borg repository (python -m flows.backup init)" in nodes.logs
    assert nodes.changed == []


# The mode, read from the replayed nodes.


@flow
def _mode_in_a_run(settings: Settings) -> Mode:
    with run_context(settings, changes_state=False):
        return faults.detect_mode(settings)


@pytest.mark.parametrize(("state", "mode"), [("fault-tolerant", "fault-tolerant"), ("ha", "ha")])
def test_the_mode_is_read_from_the_nodes(replay: Callable[..., Replay], state: str, mode: Mode) -> None:
    nodes = replay(state)
    assert _mode_in_a_run(load_settings()) == mode
    assert nodes.changed == [] and nodes.probed


def test_faults_that_do_not_apply_are_skipped_and_said_so(
    replay: Callable[..., Replay], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    nodes = replay("ha")
    monkeypatch.setenv("HSF_WRITES__REPORTS_DIR", str(tmp_path))
    assert fault_matrix(only=["primary-killed", "link-cut"]) == []
    assert "skipped primary-killed: needs fault-tolerant or pacemaker; the volume runs ha" in nodes.logs
    assert "skipped link-cut: needs fault-tolerant or pacemaker; the volume runs ha" in nodes.logs
    assert nodes.changed == []
    assert len(list(tmp_path.glob("fault-matrix-*.png"))) == 1


# A matrix with its drills replaced: the catalogue's check, and a drill that fails.


def _fake(outcome: FaultOutcome | Exception) -> Callable[[Settings, int, Mode], FaultOutcome]:
    def drill(settings: Settings, run: int, mode: Mode) -> FaultOutcome:
        if isinstance(outcome, Exception):
            raise outcome
        return outcome.model_copy(update={"run": run, "mode": mode})

    return drill


def _outcome(fault: str, **extra: object) -> FaultOutcome:
    fields = {"run": 1, "mode": "pacemaker", "outage_s": 10.0, "redundant_s": 30.0, "bytes_lost": 0}
    return FaultOutcome.model_validate({"fault": fault, **fields, "summary": f"{fault} happened", **extra})


def _artifacts(run_id: object) -> dict[str, Artifact]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(str(run_id))]))
        )
    return {a.key: a for a in found if a.key}


def test_the_matrix_checks_each_outcome_and_stops_at_a_drill_that_fails(
    replay: Callable[..., Replay], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    replay("fault-tolerant")
    monkeypatch.setenv("HSF_WRITES__REPORTS_DIR", str(tmp_path))
    monkeypatch.setattr(faults, "detect_mode", lambda settings: "pacemaker")
    by_hand = _outcome("primary-killed", manual_commands=["drbdadm primary r0"])
    monkeypatch.setitem(faults.RUNNERS, "primary-killed", _fake(by_hand))
    failed = CommandError("drbdadm connect r0", 10, "no such resource", "nodeb")
    monkeypatch.setitem(faults.RUNNERS, "link-cut", _fake(failed))

    state = fault_matrix(runs=2, return_state=True)

    assert state.is_failed()
    with pytest.raises(CommandError):
        state.result()
    artifacts = _artifacts(state.state_details.flow_run_id)
    table = artifacts["fault-matrix"]
    rows = json.loads(str(table.data))  # the server keeps a table as JSON text
    assert [(r["fault"], r["run"], r["verdict"]) for r in rows] == [
        ("primary-killed", 1, "needed `drbdadm primary r0` by hand (the design promises none)"),
        ("primary-killed", 2, "needed `drbdadm primary r0` by hand (the design promises none)"),
        ("link-cut", 1, f"the drill failed: CommandError: {str(failed).splitlines()[0]}"),
    ]
    report = str(artifacts["fault-matrix-report"].data)
    assert report.startswith("# Fault matrix\n\n**Not as the design promises: primary-killed, link-cut**")
    assert "- split-brain: needs fault-tolerant or ha; the volume runs pacemaker" in report
    assert "- **link-cut** run 1: the drill failed (CommandError: " in report


def test_a_matrix_as_promised_returns_its_judged_outcomes(
    replay: Callable[..., Replay], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    replay("fault-tolerant")
    monkeypatch.setenv("HSF_WRITES__REPORTS_DIR", str(tmp_path))
    ran = ["primary-killed", "split-brain"]
    monkeypatch.setitem(faults.RUNNERS, "primary-killed", _fake(_outcome("primary-killed")))
    monkeypatch.setitem(faults.RUNNERS, "split-brain", _fake(_outcome("split-brain", outage_s=None)))
    monkeypatch.setattr(faults, "detect_mode", lambda settings: "fault-tolerant")
    outcomes = fault_matrix(only=ran, runs=2)
    assert [(o.fault, o.run, o.mode, o.problems) for o in outcomes] == [
        ("primary-killed", 1, "fault-tolerant", []),
        ("primary-killed", 2, "fault-tolerant", []),
        ("split-brain", 1, "fault-tolerant", []),
        ("split-brain", 2, "fault-tolerant", []),
    ]
    assert all(o.took_s is not None and o.took_s >= 0 for o in outcomes)  # each drill timed by the matrix


# What the matrix publishes.


@flow
def _publish_in_a_run(outcomes: list[FaultOutcome], reports_dir: Path, cluster: str) -> tuple[str, str]:
    picture = faults.publish(
        outcomes, 2, ["link-cut: needs pacemaker; the volume runs fault-tolerant"], reports_dir, cluster
    )
    return str(flow_run.id), str(picture)


def test_the_matrix_publishes_a_table_a_report_a_picture_and_one_event_per_outcome(
    prefect_harness: None, tmp_path: Path
) -> None:
    outcomes = [
        _outcome("primary-killed", mode="fault-tolerant", manual_commands=["drbdadm primary r0"]),
        _outcome("primary-killed", run=2, mode="fault-tolerant", manual_commands=["drbdadm primary r0"]),
        _outcome(
            "split-brain", mode="fault-tolerant", outage_s=None, bytes_lost=1090, acked_lost=1,
            problems=["lost 1,090 bytes, 1 acknowledged write among them (the design promises none)"],
        ),
    ]  # fmt: skip
    cluster = f"t{uuid.uuid4().hex[:8]}"
    run_id, picture = _publish_in_a_run(outcomes, tmp_path, cluster)

    assert Path(picture).parent == tmp_path and Path(picture).name.startswith("fault-matrix-")
    assert image.imread(picture).shape[:2] == (450, 900)
    artifacts = _artifacts(run_id)
    assert {key: a.type for key, a in artifacts.items()} == {
        "fault-matrix": "table",
        "fault-matrix-report": "markdown",
    }
    report = str(artifacts["fault-matrix-report"].data)
    assert report.startswith(
        "# Fault matrix\n\n**DATA LOST: split-brain**\n\n```\nFault matrix: 2 faults, 2 runs each\n"
    )
    assert "- link-cut: needs pacemaker; the volume runs fault-tolerant" in report
    assert (
        f"- **primary-killed** (fault-tolerant): {SPECS['primary-killed'].expect['fault-tolerant'].promise}"
        in report
    )
    assert "- **split-brain** run 1: split-brain happened" in report
    assert report.endswith(f"Picture of the matrix: `{picture}`")
    assert artifacts["fault-matrix-report"].description == "3 runs of 2 faults: DATA LOST: split-brain"

    EventsWorker.drain_all()
    got = _events_for(events.cluster_resource(cluster), 3)
    assert sorted((e.event, e.payload["fault"], e.payload["run"], e.payload["verdict"]) for e in got) == [
        (events.FAULT_OUTCOME, "primary-killed", 1, "as expected"),
        (events.FAULT_OUTCOME, "primary-killed", 2, "as expected"),
        (events.FAULT_OUTCOME, "split-brain", 1, "data lost"),
    ]
    for event in got:
        assert f"prefect.flow-run.{run_id}" in {r.id for r in event.related}
    [lost] = [e for e in got if e.payload["data_lost"]]
    assert (lost.payload["bytes_lost"], lost.payload["acked_lost"]) == (1090, 1)


@pytest.mark.skipif(shutil.which("borg") is None, reason="no borg")
def test_sources_too_small_to_fill_a_disk_skip_that_fault_before_any_runs_and_the_rest_go_on(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """restore-disk-full refused midway stopped every fault after it: the matrix reads the sources first
    (du on the client, here this machine), says why in one line, and runs the others."""
    from flows.backup import init

    monkeypatch.setenv("BORG_BASE_DIR", str(tmp_path / "borg-base"))
    monkeypatch.setenv("HSF_WRITES__REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setattr(faults, "detect_mode", lambda settings: "fault-tolerant")
    home = tmp_path / "home"
    home.mkdir()
    (home / "note.txt").write_text("too little to fill any disk\n")
    settings = local_repository_settings(tmp_path, home, f"test-borg-{uuid.uuid4().hex[:12]}")
    init(settings)
    state = fault_matrix(settings, only=["restore-disk-full", "wrong-passphrase"], return_state=True)
    outcomes = state.result()
    assert [(o.fault, o.verdict) for o in outcomes] == [("wrong-passphrase", "as expected")]
    report = str(_artifacts(state.state_details.flow_run_id)["fault-matrix-report"].data)
    assert re.search(  # du's bytes: the file and its directory
        r"\n- restore-disk-full: the sources hold [\d,]+ bytes, too little to fill a filesystem: "
        r"restore-disk-full needs at least 32 KiB to restore; nothing was mounted\n",
        report,
    )
    assert not (tmp_path / "scratch-full").exists()  # nothing was mounted
