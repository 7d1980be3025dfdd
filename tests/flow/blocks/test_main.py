"""blocks/__main__.py: ``python -m blocks register`` names what it saved."""

from __future__ import annotations

import pytest

from blocks.__main__ import main
from tasks.settings import Settings


def test_register_command_names_what_it_saved(
    prefect_harness: None,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HSF_LAB__NAME", settings.lab.name)
    assert main(["register"]) == 0
    out = capsys.readouterr().out
    assert f"saved hsf-lab/{settings.lab.name}" in out
    assert f"secret/{settings.lab.name}-drbd-r0" in out
    assert "no hsf-backup-repository block: no passphrase is stored yet" in out
