"""A node's power, as the drills need it: kill it, bring it back, ask whether it answers over SSH.

The faults (``failover.fault``):

- ``destroy`` (lab): libvirt destroy, pulling the VM's plug; libvirt reports the domain off when it
  returns, so there is nothing left to confirm;
- ``sysrq-poweroff`` / ``sysrq-crash`` (real hosts): ``o`` (power off at once, no sync, no unmount) or
  ``c`` (kernel panic) written to ``/proc/sysrq-trigger`` over SSH. The host dies under the command, so
  its answer is not waited for: a quick exit, a channel that closes and no answer at all are the same
  expected outcome;
- ``command`` (real hosts): ``failover.power_off_command`` run on this machine (the control host:
  ``ipmitool … chassis power off``, a hypervisor's CLI), ``{node}``/``{address}`` filled in.

After a real host's fault the node must stop answering SSH within :data:`DOWN_TIMEOUT_S`, or the fault
did nothing and the drill stops with one line. Coming back: ``failover.power_on_command`` when set,
else whoever operates the host powers it on; either way the wait is ``failover.boot_timeout_s``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

from prefect.logging import get_run_logger

from tasks.context import current_executor
from tasks.executor import LOCAL, CommandTimeout, SshTarget, TransportError
from tasks.lab import steps as lab_steps
from tasks.lab.host import wait_until
from tasks.settings import Settings
from tasks.step import step

SYSRQ_TRIGGER = "/proc/sysrq-trigger"
SYSRQ_KEYS = {"sysrq-poweroff": "o", "sysrq-crash": "c"}
# How long the trigger's channel may stay open. No answer is expected (the kernel dies under the
# command): this only bounds the wait, and an answer that does come back is just as good.
TRIGGER_ANSWER_S = 2.0
DOWN_TIMEOUT_S = 30.0  # a host hit by a fault stops answering SSH within this, or the fault did nothing
POWER_COMMAND_TIMEOUT_S = 120.0  # ipmitool, a hypervisor CLI: seconds, not minutes

FAULT_OUTCOMES = {
    "destroy": "destroyed",
    "sysrq-poweroff": "powered off",
    "sysrq-crash": "crashed",
    "command": "cut by power_off_command",
}


class NodeStillUp(TimeoutError):
    """The fault was fired but the node still answers SSH: it did nothing (nothing else was changed)."""


class NodeDidNotReturn(TimeoutError):
    """The killed node did not answer SSH within ``failover.boot_timeout_s``."""


def fault_outcome(fault: str) -> str:
    """What the fault did to the node, for reports: "nodea was powered off"."""
    return FAULT_OUTCOMES.get(fault, f"hit by {fault}")


def sysrq_key(fault: str) -> str:
    """The sysrq command character of a sysrq fault: ``o`` power off, ``c`` crash."""
    try:
        return SYSRQ_KEYS[fault]
    except KeyError:
        raise ValueError(f"fault {fault!r} is not a sysrq fault ({', '.join(SYSRQ_KEYS)})") from None


def sysrq_argv() -> list[str]:
    """Write stdin (the one sysrq character) to the trigger: no shell, no redirection to quote.

    ``kernel.sysrq`` (``/proc/sys/kernel/sysrq``) is not read or changed: that mask only limits the
    magic SysRq *keyboard* combinations. Writing to ``/proc/sysrq-trigger`` works for root whatever it
    holds (Documentation/admin-guide/sysrq.rst: "Invocation of any operation via /proc/sysrq-trigger
    is always allowed (by a user with admin privileges)"; the kernel's write handler does not check the
    mask). What can stop it: a non-root login or a kernel without CONFIG_MAGIC_SYSRQ, and both answer
    at once with an error (``dd`` exits 1), which is reported as it is.
    """
    return ["dd", f"of={SYSRQ_TRIGGER}", "status=none"]


def power_argv(template: Sequence[str], node: str, address: str) -> list[str]:
    """``template`` with ``{node}`` and ``{address}`` replaced in every element (no shell, no splitting).

    The settings refused any other ``{word}`` when they loaded; other braces (``{}``, ``${VAR}`` handed
    to a program) are left as they are.
    """
    if not template:
        raise ValueError("empty power command")
    return [part.replace("{node}", node).replace("{address}", address) for part in template]


def answers_ssh(target: SshTarget, timeout_s: float = 15) -> bool:
    """The node runs a command over SSH (with its pinned host key) within ``timeout_s`` right now."""
    try:
        current_executor().run(["true"], target, timeout=timeout_s, read_only=True, quiet=True)
        return True
    except (TransportError, CommandTimeout):  # no connection, or a connection to a host that hangs
        return False


@step(name="fire-fault", timeout_seconds=POWER_COMMAND_TIMEOUT_S + 60)
def fire_fault(settings: Settings, target: SshTarget) -> None:
    """Hit ``target`` with ``settings.fault`` at once (no shutdown, no flush) and return: the node's
    answer is not waited for. :func:`confirm_down` proves the effect."""
    fault = settings.fault
    executor = current_executor()
    log = get_run_logger()
    if executor.dry_run:
        log.info("(dry run; not killing %s with %s)", target.name, fault)
        return
    if fault == "destroy":
        lab_steps.power_off_vm.fn(settings.lab, target.name)
    elif fault in SYSRQ_KEYS:
        log.info("%s: writing %r to %s (%s)", target.name, sysrq_key(fault), SYSRQ_TRIGGER, fault)
        # The host dies under the command: its exit status may come back, or the channel closes, or
        # nothing answers before TRIGGER_ANSWER_S. All three are the expected outcome; a quick error
        # (not root, no sysrq in the kernel) is not suppressed.
        with contextlib.suppress(CommandTimeout, TransportError):
            executor.run(sysrq_argv(), target, stdin=sysrq_key(fault), timeout=TRIGGER_ANSWER_S)
    elif fault == "command":
        argv = power_argv(settings.failover.power_off_command, target.name, target.address)
        log.info("%s: cutting its power from this machine: %s", target.name, executor.display(argv))
        executor.run(argv, LOCAL, timeout=POWER_COMMAND_TIMEOUT_S)
    else:
        raise ValueError(f"fault {fault!r} kills nothing")
    executor.drop_connection(target)


@step(name="confirm-node-down", timeout_seconds=DOWN_TIMEOUT_S + 60)
def confirm_down(settings: Settings, target: SshTarget, timeout_s: float = DOWN_TIMEOUT_S) -> float:
    """Wait until ``target`` no longer answers SSH after its fault; returns seconds waited.

    Raises :class:`NodeStillUp` (one line) if it still answers after ``timeout_s``: the fault did
    nothing, and a drill must not promote the other node next to a live primary. A lab ``destroy``
    needs no check (libvirt reports the domain off).
    """
    started = time.monotonic()
    if settings.fault == "destroy" or current_executor().dry_run:
        return 0.0
    try:
        wait_until(lambda: not answers_ssh(target, timeout_s=5), timeout_s, f"{target.name} to go down")
    except TimeoutError:
        raise NodeStillUp(
            f"{target.name} ({target.address}) still answers SSH {timeout_s:g} s after {settings.fault}: "
            f"the fault did nothing ({_fault_hint(settings.fault)}); nothing else was changed"
        ) from None
    waited = time.monotonic() - started
    get_run_logger().info("%s no longer answers SSH (%.1f s after the fault)", target.name, waited)
    return waited


def _fault_hint(fault: str) -> str:
    if fault == "command":
        return "check failover.power_off_command: it exited 0 but the host kept running"
    return (
        "the trigger was written but the host kept running: is it a container, or a kernel that ignores it?"
    )


@step(name="kill-node", timeout_seconds=POWER_COMMAND_TIMEOUT_S + DOWN_TIMEOUT_S + 120)
def kill_node(settings: Settings, target: SshTarget) -> None:
    """Take ``target`` down at once (``settings.fault``) and confirm it no longer answers SSH."""
    fire_fault.fn(settings, target)
    confirm_down.fn(settings, target)


@step(name="restart-node")
def restart_node(settings: Settings, target: SshTarget) -> float:
    """Bring a killed node back; returns seconds until it answers SSH.

    Lab: start the VM. Real host: run ``failover.power_on_command`` on this machine when it is set,
    else ask whoever operates the host to power it on; then wait up to ``failover.boot_timeout_s``.
    Raises :class:`NodeDidNotReturn` (a ``TimeoutError``) saying what to do when it does not answer.
    """
    started = time.monotonic()
    if settings.target == "lab":
        lab_steps.start_vm.fn(settings.lab, target.name)
        lab_steps.wait_for_ssh.fn(settings.lab, target.name, target.netns is not None)
        return time.monotonic() - started
    log = get_run_logger()
    executor = current_executor()
    timeout_s = settings.failover.boot_timeout_s
    command = settings.failover.power_on_command
    where = f"{target.name} ({target.address})"
    if command:
        argv = power_argv(command, target.name, target.address)
        log.info("powering %s on from this machine: %s", where, executor.display(argv))
        executor.run(argv, LOCAL, timeout=POWER_COMMAND_TIMEOUT_S)
        log.info("waiting up to %g s (failover.boot_timeout_s) for %s to answer SSH", timeout_s, where)
    else:
        log.warning("power %s on now; waiting up to %g s (failover.boot_timeout_s)", where, timeout_s)
    try:
        wait_until(lambda: answers_ssh(target), timeout_s, f"{target.name} to return", interval_s=1.0)
    except TimeoutError:
        raise NodeDidNotReturn(
            did_not_return(target.name, target.address, timeout_s, bool(command))
        ) from None
    return time.monotonic() - started


def did_not_return(node: str, address: str, timeout_s: float, powered_on: bool) -> str:
    """The one line a drill ends with when the killed node does not come back: what to do next."""
    how = "after power_on_command ran" if powered_on else "(nobody powered it on?)"
    return (
        f"{node} ({address}) did not answer SSH within {timeout_s:g} s {how}: power it on, then run "
        f"`python -m flows.setup` to reattach it and resync it as secondary (or raise "
        f"failover.boot_timeout_s)"
    )
