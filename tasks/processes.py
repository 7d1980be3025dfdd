"""A flow run in a process of its own, started and killed on purpose: the orchestration faults' victim.

The orchestration faults prove what happens when the process running a flow dies mid-way (an OOM kill,
a reboot of the machine running it, a worker lost): the flow is started as ``python -m flows.<name>``
with exactly the settings of the run that starts it (a JSON settings file), on the same Prefect server
(its blocks hold the cluster's secrets) and under that run's hold of the cluster; it is killed with
SIGKILL, so nothing of it runs a ``finally``. Its output goes to a log file that the report points to.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tasks.cli import CheckFailed
from tasks.context import lease_for_child
from tasks.settings import CONFIG_VARIABLE, ENV_PREFIX, Settings, write_settings_file

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXIT_WAIT_S = 30.0  # a SIGKILLed process is gone at once; this bounds a zombie's reaping


def flow_process_argv(module: str, *args: str) -> list[str]:
    """The flow's own CLI, run by this interpreter: what an operator (or a worker) would start."""
    return [sys.executable, "-m", module, *args]


def child_environment(
    environ: Mapping[str, str], settings_file: Path, api_url: str, lease: Mapping[str, str]
) -> dict[str, str]:
    """This process's environment without its ``HSF_`` settings (the file carries the run's settings),
    pointed at the settings file and at this run's Prefect server, with the lease of the cluster lent."""
    env = {k: v for k, v in environ.items() if not k.upper().startswith(ENV_PREFIX)}
    return env | {
        CONFIG_VARIABLE: str(settings_file),
        "PREFECT_API_URL": api_url,
        "PYTHONUNBUFFERED": "1",  # a SIGKILL loses what sits in a buffer: its output must be in the log
        **lease,
    }


@dataclass
class FlowProcess:
    """A started flow process and where its output goes."""

    process: subprocess.Popen[bytes]
    log: Path
    started_at: float

    def running(self) -> bool:
        return self.process.poll() is None

    def last_words(self) -> str:
        """Where its output is, and its last line: what a one-line error says of it."""
        last = self.output_tail(1).strip()
        return f"its output: {self.log}" + (f" (last line: {last})" if last else " (empty)")

    def output_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> float:
        """SIGKILL the flow's process, then anything it started (its process group); returns the time of
        the kill (``time.monotonic()``). Its flow run stays Running: :func:`tasks.context.take_back_lease`
        marks it Crashed."""
        killed_at = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=EXIT_WAIT_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return killed_at


def start_flow_process(settings: Settings, module: str, args: tuple[str, ...], workdir: Path) -> FlowProcess:
    """Start ``python -m <module> <args>`` with ``settings``, on this run's Prefect server and under its
    hold of the cluster; its output goes to ``workdir/<module>.log``."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        api_url = str(client.api_url)
    settings_file = write_settings_file(settings, workdir / "settings.json")
    log = workdir / f"{module.rsplit('.', 1)[-1]}.log"
    env = child_environment(os.environ, settings_file, api_url, lease_for_child(settings))
    with log.open("wb") as out:
        process = subprocess.Popen(
            flow_process_argv(module, *args),
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: what it starts dies with it
        )
    return FlowProcess(process=process, log=log, started_at=time.monotonic())


def kill_when(
    victim: FlowProcess, seen: Callable[[], str | None], timeout_s: float, interval_s: float = 0.2
) -> tuple[float, str]:
    """Wait until ``seen()`` returns what it saw (the moment to strike), then SIGKILL the flow; returns the
    time of the kill and what was seen. Raises CheckFailed when it ends first, TimeoutError when the moment
    does not come within ``timeout_s`` (the process is killed then too): one line, naming its output."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not victim.running():
            raise CheckFailed(
                f"the flow process ended (exit {victim.process.returncode}) before the moment to kill it; "
                f"{victim.last_words()}"
            )
        what = seen()
        if what is not None:
            return victim.kill(), what
        if time.monotonic() >= deadline:
            victim.kill()
            raise TimeoutError(
                f"the moment to kill the flow process did not come within {timeout_s:g} s; "
                f"{victim.last_words()}"
            )
        time.sleep(interval_s)
