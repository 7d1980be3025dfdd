"""DRBD on the lab: setup is idempotent, the failover drill loses nothing, a used disk is refused."""

from __future__ import annotations

import pytest

from flows.failover import failover_drill
from flows.lab import LabStatus
from flows.setup import setup
from tasks.context import current_executor
from tasks.drbd.plan import Refused
from tasks.executor import SshTarget
from tasks.settings import Settings, load_settings

pytestmark = pytest.mark.lab


def run(target: SshTarget, *argv: str, ok: tuple[int, ...] = (0,)) -> str:
    return current_executor().run(list(argv), target, timeout=120, ok_codes=ok).stdout


def test_setup_builds_the_volume_and_a_second_run_changes_nothing(
    lab: LabStatus, settings: Settings, targets: dict[str, SshTarget]
) -> None:
    first = setup(settings)
    print(f"\n{first.render()}")
    if any(step.startswith("mkfs") for step in first.steps):  # fresh volume: checked from every node
        assert first.filesystem_seen == {node: settings.drbd.fstype for node in settings.lab.nodes}
    second = setup(settings)
    assert second.steps == [], second.steps
    primary, secondary = (targets[n] for n in settings.lab.nodes)
    assert "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate" in run(primary, "cat", "/proc/drbd")
    assert "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate" in run(secondary, "cat", "/proc/drbd")
    assert f"/dev/drbd0 {settings.drbd.mountpoint} {settings.drbd.fstype}" in run(
        primary, "cat", "/proc/mounts"
    )
    assert run(primary, "stat", "-c", "%a", "/etc/drbd.d/r0.res").strip() == "600"  # it holds the secret


def test_failover_drill_loses_no_byte(lab: LabStatus, settings: Settings) -> None:
    report = failover_drill(settings)
    print(f"\n{report.render()}")
    assert report.after_failover.bytes_lost == 0
    assert report.after_failover.bytes_ok == report.dataset_bytes > 0
    assert [v.bytes_lost for v in report.after_rejoin] == [0, 0]
    assert {v.node for v in report.after_rejoin} == set(settings.lab.nodes)
    assert 0 < report.detection_s < report.rto_s
    assert any(c.startswith("drbdadm primary") for c in report.survivor_commands)
    assert any(c.startswith("mount ") for c in report.survivor_commands)
    # the drill leaves the original layout behind: the same volume, healthy, primary on the first node
    assert setup(settings).steps == []


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
