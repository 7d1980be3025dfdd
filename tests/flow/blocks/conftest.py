"""Settings of a lab of its own for each block test, free of HSF_ variables and stray hsf.toml."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.settings import Settings, load_settings


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    for name in list(os.environ):
        if name.startswith("HSF_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray hsf.toml
    name = f"b{tmp_path.name[-6:]}".lower().replace("_", "")  # a lab name of its own for each test
    return load_settings(
        lab={"name": name[:8], "memory_mib": 768},
        drbd={"fstype": "xfs"},
        backup={"repository": str(tmp_path / "repo"), "sources": ["/srv/a", "/srv/b"]},
    )
