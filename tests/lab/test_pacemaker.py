"""Automatic failover under Pacemaker on the lab's VMs: the cluster built (and a re-run changes nothing),
the primary killed while the flow only watches, the old primary back as secondary by itself.

The module hands the volume back at the end: the cluster is stopped and disabled on every node and
setup (manager "none") runs DRBD by itself again, as the modules after this one expect.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flows.failover import failover_drill
from flows.faults import failover_outcome, link_cut_outcome
from flows.lab import LabStatus
from flows.link_cut import link_cut_drill
from flows.setup import setup
from tasks.cluster import pacemaker_cluster
from tasks.context import current_executor
from tasks.executor import SshTarget
from tasks.faults import judge
from tasks.pacemaker.steps import cluster_status, fence_constraints_on, stop_cluster
from tasks.settings import Settings

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def managed(lab: LabStatus, settings: Settings, targets: dict[str, SshTarget]) -> Iterator[Settings]:
    """The settings with cluster.manager = "pacemaker"; afterwards the volume is DRBD's alone again."""
    cluster = settings.cluster.model_copy(update={"manager": "pacemaker"})
    yield settings.model_copy(update={"cluster": cluster})
    stop_cluster(targets, pacemaker_cluster(settings).cib)
    setup(settings)


def test_setup_builds_the_cluster_and_a_second_run_changes_nothing(
    managed: Settings, targets: dict[str, SshTarget]
) -> None:
    built = setup(managed)
    print(f"\n{built.render()}")
    cib = pacemaker_cluster(managed).cib
    status = cluster_status(targets[built.primary])
    assert status is not None
    assert sorted(status.online()) == sorted(targets)
    assert status.promoted_on(cib.clone_id) == status.started_on(cib.fs_id) == built.primary
    again = setup(managed)
    print(f"\n{again.render()}")
    assert again.steps == [] and not again.changed
    assert again.primary == built.primary


def test_pacemaker_fails_over_by_itself_while_the_flow_only_watches(
    managed: Settings, targets: dict[str, SshTarget]
) -> None:
    report = failover_drill(managed)
    outcome = judge(failover_outcome(report, 1, "pacemaker"))
    assert (outcome.verdict, outcome.problems) == ("as expected", [])
    print(f"\n{report.render()}")
    assert report.manager == "pacemaker"
    assert report.bytes_lost == 0 and report.after_failover.files_ok == managed.failover.dataset_files
    assert report.survivor_commands == []  # nothing changed on the survivor by the flow
    writes = report.writes  # the application through the fault: nothing acknowledged lost
    assert writes is not None and writes.lost == 0 and len(writes.checks) == 2
    assert all(c.node == report.survivor and c.good == c.acked > 0 for c in writes.checks)
    assert writes.outage is not None and writes.outage.to_s is not None
    assert report.mount_s <= writes.outage.to_s  # the application wrote again only once Pacemaker mounted
    assert report.fenced_s is not None and report.fenced_by == report.survivor
    assert report.detection_s < report.fenced_s < report.promote_s <= report.mount_s < report.rto_s
    lost, manual = report.answers()
    assert lost.startswith(f"No. All {report.dataset_bytes:,} bytes")
    assert manual.startswith(f"No: Pacemaker fenced {report.killed} and promoted {report.survivor} by itself")
    # the old primary came back as secondary by itself, resynced, and the cluster is clean
    cib = pacemaker_cluster(managed).cib
    status = cluster_status(targets[report.survivor])
    assert status is not None
    assert sorted(status.online()) == sorted(targets)
    assert status.role_on(cib.drbd_id, report.killed) == "Unpromoted"
    assert status.promoted_on(cib.clone_id) == status.started_on(cib.fs_id) == report.survivor
    assert status.failures == []
    assert fence_constraints_on(targets[report.survivor]) == []
    drbd = current_executor().run(["cat", "/proc/drbd"], targets[report.survivor]).stdout
    assert "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate" in drbd


def test_a_cut_replication_link_never_makes_two_primaries_and_heals_by_itself(
    managed: Settings, targets: dict[str, SshTarget]
) -> None:
    report = link_cut_drill(managed)
    outcome = judge(link_cut_outcome(report, 1))
    assert (outcome.verdict, outcome.problems) == ("as expected", [])
    print(f"\n{report.render()}")
    assert report.secondary_roles == ["Secondary"] and not report.two_primaries
    assert report.detected_s <= report.constraint_s and report.outdated_s < report.held_s
    assert report.acked_during_cut > 0  # the primary kept acknowledging writes while cut off
    [check] = report.writes.checks
    assert check.lost == [] and check.good == check.acked == report.writes.acked > report.acked_during_cut
    assert report.writes.outage is not None and report.writes.outage.to_s is not None
    assert report.fencings == 0  # corosync kept the membership: DRBD's own fencing did the work
    # clean again by itself: connected, in sync, constraint gone, both nodes online
    cib = pacemaker_cluster(managed).cib
    status = cluster_status(targets[report.primary])
    assert status is not None and sorted(status.online()) == sorted(targets)
    assert status.promoted_on(cib.clone_id) == status.started_on(cib.fs_id) == report.primary
    assert fence_constraints_on(targets[report.primary]) == []
    drbd = current_executor().run(["cat", "/proc/drbd"], targets[report.primary]).stdout
    assert "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate" in drbd
    nft = current_executor().run(["nft", "list", "tables"], targets[report.secondary]).stdout
    assert "hsf_link_cut" not in nft  # the cut's table is gone
