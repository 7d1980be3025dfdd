"""tasks/cli.py on a real flow CLI: a refused drill is one line and exit 3 with no Python traceback on
the console; ``--debug`` brings the tracebacks back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
REFUSAL = "refused: failover.fault is 'none': the drill kills a node, so it must be enabled explicitly"


@pytest.fixture
def api_url(prefect_harness: None) -> str:
    """The harness's server: the CLI talks to it instead of starting a temporary server (seconds)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url
    return str(url)


def failover(*args: str, api_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSF_")}
    env |= {"HSF_FAILOVER__FAULT": "none", "PREFECT_API_URL": api_url, "PREFECT_LOGGING_LEVEL": "INFO"}
    return subprocess.run(
        [sys.executable, "-m", "flows.failover", *args],
        cwd=tmp_path,  # no stray hsf.toml
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_refused_drill_is_one_line_without_traceback_and_debug_shows_it(
    api_url: str, tmp_path: Path
) -> None:
    plain = failover(api_url=api_url, tmp_path=tmp_path)
    assert plain.returncode == 3, plain.stderr[-3000:]
    output = plain.stdout + plain.stderr
    assert "Traceback" not in output, output
    assert REFUSAL in plain.stderr.splitlines()
    # Prefect's own lines stay, one line each.
    assert "Encountered exception during execution: Refused(" in plain.stderr
    assert "Finished in state Failed(" in plain.stderr

    debug = failover("--debug", api_url=api_url, tmp_path=tmp_path)
    assert debug.returncode == 3, debug.stderr[-3000:]
    assert debug.stderr.count("Traceback (most recent call last)") == 2  # Prefect's log and ours
    assert REFUSAL in debug.stderr.splitlines()
