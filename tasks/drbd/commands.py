"""Pure argv builders, one per DRBD / filesystem step. Nothing here runs anything."""

from __future__ import annotations

from typing import Literal

FsType = Literal["ext4", "xfs"]


def apt_update_argv() -> list[str]:
    """Refresh the package lists; ``--error-on=any`` makes a source that cannot be fetched an error
    (plain ``apt-get update`` only warns, and the install then fails or installs stale packages)."""
    return ["apt-get", "update", "-q", "--error-on=any"]


def install_packages_argv(packages: list[str]) -> list[str]:
    """Debian/Ubuntu package install on a real host (the lab image already has them)."""
    return ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]


def modprobe_argv(module: str = "drbd") -> list[str]:
    return ["modprobe", module]


def write_file_argv(path: str) -> list[str]:
    """Write stdin to ``path`` (the caller sends the content on stdin, so secrets stay off argv)."""
    return ["dd", f"of={path}", "status=none"]


def chmod_argv(mode: str, path: str) -> list[str]:
    return ["chmod", mode, path]


def rename_argv(source: str, dest: str) -> list[str]:
    return ["mv", "-f", source, dest]


def read_file_argv(path: str) -> list[str]:
    """The file's content on stdout; exit 1 when it does not exist."""
    return ["cat", path]


def copy_file_argv(source: str, dest: str) -> list[str]:
    """A copy keeping mode, owner and times (``-p``), refusing to overwrite (``-n``)."""
    return ["cp", "-p", "-n", source, dest]


# drbdmeta (create-md) asks before writing over anything but zeros in a disk's first 65 KiB (HOW_MUCH
# in drbd-utils' drbdmeta.c): a filesystem whose signature was wiped still counts as data there.
DRBDMETA_CHECKED_BYTES = 65 * 1024
# Where a filesystem on a DRBD device keeps its superblock on the backing disk (internal metadata sits at
# the disk's end): probing only this head finds it even behind DRBD's own signature.
HEAD_PROBE_BYTES = 1024 * 1024


def hostname_argv() -> list[str]:
    """The node name DRBD matches ``on <name>`` against."""
    return ["uname", "-n"]


def which_argv(tools: list[str]) -> list[str]:
    """Print the path of each tool found; the names are arguments (dash's ``command -v`` takes one)."""
    return ["sh", "-c", 'for tool; do command -v "$tool"; done', "sh", *tools]


def modinfo_argv(module: str = "drbd") -> list[str]:
    """The module's file: exit 0 when the running kernel can load it."""
    return ["modinfo", "-F", "filename", module]


def lsblk_argv(device: str) -> list[str]:
    """The device, its children (partitions, holders such as DRBD) and their mountpoints, as JSON;
    exit 32 when ``device`` is not a block device."""
    return ["lsblk", "--json", "--bytes", "--paths", "-o", "NAME,TYPE,SIZE,MOUNTPOINTS", device]


def flush_buffers_argv(device: str) -> list[str]:
    """Drop the device's cached pages (as drbdmeta does): DRBD writes to its backing disk below the page
    cache, so a buffered read can return what the disk held before (measured: zeros under an ext4)."""
    return ["blockdev", "--flushbufs", device]


def blkid_head_argv(device: str) -> list[str]:
    """Signatures in the first MiB only: a filesystem inside DRBD's data area, or on a plain disk."""
    return ["blkid", "-p", "-o", "export", "--size", str(HEAD_PROBE_BYTES), device]


def zero_head_argv(device: str) -> list[str]:
    """Exit 0 when the bytes drbdmeta checks are all zero, 1 when any is not, 2 when unreadable."""
    return ["cmp", "-s", "-n", str(DRBDMETA_CHECKED_BYTES), device, "/dev/zero"]


WIPE_MIB = (
    2  # zeroed at each end of a disk being wiped: a superblock at its head, DRBD's metadata at its tail
)


def zero_range_argv(device: str, seek_mib: int, mib: int = WIPE_MIB) -> list[str]:
    """Zeros over ``mib`` MiB of ``device`` from ``seek_mib``, past the page cache."""
    return ["dd", "if=/dev/zero", f"of={device}", "bs=1M", f"count={mib}", f"seek={seek_mib}", "oflag=direct",
            "status=none"]  # fmt: skip


def wipefs_argv(device: str) -> list[str]:
    """Every signature libblkid knows off ``device``."""
    return ["wipefs", "-a", "-q", device]


def ip_addresses_argv() -> list[str]:
    return ["ip", "-json", "address", "show"]


def address_add_argv(interface: str, address: str) -> list[str]:
    """Hold ``address`` (with its prefix length) on ``interface``: the stacked end's moving address."""
    return ["ip", "address", "add", address, "dev", interface]


def announce_address_argv(interface: str, address: str) -> list[str]:
    """Unsolicited ARP for an address just taken over, so neighbours stop sending to its old holder."""
    return ["arping", "-q", "-U", "-c", "1", "-I", interface, address]


def address_delete_argv(interface: str, address: str) -> list[str]:
    """Give ``address`` up (exit 2 "Cannot assign requested address": not held)."""
    return ["ip", "address", "del", address, "dev", interface]


def drbdsetup_show_argv() -> list[str]:
    """Every resource configured in the kernel, as drbdsetup prints it (empty when none)."""
    return ["drbdsetup", "show"]


def _drbdadm(*words: str, stacked: bool = False) -> list[str]:
    """``drbdadm`` with its options first; ``stacked`` for an upper resource on a lower node (``--stacked``
    tells drbdadm to act on the device stacked on the lower one)."""
    return ["drbdadm", *(("--stacked",) if stacked else ()), *words]


def adjust_dry_run_argv(resource: str, stacked: bool = False) -> list[str]:
    """What ``adjust`` would run to bring the kernel to the config given on stdin; changes nothing."""
    return _drbdadm("-c", "/dev/stdin", "-d", "adjust", resource, stacked=stacked)


def drbdadm_dump_argv(config: str, resource: str) -> list[str]:
    """Parse a config file with drbdadm and print it back (validation only; no kernel needed)."""
    return ["drbdadm", "-c", config, "dump", resource]


def create_md_argv(resource: str, force: bool = False, stacked: bool = False) -> list[str]:
    """Write DRBD metadata to the backing disk. ``force`` answers drbdmeta's questions with yes."""
    return _drbdadm(*(("--force",) if force else ()), "create-md", resource, stacked=stacked)


def up_argv(resource: str, stacked: bool = False) -> list[str]:
    return _drbdadm("up", resource, stacked=stacked)


def attach_argv(resource: str, stacked: bool = False) -> list[str]:
    """Attach the backing disk again (after a disk failure left the node Diskless)."""
    return _drbdadm("attach", resource, stacked=stacked)


def down_argv(resource: str, stacked: bool = False) -> list[str]:
    """Demote, disconnect, detach and remove the device (refused while it is mounted)."""
    return _drbdadm("down", resource, stacked=stacked)


def adjust_argv(resource: str, stacked: bool = False) -> list[str]:
    return _drbdadm("adjust", resource, stacked=stacked)


def primary_argv(resource: str, force: bool = False, stacked: bool = False) -> list[str]:
    """Promote. ``force`` only for a brand-new resource (both sides Inconsistent), or a survivor whose
    peer is gone for good (a lost site): it declares this node's data the good copy."""
    return _drbdadm("primary", *(("--force",) if force else ()), resource, stacked=stacked)


def secondary_argv(resource: str, stacked: bool = False) -> list[str]:
    return _drbdadm("secondary", resource, stacked=stacked)


def new_current_uuid_clear_bitmap_argv(resource: str, stacked: bool = False) -> list[str]:
    """Start a new data generation with an empty bitmap: both (blank) disks count as in sync."""
    return _drbdadm("--", "--clear-bitmap", "new-current-uuid", resource, stacked=stacked)


def connect_argv(resource: str, discard_my_data: bool = False, stacked: bool = False) -> list[str]:
    return _drbdadm(
        "connect", *(("--discard-my-data",) if discard_my_data else ()), resource, stacked=stacked
    )


def disconnect_argv(resource: str, stacked: bool = False) -> list[str]:
    return _drbdadm("disconnect", resource, stacked=stacked)


def disconnect_endpoints_argv(local: str, peer: str) -> list[str]:
    """Drop the connection between two endpoints (``ipv4:10.0.0.1:7789``) as the kernel has it,
    whatever the resource file says now."""
    return ["drbdsetup", "disconnect", local, peer]


def device_size_argv(device: str) -> list[str]:
    """The device's size in bytes."""
    return ["blockdev", "--getsize64", device]


def kernel_log_argv() -> list[str]:
    """The kernel's ring buffer, where DRBD says how much each resync copies."""
    return ["dmesg", "--notime"]


def proc_drbd_argv() -> list[str]:
    return ["cat", "/proc/drbd"]


def blkid_argv(device: str) -> list[str]:
    """Low-level probe of ``device``'s signatures, bypassing the cache; exit 2 = nothing found."""
    return ["blkid", "-p", "-o", "export", device]


def mkfs_argv(fstype: FsType, device: str, label: str) -> list[str]:
    if fstype == "ext4":
        return ["mkfs.ext4", "-q", "-L", label, device]
    return ["mkfs.xfs", "-q", "-L", label[:12], device]  # xfs labels are at most 12 characters


def mkdir_argv(path: str) -> list[str]:
    return ["mkdir", "-p", path]


def mount_argv(device: str, mountpoint: str) -> list[str]:
    return ["mount", device, mountpoint]


def umount_argv(mountpoint: str) -> list[str]:
    return ["umount", mountpoint]


def mounts_of_argv(device: str) -> list[str]:
    """Every place ``device`` is mounted, one per line (exit 1 when it is mounted nowhere)."""
    return ["findmnt", "--raw", "--noheadings", "--source", device, "-o", "TARGET"]


def remove_file_argv(path: str) -> list[str]:
    return ["rm", "-f", path]


def findmnt_argv(mountpoint: str) -> list[str]:
    """The filesystem mounted exactly at ``mountpoint`` as JSON; exit 1 when nothing is."""
    return ["findmnt", "--json", "--mountpoint", mountpoint, "-o", "SOURCE,TARGET,FSTYPE,OPTIONS"]
