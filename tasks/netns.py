"""Network namespaces: argv builders for ``ip netns`` and sockets opened inside a namespace.

The embedded lab keeps every packet inside a namespace it creates. The host never gets a route into it:
to talk to a guest, this process opens its TCP socket *inside* the namespace (``setns`` on the calling
thread, create the socket, switch back). A socket stays in the namespace it was created in, so paramiko
can then use it like any other.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import threading
from pathlib import Path

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = Path("/run/netns")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_setns_lock = threading.Lock()


def add_argv(name: str) -> list[str]:
    return ["ip", "netns", "add", name]


def delete_argv(name: str) -> list[str]:
    return ["ip", "netns", "delete", name]


def exec_argv(name: str, argv: list[str]) -> list[str]:
    """Run ``argv`` inside namespace ``name``."""
    return ["ip", "netns", "exec", name, *argv]


def link_up_argv(name: str, device: str) -> list[str]:
    return exec_argv(name, ["ip", "link", "set", device, "up"])


def pids_argv(name: str) -> list[str]:
    return ["ip", "netns", "pids", name]


def path(name: str) -> Path:
    return NETNS_RUN_DIR / name


def exists(name: str) -> bool:
    return path(name).exists()


def inode(name: str) -> int | None:
    """Identity of a namespace (the inode of its handle), to tell which processes run inside it."""
    try:
        return path(name).stat().st_ino
    except FileNotFoundError:
        return None


def process_netns_inode(pid: int) -> int | None:
    try:
        return Path(f"/proc/{pid}/ns/net").stat().st_ino
    except (FileNotFoundError, PermissionError, ProcessLookupError):
        return None


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def socket_in(name: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A new socket that lives in namespace ``name`` (this thread's namespace is restored after)."""
    with _setns_lock:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(path(name), os.O_RDONLY)
        except FileNotFoundError:
            os.close(own)
            raise OSError(f"network namespace {name!r} does not exist") from None
        try:
            _setns(target)
            try:
                return socket.socket(family, kind)
            finally:
                _setns(own)
        finally:
            os.close(target)
            os.close(own)


def connect_tcp(name: str, address: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to ``address:port`` made from inside namespace ``name``."""
    sock = socket_in(name)
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock
