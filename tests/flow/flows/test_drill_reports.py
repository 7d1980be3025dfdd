"""What every drill flow leaves in Prefect: a markdown report, a table, and its events.

The drills themselves need the lab (tests/lab); here each flow's own ``publish`` step runs inside a
real flow run under the Prefect harness with a report of the kind the drill produces, and the test
reads the artifacts and events back through the API. A failover drill that fails midway publishes its
partial report instead, under the same key.
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

from flows import (
    failover,
    ha_node_loss,
    ha_upgrade,
    link_cut,
    lower_failover,
    site_loss,
    split_brain,
    storage_faults,
)
from tasks import events
from tasks.drbd.probes import DrbdState, Mount
from tasks.drbd.roles import NodeSeen, Recovery, plan_recovery
from tasks.writes import AckedWrites, WriteOutage, WriterCheck

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
        started_at="2026-01-01T00:00:00Z", writes=acked(not lost, {"nodea-1": "nodeb", "nodeb-2": "nodeb"}),
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
        stall_s=9.6, writes_after_kill=36, returned_s=25.0, resync_s=1.0, files_checked=9,
        files_verified_on={"nodea": 9, "nodeb": 9 if ok else 7},
        writes=acked(ok, {"nodeb-ha": "nodea", "nodea-ha": "nodea"}), checked_before_rejoin=2,
        picture="/var/lib/ha-storage-flows/reports/ha-node-loss.png",
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
        resync_s=1.2, nodes_agree=ok, files_after=4, acked={"nodea": 57, "nodeb": 61},
        checks=[
            WriterCheck(writer="nodea-split", node=node, acked=57, good=57, payload_bytes=512)
            for node in ("nodea", "nodeb")
        ] + [
            WriterCheck(
                writer="nodeb-split", node=node, acked=61, good=0, lost=list(range(1, 62)), payload_bytes=512
            )
            for node in ("nodea", "nodeb")
        ],
        rescue_check=WriterCheck(
            writer="nodeb-split", node="nodeb", acked=61, good=61 if ok else 59, lost=[] if ok else [60, 61],
            payload_bytes=512,
        ),
        discarded_acked=61, rescued_acked=61 if ok else 59, survivor_acked_lost=0,
        resolution_commands=[
            "nodeb: mkdir -p /var/lib/hsf/sb/x", "nodeb: rsync -a --files-from=- /mnt/r0/ /var/lib/hsf/sb/x/",
            "nodeb: umount /mnt/r0", "nodeb: drbdadm secondary r0", "nodeb: drbdadm disconnect r0",
            "nodeb: drbdadm connect --discard-my-data r0", "nodea: drbdadm connect r0",
        ],
        picture="/var/lib/ha-storage-flows/reports/split-brain-r0-x.png",
    )  # fmt: skip


def ha_split_brain_report() -> split_brain.SplitBrainReport:
    """The split-brain of the HA volume as the lab measured it: DRBD's link cut under two Primaries with
    OCFS2; each side evicted the other and wrote on alone; nodeb's 336 records of the split discarded."""
    checks = [
        WriterCheck(writer="nodea-split", node=node, acked=488, good=488, payload_bytes=512)
        for node in ("nodea", "nodeb")
    ] + [
        WriterCheck(
            writer="nodeb-split", node=node, acked=401, good=65, lost=list(range(66, 402)), payload_bytes=512
        )
        for node in ("nodea", "nodeb")
    ]
    return split_brain_report(True).model_copy(
        update={
            "mode": "ha", "stalls": {"nodea": 4.2, "nodeb": 7.2},
            "ocfs2_log": [
                "nodea: [  255.283130] o2net: No longer connected to node nodeb (num 1) at 10.77.0.12:7777",
                "nodea: [  255.285672] o2cb: o2dlm has evicted node 1 from domain 628CC59C1985",
                "nodeb: [  256.436296] o2cb: o2dlm has evicted node 0 from domain 628CC59C1985",
            ],
            "acked": {"nodea": 488, "nodeb": 401}, "checks": checks, "discarded_acked": 336,
            "rescued_acked": 336, "resync_s": 1.3,
            "rescue_check": WriterCheck(
                writer="nodeb-split", node="nodeb", acked=401, good=401, payload_bytes=512
            ),
            "resolution_commands": [
                *split_brain_report(True).resolution_commands, "nodeb: drbdadm primary r0",
                "nodeb: mount -t ocfs2 /dev/drbd0 /mnt/r0",
            ],
        }
    )  # fmt: skip


def storage_fault_report(ok: bool) -> storage_faults.StorageFaultReport:
    """The link cut of the fault-tolerant volume as the lab measured it (one run)."""
    return storage_faults.StorageFaultReport(
        fault="link-cut", resource="r0", primary="nodeb", peer="nodea", started_at="2026-01-01T00:00:00Z",
        observed=[
            "+0.0 s: replication link cut inside nodea",
            "+4.4 s: nodeb lost its peer (cs:WFConnection ro:Primary/Unknown ds:UpToDate/DUnknown)",
            "+20.6 s: link healed",
        ],
        lasted_s=20.6, written_bytes=287 << 10, resynced_kib=5312, volume_kib=1048508, redundant_s=7.6,
        manual_commands=[], repair_commands=[], peer_roles=["Secondary"],
        writes=acked(ok, {"nodeb-link-cut": "nodeb"}), picture="/var/lib/ha-storage-flows/reports/lc.png",
    )  # fmt: skip


def lower_failover_report(ok: bool) -> lower_failover.LowerFailoverReport:
    """The stacked volume's lower-tier failover as the lab measured it (one run)."""
    return lower_failover.LowerFailoverReport(
        resource="r0-u", lower="r0", third_node="nodec", failed="nodea", survivor="nodeb",
        started_at="2026-01-01T00:00:00Z",
        observed=["+1.2 s: nodea destroyed", "+11.1 s: nodeb serves r0-u at /mnt/r0"],
        service_s=11.1, third_reconnected_s=13.5, redundant_s=132.8, upper_resynced_kib=28672,
        commands=["nodeb: drbdadm primary r0", "nodeb: drbdadm --stacked up r0-u"],
        writes=acked(ok, {"nodea-app": "nodeb", "nodeb-app": "nodec"}),
    )  # fmt: skip


def site_loss_report(ok: bool) -> site_loss.SiteLossReport:
    """The loss of the lower site with protocol C (one run); when not ``ok`` a record the third node held
    is missing on nodeb after the failback."""
    checks = acked(ok, {"nodea-app": "nodeb", "nodec-app": "nodec"})
    return site_loss.SiteLossReport(
        resource="r0-u", lower="r0", third_node="nodec", site=["nodea", "nodeb"], primary="nodea",
        started_at="2026-01-01T00:00:00Z", observed=["+3.7 s: nodea and nodeb destroyed"], service_s=8.1,
        recovery_point=site_loss.RecoveryPoint(
            protocol="C", acked=57, lost_records={}, lost_bytes=0, files=[]
        ),
        failback_s=50.7, upper_resynced_kib=22824, traffic_mib=256, traffic_under_way=True,
        traffic_arrived_mib=41.0, manifest_files=3,
        manifest_differences={"nodea": [], "nodeb": [] if ok else ["nodea-app.records"], "nodec": []},
        commands=["nodec: drbdadm primary r0-u", "nodec: mount /dev/drbd10 /mnt/r0"], writes=checks,
    )  # fmt: skip


def acked(ok: bool, writers: dict[str, str]) -> AckedWrites:
    """Acknowledged writes as a drill reports them: writer → the node its records were read on; the first
    writer loses its records 31-32 unless ``ok``."""
    checks = [
        WriterCheck(
            writer=writer, node=node, acked=57, good=57 if ok or i else 55, lost=[] if ok or i else [31, 32],
            payload_bytes=512,
        )
        for i, (writer, node) in enumerate(writers.items())
    ]  # fmt: skip
    return AckedWrites(
        checks=checks,
        outage=WriteOutage(gap_s=9.6, from_s=-0.04, to_s=9.56, usual_s=0.08),
        timeline={writer: [round(0.1 * n - 2, 2) for n in range(57)] for writer in writers},
    )


def link_cut_report(ok: bool) -> link_cut.LinkCutReport:
    return link_cut.LinkCutReport(
        resource="r0", primary="nodeb", secondary="nodea", started_at="2026-01-01T00:00:00Z", detected_s=7.5,
        constraint_s=11.3, outdated_s=14.7, held_s=34.8, acked_during_cut=41, max_write_s=10.0,
        secondary_roles=["Secondary"], fencings=0, resynced_s=7.2, unfenced_s=7.2,
        writes=acked(ok, {"nodeb-1": "nodeb"}), picture="/var/lib/ha-storage-flows/reports/link-cut.png",
        cluster_after="nodea online, nodeb online (DC); quorate",
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
    "link-cut": (
        link_cut_report,
        link_cut._publish,
        "link-cut-r0",
        "link-cut-r0-verification",
        events.LINK_CUT_COMPLETED,
    ),
    "storage-fault": (
        storage_fault_report,
        storage_faults._publish,
        "storage-fault-link-cut",
        "storage-fault-link-cut-verification",
        events.STORAGE_FAULT_COMPLETED,
    ),
    "lower-tier-failover": (
        lower_failover_report,
        lower_failover._publish,
        "lower-tier-failover",
        "lower-tier-failover-verification",
        events.STACKED_FAILOVER_COMPLETED,
    ),
    "site-loss": (
        site_loss_report,
        site_loss._publish,
        "site-loss",
        "site-loss-verification",
        events.SITE_LOSS_COMPLETED,
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


SUPERBLOCK = "mount: /mnt/r0: can't read superblock on /dev/drbd0."


def failed_failover() -> failover.FailoverProgress:
    """A drill whose mount on the survivor failed after the fault; the recovery mounted it again."""
    gone = NodeSeen(node="nodea", answers=False, error="no SSH answer")
    survivor = NodeSeen(
        node="nodeb",
        answers=True,
        state=DrbdState(minor=0, connection="WFConnection", role="Primary", disk="UpToDate"),
        mount=Mount(source="/dev/drbd0", target="/mnt/r0", fstype="ext4", options="rw,relatime"),
    )
    plan = plan_recovery(
        {"nodea": gone, "nodeb": survivor.model_copy(update={"mount": None})}, "/mnt/r0", "nodeb"
    )
    return failover.FailoverProgress(
        resource="r0", killed="nodea", survivor="nodeb", fault="sysrq-poweroff",
        started_at="2026-01-01T00:00:00Z", phase="failover", fired=True,
        dataset_files=5, dataset_bytes=100 * MIB,
        figures={"detection_s": 5.7, "down_s": 3.1, "promote_s": 0.7},
        survivor_commands=["drbdadm primary r0", "mkdir -p /mnt/r0", "mount /dev/drbd0 /mnt/r0"],
        error=f"CommandError: [nodeb] `mount /dev/drbd0 /mnt/r0` exited 32\n{SUPERBLOCK}",
        recovery=Recovery(
            seen=[gone, survivor], plan=plan, serving="nodeb",
            done=["mkdir -p /mnt/r0", "mount /dev/drbd0 /mnt/r0"],
        ),
    )  # fmt: skip


@flow
def _publish_failure_in_a_run(progress: failover.FailoverProgress) -> str:
    failover._publish_failure(progress)
    return str(flow_run.id)


def test_a_failed_failover_drill_publishes_its_partial_report(prefect_harness: None) -> None:
    run_id = _publish_failure_in_a_run(failed_failover())
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(run_id)]))
        )
    assert (artifact.key, artifact.type) == ("failover-r0", "markdown")
    text = str(artifact.data)
    assert text.startswith("# Failover drill FAILED: nodea → nodeb\n\n**Failed while** promoting, mounting")
    assert "**Service restored on nodeb (nodeb is Primary but nothing is mounted at /mnt/r0): ran " in text
    assert SUPERBLOCK in text
    assert "  nodea: does not answer (no SSH answer)" in text
    assert (
        artifact.description
        == "FAILED while failover: CommandError: [nodeb] `mount /dev/drbd0 /mnt/r0` exited 32"
    )
