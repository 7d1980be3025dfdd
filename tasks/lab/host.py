"""The lab's host side: which accelerator works, the private libvirt daemons, the libvirt connection."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from tasks import netns
from tasks.executor import CommandTimeout, Executor

SYSTEM_URI = "qemu:///system"
LIBVIRTD = Path("/usr/sbin/libvirtd")
VIRTLOGD = Path("/usr/sbin/virtlogd")
PIDFILES = {"libvirtd": Path("/run/libvirtd.pid"), "virtlogd": Path("/run/virtlogd.pid")}
KVM_PROBE_TIMEOUT_S = 20.0
KVM_DEVICE = "/dev/kvm"


class LibvirtUnreachable(Exception):
    """The configured libvirt URI does not answer."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"libvirt URI {uri!r} is unreachable: {reason}")


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.25) -> Any:
    """Poll ``condition`` until it returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


# -- accelerator -----------------------------------------------------------------------------------


def kvm_probe_argv(kernel: Path, initrd: Path, serial_log: Path) -> list[str]:
    """Boot the lab kernel under KVM with no root: a working KVM reaches the panic and exits in ~2 s."""
    return [
        "qemu-system-x86_64",
        "-accel",
        "kvm",
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-m",
        "256",
        "-serial",
        f"file:{serial_log}",
        "-kernel",
        str(kernel),
        "-initrd",
        str(initrd),
        "-append",
        "console=ttyS0 panic=-1 rdinit=/nonexistent root=/dev/nonexistent",
    ]


class AccelChoice(BaseModel):
    domain_type: Literal["kvm", "qemu"] = Field(description="libvirt domain type to use.")
    reason: str


def choose_accel(
    setting: Literal["auto", "kvm", "tcg"],
    kernel: Path,
    initrd: Path,
    cache_dir: Path,
    executor: Executor,
) -> AccelChoice:
    """KVM where it demonstrably boots the guest kernel, else TCG; the probe's verdict is cached.

    In a dry run (``executor.dry_run``) without a cached verdict nothing is booted: TCG is assumed.
    """
    if setting == "tcg":
        return AccelChoice(domain_type="qemu", reason="accel = tcg in settings")
    if setting == "kvm":
        return AccelChoice(domain_type="kvm", reason="accel = kvm in settings")
    if not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        return AccelChoice(domain_type="qemu", reason=f"{KVM_DEVICE} is not usable")
    qemu_version = executor.run(["qemu-system-x86_64", "--version"], read_only=True).stdout.splitlines()[:1]
    key = f"{os.uname().release}|{qemu_version}|{kernel.parent.name}"
    cache = cache_dir / "kvm-probe.json"
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return AccelChoice.model_validate(cached["choice"])
    except (FileNotFoundError, ValueError, KeyError):
        pass
    if executor.dry_run:
        return AccelChoice(domain_type="qemu", reason="dry run: KVM not probed, TCG assumed")
    serial_log = cache_dir / "kvm-probe.console"
    serial_log.unlink(missing_ok=True)
    started = time.monotonic()
    try:
        executor.run(kvm_probe_argv(kernel, initrd, serial_log), timeout=KVM_PROBE_TIMEOUT_S, read_only=True)
        output = serial_log.read_text(errors="replace") if serial_log.exists() else ""
        works = "Kernel panic" in output
        detail = f"guest kernel booted under KVM in {time.monotonic() - started:.1f} s"
    except CommandTimeout:
        works, detail = (
            False,
            f"a KVM guest printed nothing in {KVM_PROBE_TIMEOUT_S:.0f} s (nested KVM hangs)",
        )
    choice = AccelChoice(domain_type="kvm" if works else "qemu", reason=detail if works else f"TCG: {detail}")
    cache.write_text(json.dumps({"key": key, "choice": choice.model_dump()}))
    return choice


# -- daemons ---------------------------------------------------------------------------------------


def daemon_argv(binary: Path) -> list[str]:
    """libvirtd/virtlogd as a background daemon (no ``-l``: TCP listening fails without systemd)."""
    return [str(binary), "-d"]


def daemon_pid(name: str) -> int | None:
    """PID of a running ``libvirtd``/``virtlogd`` according to its pid file, if that process lives."""
    try:
        pid = int(PIDFILES[name].read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return None
    return pid if comm == name else None


def daemon_in_netns(name: str, namespace: str) -> int | None:
    """PID of daemon ``name`` if it runs inside ``namespace`` (that is: it is the lab's own)."""
    pid = daemon_pid(name)
    ns_inode = netns.inode(namespace)
    if pid is None or ns_inode is None:
        return None
    return pid if netns.process_netns_inode(pid) == ns_inode else None


HOST_QEMU_CONF = Path("/etc/libvirt/qemu.conf")
# The lab's own libvirtd, when KVM is masked: no per-VM private /dev (it cannot copy the mask).
LAB_QEMU_CONF = "# qemu.conf of the ha-storage-flows lab's private libvirtd (TCG)\nnamespaces = [ ]\n"


def launch_argv(argv: list[str], masks: list[str], binds: dict[Path, Path]) -> list[str]:
    """``argv`` started by :mod:`tasks.lab.launch` in a private mount namespace with masks and binds."""
    if not masks and not binds:
        return argv
    return [
        sys.executable,
        "-m",
        "tasks.lab.launch",
        *(f"--mask={path}" for path in masks),
        *(f"--bind={source}={target}" for source, target in binds.items()),
        "--",
        *argv,
    ]


def start_daemons(namespace: str, executor: Executor, mask_kvm: bool, config_dir: Path) -> dict[str, int]:
    """Start virtlogd and libvirtd inside ``namespace`` (each only if not already running there).

    ``mask_kvm`` hides /dev/kvm from libvirtd when the lab runs TCG (see :mod:`tasks.lab.launch`);
    its qemu.conf is then written to ``config_dir``.
    """
    masks: list[str] = []
    binds: dict[Path, Path] = {}
    if mask_kvm and Path(KVM_DEVICE).exists():
        config_dir.mkdir(parents=True, exist_ok=True)
        qemu_conf = config_dir / "qemu.conf"
        qemu_conf.write_text(LAB_QEMU_CONF)
        masks, binds = [KVM_DEVICE], {qemu_conf: HOST_QEMU_CONF}
    pids: dict[str, int] = {}
    for name, binary in (("virtlogd", VIRTLOGD), ("libvirtd", LIBVIRTD)):
        pid = daemon_in_netns(name, namespace)
        if pid is None:
            argv = daemon_argv(binary)
            if name == "libvirtd":
                argv = launch_argv(argv, masks, binds)
            executor.run(netns.exec_argv(namespace, argv), timeout=30)
            pid = wait_until(partial(daemon_in_netns, name, namespace), 30, f"{name} to start")
        pids[name] = pid
    return pids


def stop_process(pid: int, timeout_s: float = 30.0) -> None:
    """SIGTERM, wait for the process to go; SIGKILL if it does not."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        wait_until(
            lambda: not Path(f"/proc/{pid}").exists() or _is_zombie(pid), timeout_s, f"pid {pid} to exit"
        )
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


# -- libvirt connection ----------------------------------------------------------------------------


def _silence_libvirt() -> None:
    import libvirt

    # libvirt prints every error to stderr by default; ours are raised as exceptions instead.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def open_libvirt(uri: str) -> Any:
    """A libvirt connection, or :class:`LibvirtUnreachable` with libvirt's own reason."""
    import libvirt

    _silence_libvirt()
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        reason = (exc.get_error_message() or str(exc)).splitlines()[0]
        raise LibvirtUnreachable(uri, reason) from None


@contextlib.contextmanager
def libvirt_connection(uri: str) -> Iterator[Any]:
    """An open libvirt connection for the duration of a ``with`` block."""
    conn = open_libvirt(uri)
    try:
        yield conn
    finally:
        conn.close()


def try_libvirt(uri: str) -> Any | None:
    try:
        return open_libvirt(uri)
    except LibvirtUnreachable:
        return None
