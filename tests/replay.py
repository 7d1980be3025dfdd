"""An executor that answers from output captured on real lab nodes (``tests/fixtures/nodes/*.json``).

Flows run against it exactly as against hosts: the real executor does the masking, the dry-run
decision and the recording; only the transport is replaced. A probe (read-only command) gets what the
real node printed in that state, and an unknown probe is an error (the fixture is stale: capture again
with ``tests/fixtures/capture_nodes.py``). A state-changing command succeeds with no output and is
kept in :attr:`ReplayExecutor.changed`, so a test can say exactly what a flow changed.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.executor import CommandResult, Executor, SshTarget, Target

FIXTURES = Path(__file__).parent / "fixtures" / "nodes"


def load_state(state: str) -> dict[str, Any]:
    """One captured cluster state: its DRBD secret, and every probe's output per node."""
    return json.loads((FIXTURES / f"{state}.json").read_text())


@dataclass
class Ran:
    target: str
    command: str
    read_only: bool
    at: float = field(default_factory=time.monotonic)


@dataclass
class ReplayExecutor(Executor):
    """Replays ``state``'s captured output; ``before_command`` may block to hold a flow mid-run."""

    state: str = "fresh"
    before_command: Callable[[ReplayExecutor, Ran], None] | None = None
    ran: list[Ran] = field(default_factory=list)
    _answers: dict[tuple[str, str], tuple[int, str, str]] = field(default_factory=dict, repr=False)
    _replay_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _read_only: threading.local = field(default_factory=threading.local, repr=False)

    def __post_init__(self) -> None:
        for entry in load_state(self.state)["commands"]:
            key = (entry["target"], shlex.join(entry["argv"]))
            self._answers[key] = (entry["exit_code"], entry["stdout"], entry["stderr"])

    @property
    def changed(self) -> list[Ran]:
        """Commands that would have changed a node (they reached the transport, not read-only)."""
        return [r for r in self.ran if not r.read_only]

    def run(self, argv: Sequence[str], target: Target | None = None, **kwargs: Any) -> CommandResult:
        self._read_only.value = bool(kwargs.get("read_only"))
        if target is None:
            return super().run(argv, **kwargs)
        return super().run(argv, target, **kwargs)

    def _run_ssh(
        self,
        argv: list[str],
        target: SshTarget,
        timeout: float,
        stdin: str | None,
        shown: str,
        on_line: Callable[[str], None] | None,
    ) -> tuple[int, str, str]:
        command = shlex.join(argv)
        ran = Ran(target=target.name, command=command, read_only=self._read_only.value)
        if self.before_command is not None:
            self.before_command(self, ran)
        with self._replay_lock:
            self.ran.append(ran)
        if not ran.read_only:
            return 0, "", ""
        try:
            return self._answers[(target.name, command)]
        except KeyError:
            raise AssertionError(
                f"{target.name}: probe `{command}` was not captured in state {self.state!r}"
            ) from None


def inventory_env(state: Mapping[str, Any]) -> dict[str, str]:
    """Settings for the captured nodes as an inventory (the lab's addresses, so configs hash alike)."""
    hosts = [{"name": "nodea", "address": "10.77.0.11"}, {"name": "nodeb", "address": "10.77.0.12"}]
    return {
        "HSF_TARGET": "inventory",
        "HSF_INVENTORY": json.dumps(hosts),
        "HSF_DRBD__MOUNTPOINT": state.get("mountpoint", "/mnt/r0"),
    }
