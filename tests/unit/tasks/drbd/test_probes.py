"""Unit tests for tasks/drbd/probes.py: parsers fed real outputs captured from the lab's DRBD 8.4 VMs,
and hand-written samples in the same formats for states the lab rarely shows (resync, peer loss, …)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.drbd.probes import (
    parse_adjust_dry_run,
    parse_blkid_export,
    parse_drbdsetup_show,
    parse_findmnt,
    parse_found_tools,
    parse_ip_addresses,
    parse_lsblk,
    parse_proc_drbd,
    parse_resyncs,
    split_brain_unresolved,
)

FIXTURES = Path(__file__).parents[3] / "fixtures" / "drbd"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


HEADER = "version: 8.4.11 (api:1/proto:86-101)\nsrcversion: F73C670A7EC572DB9CF3E5B \n"

PROC_SYNC_SOURCE = HEADER + (
    " 0: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----\n"
    "    ns:151968 nr:0 dw:0 dr:153016 al:8 bm:0 lo:0 pe:1 ua:0 ap:0 ep:1 wo:f oos:896540\n"
    "\t[==>.................] sync'ed: 14.5% (896540/1048508)K\n"
    "\tfinish: 0:00:18 speed: 48,540 (48,540) K/sec\n"
)

PROC_PEER_LOST = HEADER + (
    " 0: cs:WFConnection ro:Secondary/Unknown ds:UpToDate/DUnknown C r-----\n"
    "    ns:0 nr:1049136 dw:2130552 dr:2153 al:9 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n"
)

PROC_UNCONFIGURED = HEADER + " 0: cs:Unconfigured\n"

PROC_BRAND_NEW = HEADER + (
    " 0: cs:Connected ro:Secondary/Secondary ds:Inconsistent/Inconsistent C r-----\n"
    "    ns:0 nr:0 dw:0 dr:0 al:8 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:1048508\n"
)

PROC_TWO_MINORS = HEADER + (
    " 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n"
    "    ns:1049136 nr:8 dw:1082044 dr:1054986 al:14 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n"
    " 1: cs:SyncTarget ro:Secondary/Primary ds:Inconsistent/UpToDate C r-----\n"
    "    ns:0 nr:524288 dw:524288 dr:0 al:8 bm:0 lo:1 pe:3 ua:1 ap:0 ep:1 wo:f oos:524220\n"
    "\t[=========>..........] sync'ed: 50.1% (524220/1048508)K\n"
    "\tfinish: 0:00:11 speed: 46,000 (44,120) want: 102,400 K/sec\n"
)

PROC_NO_DEVICES = HEADER


# -- /proc/drbd: captured ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "role", "peer_role"),
    [
        ("proc_drbd_connected_primary.txt", "Primary", "Secondary"),
        ("proc_drbd_connected_secondary.txt", "Secondary", "Primary"),
    ],
)
def test_proc_drbd_captured(name: str, role: str, peer_role: str) -> None:
    devices = parse_proc_drbd(fixture(name))
    assert list(devices) == [0]
    state = devices[0]
    assert state.minor == 0
    assert state.connection == "Connected"
    assert (state.role, state.peer_role) == (role, peer_role)
    assert (state.disk, state.peer_disk) == ("UpToDate", "UpToDate")
    assert state.configured
    assert state.connected
    assert state.healthy
    assert not state.brand_new
    assert not state.syncing
    assert state.out_of_sync_kib == 0
    assert state.sync_percent is None
    assert state.finish is None
    assert state.summary() == f"cs:Connected ro:{role}/{peer_role} ds:UpToDate/UpToDate"


# -- /proc/drbd: hand-written samples ---------------------------------------------------------------


def test_proc_drbd_sync_source_progress() -> None:
    state = parse_proc_drbd(PROC_SYNC_SOURCE)[0]
    assert state.connection == "SyncSource"
    assert (state.role, state.peer_role) == ("Primary", "Secondary")
    assert (state.disk, state.peer_disk) == ("UpToDate", "Inconsistent")
    assert state.sync_percent == 14.5
    assert state.out_of_sync_kib == 896540
    assert state.finish == "0:00:18"
    assert state.syncing
    assert state.connected
    assert not state.healthy
    assert not state.brand_new


def test_proc_drbd_survivor_after_peer_loss() -> None:
    state = parse_proc_drbd(PROC_PEER_LOST)[0]
    assert state.connection == "WFConnection"
    assert state.configured
    assert not state.connected
    assert not state.syncing
    assert not state.healthy
    assert (state.role, state.peer_role) == ("Secondary", "Unknown")
    assert (state.disk, state.peer_disk) == ("UpToDate", "DUnknown")
    assert state.out_of_sync_kib == 0


def test_proc_drbd_unconfigured() -> None:
    state = parse_proc_drbd(PROC_UNCONFIGURED)[0]
    assert state.connection == "Unconfigured"
    assert not state.configured
    assert not state.connected
    # no ro:/ds: on the line: the defaults apply
    assert (state.role, state.peer_role, state.disk, state.peer_disk) == (
        "Unknown",
        "Unknown",
        "DUnknown",
        "DUnknown",
    )
    assert state.out_of_sync_kib is None


def test_proc_drbd_brand_new() -> None:
    state = parse_proc_drbd(PROC_BRAND_NEW)[0]
    assert state.brand_new
    assert state.connected
    assert not state.healthy
    assert not state.syncing
    assert (state.role, state.peer_role) == ("Secondary", "Secondary")
    assert state.out_of_sync_kib == 1048508


def test_proc_drbd_two_minors_keep_their_own_details() -> None:
    devices = parse_proc_drbd(PROC_TWO_MINORS)
    assert sorted(devices) == [0, 1]
    first, second = devices[0], devices[1]
    assert first.healthy
    assert first.sync_percent is None
    assert first.finish is None
    assert first.out_of_sync_kib == 0
    assert second.connection == "SyncTarget"
    assert second.minor == 1
    assert (second.role, second.disk, second.peer_disk) == ("Secondary", "Inconsistent", "UpToDate")
    assert second.syncing
    assert second.sync_percent == 50.1
    assert second.out_of_sync_kib == 524220
    assert second.finish == "0:00:11"


@pytest.mark.parametrize("text", [PROC_NO_DEVICES, "", "version: 8.4.11 (api:1/proto:86-101)\n"])
def test_proc_drbd_without_devices(text: str) -> None:
    assert parse_proc_drbd(text) == {}


# -- blkid ------------------------------------------------------------------------------------------


def test_blkid_drbd_metadata() -> None:
    sig = parse_blkid_export(fixture("blkid_backing_drbd.txt"))
    assert sig.type == "drbd"
    assert sig.is_drbd_metadata
    assert not sig.blank
    assert sig.usage == "raid"
    assert sig.uuid == "fd0a2d97dc561710"
    assert sig.label is None


def test_blkid_ext4_volume() -> None:
    sig = parse_blkid_export(fixture("blkid_volume_ext4.txt"))
    assert (sig.type, sig.label, sig.usage) == ("ext4", "r0", "filesystem")
    assert sig.uuid == "65d343ad-a443-4e9c-af43-dc693771ff78"
    assert not sig.is_drbd_metadata
    assert not sig.blank


def test_blkid_seed_ext4() -> None:
    sig = parse_blkid_export(fixture("blkid_seed_ext4.txt"))
    assert (sig.type, sig.label) == ("ext4", "labseed")


def test_blkid_value_with_equals_sign_is_kept_whole() -> None:
    sig = parse_blkid_export("LABEL=a=b\nTYPE=xfs\n")
    assert (sig.type, sig.label) == ("xfs", "a=b")


@pytest.mark.parametrize("text", ["", "\n"])
def test_blkid_empty_is_blank(text: str) -> None:
    sig = parse_blkid_export(text)
    assert sig.blank
    assert not sig.is_drbd_metadata
    assert (sig.type, sig.label, sig.uuid, sig.usage) == (None, None, None, None)


# -- findmnt ----------------------------------------------------------------------------------------


def test_findmnt_mounted() -> None:
    mount = parse_findmnt(fixture("findmnt_mounted.txt"))
    assert mount is not None
    assert mount.source == "/dev/drbd0"
    assert mount.target == "/mnt/r0"
    assert mount.fstype == "ext4"
    assert mount.options == "rw,relatime"


@pytest.mark.parametrize("text", [fixture("findmnt_not_mounted.txt"), '{"filesystems": []}', "  \n"])
def test_findmnt_nothing_mounted(text: str) -> None:
    assert parse_findmnt(text) is None


# -- what setup reads before it changes anything (output captured on the lab's nodes) ---------------


def test_lsblk_backing_disk_attached_to_drbd_and_mounted() -> None:
    disk = parse_lsblk(fixture("lsblk_backing_attached_mounted.json"))
    assert disk is not None
    assert (disk.path, disk.type, disk.size, disk.mountpoints) == ("/dev/vdb", "disk", 1073741824, [])
    assert disk.users() == ["/dev/drbd0", "/dev/drbd0 at /mnt/r0"]


def test_lsblk_of_a_stacked_volume_sees_the_upper_device_on_the_lower_one() -> None:
    """Captured on the lab's lower Primary: vdb → drbd0 → drbd10 mounted. The lower device and all on it
    are DRBD's own; a plain read of its users still names them."""
    disk = parse_lsblk(fixture("lsblk_backing_stacked_mounted.json"))
    assert disk is not None
    assert disk.users() == ["/dev/drbd0", "/dev/drbd10", "/dev/drbd10 at /mnt/r0"]
    assert disk.users(besides="/dev/drbd0") == []
    assert disk.users(besides="/dev/drbd1") == disk.users()


def test_both_devices_of_a_stacked_primary_in_proc_drbd() -> None:
    states = parse_proc_drbd(fixture("proc_drbd_stacked_primary.txt"))
    assert (states[0].summary(), states[10].summary()) == (
        "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate",
        "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate",
    )


def test_lsblk_not_a_block_device() -> None:
    assert parse_lsblk(fixture("lsblk_not_a_block_device.json")) is None
    assert parse_lsblk("") is None


def test_ip_addresses_of_a_node() -> None:
    assert parse_ip_addresses(fixture("ip_address_nodea.json")) == ["127.0.0.1", "::1", "10.77.0.11"]


def test_drbdsetup_show_names_each_running_resource_and_its_minors() -> None:
    assert parse_drbdsetup_show(fixture("drbdsetup_show_r0.txt")) == {"r0": [0]}
    assert parse_drbdsetup_show("") == {}


def test_found_tools_from_one_command_v_per_tool() -> None:
    assert parse_found_tools(fixture("which_drbd_tools.txt")) == {"drbdadm", "mkfs.ext4", "mkfs.xfs"}


@pytest.mark.parametrize(
    ("name", "reconnects", "harms"),
    [
        ("adjust_dry_run_reconnect.txt", True, []),  # port, cram-hmac-alg: the connection is re-made
        ("adjust_dry_run_detach.txt", False, ["detach its disk (Diskless)"]),  # another backing disk
        ("adjust_dry_run_options.txt", False, []),  # resync-rate: changed in place
    ],
)
def test_adjust_dry_run_judged(name: str, reconnects: bool, harms: list[str]) -> None:
    preview = parse_adjust_dry_run(fixture(name))
    assert preview.commands
    assert (preview.reconnects, preview.harms) == (reconnects, harms)
    assert parse_adjust_dry_run("").commands == []


# The kernel log after a power cycle (the crashed primary's activity log resynced to its peer), and the
# line a disk put back and attached logged on the lab (DRBD appends the activity-log note to it).
DISK_ATTACHED = (
    "block drbd0: Began resync as SyncTarget (will sync 1048508 KB [262127 bits set])."
    "Marked additional 1024 MB as out-of-sync based on AL.\n"
)


def test_resyncs_are_read_from_the_kernel_log_of_their_minor_only() -> None:
    log = fixture("dmesg-power-cycle-primary.txt")
    assert parse_resyncs(log, 0) == [94208]
    assert parse_resyncs(log, 1) == []
    assert parse_resyncs(log + DISK_ATTACHED + log.replace("drbd0", "drbd1"), 0) == [94208, 1048508]
    assert parse_resyncs("block drbd0: Resync done (total 2 sec; paused 0 sec; 47104 K/sec)\n", 0) == []


# DRBD 8.4's own lines, as the split-brain drill reads them (tests/lab/test_split_brain.py, test_ha.py).
SPLIT = "drbd r0: Split-Brain detected but unresolved, dropping connection!"
STANDALONE = "drbd r0: conn( Disconnecting -> StandAlone ) "
RECONNECT = "drbd r0: conn( StandAlone -> Unconnected ) "
SOLVED = "block drbd0: Split-Brain detected, 1 primaries, automatically solved. Sync from this node"


@pytest.mark.parametrize(
    ("lines", "resource", "unresolved"),
    [
        ([], "r0", False),
        ([SPLIT, STANDALONE], "r0", True),
        ([SPLIT, STANDALONE], "r1", False),  # another resource's
        ([SPLIT, STANDALONE, RECONNECT], "r0", False),  # the resolution connects again
        ([SPLIT, STANDALONE, RECONNECT, SPLIT, STANDALONE], "r0", True),  # and split again
        ([SOLVED], "r0", False),  # the after-sb policies solved it
        (["[ 12.345678] " + SPLIT, STANDALONE], "r0", True),  # dmesg with its times
    ],
)
def test_an_unresolved_split_brain_is_the_last_word_on_the_resource(
    lines: list[str], resource: str, unresolved: bool
) -> None:
    assert split_brain_unresolved("\n".join(lines), resource) is unresolved


def test_a_power_cycle_of_the_primary_is_no_split_brain() -> None:
    assert not split_brain_unresolved(fixture("dmesg-power-cycle-primary.txt"), "r0")
