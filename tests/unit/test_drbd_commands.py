"""Unit tests for tasks/drbd/commands.py: every builder's exact argv."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tasks.drbd import commands as c

CASES: list[tuple[str, Callable[[], list[str]], list[str]]] = [
    ("drbdadm_version", c.drbdadm_version_argv, ["drbdadm", "--version"]),
    (
        "install_packages",
        lambda: c.install_packages_argv(["drbd-utils", "xfsprogs"]),
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "drbd-utils", "xfsprogs"],
    ),
    ("modprobe_default", c.modprobe_argv, ["modprobe", "drbd"]),
    ("modprobe_other", lambda: c.modprobe_argv("dm_mod"), ["modprobe", "dm_mod"]),
    (
        "write_file",
        lambda: c.write_file_argv("/etc/drbd.d/r0.res.tmp"),
        ["dd", "of=/etc/drbd.d/r0.res.tmp", "status=none"],
    ),
    ("chmod", lambda: c.chmod_argv("0600", "/etc/drbd.d/r0.res"), ["chmod", "0600", "/etc/drbd.d/r0.res"]),
    (
        "rename",
        lambda: c.rename_argv("/etc/drbd.d/r0.res.tmp", "/etc/drbd.d/r0.res"),
        ["mv", "-f", "/etc/drbd.d/r0.res.tmp", "/etc/drbd.d/r0.res"],
    ),
    ("sha256_one", lambda: c.sha256_argv("/etc/drbd.d/r0.res"), ["sha256sum", "/etc/drbd.d/r0.res"]),
    ("sha256_many", lambda: c.sha256_argv("/a", "/b c"), ["sha256sum", "/a", "/b c"]),
    (
        "drbdadm_dump",
        lambda: c.drbdadm_dump_argv("/tmp/r.res", "r0"),
        ["drbdadm", "-c", "/tmp/r.res", "dump", "r0"],
    ),
    ("create_md", lambda: c.create_md_argv("r0"), ["drbdadm", "create-md", "r0"]),
    ("create_md_no_force", lambda: c.create_md_argv("r0", force=False), ["drbdadm", "create-md", "r0"]),
    (
        "create_md_force",
        lambda: c.create_md_argv("r0", force=True),
        ["drbdadm", "--force", "create-md", "r0"],
    ),
    ("up", lambda: c.up_argv("r0"), ["drbdadm", "up", "r0"]),
    ("adjust", lambda: c.adjust_argv("data"), ["drbdadm", "adjust", "data"]),
    ("down", lambda: c.down_argv("r0"), ["drbdadm", "down", "r0"]),
    ("primary", lambda: c.primary_argv("r0"), ["drbdadm", "primary", "r0"]),
    ("primary_no_force", lambda: c.primary_argv("r0", force=False), ["drbdadm", "primary", "r0"]),
    ("primary_force", lambda: c.primary_argv("r0", force=True), ["drbdadm", "primary", "--force", "r0"]),
    ("secondary", lambda: c.secondary_argv("r0"), ["drbdadm", "secondary", "r0"]),
    (
        "new_current_uuid_clear_bitmap",
        lambda: c.new_current_uuid_clear_bitmap_argv("r0"),
        ["drbdadm", "--", "--clear-bitmap", "new-current-uuid", "r0"],
    ),
    ("connect", lambda: c.connect_argv("r0"), ["drbdadm", "connect", "r0"]),
    (
        "connect_discard_my_data",
        lambda: c.connect_argv("r0", discard_my_data=True),
        ["drbdadm", "connect", "--discard-my-data", "r0"],
    ),
    ("disconnect", lambda: c.disconnect_argv("r0"), ["drbdadm", "disconnect", "r0"]),
    ("proc_drbd", c.proc_drbd_argv, ["cat", "/proc/drbd"]),
    ("events2_now", lambda: c.events2_now_argv("r0"), ["drbdsetup", "events2", "--now", "r0"]),
    ("status_json", lambda: c.status_json_argv("r0"), ["drbdsetup", "status", "--json", "r0"]),
    ("blkid", lambda: c.blkid_argv("/dev/vdb"), ["blkid", "-p", "-o", "export", "/dev/vdb"]),
    (
        "mkfs_ext4",
        lambda: c.mkfs_argv("ext4", "/dev/drbd0", "r0"),
        ["mkfs.ext4", "-q", "-L", "r0", "/dev/drbd0"],
    ),
    (
        "mkfs_ext4_long_label_kept",
        lambda: c.mkfs_argv("ext4", "/dev/drbd0", "a-long-label-16c"),
        ["mkfs.ext4", "-q", "-L", "a-long-label-16c", "/dev/drbd0"],
    ),
    (
        "mkfs_xfs",
        lambda: c.mkfs_argv("xfs", "/dev/drbd1", "r0"),
        ["mkfs.xfs", "-q", "-L", "r0", "/dev/drbd1"],
    ),
    (
        "mkfs_xfs_label_truncated",
        lambda: c.mkfs_argv("xfs", "/dev/drbd0", "replicated-data"),
        ["mkfs.xfs", "-q", "-L", "replicated-d", "/dev/drbd0"],
    ),
    (
        "mkfs_xfs_label_exactly_12",
        lambda: c.mkfs_argv("xfs", "/dev/drbd0", "abcdefghijkl"),
        ["mkfs.xfs", "-q", "-L", "abcdefghijkl", "/dev/drbd0"],
    ),
    ("mkdir", lambda: c.mkdir_argv("/mnt/r0"), ["mkdir", "-p", "/mnt/r0"]),
    ("mount", lambda: c.mount_argv("/dev/drbd0", "/mnt/r0"), ["mount", "/dev/drbd0", "/mnt/r0"]),
    ("umount", lambda: c.umount_argv("/mnt/r0"), ["umount", "/mnt/r0"]),
    (
        "findmnt",
        lambda: c.findmnt_argv("/mnt/r0"),
        ["findmnt", "--json", "--mountpoint", "/mnt/r0", "-o", "SOURCE,TARGET,FSTYPE,OPTIONS"],
    ),
]


@pytest.mark.parametrize(("build", "expected"), [(b, e) for _, b, e in CASES], ids=[n for n, _, _ in CASES])
def test_argv(build: Callable[[], list[str]], expected: list[str]) -> None:
    argv = build()
    assert argv == expected
    assert all(isinstance(word, str) for word in argv)


def test_every_builder_is_covered() -> None:
    """A new builder without a table entry fails here (case ids start with the builder's name)."""
    builders = {name for name in dir(c) if name.endswith("_argv")}
    untested = {b for b in builders if not any(n.startswith(b.removesuffix("_argv")) for n, _, _ in CASES)}
    assert {"create_md_argv", "primary_argv", "mkfs_argv", "findmnt_argv"} <= builders
    assert untested == set()


def test_xfs_label_never_exceeds_12_characters() -> None:
    for length in range(1, 40):
        label = "x" * length
        argv = c.mkfs_argv("xfs", "/dev/drbd0", label)
        assert argv[3] == "x" * min(length, 12)


def test_builders_return_fresh_lists() -> None:
    """Callers may append to an argv: doing so must not leak into the next call."""
    first = c.up_argv("r0")
    first.append("--extra")
    assert c.up_argv("r0") == ["drbdadm", "up", "r0"]
