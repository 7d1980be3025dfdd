"""A node's power, as the drills need it: kill it, bring it back, ask whether it answers over SSH.

In the lab a kill is libvirt's destroy (pulling the plug); on real hosts it is an immediate power-off
through the kernel's sysrq trigger, and coming back is up to whoever powers the host on.
"""

from __future__ import annotations

import contextlib
import time

from prefect.logging import get_run_logger

from tasks.context import current_executor
from tasks.executor import SshTarget, TransportError
from tasks.lab import steps as lab_steps
from tasks.lab.host import wait_until
from tasks.settings import Settings
from tasks.step import step


def answers_ssh(target: SshTarget, timeout_s: float = 15) -> bool:
    """The node runs a command over SSH (with its pinned host key) right now."""
    try:
        current_executor().run(["true"], target, timeout=timeout_s, read_only=True, quiet=True)
        return True
    except TransportError:
        return False


@step(name="kill-node", timeout_seconds=120)
def kill_node(settings: Settings, target: SshTarget) -> None:
    """Take ``target`` down at once, with no shutdown and no flush (``settings.fault``)."""
    fault = settings.fault
    executor = current_executor()
    if executor.dry_run:
        get_run_logger().info("(dry run; not killing %s with %s)", target.name, fault)
        return
    if fault == "destroy":
        lab_steps.power_off_vm.fn(settings.lab, target.name)
    elif fault == "sysrq-poweroff":
        with contextlib.suppress(TransportError):  # immediate power-off: the host dies mid-command
            executor.run(["dd", "of=/proc/sysrq-trigger", "status=none"], target, stdin="o", timeout=15)
    else:
        raise ValueError(f"fault {fault!r} kills nothing")
    executor.drop_connection(target)


@step(name="restart-node")
def restart_node(settings: Settings, target: SshTarget) -> float:
    """Lab: start the VM again; real host: wait for someone to power it on. Returns seconds until SSH."""
    started = time.monotonic()
    if settings.target == "lab":
        lab_steps.start_vm.fn(settings.lab, target.name)
        lab_steps.wait_for_ssh.fn(settings.lab, target.name, target.netns is not None)
    else:
        wait_until(lambda: answers_ssh(target), settings.failover.boot_timeout_s, f"{target.name} to return")
    return time.monotonic() - started
