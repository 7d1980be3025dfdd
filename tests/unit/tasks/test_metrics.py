"""tasks/metrics.py: recorded events → results, models → metric families (names, HELP, units), the
exposition judged by Debian's ``promtool check metrics``, and a probe that fails is a figure, not a crash."""

from __future__ import annotations

import logging
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from tasks.borg.steps import BackupReport
from tasks.drbd.probes import parse_proc_drbd
from tasks.events import (
    BACKUP_FAILED,
    BACKUP_VERIFIED,
    DATA_LOST,
    FAILOVER_COMPLETED,
    LINK_CUT_COMPLETED,
    RESTORE_FAILED,
    RESTORE_VERIFIED,
    SITE_LOSS_COMPLETED,
    SPLIT_BRAIN_RESOLVED,
)
from tasks.executor import SshTarget, TransportError
from tasks.metrics import (
    BackupCheck,
    DrbdDevice,
    DrillResult,
    PacemakerView,
    ProbeOutcome,
    RecordedEvent,
    RepositoryState,
    Snapshot,
    _timed,
    backup_checks,
    check_kind,
    drill_results,
    families,
    parse_borg_info,
    resource_names,
)
from tasks.pacemaker.probes import parse_crm_mon_xml
from tasks.settings import DrbdSettings

FIXTURES = Path(__file__).parents[2] / "fixtures"
T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
REPO = "/var/backups/hsf-borg"
RUN = "prefect.flow-run.1"


def event(name: str, minutes: int, payload: dict[str, Any], flow_run: str | None = None) -> RecordedEvent:
    return RecordedEvent(
        name=name, occurred=T0 + timedelta(minutes=minutes), payload=payload, flow_run=flow_run
    )


# The payloads as the flows emit them (flows/failover.py, link_cut.py, split_brain.py, site_loss.py).
FAILOVER_CLEAN = {
    "resource": "r0", "killed": "nodea", "survivor": "nodeb", "rto_s": 9.4, "detection_s": 5.3,
    "bytes_lost": 0, "dataset_bytes": 104857600, "acked": 111, "acked_lost": 0, "write_outage_s": 7.2,
    "resync_s": 3.5, "resynced_bytes": 121700352, "written_away_bytes": 95232,
}  # fmt: skip
SPLIT_BRAIN = {
    "mode": "fault-tolerant", "survivor": "nodea", "victim": "nodeb", "nodes_agree": True, "acked": {},
    "discarded_acked": 118, "rescued_acked": 118, "survivor_acked_lost": 0,
}  # fmt: skip


def test_each_backup_flow_s_payload_names_its_check() -> None:
    backup = BackupReport(archive="home-2026-12-01T02:00:00.000000", checked=["repository", "newest archive"])
    assert check_kind(backup.model_dump()) == "backup"
    assert check_kind({"checked": ["repository", "every archive (data verified)"]}) == "verify-data"
    assert check_kind({"error": "borg check failed", "check": "verify-data"}) == "verify-data"
    assert check_kind({"check": "spot", "archive": "home-x", "problems": []}) == "spot"
    assert check_kind({"error": "backup source /home on nodea does not exist"}) == "backup"


def test_the_latest_check_of_each_kind_and_when_it_last_passed() -> None:
    events = [
        event(BACKUP_VERIFIED, 0, {"checked": ["repository", "every archive (data verified)"]}),
        event(BACKUP_FAILED, 60, {"error": "Segment entry checksum mismatch", "check": "verify-data"}),
        event(BACKUP_VERIFIED, 30, {"archive": "home-a", "checked": ["repository", "newest archive"]}),
        event(BACKUP_VERIFIED, 90, {"archive": "home-b", "checked": ["repository", "newest archive"]}),
    ]
    checks = {c.check: c for c in backup_checks(REPO, events)}
    assert set(checks) == {"backup", "verify-data"}
    assert checks["verify-data"].passed is False and checks["verify-data"].at == T0 + timedelta(minutes=60)
    assert checks["verify-data"].last_passed == T0  # the failure does not move when it last passed
    assert checks["backup"].passed and checks["backup"].last_passed == T0 + timedelta(minutes=90)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (
            [event(FAILOVER_COMPLETED, 0, FAILOVER_CLEAN)],
            DrillResult(
                drill="failover", at=T0, passed=True, data_lost=False, rto_s=9.4, bytes_lost=0, acked_lost=0,
                write_outage_s=7.2,
            ),
        ),
        (  # lost acknowledged writes: the completed event and hsf.data.lost from the same flow run
            [
                event(FAILOVER_COMPLETED, 0, {**FAILOVER_CLEAN, "acked_lost": 3}, RUN),
                event(DATA_LOST, 0, {**FAILOVER_CLEAN, "acked_lost": 3, "drill": "failover"}, RUN),
            ],
            DrillResult(
                drill="failover", at=T0, passed=False, data_lost=True, rto_s=9.4, bytes_lost=0, acked_lost=3,
                write_outage_s=7.2,
            ),
        ),
        (
            [event(LINK_CUT_COMPLETED, 0, {"acked": 565, "acked_lost": 0, "write_outage_s": 10.6,
                                           "two_primaries": True})],
            DrillResult(
                drill="link-cut", at=T0, passed=False, data_lost=False, acked_lost=0, write_outage_s=10.6
            ),
        ),
        (  # the victim's writes are discarded by design, and all were saved aside: nothing lost
            [event(SPLIT_BRAIN_RESOLVED, 0, SPLIT_BRAIN)],
            DrillResult(drill="split-brain", at=T0, passed=True, data_lost=False, acked_lost=0),
        ),
        (  # nodes that disagree: the drill emits only hsf.data.lost
            [event(DATA_LOST, 5, {**SPLIT_BRAIN, "nodes_agree": False, "drill": "split-brain"})],
            DrillResult(
                drill="split-brain", at=T0 + timedelta(minutes=5), passed=False, data_lost=True, acked_lost=0
            ),
        ),
        (  # protocol A: records in flight lost with the site, within the recovery point (not failed)
            [event(SITE_LOSS_COMPLETED, 0, {"drill": "site-loss", "protocol": "A", "rpo_records": 4,
                                            "rpo_bytes": 4096, "service_s": 21.5, "failed": False})],
            DrillResult(
                drill="site-loss", at=T0, passed=True, data_lost=True, rto_s=21.5, bytes_lost=4096,
                acked_lost=4,
            ),
        ),
        (
            [event(RESTORE_VERIFIED, 0, {"archive": "home-a", "problems": []}),
             event(RESTORE_FAILED, 10, {"archive": "home-b", "problems": ["could not be restored"]})],
            DrillResult(drill="restore", at=T0 + timedelta(minutes=10), passed=False),
        ),
    ],
)  # fmt: skip
def test_the_latest_result_of_each_drill(events: list[RecordedEvent], expected: DrillResult) -> None:
    assert drill_results(events) == [expected]


def test_an_older_run_that_lost_data_does_not_mark_a_clean_newer_run() -> None:
    events = [
        event(FAILOVER_COMPLETED, 0, {**FAILOVER_CLEAN, "bytes_lost": 512}, flow_run="prefect.flow-run.1"),
        event(DATA_LOST, 0, {"drill": "failover", "bytes_lost": 512}, flow_run="prefect.flow-run.1"),
        event(FAILOVER_COMPLETED, 60, FAILOVER_CLEAN, flow_run="prefect.flow-run.2"),
    ]
    [result] = drill_results(events)
    assert (result.passed, result.data_lost, result.at) == (True, False, T0 + timedelta(minutes=60))


def test_borg_info_gives_what_the_repository_stores() -> None:
    assert parse_borg_info((FIXTURES / "borg" / "info.json").read_text()) == (738, 3)


def snapshot() -> Snapshot:
    """A scrape of every kind, from captured real output where there is some."""
    drbd = parse_proc_drbd((FIXTURES / "drbd" / "proc_drbd_connected_primary.txt").read_text())[0]
    standalone = drbd.model_copy(update={"connection": "StandAlone", "peer_disk": "DUnknown"})
    crm_mon = parse_crm_mon_xml((FIXTURES / "pacemaker" / "captured" / "crm_mon-healthy.xml").read_text())
    return Snapshot(
        probes=[
            ProbeOutcome(probe="backup", target=REPO, success=True, seconds=1.2),
            ProbeOutcome(probe="drbd", target="nodec", success=False, seconds=10.0, error="TransportError"),
        ],
        repositories=[
            RepositoryState(
                repository=REPO, archives=12, checkpoints=1, ours=11, newest_ours=T0, stored_bytes=738,
                oldest_ours=T0 - timedelta(days=30),
                original_bytes=3,
            )
        ],
        checks=[BackupCheck(repository=REPO, check="spot", at=T0, passed=False, last_passed=None)],
        drills=drill_results([event(FAILOVER_COMPLETED, 0, FAILOVER_CLEAN), event(RESTORE_VERIFIED, 1, {})]),
        drbd=[
            DrbdDevice(node="nodea", resource="r0", state=drbd),
            DrbdDevice(node="nodeb", resource="r0", state=standalone, split_brain=True),
        ],
        pacemaker=[PacemakerView(node="nodea", status=crm_mon), PacemakerView(node="nodeb", status=None)],
    )  # fmt: skip


class Scraped(Collector):
    """The exporter's families of one snapshot, exposed by prometheus_client as a scrape would be."""

    def __init__(self, found: Snapshot) -> None:
        self.found = found

    def collect(self) -> Iterator[Metric]:
        yield from families(self.found)


def exposition(found: Snapshot) -> str:
    registry = CollectorRegistry()
    registry.register(Scraped(found))
    return generate_latest(registry).decode()


def samples(found: Snapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families(found)
        for s in family.samples
    }


NAMES = {
    "hsf_probe_success", "hsf_probe_duration_seconds",
    "hsf_backup_last_archive_timestamp_seconds", "hsf_backup_first_archive_timestamp_seconds",
    "hsf_backup_archives", "hsf_backup_project_archives",
    "hsf_backup_checkpoint_archives", "hsf_backup_repository_size_bytes", "hsf_backup_original_size_bytes",
    "hsf_backup_last_verified_timestamp_seconds", "hsf_backup_check_last_timestamp_seconds",
    "hsf_backup_check_last_success",
    "hsf_drill_last_timestamp_seconds", "hsf_drill_last_success", "hsf_drill_data_lost",
    "hsf_drill_rto_seconds",
    "hsf_drill_lost_bytes", "hsf_drill_acknowledged_writes_lost", "hsf_drill_write_outage_seconds",
    "hsf_drbd_connection_state", "hsf_drbd_role", "hsf_drbd_disk_state", "hsf_drbd_peer_disk_state",
    "hsf_drbd_healthy", "hsf_drbd_out_of_sync_bytes", "hsf_drbd_resync_progress_ratio",
    "hsf_drbd_split_brain", "hsf_pacemaker_up", "hsf_pacemaker_quorate", "hsf_pacemaker_member_online",
    "hsf_pacemaker_failed_actions",
    "hsf_pacemaker_resource_role",
}  # fmt: skip


def test_every_family_is_named_and_documented_by_the_conventions() -> None:
    found = families(snapshot())
    names = [f.name for f in found]
    assert len(names) == len(set(names))
    # the two without a sample here are left out: no check passed yet, no resync running
    assert NAMES - set(names) == {
        "hsf_backup_last_verified_timestamp_seconds",
        "hsf_drbd_resync_progress_ratio",
    }
    for family in found:
        assert family.name.startswith("hsf_") and family.type == "gauge", family.name
        assert len(family.documentation) > 20, f"{family.name}: HELP says what it measures"
        assert not family.name.endswith("_total"), f"{family.name}: a gauge never ends in _total"
        if "timestamp" in family.name:
            assert family.name.endswith("_timestamp_seconds"), family.name
        if "size" in family.name or family.name.endswith("lost_bytes"):
            assert family.name.endswith("_bytes"), family.name


def test_the_figures_of_a_scrape() -> None:
    got = samples(snapshot())
    assert got[("hsf_backup_last_archive_timestamp_seconds", (("repository", REPO),))] == T0.timestamp()
    first = T0.timestamp() - 30 * 86400
    assert got[("hsf_backup_first_archive_timestamp_seconds", (("repository", REPO),))] == first
    assert got[("hsf_backup_repository_size_bytes", (("repository", REPO),))] == 738
    assert got[("hsf_backup_check_last_success", (("check", "spot"), ("repository", REPO)))] == 0
    assert (
        "hsf_backup_last_verified_timestamp_seconds",
        (("check", "spot"), ("repository", REPO)),
    ) not in got
    assert got[("hsf_drill_rto_seconds", (("drill", "failover"),))] == 9.4
    assert got[("hsf_drill_data_lost", (("drill", "failover"),))] == 0
    assert (
        "hsf_drill_data_lost",
        (("drill", "restore"),),
    ) not in got  # the restore drill does not measure it
    assert got[("hsf_drill_last_success", (("drill", "restore"),))] == 1
    a, b = (("node", "nodea"), ("resource", "r0")), (("node", "nodeb"), ("resource", "r0"))
    assert got[("hsf_drbd_healthy", a)] == 1 and got[("hsf_drbd_healthy", b)] == 0
    assert got[("hsf_drbd_connection_state", (*a, ("state", "Connected")))] == 1
    assert got[("hsf_drbd_connection_state", (*b, ("state", "StandAlone")))] == 1
    assert got[("hsf_drbd_role", (a[0], ("resource", "r0"), ("role", "Primary")))] == 1
    assert got[("hsf_drbd_out_of_sync_bytes", a)] == 0
    assert got[("hsf_drbd_split_brain", a)] == 0 and got[("hsf_drbd_split_brain", b)] == 1
    assert got[("hsf_probe_success", (("probe", "drbd"), ("target", "nodec")))] == 0
    assert (
        got[("hsf_pacemaker_up", (("node", "nodea"),))] == 1
        and got[("hsf_pacemaker_up", (("node", "nodeb"),))] == 0
    )
    assert got[("hsf_pacemaker_quorate", (("node", "nodea"),))] == 1
    promoted = [
        k for k, v in got.items() if k[0] == "hsf_pacemaker_resource_role" and ("role", "Promoted") in k[1]
    ]
    assert [got[key] for key in promoted] == [1.0]  # the DRBD clone, promoted on one node


def test_the_exposition_passes_promtool_check_metrics() -> None:
    text = exposition(snapshot())
    assert "# HELP hsf_drbd_split_brain " in text and "# TYPE hsf_drbd_split_brain gauge" in text
    checked = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


def test_an_empty_scrape_exposes_nothing_but_is_valid() -> None:
    assert exposition(Snapshot()) == ""


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_probe_that_fails_is_a_zero_and_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    from tasks.drbd.steps import drbd_states

    nowhere = SshTarget(name="nodeb", address="127.0.0.1", port=_closed_port(), connect_timeout_s=5)
    with caplog.at_level(logging.WARNING, logger="hsf.metrics"):
        outcome, value = _timed("drbd", "nodeb", lambda: drbd_states(nowhere, timeout=5))
    assert value is None and not outcome.success and outcome.error is not None
    assert outcome.error.startswith(TransportError.__name__) and "\n" not in outcome.error
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("metrics: probe drbd of nodeb failed: TransportError: ")
    got = samples(Snapshot(probes=[outcome]))
    assert got[("hsf_probe_success", (("probe", "drbd"), ("target", "nodeb")))] == 0


def test_every_volume_and_a_stacked_upper_resource_is_named_by_its_minor() -> None:
    r1 = {"resource": "r1", "port": 7790, "disk": "/dev/vdc", "minor": 1, "mountpoint": "/mnt/r1"}
    assert resource_names(DrbdSettings(volumes=(r1,))) == {0: "r0", 1: "r1"}  # type: ignore[arg-type]
    assert resource_names(DrbdSettings(topology="stacked")) == {0: "r0", 10: "r0-u"}
