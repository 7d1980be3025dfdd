"""Real local borg repositories for the borg tests: keys, cache and security dirs in the test's tmp dir."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tasks.borg import commands as borg
from tasks.borg.run import run_borg

needs_borg = pytest.mark.skipif(shutil.which("borg") is None, reason="borg is installed by make deps")
PASS = "correct horse battery staple"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Borg's keys, cache and security dirs inside the test's tmp dir, not root's home."""
    return {"BORG_BASE_DIR": str(tmp_path / "borg-base")}


@pytest.fixture
def repo(tmp_path: Path, env: dict[str, str]) -> str:
    path = str(tmp_path / "repo")
    run_borg(borg.init_argv(path), PASS, env=env)
    return path
