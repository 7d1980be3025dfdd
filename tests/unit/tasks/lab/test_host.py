"""Unit tests for the pure parts of tasks/lab/host.py (nothing here starts a daemon or a VM)."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tasks.executor import Executor
from tasks.lab.host import (
    LIBVIRTD,
    VIRTLOGD,
    choose_accel,
    daemon_argv,
    kvm_probe_argv,
    launch_argv,
    wait_until,
)


def test_launch_argv_without_masks_or_binds_is_unchanged() -> None:
    argv = ["/usr/sbin/libvirtd", "-d"]
    assert launch_argv(argv, [], {}) is argv


def _private_mounts_allowed() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not _private_mounts_allowed(), reason="needs root and a private mount namespace")
@pytest.mark.parametrize(
    ("masks", "binds"), [(2, 0), (0, 2), (2, 2)], ids=["masks", "binds", "masks-and-binds"]
)
def test_launched_command_sees_masks_and_binds_the_host_does_not(
    tmp_path: Path, masks: int, binds: int
) -> None:
    masked = [tmp_path / f"device{n}" for n in range(masks)]
    for path in masked:
        path.write_text("the real device\n")
    bound = {tmp_path / f"lab{n}.conf": tmp_path / f"host{n}.conf" for n in range(binds)}
    for n, (source, target) in enumerate(bound.items()):
        source.write_text(f"lab config {n}\n")
        target.write_text(f"host config {n}\n")
    shown = [*masked, *bound.values()]
    script = 'for f in "$@"; do printf "%s|%s|" "$(stat -c %a "$f")" "$(cat "$f")"; done'
    argv = launch_argv(["/bin/sh", "-c", script, "sh", *map(str, shown)], [str(p) for p in masked], bound)

    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    seen = result.stdout.split("|")[:-1]
    views = list(zip(seen[::2], seen[1::2], strict=True))
    assert views == [("0", "")] * masks + [("644", f"lab config {n}") for n in range(binds)]
    # the host's view is unchanged
    assert all(p.read_text() == "the real device\n" for p in masked)
    assert [t.read_text() for t in bound.values()] == [f"host config {n}\n" for n in range(binds)]


def test_kvm_probe_argv(tmp_path: Path) -> None:
    kernel, initrd, log = tmp_path / "vmlinuz", tmp_path / "initrd.img", tmp_path / "probe.console"
    argv = kvm_probe_argv(kernel, initrd, log)

    assert argv[0] == "qemu-system-x86_64"
    assert argv[argv.index("-accel") + 1] == "kvm"
    assert "-no-reboot" in argv
    assert argv[argv.index("-kernel") + 1] == str(kernel)
    assert argv[argv.index("-initrd") + 1] == str(initrd)
    assert argv[argv.index("-serial") + 1] == f"file:{log}"
    append = argv[argv.index("-append") + 1].split()
    assert "panic=-1" in append
    assert "console=ttyS0" in append


@pytest.mark.parametrize("binary", [LIBVIRTD, VIRTLOGD])
def test_daemon_argv_runs_the_binary_as_a_daemon(binary: Path) -> None:
    argv = daemon_argv(binary)
    assert argv[0] == str(binary)
    assert "-l" not in argv  # TCP listening fails without systemd
    if not binary.exists():
        pytest.skip(f"{binary} is not installed")
    shown = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=30)
    usage = shown.stdout + shown.stderr  # libvirt prints its help on stderr
    documented = {line.split("|")[0].strip() for line in usage.splitlines() if "--daemon" in line}
    assert argv[1:] and set(argv[1:]) <= documented  # "-d | --daemon": run in the background


def test_daemon_argv_for_another_path() -> None:
    assert daemon_argv(Path("/opt/bin/libvirtd")) == ["/opt/bin/libvirtd", *daemon_argv(LIBVIRTD)[1:]]


def test_wait_until_returns_the_truthy_value() -> None:
    answers = [None, 0, "", {"pid": 42}]
    polled: list[object] = []

    def condition() -> object:
        polled.append(answers[len(polled)])
        return polled[-1]

    assert wait_until(condition, timeout_s=5, what="the daemon", interval_s=0.01) == {"pid": 42}
    assert polled == answers  # falsy values were polled past, and polling stopped at the first truthy one


def test_wait_until_returns_immediately_when_already_true() -> None:
    started = time.monotonic()
    assert wait_until(lambda: 7, timeout_s=5, what="x", interval_s=1) == 7
    assert time.monotonic() - started < 0.5


def test_wait_until_times_out_naming_what_it_waited_for() -> None:
    polls = itertools.count()
    started = time.monotonic()

    with pytest.raises(TimeoutError, match="waiting for libvirtd to start"):
        wait_until(lambda: next(polls) < 0, timeout_s=0.3, what="libvirtd to start", interval_s=0.05)

    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0
    assert next(polls) >= 3  # it kept polling until the deadline


class _RefusingExecutor(Executor):
    """An executor that fails the test if anything is run through it."""

    def run(self, argv, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        raise AssertionError(f"unexpected command: {argv}")


@pytest.mark.parametrize(("setting", "domain_type"), [("tcg", "qemu"), ("kvm", "kvm")])
def test_choose_accel_follows_an_explicit_setting(tmp_path: Path, setting: str, domain_type: str) -> None:
    choice = choose_accel(
        setting,  # type: ignore[arg-type]
        tmp_path / "vmlinuz",
        tmp_path / "initrd.img",
        tmp_path,
        _RefusingExecutor(),
    )
    assert choice.domain_type == domain_type
    assert choice.reason == f"accel = {setting} in settings"
    assert list(tmp_path.iterdir()) == []  # no probe verdict was cached
