"""DRBD on the lab: setup is idempotent, the failover drill loses nothing, a used disk is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.failover import failover_drill
from flows.faults import failover_outcome
from flows.lab import LabStatus
from flows.setup import setup
from tasks.cluster import drbd_resource, secret_block_name, shared_secret
from tasks.context import current_executor
from tasks.drbd import steps
from tasks.drbd.plan import Refused
from tasks.executor import SshTarget
from tasks.faults import judge
from tasks.settings import Settings, load_settings
from tasks.writes import AckLog, Writer, check_writers

pytestmark = pytest.mark.lab


def run(target: SshTarget, *argv: str, ok: tuple[int, ...] = (0,)) -> str:
    return current_executor().run(list(argv), target, timeout=120, ok_codes=ok).stdout


R1 = {"resource": "r1", "port": 7790, "disk": "/dev/vdc", "minor": 1, "mountpoint": "/mnt/r1"}


@pytest.fixture(scope="module")
def two_volumes(settings: Settings, targets: dict[str, SshTarget]) -> Iterator[Settings]:
    """The lab's volume and a second one on each VM's second data disk. Taken off the nodes at the end, so
    the later tests find the one volume they build on."""
    both = load_settings(drbd={"volumes": [R1]})
    yield both
    r1 = both.each_volume()[1]
    resource = drbd_resource(r1, shared_secret(secret_block_name(r1)))
    for target in targets.values():
        steps.remove_resource.fn(target, resource, r1.drbd.mountpoint)
        steps.wipe_disk.fn(target, r1.drbd.disk)


def test_setup_builds_both_volumes_at_once_and_a_second_run_changes_nothing(
    lab: LabStatus, settings: Settings, two_volumes: Settings, targets: dict[str, SshTarget]
) -> None:
    first = setup(two_volumes)
    print(f"\n{first.render()}")
    [second] = first.volumes
    assert (second.resource, second.device, second.primary) == ("r1", "/dev/drbd1", first.primary)
    for report in (first, second):
        if any(step.startswith("mkfs") for step in report.steps):  # fresh volume: checked from every node
            assert report.filesystem_seen == {node: settings.drbd.fstype for node in settings.lab.nodes}
    if first.steps:  # a fresh lab: both built from blank disks, each with its full initial sync
        for report in (first, second):
            kinds = {step.split("(")[0] for step in report.steps}
            assert {"create_md", "initial_promote", "wait_synced", "mkfs", "mount"} <= kinds, kinds
    assert not setup(two_volumes).changed
    assert setup(settings).steps == []  # the first volume alone, as the settings without volumes see it
    primary, secondary = (targets[n] for n in settings.lab.nodes)
    for minor, mountpoint in ((0, settings.drbd.mountpoint), (1, "/mnt/r1")):
        state = f" {minor}: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate"
        assert state in run(primary, "cat", "/proc/drbd")
        assert f" {minor}: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate" in run(
            secondary, "cat", "/proc/drbd"
        )
        assert f"/dev/drbd{minor} {mountpoint} {settings.drbd.fstype}" in run(primary, "cat", "/proc/mounts")
    for name in ("r0", "r1"):  # each holds its own secret
        assert run(primary, "stat", "-c", "%a", f"/etc/drbd.d/{name}.res").strip() == "600"


def test_failover_drill_loses_no_byte_and_no_acknowledged_write(
    lab: LabStatus, two_volumes: Settings, targets: dict[str, SshTarget]
) -> None:
    """The drill's own application (fsync before each ack) loses nothing through the kill; a broken one
    running beside it on the same primary — it acknowledges after write(), before fsync — is caught by the
    same checker: the checker fails when it should. The killed node held both volumes: the second fails
    over, rejoins and switches back with the first, and loses nothing either."""
    settings = two_volumes
    primary, survivor = settings.lab.nodes[0], settings.lab.nodes[1]
    broken_dir = f"{settings.drbd.mountpoint}/broken-acked"
    broken_log = AckLog()
    broken = Writer(targets[primary], broken_dir, "broken", broken_log, settings.writes, 900, durable=False)
    broken.start(first_acks=5, timeout_s=120)
    try:
        report = failover_drill(settings)
    finally:
        broken.abandon()  # its node was killed under it (or the drill failed: the kill still ends it)
    print(f"\n{report.render()}")
    outcome = judge(failover_outcome(report, 1, "fault-tolerant"))
    assert (outcome.verdict, outcome.problems) == ("as expected", [])
    assert report.after_failover.bytes_lost == 0
    assert report.after_failover.bytes_ok == report.dataset_bytes > 0
    assert [v.bytes_lost for v in report.after_rejoin] == [0, 0]
    assert {v.node for v in report.after_rejoin} == set(settings.lab.nodes)
    assert 0 < report.detection_s < report.rto_s
    assert any(c.startswith("drbdadm primary") for c in report.survivor_commands)
    assert any(c.startswith("mount ") for c in report.survivor_commands)
    assert not any("python3" in c for c in report.survivor_commands)  # the workload is no operator step
    # acknowledged writes: both writers checked on both nodes, nothing acknowledged lost, outage measured
    writes = report.writes
    assert writes is not None and report.acked_lost == 0 and writes.lost == 0
    assert {(c.writer, c.node) for c in writes.checks} == {
        (w, n) for w in (f"{primary}-1", f"{survivor}-2") for n in (primary, survivor)
    }
    assert all(c.good == c.acked > 0 for c in writes.checks)
    assert writes.outage is not None and writes.outage.to_s is not None
    # the outage spans the loss: the last record before it may still arrive in the milliseconds the kill
    # takes (measured: 0.02 s after the kill began), but before the survivor noticed; the first after it
    # comes once the survivor serves
    outage = writes.outage
    assert outage.usual_s < outage.gap_s and outage.from_s < report.detection_s < outage.to_s
    assert report.picture and Path(report.picture).stat().st_size > 0
    # the broken application lost acknowledged writes in the same kill, and the checker says so
    [caught] = check_writers(
        targets[primary], broken_dir, broken_log, ["broken"], settings.writes.payload_bytes
    )
    print(f"broken application (no fsync): {caught.summary()}")
    assert caught.lost and caught.acked > len(caught.lost) and caught.lost[-1] == caught.acked
    current_executor().run(["rm", "-rf", broken_dir], targets[primary])
    # the second volume: its own dataset through the same kill, verified after the failover and on both
    # nodes after its own rejoin
    [r1] = report.volumes
    assert (r1.resource, r1.bytes_lost) == ("r1", 0) and r1.dataset_bytes == report.dataset_bytes
    assert [v.node for v in r1.verified] == [survivor, survivor, primary]
    assert all(v.bytes_ok == r1.dataset_bytes for v in r1.verified)
    assert r1.resync_s is not None and r1.resynced_bytes is not None
    assert "drbdadm primary r1" in report.survivor_commands
    assert report.detection_s < r1.verified_s
    # the drill leaves the original layout behind: the same volumes, healthy, primary on the first node
    assert not setup(settings).changed


def test_setup_refuses_a_disk_that_holds_a_filesystem(lab: LabStatus, targets: dict[str, SshTarget]) -> None:
    """A second resource on a loop device that already holds ext4: refused, and nothing destroyed."""
    image, loop = "/root/hsf-refuse.img", "/dev/loop7"
    victim = targets["nodeb"]
    for target in targets.values():
        run(target, "losetup", "-d", loop, ok=(0, 1))
        run(target, "truncate", "-s", "64M", image)
        run(target, "losetup", loop, image)
    try:
        run(victim, "mkfs.ext4", "-q", "-L", "precious", loop)
        uuid_before = run(victim, "blkid", "-p", "-o", "value", "-s", "UUID", loop).strip()
        settings = load_settings(
            drbd={"resource": "rtest", "disk": loop, "minor": 7, "port": 7797, "mountpoint": "/mnt/rtest"}
        )
        with pytest.raises(Refused) as refused:
            setup(settings)
        message = str(refused.value)
        assert "nodeb" in message and loop in message and "ext4" in message and "precious" in message
        assert run(victim, "blkid", "-p", "-o", "value", "-s", "UUID", loop).strip() == uuid_before
        for target in targets.values():  # nothing was written anywhere
            assert run(target, "ls", "/etc/drbd.d/rtest.res", ok=(0, 2)) == ""
            assert run(target, "blkid", "-p", "-o", "value", "-s", "TYPE", loop, ok=(0, 2)).strip() != "drbd"
    finally:
        for target in targets.values():
            run(target, "losetup", "-d", loop, ok=(0, 1))
            run(target, "rm", "-f", image)
