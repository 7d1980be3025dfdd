"""tasks/disks.py: the builders that pull a virtio disk from under DRBD and put it back, the parse of its
device link (captured on the lab: ``readlink -f /sys/block/vdb/device``), du/df on real files, and the
size of the filesystem a restore is made to fill."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.context import current_executor
from tasks.disks import (
    attach_loop_argv,
    block_device_argv,
    detach_loop_argv,
    device_link_argv,
    driver_argv,
    free_bytes,
    full_filesystem_kib,
    loop_of_file_argv,
    make_file_argv,
    mount_small_filesystem,
    mount_tmpfs_argv,
    parse_virtio_device,
    unmount_argv,
    used_bytes,
)
from tasks.drbd.plan import Refused
from tasks.executor import LOCAL


def test_the_device_link_of_the_disk_is_read_by_its_name() -> None:
    assert device_link_argv("/dev/vdb") == ["readlink", "-f", "/sys/block/vdb/device"]


@pytest.mark.parametrize(
    ("link", "device"),
    [
        ("/sys/devices/pci0000:00/0000:00:05.0/virtio3\n", "virtio3"),
        ("/sys/devices/pci0000:00/0000:00:0a.0/virtio12", "virtio12"),
        ("/sys/devices/pci0000:00/0000:00:10.0/host2/target2:0:0/2:0:0:0\n", None),  # a SCSI disk
        ("", None),
        ("/sys/devices/virtual/block/loop0/virtio3x", None),
    ],
)
def test_only_a_virtio_device_can_be_pulled(link: str, device: str | None) -> None:
    assert parse_virtio_device(link) == device


def test_the_driver_files_are_written_from_stdin_and_the_disk_is_tested() -> None:
    assert driver_argv("unbind") == ["dd", "of=/sys/bus/virtio/drivers/virtio_blk/unbind", "status=none"]
    assert driver_argv("bind") == ["dd", "of=/sys/bus/virtio/drivers/virtio_blk/bind", "status=none"]
    assert block_device_argv("/dev/vdb") == ["test", "-b", "/dev/vdb"]


def test_a_small_filesystem_is_a_tmpfs_of_the_size_asked() -> None:
    assert mount_tmpfs_argv("/var/tmp/full", 1024) == [
        "mount", "-t", "tmpfs", "-o", "size=1024k,mode=0700", "hsf-fault", "/var/tmp/full",
    ]  # fmt: skip
    assert unmount_argv("/var/tmp/full") == ["umount", "/var/tmp/full"]


def test_a_path_that_exists_is_never_mounted_over(tmp_path: Path) -> None:
    (tmp_path / "kept.txt").write_text("not the fault's\n")
    with pytest.raises(Refused, match=r"exists already; the fault mounts only a directory of its own$"):
        mount_small_filesystem.fn(LOCAL, str(tmp_path), 1024)
    assert (tmp_path / "kept.txt").read_text() == "not the fault's\n"


def test_a_throwaway_disk_is_a_file_on_a_loop_device() -> None:
    assert make_file_argv("/var/lib/hsf/fault-disk.img", 64) == [
        "fallocate",
        "-l",
        "64MiB",
        "/var/lib/hsf/fault-disk.img",
    ]
    assert attach_loop_argv("/f.img") == ["losetup", "--find", "--show", "/f.img"]
    assert detach_loop_argv("/dev/loop0") == ["losetup", "--detach", "/dev/loop0"]


def test_the_loop_devices_of_a_file_are_listed_by_the_real_losetup(tmp_path: Path) -> None:
    """util-linux's losetup takes the flags; a file no loop device uses lists nothing (exit 0)."""
    image = tmp_path / "disk.img"
    current_executor().run(make_file_argv(str(image), 1), LOCAL)
    assert image.stat().st_size == 1 << 20
    assert current_executor().run(loop_of_file_argv(str(image)), LOCAL).stdout == ""


def test_the_bytes_a_tree_holds_and_the_bytes_free_are_read_by_the_real_du_and_df(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 10_000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"y" * 5_000)
    # apparent sizes: what a restore writes (du -sb counts the directories' own sizes too)
    assert 15_000 <= used_bytes.fn(LOCAL, str(tmp_path)) < 15_000 + 3 * 4096
    assert free_bytes.fn(LOCAL, str(tmp_path)) > 0


@pytest.mark.parametrize(
    ("restored", "kib"),
    [
        (4 << 20, 1024),  # the lab's /home: a 4 MiB file; never more than 1 MiB of the client's memory
        (2 << 20, 1024),
        (100 << 10, 50),  # half: the restore runs out of space midway
        (32 << 10, 16),
    ],
)
def test_the_full_filesystem_is_half_the_restore_and_at_most_one_mib(restored: int, kib: int) -> None:
    assert full_filesystem_kib(restored) == kib


@pytest.mark.parametrize("restored", [0, 4096, (32 << 10) - 1])
def test_sources_too_small_to_fill_a_filesystem_are_refused_in_one_line(restored: int) -> None:
    with pytest.raises(
        Refused, match=r"^the sources hold [\d,]+ bytes, too little to fill a filesystem: "
    ) as refused:
        full_filesystem_kib(restored)
    assert "\n" not in str(refused.value) and str(refused.value).endswith("nothing was mounted")
