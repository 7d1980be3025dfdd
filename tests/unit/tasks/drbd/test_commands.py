"""tasks/drbd/commands.py judged by the real tools, not by a copy of the builders' lists.

The drbdadm builders go through drbdadm's own dry run (``drbdadm -d -c FILE ...``: it prints the
drbdsetup/drbdmeta calls it would make and runs none, no kernel module or disk needed); the file,
filesystem and mount builders run on scratch files here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tasks.context import current_executor
from tasks.drbd import commands as c
from tasks.drbd.model import DrbdResource, StackedResource, drbdadm_view, render_resource
from tasks.drbd.probes import (
    parse_adjust_dry_run,
    parse_blkid_export,
    parse_findmnt,
    parse_found_tools,
    parse_ip_addresses,
    parse_lsblk,
)
from tasks.drbd.stacked import parse_address_holders
from tasks.executor import LOCAL

SECRET = "s3cr3t-Secret_value.0123"


def needs(*tools: str) -> pytest.MarkDecorator:
    missing = [t for t in tools if shutil.which(t) is None]
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")


def run(
    argv: list[str], stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


# -- drbdadm, dry run --------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A rendered two-node config for resource r0 on /dev/vdb, minor 0."""
    return _config(tmp_path, "r0")


def _config(tmp_path: Path, name: str) -> Path:
    resource = DrbdResource(
        name=name,
        nodes=({"name": "nodea", "address": "10.77.0.11"}, {"name": "nodeb", "address": "10.77.0.12"}),
        shared_secret=SECRET,  # type: ignore[arg-type]
    )
    path = tmp_path / f"{name}.res"
    path.write_text(render_resource(resource))
    return path


class Rejected(Exception):
    pass


def dry_run(argv: list[str], config: Path) -> list[str]:
    """The drbdsetup/drbdmeta calls drbdadm would make for ``argv`` on nodea (nothing runs)."""
    assert argv[0] == "drbdadm"
    result = run([argv[0], "-d", "-c", str(config), *argv[1:]], env={"__DRBD_NODE__": "nodea"})
    if result.returncode != 0:
        raise Rejected(result.stderr)
    return [line for line in result.stdout.splitlines() if line.strip()]


def calls(lines: list[str], tool: str, command: str) -> list[list[str]]:
    """The dry run's calls of ``tool`` whose command is ``command`` (drbdmeta's comes after the disk)."""
    words = [shlex.split(line) for line in lines]
    found = [w for w in words if w and w[0].startswith(tool)]
    return [w for w in found if (command in w if tool == "drbdmeta" else w[1] == command)]


needs_drbdadm = needs("drbdadm")


@needs_drbdadm
def test_create_md_writes_metadata_on_the_backing_disk_and_only_forced_answers_yes(config: Path) -> None:
    [plain] = calls(dry_run(c.create_md_argv("r0"), config), "drbdmeta", "create-md")
    assert "/dev/vdb" in plain and "internal" in plain and "--force" not in plain
    assert dry_run(c.create_md_argv("r0", force=False), config) == dry_run(c.create_md_argv("r0"), config)
    [forced] = calls(dry_run(c.create_md_argv("r0", force=True), config), "drbdmeta", "create-md")
    assert "--force" in forced
    assert "--force" not in c.create_md_argv("r0")  # never overwrite metadata unless asked


@needs_drbdadm
@pytest.mark.parametrize("build", [c.up_argv, c.adjust_argv], ids=["up", "adjust"])
def test_up_and_adjust_attach_the_disk_and_connect_to_the_peer(config: Path, build: Callable) -> None:
    lines = dry_run(build("r0"), config)
    assert calls(lines, "drbdsetup", "new-resource")[0][2] == "r0"
    [attach] = calls(lines, "drbdsetup", "attach")
    assert "/dev/vdb" in attach
    [peer] = calls(lines, "drbdsetup", "new-peer")
    assert "--_name=nodeb" in peer and f"--shared-secret={SECRET}" in peer
    assert calls(lines, "drbdsetup", "connect")


@needs_drbdadm
def test_primary_is_forced_only_when_asked(config: Path) -> None:
    overwrite = {"--force", "--overwrite-data-of-peer"}
    [plain] = calls(dry_run(c.primary_argv("r0"), config), "drbdsetup", "primary")
    assert "r0" in plain and not overwrite & set(plain)
    assert dry_run(c.primary_argv("r0", force=False), config) == dry_run(c.primary_argv("r0"), config)
    [forced] = calls(dry_run(c.primary_argv("r0", force=True), config), "drbdsetup", "primary")
    assert overwrite & set(forced)  # this node's data declared the good copy
    assert "--force" not in c.primary_argv("r0")


@needs_drbdadm
def test_secondary_demotes_without_force(config: Path) -> None:
    [demote] = calls(dry_run(c.secondary_argv("r0"), config), "drbdsetup", "secondary")
    assert "r0" in demote and "--force" not in demote


@needs_drbdadm
def test_new_current_uuid_clears_the_bitmap_of_the_resource_minor(config: Path) -> None:
    [call] = calls(
        dry_run(c.new_current_uuid_clear_bitmap_argv("r0"), config), "drbdsetup", "new-current-uuid"
    )
    assert "--clear-bitmap" in call and "0" in call  # minor 0


@needs_drbdadm
def test_connect_discards_local_data_only_when_asked(config: Path) -> None:
    [plain] = calls(dry_run(c.connect_argv("r0"), config), "drbdsetup", "connect")
    assert "r0" in plain and "--discard-my-data" not in plain
    [discard] = calls(dry_run(c.connect_argv("r0", discard_my_data=True), config), "drbdsetup", "connect")
    assert "--discard-my-data" in discard
    assert "--discard-my-data" not in c.connect_argv("r0")


@needs_drbdadm
def test_down_takes_the_named_resource_down(config: Path) -> None:
    [call] = calls(dry_run(c.down_argv("r0"), config), "drbdsetup", "down")
    assert "r0" in call


@needs_drbdadm
def test_attach_attaches_the_backing_disk_and_nothing_else(config: Path) -> None:
    lines = dry_run(c.attach_argv("r0"), config)
    [attach] = calls(lines, "drbdsetup", "attach")
    assert "/dev/vdb" in attach
    assert not calls(lines, "drbdsetup", "connect") and not calls(lines, "drbdsetup", "new-peer")


@needs_drbdadm
def test_disconnect(config: Path) -> None:
    [call] = calls(dry_run(c.disconnect_argv("r0"), config), "drbdsetup", "disconnect")
    assert "r0" in call


RESOURCE_BUILDERS: dict[str, Callable[[str], list[str]]] = {
    "create_md": c.create_md_argv,
    "create_md_force": lambda r: c.create_md_argv(r, force=True),
    "up": c.up_argv,
    "attach": c.attach_argv,
    "adjust": c.adjust_argv,
    "primary": c.primary_argv,
    "primary_force": lambda r: c.primary_argv(r, force=True),
    "secondary": c.secondary_argv,
    "new_current_uuid_clear_bitmap": c.new_current_uuid_clear_bitmap_argv,
    "connect": c.connect_argv,
    "connect_discard_my_data": lambda r: c.connect_argv(r, discard_my_data=True),
    "disconnect": c.disconnect_argv,
    "down": c.down_argv,
}


@needs_drbdadm
@pytest.mark.parametrize("name", list(RESOURCE_BUILDERS))
def test_every_drbdadm_builder_acts_on_the_named_resource(tmp_path: Path, name: str) -> None:
    """drbdadm accepts each builder's argv for the resource its config defines, and no other."""
    build, config = RESOURCE_BUILDERS[name], _config(tmp_path, "data")
    assert dry_run(build("data"), config)
    with pytest.raises(Rejected, match="'r0' not defined"):
        dry_run(build("r0"), config)


@needs_drbdadm
@pytest.mark.parametrize(
    "argv",
    [["drbdadm", "up", "--force", "r0"], ["drbdadm", "down", "--discard-my-data", "r0"]],
    ids=["up-force", "down-discard"],
)
def test_the_dry_run_rejects_an_option_the_command_does_not_take(config: Path, argv: list[str]) -> None:
    """What the tests above accept, drbdadm judged: an option in the wrong place is refused."""
    with pytest.raises(Rejected, match="unrecognized option"):
        dry_run(argv, config)


@needs_drbdadm
def test_drbdadm_dump_parses_the_given_file_for_the_named_resource(config: Path) -> None:
    result = run(c.drbdadm_dump_argv(str(config), "r0"), env={"__DRBD_NODE__": "nodea"})
    assert result.returncode == 0 and "resource r0 {" in result.stdout
    assert run(c.drbdadm_dump_argv(str(config), "other"), env={"__DRBD_NODE__": "nodea"}).returncode != 0


def test_proc_drbd_is_read_from_the_kernel_status_file() -> None:
    # The file is the kernel's interface (DRBD 8.4); the parser tests use captured copies of it.
    assert c.proc_drbd_argv() == ["cat", "/proc/drbd"]


# -- host setup ----------------------------------------------------------------------------------


@needs("apt-get", "drbdadm")
def test_install_packages_is_non_interactive_and_accepted_by_apt() -> None:
    argv = c.install_packages_argv(["drbd-utils"])
    simulated = subprocess.run(
        [argv[0], "--simulate", *argv[1:]],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert simulated.returncode == 0, simulated.stderr
    assert "drbd-utils is already the newest version" in simulated.stdout
    assert "--no-install-recommends" in argv  # a storage node gets only what it needs


@needs("modprobe")
@pytest.mark.parametrize(
    ("argv", "module"), [(c.modprobe_argv(), "drbd"), (c.modprobe_argv("dm_mod"), "dm_mod")]
)
def test_modprobe_loads_the_named_module(argv: list[str], module: str) -> None:
    result = run([argv[0], "--dry-run", *argv[1:]])
    assert result.returncode == 0 or f"Module {module} not found" in result.stderr, result.stderr


# -- files -----------------------------------------------------------------------------------------


def test_write_file_replaces_the_content_with_stdin_silently(tmp_path: Path) -> None:
    target = tmp_path / "r0.res.tmp"
    target.write_text("an older, much longer content that must not survive as a tail\n")
    result = run(c.write_file_argv(str(target)), stdin="resource r0 {}\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert target.read_text() == "resource r0 {}\n"


def test_chmod_sets_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "r0.res"
    target.write_text("x")
    target.chmod(0o644)
    assert run(c.chmod_argv("0600", str(target))).returncode == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_rename_replaces_the_destination(tmp_path: Path) -> None:
    source, dest = tmp_path / "r0.res.tmp", tmp_path / "r0.res"
    source.write_text("new")
    dest.write_text("old")
    assert run(c.rename_argv(str(source), str(dest))).returncode == 0
    assert dest.read_text() == "new" and not source.exists()


def test_mkdir_makes_parents_and_is_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "mnt" / "r0"
    assert run(c.mkdir_argv(str(target))).returncode == 0
    assert run(c.mkdir_argv(str(target))).returncode == 0
    assert target.is_dir()


def test_builders_return_fresh_lists() -> None:
    """Callers may append to an argv: doing so must not leak into the next call."""
    first = c.up_argv("r0")
    first.append("--extra")
    assert "--extra" not in c.up_argv("r0")


# -- filesystems and mounts ----------------------------------------------------------------------


def _blank(tmp_path: Path, name: str = "disk.img", size: int = 32 << 20) -> Path:
    image = tmp_path / name
    with image.open("wb") as f:
        f.truncate(size)
    return image


def _label_of(argv: list[str]) -> str:
    return argv[argv.index("-L") + 1]


@needs("mkfs.ext4", "blkid")
@pytest.mark.parametrize("label", ["r0", "a-long-label-16c"])
def test_mkfs_ext4_makes_a_labelled_filesystem_blkid_finds(tmp_path: Path, label: str) -> None:
    image = _blank(tmp_path)
    assert run(c.blkid_argv(str(image))).returncode == 2  # nothing found on a blank disk
    made = run(c.mkfs_argv("ext4", str(image), label))
    assert made.returncode == 0, made.stderr
    assert made.stdout == ""  # quiet: the step's log holds only what went wrong
    probe = run(c.blkid_argv(str(image)))
    assert probe.returncode == 0
    found = parse_blkid_export(probe.stdout)
    assert (found.type, found.label, found.usage) == ("ext4", label, "filesystem")  # 16 characters kept


@needs("mkfs.xfs", "blkid")
def test_mkfs_xfs_makes_a_labelled_filesystem_blkid_finds(tmp_path: Path) -> None:
    image = _blank(tmp_path, size=320 << 20)  # xfs' minimum size
    made = run(c.mkfs_argv("xfs", str(image), "replicated-data"))
    assert made.returncode == 0, made.stderr
    found = parse_blkid_export(run(c.blkid_argv(str(image))).stdout)
    assert (found.type, found.label) == ("xfs", "replicated-d")


def test_xfs_label_never_exceeds_12_characters() -> None:
    for length in range(1, 40):
        argv = c.mkfs_argv("xfs", "/dev/drbd0", "x" * length)
        assert _label_of(argv) == "x" * min(length, 12)
        assert argv[-1] == "/dev/drbd0"
    assert _label_of(c.mkfs_argv("xfs", "/dev/drbd0", "abcdefghijkl")) == "abcdefghijkl"


@needs("findmnt")
def test_findmnt_reports_the_filesystem_at_exactly_that_mountpoint(tmp_path: Path) -> None:
    root = run(c.findmnt_argv("/"))
    assert root.returncode == 0
    mount = parse_findmnt(root.stdout)
    assert mount is not None and mount.target == "/"
    assert set(json.loads(root.stdout)["filesystems"][0]) == {"source", "target", "fstype", "options"}
    below = run(c.findmnt_argv(str(tmp_path)))  # a directory, not a mountpoint
    assert (below.returncode, below.stdout) == (1, "")


def _can_loop_mount() -> bool:
    if os.geteuid() != 0 or not Path("/dev/loop-control").exists() or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False).returncode == 0


@needs("mkfs.ext4", "findmnt", "mount", "umount")
@pytest.mark.skipif(not _can_loop_mount(), reason="needs root, loop devices and a private mount namespace")
def test_mount_and_umount_a_filesystem_in_a_private_namespace(tmp_path: Path) -> None:
    """mount, findmnt and umount as the steps run them, in a mount namespace of their own (the host
    never sees the mount; it goes when the namespace does, also if the test fails half-way)."""
    image, mountpoint = _blank(tmp_path), tmp_path / "mnt" / "r0"
    assert run(c.mkfs_argv("ext4", str(image), "r0")).returncode == 0
    script = "\n".join(
        [
            "set -e",
            shlex.join(c.mkdir_argv(str(mountpoint))),
            shlex.join(c.mount_argv(str(image), str(mountpoint))),
            "echo ==mounted",
            shlex.join(c.findmnt_argv(str(mountpoint))),
            "touch " + shlex.quote(str(mountpoint / "written-while-mounted")),
            shlex.join(c.umount_argv(str(mountpoint))),
            "echo ==unmounted",
            shlex.join(c.findmnt_argv(str(mountpoint))) + ' || echo "findmnt exit $?"',
        ]
    )
    result = run(["unshare", "-m", "--propagation", "private", "sh", "-c", script])
    assert result.returncode == 0, result.stderr
    mounted, unmounted = result.stdout.split("==mounted\n")[1].split("==unmounted\n")
    mount = parse_findmnt(mounted)
    assert mount is not None and (mount.target, mount.fstype) == (str(mountpoint), "ext4")
    assert unmounted.strip() == "findmnt exit 1"
    assert not (mountpoint / "written-while-mounted").exists()  # it went to the filesystem, now unmounted


# -- probes: what setup reads before it changes anything --------------------------------------------


def test_read_file_prints_the_content_and_exits_1_when_missing(tmp_path: Path) -> None:
    config = tmp_path / "r0.res"
    config.write_text("resource r0 {}\n")
    assert (
        run(c.read_file_argv(str(config))).stdout,
        run(c.read_file_argv(str(tmp_path / "no"))).returncode,
    ) == (
        "resource r0 {}\n",
        1,
    )


def test_copy_file_keeps_mode_and_times_and_never_overwrites(tmp_path: Path) -> None:
    source, copy = tmp_path / "r0.res", tmp_path / "r0.res.hsf-20261126T093000Z"
    source.write_text("hand-made")
    source.chmod(0o600)
    os.utime(source, (1_700_000_000, 1_700_000_000))
    assert run(c.copy_file_argv(str(source), str(copy))).returncode == 0
    assert (copy.read_text(), stat.S_IMODE(copy.stat().st_mode), copy.stat().st_mtime) == (
        "hand-made",
        0o600,
        1_700_000_000,
    )
    source.write_text("changed")
    run(c.copy_file_argv(str(source), str(copy)))
    assert copy.read_text() == "hand-made"  # an earlier copy is never replaced


def test_hostname_is_the_kernel_node_name() -> None:
    assert run(c.hostname_argv()).stdout.strip() == os.uname().nodename


@needs("dash")
def test_which_prints_each_tool_found_even_under_dash() -> None:
    """Debian's sh is dash, whose ``command -v`` looks at its first argument only: one call per tool."""
    argv = c.which_argv(["cat", "hsf-no-such-tool", "ls"])
    result = run(["dash", *argv[1:]])
    assert parse_found_tools(result.stdout) == {"cat", "ls"}
    assert argv[:2] == ["sh", "-c"] and argv[3:] == ["sh", "cat", "hsf-no-such-tool", "ls"]


@needs("modinfo")
def test_modinfo_exits_1_for_a_module_the_kernel_does_not_have() -> None:
    assert c.modinfo_argv() == ["modinfo", "-F", "filename", "drbd"]
    missing = run(c.modinfo_argv("hsf-no-such-module"))
    assert missing.returncode == 1 and "not found" in missing.stderr


@needs("lsblk")
def test_lsblk_on_a_path_that_is_not_a_block_device_exits_32_with_no_device(tmp_path: Path) -> None:
    result = run(c.lsblk_argv(str(tmp_path / "vdz")))
    assert result.returncode == 32
    assert parse_lsblk(result.stdout) is None


def test_zero_head_tells_zeros_from_data_and_from_a_missing_disk(tmp_path: Path) -> None:
    """drbdmeta's own test: anything but zeros in the first 65 KiB, even past a wiped signature."""
    image = _blank(tmp_path)
    assert run(c.zero_head_argv(str(image))).returncode == 0
    with image.open("r+b") as f:
        f.seek(c.DRBDMETA_CHECKED_BYTES - 1)
        f.write(b"\x01")
    assert run(c.zero_head_argv(str(image))).returncode == 1
    with image.open("r+b") as f:
        f.seek(c.DRBDMETA_CHECKED_BYTES - 1)
        f.write(b"\x00")
        f.seek(c.DRBDMETA_CHECKED_BYTES)
        f.write(b"\x01")  # just past what drbdmeta reads
    assert run(c.zero_head_argv(str(image))).returncode == 0
    assert run(c.zero_head_argv(str(tmp_path / "vdz"))).returncode == 2


@needs("mkfs.ext4", "blkid", "wipefs")
def test_head_probe_finds_a_filesystem_behind_drbd_metadata_and_full_probe_does_not(tmp_path: Path) -> None:
    """Internal metadata at the disk's end hides a filesystem at its start from a whole-disk probe."""
    image = _blank(tmp_path)
    assert run(c.mkfs_argv("ext4", str(image), "r0")).returncode == 0
    drbd_md = Path(__file__).parents[3] / "fixtures" / "drbd" / "md-v08-tail.bin"
    tail = drbd_md.read_bytes()
    with image.open("r+b") as f:
        f.seek(image.stat().st_size - len(tail))
        f.write(tail)
    whole = parse_blkid_export(run(c.blkid_argv(str(image))).stdout)
    head = parse_blkid_export(run(c.blkid_head_argv(str(image))).stdout)
    assert (whole.type, head.type, head.label) == ("drbd", "ext4", "r0")
    assert run(["wipefs", "-a", "-q", str(image)]).returncode == 0
    assert run(c.blkid_head_argv(str(image))).returncode == 2  # signatures gone: blkid sees nothing …
    assert run(c.zero_head_argv(str(image))).returncode == 1  # … but the data drbdmeta checks is still there


@needs("mkfs.ext4", "blkid", "wipefs")
def test_zeroing_both_ends_and_wipefs_leave_a_disk_setup_finds_blank(tmp_path: Path) -> None:
    """What ``wipe_disk`` runs, on an image with ext4 at its head and DRBD metadata at its tail."""
    image = _blank(tmp_path)
    assert run(c.mkfs_argv("ext4", str(image), "r1")).returncode == 0
    tail = (Path(__file__).parents[3] / "fixtures" / "drbd" / "md-v08-tail.bin").read_bytes()
    with image.open("r+b") as f:
        f.seek(image.stat().st_size - len(tail))
        f.write(tail)
    mib = image.stat().st_size >> 20
    for seek in (0, mib - c.WIPE_MIB):
        assert run(c.zero_range_argv(str(image), seek)).returncode == 0
    assert run(c.wipefs_argv(str(image))).returncode == 0
    assert run(c.blkid_argv(str(image))).returncode == 2  # nothing at the tail …
    assert run(c.blkid_head_argv(str(image))).returncode == 2  # … nor at the head
    assert run(c.zero_head_argv(str(image))).returncode == 0  # and drbdmeta would not ask
    assert image.stat().st_size == mib << 20  # zeroed in place, never grown


@needs("blockdev")
def test_flush_buffers_is_a_block_device_ioctl(tmp_path: Path) -> None:
    assert c.flush_buffers_argv("/dev/vdb") == ["blockdev", "--flushbufs", "/dev/vdb"]
    assert (
        "BLKFLSBUF" in run(c.flush_buffers_argv(str(_blank(tmp_path)))).stderr
    )  # a file has no cache to drop


@needs("ip")
def test_ip_addresses_lists_every_local_address() -> None:
    result = run(c.ip_addresses_argv())
    assert result.returncode == 0
    assert "127.0.0.1" in parse_ip_addresses(result.stdout)


@needs("drbdsetup")
def test_drbdsetup_show_without_the_module_exits_20() -> None:
    """The probe reads ``drbdsetup show`` with exit 20 (no module) meaning: nothing runs here."""
    assert c.drbdsetup_show_argv() == ["drbdsetup", "show"]
    assert run(c.drbdsetup_show_argv()).returncode in (0, 20)


@needs_drbdadm
def test_adjust_dry_run_reads_the_config_from_stdin_and_runs_nothing(config: Path) -> None:
    text = config.read_text()
    result = run(c.adjust_dry_run_argv("r0"), stdin=text, env={"__DRBD_NODE__": "nodea"})
    assert result.returncode == 0, result.stderr
    preview = parse_adjust_dry_run(result.stdout)
    assert any(" attach " in line for line in preview.commands)  # nothing runs here: all of it would be done


def test_disconnect_endpoints_is_the_disconnect_adjust_itself_would_run() -> None:
    """Captured on the lab: ``drbdadm -d adjust`` for a new port names the running connection by its
    endpoints; dropping it the same way works whatever the resource file says by then."""
    preview = parse_adjust_dry_run(
        (Path(__file__).parents[3] / "fixtures/drbd/adjust_dry_run_reconnect.txt").read_text()
    )
    assert preview.disconnect_endpoints is not None
    argv = c.disconnect_endpoints_argv(*preview.disconnect_endpoints)
    adjusts = preview.commands[0].split()
    assert (argv[0], argv[1:]) == ("drbdsetup", adjusts[1:])  # drbdsetup runs drbdsetup-84 on an 8.4 kernel
    assert argv[2:] == ["ipv4:10.77.0.11:7789", "ipv4:10.77.0.12:7789"]


@needs("apt-get")
def test_apt_update_makes_any_fetch_failure_an_error_and_apt_accepts_it() -> None:
    argv = c.apt_update_argv()
    assert "--error-on=any" in argv
    listed = run(
        [*argv, "--print-uris", "-o", "Debug::NoLocking=1"]
    )  # lists what it would fetch, fetches none
    assert listed.returncode == 0, listed.stderr


def test_the_kernel_log_builder_runs_here_and_the_size_is_blockdevs() -> None:
    """dmesg (util-linux) is on every node; here it reads this machine's kernel log the way the drills
    read a node's. blockdev cannot open this machine's disks (measured), so only its argv is checked; the
    lab reads /dev/drbd0 with it in every storage fault."""
    log = subprocess.run(c.kernel_log_argv(), capture_output=True, text=True, check=True)
    assert log.stdout and not re.match(r"^\[\s*\d", log.stdout)  # no timestamps to strip
    assert c.device_size_argv("/dev/drbd0") == ["blockdev", "--getsize64", "/dev/drbd0"]


def test_every_builder_is_covered() -> None:
    """A new builder without a test here fails: each ``c.<builder>`` must appear in this file."""
    source = Path(__file__).read_text()
    builders = {name for name in dir(c) if name.endswith("_argv")}
    assert {"create_md_argv", "primary_argv", "mkfs_argv", "findmnt_argv"} <= builders
    assert {b for b in builders if not re.search(rf"\bc\.{b}\b", source)} == set()


def test_the_mounts_of_a_device_are_listed_by_the_real_findmnt() -> None:
    """One line per mountpoint of the source; exit 1 for a device mounted nowhere."""
    run = current_executor().run
    root_source = run(["findmnt", "-n", "-o", "SOURCE", "/"], LOCAL).stdout.strip()
    assert "/" in run(c.mounts_of_argv(root_source), LOCAL).stdout.split()
    assert run(c.mounts_of_argv("/dev/drbd99"), LOCAL, ok_codes=(1,)).stdout == ""
    assert c.remove_file_argv("/etc/drbd.d/hsf-fault.res") == ["rm", "-f", "/etc/drbd.d/hsf-fault.res"]


# -- the stacked (three-node) resource ---------------------------------------------------------------

DRBD_84 = {"DRBD_DRIVER_VERSION_OVERRIDE": "8.4.11"}  # the guests' parser: it tells stacked from normal
needs_drbdadm_84 = pytest.mark.skipif(
    shutil.which("drbdadm") is None or not Path("/usr/lib/drbd/drbdadm-84").exists(),
    reason="drbdadm with its 8.4 parser (drbd-utils) is not installed",
)

STACKED_BUILDERS: dict[str, Callable[[str, bool], list[str]]] = {
    "create_md_force": lambda r, s: c.create_md_argv(r, force=True, stacked=s),
    "up": lambda r, s: c.up_argv(r, stacked=s),
    "attach": lambda r, s: c.attach_argv(r, stacked=s),
    "adjust": lambda r, s: c.adjust_argv(r, stacked=s),
    "primary_force": lambda r, s: c.primary_argv(r, force=True, stacked=s),
    "secondary": lambda r, s: c.secondary_argv(r, stacked=s),
    "new_current_uuid_clear_bitmap": lambda r, s: c.new_current_uuid_clear_bitmap_argv(r, stacked=s),
    "connect": lambda r, s: c.connect_argv(r, stacked=s),
    "disconnect": lambda r, s: c.disconnect_argv(r, stacked=s),
    "down": lambda r, s: c.down_argv(r, stacked=s),
}


@pytest.fixture
def stacked_config(tmp_path: Path) -> Path:
    """r0 on nodea/nodeb and r0-u stacked on it, with its other end on nodec (one file, as drbdadm reads)."""
    lower = DrbdResource(
        name="r0",
        nodes=({"name": "nodea", "address": "10.77.0.11"}, {"name": "nodeb", "address": "10.77.0.12"}),
        shared_secret=SECRET,  # type: ignore[arg-type]
    )
    upper = StackedResource(
        name="r0-u",
        lower=lower,
        address="10.77.0.10",  # type: ignore[arg-type]
        third={"name": "nodec", "address": "10.77.0.14", "port": 7790, "minor": 10},  # type: ignore[arg-type]
        shared_secret=SECRET,  # type: ignore[arg-type]
    )
    path = tmp_path / "stacked.res"
    path.write_text(drbdadm_view(upper))
    return path


def dry_run_84(argv: list[str], config: Path, node: str) -> list[str]:
    """The calls DRBD 8.4's drbdadm would make on ``node``; Rejected with its reason."""
    result = run([argv[0], "-d", "-c", str(config), *argv[1:]], env={"__DRBD_NODE__": node, **DRBD_84})
    if result.returncode != 0:
        raise Rejected(result.stderr)
    return [line for line in result.stdout.splitlines() if line.strip()]


@needs_drbdadm_84
@pytest.mark.parametrize("name", list(STACKED_BUILDERS))
def test_a_stacked_builder_acts_on_the_upper_resource_only_where_it_is_stacked(
    stacked_config: Path, name: str
) -> None:
    """On a lower node the upper resource answers to --stacked only; on the third node only without it."""
    build = STACKED_BUILDERS[name]
    assert dry_run_84(build("r0-u", True), stacked_config, "nodea")
    assert dry_run_84(build("r0-u", False), stacked_config, "nodec")
    with pytest.raises(Rejected, match="'r0-u' is a stacked resource, and not available in normal mode"):
        dry_run_84(build("r0-u", False), stacked_config, "nodea")
    with pytest.raises(Rejected, match="'r0-u' is a normal resource, and not available in stacked mode"):
        dry_run_84(build("r0-u", True), stacked_config, "nodec")


@needs_drbdadm_84
def test_the_stacked_end_keeps_its_metadata_on_the_lower_device(stacked_config: Path) -> None:
    """create-md and up --stacked on a lower node use /dev/drbd0 as the upper device's disk; the third node
    uses its own disk; both ends are /dev/drbd10, and each connects from its own address."""
    [stacked_md] = calls(
        dry_run_84(c.create_md_argv("r0-u", stacked=True), stacked_config, "nodeb"), "drbdmeta", "create-md"
    )
    assert stacked_md[1:4] == ["10", "v08", "/dev/drbd0"]
    [third_md] = calls(dry_run_84(c.create_md_argv("r0-u"), stacked_config, "nodec"), "drbdmeta", "create-md")
    assert third_md[1:4] == ["10", "v08", "/dev/vdb"]
    up = dry_run_84(c.up_argv("r0-u", stacked=True), stacked_config, "nodea")
    [attach] = calls(up, "drbdsetup", "attach")
    [connect] = calls(up, "drbdsetup", "connect")
    assert attach[2:4] == ["10", "/dev/drbd0"]
    assert connect[3:5] == ["ipv4:10.77.0.10:7790", "ipv4:10.77.0.14:7790"]


@pytest.fixture
def two_namespaces() -> Iterator[tuple[str, str]]:
    """Two network namespaces of the test's own joined by a veth pair (v0 in the first, v1 in the second,
    10.99.0.11 and .14): what a lower node and the third node share. No packet leaves them."""
    holder, neighbour = f"hsf-t{os.getpid()}a", f"hsf-t{os.getpid()}b"
    commands = [
        ["ip", "netns", "add", holder],
        ["ip", "netns", "add", neighbour],
        ["ip", "-n", holder, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", neighbour],
        ["ip", "-n", holder, "address", "add", "10.99.0.11/24", "dev", "v0"],
        ["ip", "-n", neighbour, "address", "add", "10.99.0.14/24", "dev", "v1"],
        ["ip", "-n", holder, "link", "set", "v0", "up"],
        ["ip", "-n", neighbour, "link", "set", "v1", "up"],
        # the third node learns an address it has not asked for only from an unsolicited ARP
        ["ip", "netns", "exec", neighbour, "sysctl", "-q", "-w", "net.ipv4.conf.v1.arp_accept=1"],
    ]
    try:
        for argv in commands:
            subprocess.run(argv, check=True, capture_output=True, timeout=30)
        yield holder, neighbour
    finally:
        for name in (holder, neighbour):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, timeout=30)


@needs("ip", "arping")
def test_the_stacked_address_is_held_announced_and_released_by_the_real_tools(
    two_namespaces: tuple[str, str],
) -> None:
    """Added beside the node's own address, announced (the neighbour's cache gets the holder's MAC without
    asking), found by its holder, deleted; a second delete says it is not held (exit 2)."""
    holder, neighbour = two_namespaces

    def inside(namespace: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", namespace, *argv])

    assert inside(holder, c.address_add_argv("v0", "10.99.0.10/24")).returncode == 0
    announced = inside(holder, c.announce_address_argv("v0", "10.99.0.10"))
    assert announced.returncode == 0, announced.stderr
    held = parse_address_holders(inside(holder, c.ip_addresses_argv()).stdout)
    assert held["10.99.0.10"] == held["10.99.0.11"] == "v0"
    mac = json.loads(inside(holder, ["ip", "-json", "link", "show", "v0"]).stdout)[0]["address"]
    learned = json.loads(inside(neighbour, ["ip", "-json", "neigh", "show", "dev", "v1"]).stdout)
    assert {"dst": "10.99.0.10", "lladdr": mac} in [{k: n.get(k) for k in ("dst", "lladdr")} for n in learned]
    assert inside(holder, c.address_delete_argv("v0", "10.99.0.10/24")).returncode == 0
    assert "10.99.0.10" not in parse_address_holders(inside(holder, c.ip_addresses_argv()).stdout)
    assert inside(holder, c.address_delete_argv("v0", "10.99.0.10/24")).returncode == 2
