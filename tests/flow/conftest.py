"""Flow-tier fixtures: flows run under the Prefect harness against nodes replayed from captured output."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tasks import context
from tasks.executor import Executor
from tasks.settings import Settings, load_settings
from tests.replay import Ran, ReplayExecutor, inventory_env, load_state


@dataclass
class Replay:
    """The executors the flow runs of one test got (one per top-level run), and their logs."""

    state: str
    executors: list[ReplayExecutor] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    @property
    def changed(self) -> list[Ran]:
        return [ran for executor in self.executors for ran in executor.changed]

    @property
    def probed(self) -> list[Ran]:
        return [ran for executor in self.executors for ran in executor.ran if ran.read_only]


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def replay(
    prefect_harness: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[..., Replay]]:
    """``replay(state, dry_run=False, before_command=None)``: settings for the captured nodes (as an
    inventory, from the environment as a deployment run reads them) and executors replaying ``state``."""
    from prefect.blocks.system import Secret

    for name in list(os.environ):
        if name.startswith("HSF_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray hsf.toml
    prefect_logger = logging.getLogger("prefect")
    handlers: list[logging.Handler] = []
    level = prefect_logger.level

    def use(
        state: str, dry_run: bool = False, before_command: Callable[[ReplayExecutor, Ran], None] | None = None
    ) -> Replay:
        captured = load_state(state)
        for name, value in inventory_env(captured).items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("HSF_DRY_RUN", "true" if dry_run else "false")
        Secret(value=captured["drbd_secret"]).save("inventory-drbd-r0", overwrite=True)
        result = Replay(state)

        def new_executor(dry: bool) -> Executor:
            executor = ReplayExecutor(dry_run=dry, state=state, before_command=before_command)
            result.executors.append(executor)
            return executor

        monkeypatch.setattr(context, "new_executor", new_executor)
        handler = _Collect(result.logs)
        prefect_logger.addHandler(handler)
        handlers.append(handler)
        prefect_logger.setLevel(logging.INFO)
        return result

    yield use
    for handler in handlers:
        prefect_logger.removeHandler(handler)
    prefect_logger.setLevel(level)


def local_repository_settings(tmp_path: Path, home: Path, passphrase_block: str) -> Settings:
    """Settings for a Borg repository on this machine backing up ``home``, everything under ``tmp_path``
    (the caller sets ``BORG_BASE_DIR`` there too)."""
    return load_settings(
        cluster={"lock_dir": str(tmp_path / "locks")},
        backup={
            "repository": str(tmp_path / "repo"),
            "sources": [str(home)],
            "key_export_path": str(tmp_path / "repo.key"),
            "scratch_dir": str(tmp_path / "scratch"),
            "passphrase_block": passphrase_block,
        },
    )
