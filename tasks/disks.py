"""A backing disk that fails under DRBD, and comes back: the disk-failure fault's inject and repair.

The disk is pulled out from under the kernel by unbinding its virtio device from the ``virtio_blk``
driver, as a hot-unplug does: from then on every I/O to it fails. Measured on the lab: DRBD logs
"local WRITE IO error … Detaching" at the next write, goes Diskless (``on-io-error detach``, DRBD 8.4's
default) and the Primary keeps serving from its peer. Binding the device again brings the same disk
back under the same name; ``drbdadm attach`` then resyncs it from the peer.

Only a virtio disk can be pulled this way, and the flows pull only the lab's (``target = "lab"``):
any other disk is refused in one line before anything changes. Pulling a disk out of a running host
of yours is not a fault this project injects for you.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel

from tasks.context import current_executor
from tasks.drbd.plan import Refused
from tasks.executor import LocalTarget, SshTarget
from tasks.lab.host import wait_until
from tasks.step import step

VIRTIO_BLK = "/sys/bus/virtio/drivers/virtio_blk"
VIRTIO_DEVICE = re.compile(r"^virtio\d+$")
RETURN_TIMEOUT_S = 30.0  # a bound device shows up within a second (measured)


class PulledDisk(BaseModel):
    """A disk pulled from a node: what to bind again to put it back."""

    node: str
    disk: str
    device: str  # virtioN


def device_link_argv(disk: str) -> list[str]:
    """Where the block device's ``device`` link points: ``…/virtio3`` for a virtio disk."""
    return ["readlink", "-f", f"/sys/block/{PurePosixPath(disk).name}/device"]


def parse_virtio_device(link: str) -> str | None:
    """``virtio3`` from the resolved ``device`` link; None when the disk is not a virtio one."""
    name = PurePosixPath(link.strip()).name
    return name if VIRTIO_DEVICE.match(name) else None


def driver_argv(action: Literal["bind", "unbind"]) -> list[str]:
    """Write stdin (the device's name) to the driver's ``bind``/``unbind`` file: no shell redirection."""
    return ["dd", f"of={VIRTIO_BLK}/{action}", "status=none"]


def block_device_argv(disk: str) -> list[str]:
    """Exit 0 when ``disk`` is a block device (it is back), 1 when it is not."""
    return ["test", "-b", disk]


@step(name="pull-disk", timeout_seconds=120)
def pull_disk(target: SshTarget, disk: str) -> PulledDisk:
    """Make ``disk`` vanish from ``target`` at once, as if unplugged; refuses a disk that is not virtio."""
    run = current_executor().run
    link = run(device_link_argv(disk), target, read_only=True).stdout
    device = parse_virtio_device(link)
    if device is None:
        raise Refused(
            f"{target.name}: {disk} is not a virtio disk ({link.strip() or 'no device link'}); the "
            "disk-failure fault unplugs virtio disks only (the lab's); nothing was changed"
        )
    run(driver_argv("unbind"), target, stdin=device)
    return PulledDisk(node=target.name, disk=disk, device=device)


@step(name="put-back-disk", timeout_seconds=RETURN_TIMEOUT_S + 60)
def put_back_disk(target: SshTarget, pulled: PulledDisk) -> None:
    """Bind the pulled device again and wait until its block device is back under the same name."""
    run = current_executor().run
    run(driver_argv("bind"), target, stdin=pulled.device)
    wait_until(
        lambda: run(block_device_argv(pulled.disk), target, read_only=True, ok_codes=(0, 1)).exit_code == 0,
        RETURN_TIMEOUT_S,
        f"{pulled.disk} to come back on {target.name}",
    )


# -- a filesystem too small for what is written to it (the restore-disk-full fault) ----------------


def mount_tmpfs_argv(path: str, size_kib: int) -> list[str]:
    return ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0700", "hsf-fault", path]


def unmount_argv(path: str) -> list[str]:
    return ["umount", path]


@step(name="mount-small-filesystem", timeout_seconds=120)
def mount_small_filesystem(target: SshTarget | LocalTarget, path: str, size_kib: int) -> None:
    """A tmpfs of ``size_kib`` KiB at ``path``, a directory made for it (an existing ``path`` is refused:
    it is not ours to mount over or to remove afterwards): a disk that fills up at once."""
    run = current_executor().run
    if run(["test", "-e", path], target, read_only=True, ok_codes=(0, 1)).exit_code == 0:
        raise Refused(f"{target.name}: {path} exists already; the fault mounts only a directory of its own")
    run(["mkdir", path], target)
    run(mount_tmpfs_argv(path, size_kib), target)


@step(name="unmount-small-filesystem", timeout_seconds=120, retry_transport=True)
def unmount_small_filesystem(target: SshTarget | LocalTarget, path: str) -> None:
    """Unmount it (whatever it holds goes with it) and remove its mountpoint."""
    run = current_executor().run
    if run(["mountpoint", "-q", path], target, read_only=True, ok_codes=(0, 1, 32)).exit_code == 0:
        run(unmount_argv(path), target)
    run(["rmdir", "--ignore-fail-on-non-empty", path], target, ok_codes=(0, 1))


# -- a throwaway disk backed by a file (the setup-killed fault's brand-new resource) ---------------


def make_file_argv(path: str, size_mib: int) -> list[str]:
    """A file of ``size_mib`` MiB of zeros, all allocated (a loop device over a sparse file works too,
    but a full disk of the guest would then fail writes halfway)."""
    return ["fallocate", "-l", f"{size_mib}MiB", path]


def loop_of_file_argv(path: str) -> list[str]:
    """The loop devices backed by ``path``, one name per line (none: empty output)."""
    return ["losetup", "--noheadings", "--output", "NAME", "--associated", path]


def attach_loop_argv(path: str) -> list[str]:
    """Attach ``path`` to the first free loop device and print its name."""
    return ["losetup", "--find", "--show", path]


def detach_loop_argv(device: str) -> list[str]:
    return ["losetup", "--detach", device]


@step(name="attach-loop-file", timeout_seconds=120, retry_transport=True)
def attach_loop_file(target: SshTarget, path: str, size_mib: int) -> str:
    """A block device backed by the file ``path`` (made if missing); returns its name (``/dev/loopN``).
    Attached already: that device, nothing changed."""
    run = current_executor().run
    if run(["test", "-e", path], target, read_only=True, ok_codes=(0, 1)).exit_code == 1:
        run(["mkdir", "-p", str(PurePosixPath(path).parent)], target)
        run(make_file_argv(path, size_mib), target)
    attached = run(loop_of_file_argv(path), target, read_only=True).stdout.split()
    if attached:
        return attached[0]
    return run(attach_loop_argv(path), target).stdout.strip()


@step(name="detach-loop-file", timeout_seconds=120, retry_transport=True)
def detach_loop_file(target: SshTarget, path: str) -> None:
    """Detach every loop device backed by ``path`` and remove the file (gone already: nothing to do)."""
    run = current_executor().run
    for device in run(loop_of_file_argv(path), target, read_only=True, ok_codes=(0, 1)).stdout.split():
        run(detach_loop_argv(device), target)
    run(["rm", "-f", path], target)


def free_bytes_argv(path: str) -> list[str]:
    return ["df", "--output=avail", "-B1", path]


def used_bytes_argv(path: str) -> list[str]:
    return ["du", "-sb", path]


@step(name="free-bytes", timeout_seconds=60, retry_transport=True)
def free_bytes(target: SshTarget | LocalTarget, path: str) -> int:
    """Bytes free for an ordinary user's writes on the filesystem holding ``path``."""
    out = current_executor().run(free_bytes_argv(path), target, read_only=True).stdout.split()
    return int(out[-1])


@step(name="used-bytes", timeout_seconds=300, retry_transport=True)
def used_bytes(target: SshTarget | LocalTarget, path: str) -> int:
    """Bytes the tree at ``path`` holds (apparent sizes: what a copy or a restore writes)."""
    result = current_executor().run(used_bytes_argv(path), target, read_only=True, timeout=240)
    return int(result.stdout.split()[0])


# The filesystem a restore fills: half of what the restore writes, so it runs out of space midway, and
# never more than 1 MiB (a tmpfs lives in the client's memory). Sources too small to fill any are refused.
FULL_FILESYSTEM_MAX_KIB = 1024
FULL_FILESYSTEM_MIN_KIB = 16


def full_filesystem_kib(restored_bytes: int) -> int:
    """The size of a filesystem that a restore of ``restored_bytes`` cannot fit in (see the bounds above);
    Refused, in one line, when the sources are too small to fill one."""
    size = min(FULL_FILESYSTEM_MAX_KIB, restored_bytes // 2048)
    if size < FULL_FILESYSTEM_MIN_KIB:
        raise Refused(
            f"the sources hold {restored_bytes:,} bytes, too little to fill a filesystem: restore-disk-full "
            f"needs at least {FULL_FILESYSTEM_MIN_KIB * 2} KiB to restore; nothing was mounted"
        )
    return size


def full_filesystem_for(target: SshTarget | LocalTarget, sources: Sequence[str]) -> int:
    """:func:`full_filesystem_kib` of what restoring ``sources`` on ``target`` writes (read with du)."""
    return full_filesystem_kib(sum(used_bytes(target, source) for source in sources))
