"""Pure argv builders, one per DRBD / filesystem step. Nothing here runs anything."""

from __future__ import annotations

from typing import Literal

FsType = Literal["ext4", "xfs"]


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


def sha256_argv(*paths: str) -> list[str]:
    return ["sha256sum", *paths]


def drbdadm_dump_argv(config: str, resource: str) -> list[str]:
    """Parse a config file with drbdadm and print it back (validation only; no kernel needed)."""
    return ["drbdadm", "-c", config, "dump", resource]


def create_md_argv(resource: str, force: bool = False) -> list[str]:
    """Write DRBD metadata to the backing disk. ``force`` answers drbdmeta's questions with yes."""
    return ["drbdadm", *(("--force",) if force else ()), "create-md", resource]


def up_argv(resource: str) -> list[str]:
    return ["drbdadm", "up", resource]


def adjust_argv(resource: str) -> list[str]:
    return ["drbdadm", "adjust", resource]


def primary_argv(resource: str, force: bool = False) -> list[str]:
    """Promote. ``force`` only for a brand-new resource (both sides Inconsistent): it declares this
    node's data the good copy."""
    return ["drbdadm", "primary", *(("--force",) if force else ()), resource]


def secondary_argv(resource: str) -> list[str]:
    return ["drbdadm", "secondary", resource]


def new_current_uuid_clear_bitmap_argv(resource: str) -> list[str]:
    """Start a new data generation with an empty bitmap: both (blank) disks count as in sync."""
    return ["drbdadm", "--", "--clear-bitmap", "new-current-uuid", resource]


def connect_argv(resource: str, discard_my_data: bool = False) -> list[str]:
    return ["drbdadm", "connect", *(("--discard-my-data",) if discard_my_data else ()), resource]


def disconnect_argv(resource: str) -> list[str]:
    return ["drbdadm", "disconnect", resource]


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


def findmnt_argv(mountpoint: str) -> list[str]:
    """The filesystem mounted exactly at ``mountpoint`` as JSON; exit 1 when nothing is."""
    return ["findmnt", "--json", "--mountpoint", mountpoint, "-o", "SOURCE,TARGET,FSTYPE,OPTIONS"]
