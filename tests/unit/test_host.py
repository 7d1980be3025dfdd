"""Unit tests for the pure parts of tasks/lab/host.py (nothing here starts a daemon or a VM)."""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import pytest

from tasks.executor import Executor
from tasks.lab.host import (
    HOST_QEMU_CONF,
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


@pytest.mark.parametrize(
    ("masks", "binds", "options"),
    [
        pytest.param(["/dev/kvm"], {}, ["--mask=/dev/kvm"], id="mask"),
        pytest.param(
            [],
            {Path("/lab/qemu.conf"): HOST_QEMU_CONF},
            ["--bind=/lab/qemu.conf=/etc/libvirt/qemu.conf"],
            id="bind",
        ),
        pytest.param(
            ["/dev/kvm", "/dev/vhost-net"],
            {Path("/lab/qemu.conf"): HOST_QEMU_CONF, Path("/lab/a"): Path("/etc/b")},
            [
                "--mask=/dev/kvm",
                "--mask=/dev/vhost-net",
                "--bind=/lab/qemu.conf=/etc/libvirt/qemu.conf",
                "--bind=/lab/a=/etc/b",
            ],
            id="masks-and-binds",
        ),
    ],
)
def test_launch_argv_wraps_in_the_launcher(
    masks: list[str], binds: dict[Path, Path], options: list[str]
) -> None:
    argv = ["/usr/sbin/libvirtd", "-d"]
    assert launch_argv(argv, masks, binds) == [
        sys.executable,
        "-m",
        "tasks.lab.launch",
        *options,
        "--",
        "/usr/sbin/libvirtd",
        "-d",
    ]


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


@pytest.mark.parametrize(
    ("binary", "expected"),
    [
        (LIBVIRTD, ["/usr/sbin/libvirtd", "-d"]),
        (VIRTLOGD, ["/usr/sbin/virtlogd", "-d"]),
        (Path("/opt/bin/libvirtd"), ["/opt/bin/libvirtd", "-d"]),
    ],
)
def test_daemon_argv(binary: Path, expected: list[str]) -> None:
    assert daemon_argv(binary) == expected


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
