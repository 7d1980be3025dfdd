"""What every drill flow leaves in Prefect: a markdown report, a table, and its events.

The drills themselves need the lab (tests/lab); here each flow's own ``publish`` step runs inside a
real flow run under the Prefect harness with a report of the kind the drill produces, and the test
reads the artifacts and events back through the API.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.events.filters import EventFilter, EventResourceFilter
from prefect.events.worker import EventsWorker
from prefect.runtime import flow_run

from flows import failover, ha_node_loss, ha_upgrade, split_brain
from tasks import events

MIB = 1024 * 1024


def failover_report(lost: list[str]) -> failover.FailoverReport:
    def verified(node: str, lost_files: list[str]) -> failover.Verification:
        return failover.Verification(
            node=node,
            files_ok=5 - len(lost_files),
            bytes_ok=(5 - len(lost_files)) * 20 * MIB,
            bytes_lost=len(lost_files) * 20 * MIB,
            lost_files=lost_files,
        )

    return failover.FailoverReport(
        resource="r0", killed="nodea", survivor="nodeb", fault="destroy", dataset_files=5,
        dataset_bytes=100 * MIB, detection_s=5.7, promote_s=0.7, mount_s=0.5, rto_s=8.8,
        after_failover=verified("nodeb", lost), survivor_commands=["drbdadm primary r0"], returned_s=23.4,
        resync_s=28.2, after_rejoin=[verified("nodeb", lost), verified("nodea", [])],
        started_at="2026-01-01T00:00:00Z",
    )  # fmt: skip


def upgrade_report(ok: bool) -> ha_upgrade.HaUpgradeReport:
    check = ha_upgrade.CrossNodeCheck(
        writer="nodea", reader="nodeb", path="/mnt/r0/cross-node/from-nodea.bin", sha256_written="ab",
        sha256_read="ab" if ok else "cd", commands_between=[],
    )  # fmt: skip
    return ha_upgrade.HaUpgradeReport(
        resource="r0", cluster="hsfcl", steps=["both nodes Primary"], files_preserved=6,
        files_verified_on={"nodea": 6, "nodeb": 6}, cross_node=[check], seconds=73.5,
    )  # fmt: skip


def node_loss_report(ok: bool) -> ha_node_loss.NodeLossReport:
    return ha_node_loss.NodeLossReport(
        killed="nodeb", survivor="nodea", heartbeat_threshold=7, idle_timeout_ms=10000, baseline_write_s=0.1,
        stall_s=22.7, writes_after_kill=5, returned_s=25.0, resync_s=1.0, files_checked=9,
        files_verified_on={"nodea": 9, "nodeb": 9 if ok else 7},
    )  # fmt: skip


def split_brain_report(ok: bool) -> split_brain.SplitBrainReport:
    return split_brain.SplitBrainReport(
        survivor="nodea", victim="nodeb", detection={"nodea": "cs:StandAlone", "nodeb": "cs:StandAlone"},
        kernel_log=["drbd r0: Split-Brain detected but unresolved, dropping connection!"],
        changes={
            "nodea": split_brain.SideChanges(
                added=["split/only-on-nodea.bin"], modified=["split/shared.txt"]
            ),
            "nodeb": split_brain.SideChanges(
                added=["split/only-on-nodeb.bin"], modified=["split/shared.txt"], deleted=["split/doomed.txt"]
            ),
        },
        rescued={"split/only-on-nodeb.bin": "aa", "split/shared.txt": "bb"}, rescue_dir="/var/lib/hsf/sb/x",
        resync_s=1.2, nodes_agree=ok, files_after=4,
    )  # fmt: skip


CASES: dict[str, tuple[Callable[[bool], Any], Callable[[Any, str], None], str, str, str]] = {
    # drill: (report(ok), publish, markdown key, table key, event when ok)
    "failover": (
        lambda ok: failover_report([] if ok else ["/mnt/r0/drill-x/f0005.bin"]),
        failover._publish,
        "failover-r0",
        "failover-r0-verification",
        events.FAILOVER_COMPLETED,
    ),
    "ha-upgrade": (
        upgrade_report,
        ha_upgrade.publish,
        "ha-upgrade-r0",
        "ha-upgrade-r0-cross-node",
        events.HA_UPGRADED,
    ),
    "ha-node-loss": (
        node_loss_report,
        ha_node_loss.publish,
        "ha-node-loss",
        "ha-node-loss-verification",
        events.HA_NODE_LOSS_COMPLETED,
    ),
    "split-brain": (
        split_brain_report,
        split_brain.publish,
        "split-brain",
        "split-brain-changes",
        events.SPLIT_BRAIN_RESOLVED,
    ),
}


@flow
def _publish_in_a_run(publish: Callable[[Any, str], None], report: Any, cluster: str) -> str:
    publish(report, cluster)
    return str(flow_run.id)


def _expected_events(drill: str, ok: bool) -> list[str]:
    """Failover, upgrade and node loss report completion either way (plus data lost); split-brain
    claims "resolved" only when both nodes agree."""
    done = CASES[drill][4]
    if ok:
        return [done]
    return [done, events.DATA_LOST] if drill != "split-brain" else [events.DATA_LOST]


@pytest.fixture(scope="module")
def published(prefect_harness: None) -> dict[tuple[str, bool], tuple[str, str]]:
    """Every drill's publish step, intact and with data lost, each in its own flow run and cluster.

    All run first and the events are read afterwards, so the wait for the server to store them is
    paid once. Returns (drill, ok) → (flow run id, cluster name).
    """
    runs = {}
    for drill, (make_report, publish, *_) in CASES.items():
        for ok in (True, False):
            cluster = f"t{uuid.uuid4().hex[:8]}"
            runs[(drill, ok)] = (_publish_in_a_run(publish, make_report(ok), cluster), cluster)
    EventsWorker.drain_all()
    return runs


def _events_for(resource: str, expected: int) -> list[Any]:
    """The events about ``resource``, once the server has stored ``expected`` of them (or 30 s passed)."""
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_events(
                filter=EventFilter(resource=EventResourceFilter(id=[resource])), limit=50
            )
            if len(page.events) >= expected or time.monotonic() > deadline:
                return page.events
            time.sleep(0.5)


@pytest.mark.parametrize("ok", [True, False], ids=["intact", "lost"])
@pytest.mark.parametrize("drill", list(CASES))
def test_drill_publishes_report_table_and_events(
    published: dict[tuple[str, bool], tuple[str, str]], drill: str, ok: bool
) -> None:
    _, _, markdown_key, table_key, _ = CASES[drill]
    run_id, cluster = published[(drill, ok)]

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(run_id)]))
        )
    by_key = {a.key: a for a in artifacts}
    assert {by_key[markdown_key].type, by_key[table_key].type} == {"markdown", "table"}
    assert str(by_key[markdown_key].data).startswith("# ")
    assert "nodeb" in str(by_key[table_key].data)

    expected = _expected_events(drill, ok)
    got = _events_for(events.cluster_resource(cluster), len(expected))
    assert sorted(e.event for e in got) == sorted(expected)
    for event in got:
        assert f"prefect.flow-run.{run_id}" in {r.id for r in event.related}
    if not ok:
        [lost] = [e for e in got if e.event == events.DATA_LOST]
        assert lost.payload["drill"] == drill
