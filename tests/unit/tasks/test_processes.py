"""tasks/processes.py: a flow process's command line and environment, and killing it at the moment seen
(real child processes: SIGKILL, output kept, a process that ends first or a moment that never comes)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.cli import CheckFailed
from tasks.processes import FlowProcess, child_environment, flow_process_argv, kill_when


def test_the_flow_runs_as_its_own_cli_under_this_interpreter() -> None:
    assert flow_process_argv("flows.setup") == [sys.executable, "-m", "flows.setup"]
    assert flow_process_argv("flows.backup", "backup") == [sys.executable, "-m", "flows.backup", "backup"]


def test_the_child_gets_the_settings_file_the_server_and_the_lease_but_no_hsf_variable() -> None:
    environ = {"PATH": "/usr/bin", "HSF_DRY_RUN": "true", "hsf_lab__name": "x", "PREFECT_API_URL": "old"}
    env = child_environment(
        environ,
        Path("/r/settings.json"),
        "http://127.0.0.1:8805/api/",
        {"HA_STORAGE_FLOWS_LEASE_PARENT": "7"},
    )
    assert env == {
        "PATH": "/usr/bin",
        "HSF_CONFIG": "/r/settings.json",
        "PREFECT_API_URL": "http://127.0.0.1:8805/api/",
        "PYTHONUNBUFFERED": "1",
        "HA_STORAGE_FLOWS_LEASE_PARENT": "7",
    }


def _child(tmp_path: Path, code: str) -> FlowProcess:
    log = tmp_path / "child.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return FlowProcess(process=process, log=log, started_at=time.monotonic())


def test_the_process_is_killed_at_the_moment_seen_and_its_output_kept(tmp_path: Path) -> None:
    victim = _child(tmp_path, "import time; print('syncing', flush=True); time.sleep(120)")
    calls: list[float] = []

    def seen() -> str | None:
        calls.append(time.monotonic())
        return "the output says so" if "syncing" in victim.output_tail() else None

    killed_at, what = kill_when(victim, seen, timeout_s=60, interval_s=0.05)
    assert what == "the output says so"
    assert victim.process.returncode == -9  # SIGKILL: no handler, no finally
    assert calls[-1] <= killed_at < calls[-1] + 5
    assert victim.output_tail() == "syncing"


def test_a_process_that_ends_before_the_moment_is_one_clear_error_with_its_output(tmp_path: Path) -> None:
    victim = _child(tmp_path, "print('nothing to do: already set up')")
    with pytest.raises(CheckFailed) as ended:
        kill_when(victim, lambda: None, timeout_s=60, interval_s=0.05)
    assert str(ended.value) == (
        f"the flow process ended (exit 0) before the moment to kill it; its output: {victim.log} (last line: "
        "nothing to do: already set up)"
    )
    assert victim.output_tail() == "nothing to do: already set up"


def test_a_moment_that_never_comes_kills_the_process_too(tmp_path: Path) -> None:
    victim = _child(tmp_path, "import time; time.sleep(120)")
    with pytest.raises(
        TimeoutError, match=rf"did not come within 0.3 s; its output: {victim.log} \(empty\)$"
    ):
        kill_when(victim, lambda: None, timeout_s=0.3, interval_s=0.05)
    assert victim.process.returncode == -9
