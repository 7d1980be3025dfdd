"""High availability on the lab: refusal when unhealthy, the upgrade, cross-node proof, node loss, and a
split-brain of the two Primaries (DRBD's link cut under OCFS2) resolved with nothing acknowledged lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.faults import node_loss_outcome, split_brain_outcome
from flows.ha_node_loss import ha_node_loss
from flows.ha_upgrade import ha_upgrade
from flows.lab import LabStatus
from flows.split_brain import split_brain_drill
from tasks.context import current_executor
from tasks.drbd.plan import Refused
from tasks.drbd.probes import parse_proc_drbd
from tasks.executor import SshTarget
from tasks.faults import judge
from tasks.lab.host import wait_until
from tasks.settings import Settings

pytestmark = pytest.mark.lab


def proc_drbd(target: SshTarget) -> str:
    return current_executor().run(["cat", "/proc/drbd"], target).stdout


def test_upgrade_refuses_an_unhealthy_resource(lab: LabStatus, targets: dict[str, SshTarget]) -> None:
    run = current_executor().run
    run(["drbdadm", "disconnect", "r0"], targets["nodeb"])
    try:
        with pytest.raises(
            Refused, match=r"not healthy \(cs:(StandAlone|WFConnection).*UpToDate/UpToDate on both"
        ):
            ha_upgrade()
        assert "ro:Primary/Unknown" in proc_drbd(targets["nodea"])  # still single-primary, untouched
    finally:
        run(["drbdadm", "connect", "r0"], targets["nodeb"])
        wait_until(lambda: parse_proc_drbd(proc_drbd(targets["nodea"]))[0].healthy, 120, "r0 healthy again")


def test_upgrade_preserves_files_and_proves_cross_node_access(
    lab: LabStatus, settings: Settings, targets: dict[str, SshTarget]
) -> None:
    report = ha_upgrade(settings)
    print(f"\n{report.render()}")
    assert report.files_preserved > 0
    assert report.files_verified_on == {node: report.files_preserved for node in settings.lab.nodes}
    assert [(c.writer, c.reader) for c in report.cross_node] == [("nodea", "nodeb"), ("nodeb", "nodea")]
    assert all(c.ok and c.commands_between == [] for c in report.cross_node)
    for target in targets.values():
        assert "ro:Primary/Primary ds:UpToDate/UpToDate" in proc_drbd(target)
        mounts = current_executor().run(["findmnt", "-n", "-o", "FSTYPE", "/mnt/r0"], target).stdout
        assert mounts.strip() == "ocfs2"
    again = ha_upgrade(settings)
    assert again.steps == []


def test_node_loss_in_ha_mode(lab: LabStatus, settings: Settings, targets: dict[str, SshTarget]) -> None:
    report = ha_node_loss(settings)
    outcome = judge(node_loss_outcome(report, 1))
    assert (outcome.verdict, outcome.problems) == ("as expected", [])
    print(f"\n{report.render()}")
    assert report.killed == "nodeb" and report.survivor == "nodea"
    outage = report.writes.outage  # the survivor's: writes held while o2cb declared nodeb dead
    assert outage is not None and outage.to_s is not None and outage.gap_s > outage.usual_s
    assert report.stall_s == outage.gap_s and report.stall_s > report.baseline_write_s
    assert report.writes_after_kill > 0
    before = report.writes.checks[: report.checked_before_rejoin]
    after = report.writes.checks[report.checked_before_rejoin :]
    writers = ("nodea-ha", "nodeb-ha")
    assert sorted((c.writer, c.node) for c in before) == [(w, "nodea") for w in writers]
    assert sorted((c.writer, c.node) for c in after) == sorted((w, n) for n in targets for w in writers)
    for check in report.writes.checks:  # 0 acknowledged records lost on every node, before and after
        assert check.acked > 0 and check.lost == [] and check.good == check.acked, check.summary()
    [killed_writer] = [c for c in before if c.writer == "nodeb-ha"]  # what nodeb was told is on nodea
    assert killed_writer.good == len(report.writes.timeline["nodeb-ha"])
    assert report.writes.lost == 0 and report.intact and report.files_checked > 0
    assert Path(report.picture).read_bytes().startswith(b"\x89PNG")
    for target in targets.values():
        assert "ro:Primary/Primary ds:UpToDate/UpToDate" in proc_drbd(target)


def test_split_brain_of_the_two_primaries_is_resolved_with_every_discarded_write_saved(
    lab: LabStatus, settings: Settings, targets: dict[str, SshTarget]
) -> None:
    report = split_brain_drill(settings)
    print(f"\n{report.render()}")
    outcome = judge(split_brain_outcome(report, 1))
    assert (outcome.mode, outcome.verdict, outcome.problems) == ("ha", "as expected", [])
    assert report.mode == "ha" and (report.survivor, report.victim) == ("nodea", "nodeb")
    # OCFS2 kept its own link: each side declared the other dead (its heartbeat no longer reached the
    # local copy), recovered it and wrote on alone; DRBD then refused to pick a side by itself
    for node, peer in (("nodea", 1), ("nodeb", 0)):
        assert any(
            line.startswith(f"{node}: ") and f"evicted node {peer}" in line for line in report.ocfs2_log
        )
    assert sorted(report.stalls) == ["nodea", "nodeb"]
    assert all("cs:StandAlone ro:Primary/Unknown" in state for state in report.detection.values())
    assert any("Split-Brain detected but unresolved" in line for line in report.kernel_log)
    # each side's acknowledged writes of the split: the survivor's all kept on both nodes, the victim's
    # discarded by the resolution and every one of them intact in the rescue copy
    assert report.survivor_acked_lost == 0 and report.acked_gone == 0
    assert report.discarded_acked > 0 and report.rescued_acked == report.discarded_acked
    assert report.rescue_check.lost == [] and report.nodes_agree
    assert report.changes["nodeb"].deleted == ["split/doomed.txt"]
    commands = report.resolution_commands
    assert "nodeb: drbdadm connect --discard-my-data r0" in commands
    assert "nodeb: drbdadm primary r0" in commands  # and it joins the OCFS2 cluster again
    assert commands[-1] == "nodeb: mount -t ocfs2 /dev/drbd0 /mnt/r0"
    # the HA volume as found: both Primary, in sync, OCFS2 mounted on both
    for target in targets.values():
        assert "ro:Primary/Primary ds:UpToDate/UpToDate" in proc_drbd(target)
        mounts = current_executor().run(["findmnt", "-n", "-o", "FSTYPE", "/mnt/r0"], target).stdout
        assert mounts.strip() == "ocfs2"
