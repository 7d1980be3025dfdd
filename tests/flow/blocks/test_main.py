"""blocks/__main__.py: ``python -m blocks register`` names what it saved."""

from __future__ import annotations

from pathlib import Path

import pytest

from blocks.__main__ import main
from tasks.settings import Settings, load_settings


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    for name in list(__import__("os").environ):
        if name.startswith("HSF_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray hsf.toml
    name = f"b{tmp_path.name[-6:]}".lower().replace("_", "")  # a lab name of its own for each test
    return load_settings(
        lab={"name": name[:8], "memory_mib": 768},
        drbd={"fstype": "xfs"},
        backup={"repository": str(tmp_path / "repo"), "sources": ["/srv/a", "/srv/b"]},
    )


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
