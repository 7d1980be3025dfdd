"""Exec a daemon in a private mount namespace with some device nodes masked.

    python -m tasks.lab.launch --mask /dev/kvm --bind LAB/qemu.conf=/etc/libvirt/qemu.conf \
        -- /usr/sbin/libvirtd -d

Why: where KVM is present but unusable (a nested host whose KVM guests hang), libvirt probes QEMU with
KVM as root, then finds /dev/kvm not usable by the qemu user, declares its capability cache stale and
re-probes — 60 s on *every* domain define. The lab has already decided on TCG, so its own libvirtd gets
a view of the system where /dev/kvm is an inaccessible empty file: the probe is TCG-only and cached.
libvirt's per-VM private /dev cannot copy a masked /dev/kvm, so that daemon also gets the lab's own
qemu.conf (``namespaces = []``), bound over the host's. Only this process tree sees either (the mount
namespace is private); nothing on the host changes.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import sys
import tempfile
from pathlib import Path

CLONE_NEWNS = 0x00020000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SLAVE = 0x80000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, flags: int) -> None:
    _check(
        _libc.mount(source.encode() if source else None, target.encode(), None, flags, None),
        f"mount {source} {target}",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mask", action="append", default=[], help="path to hide behind an unreadable file")
    parser.add_argument("--bind", action="append", default=[], help="SOURCE=TARGET: show SOURCE at TARGET")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", MS_REC | MS_SLAVE)  # host mounts still reach us; ours never reach the host
    for path in args.mask:
        if Path(path).exists():
            fd, name = tempfile.mkstemp(prefix="hsf-mask-")
            os.close(fd)
            blank = Path(name)
            blank.chmod(0)
            _mount(str(blank), path, MS_BIND)
            blank.unlink()  # the bind mount keeps the inode
    for pair in args.bind:
        source, _, target = pair.partition("=")
        _mount(source, target, MS_BIND)
    os.execv(command[0], command)
    return 127  # pragma: no cover - execv does not return


if __name__ == "__main__":
    sys.exit(main())
