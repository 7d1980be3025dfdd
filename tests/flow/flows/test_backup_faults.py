"""flows/backup_faults.py on a real local repository under the Prefect harness: the wrong passphrase is
refused in one line and writes nothing, and a Secret block the fault did not make is never replaced or
deleted (the faults that strike the backup server run in the lab tier)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from flows.backup import init, list_archives, passphrase
from flows.backup_faults import backup_fault
from tasks.borg.remote import client_access
from tasks.cluster import borg_passphrase_block_name, store_secret, stored_secret
from tasks.drbd.plan import Refused
from tasks.settings import Settings
from tests.flow.conftest import local_repository_settings

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "borg"], capture_output=True).returncode, reason="no borg"
)


@pytest.fixture
def settings(prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("BORG_BASE_DIR", str(tmp_path / "borg-base"))
    home = tmp_path / "home"
    (home / "alice").mkdir(parents=True)
    (home / "alice" / "photo.raw").write_bytes(os.urandom(100_000))
    block = f"test-borg-{tmp_path.name}".lower().replace("_", "-")
    settings = local_repository_settings(tmp_path, home, block)
    init(settings)
    return settings


def test_a_wrong_passphrase_is_refused_in_one_line_and_writes_nothing(settings: Settings) -> None:
    report = backup_fault(settings, fault="wrong-passphrase")
    assert report.error.startswith("borg create failed: passphrase supplied in BORG_PASSPHRASE")
    assert report.archives_after == report.archives_before == []
    assert report.sources_changed == [] and report.problems() == []
    assert stored_secret(f"{borg_passphrase_block_name(settings)}-fault-wrong") is None  # its own, removed


def test_a_secret_block_the_fault_did_not_make_is_left_alone(settings: Settings) -> None:
    block = f"{borg_passphrase_block_name(settings)}-fault-wrong"
    store_secret(block, "someone else's")
    with pytest.raises(Refused, match=rf"^the Secret block {block} exists already; "):
        backup_fault(settings, fault="wrong-passphrase")
    assert stored_secret(block) == "someone else's"
    assert list_archives.fn(client_access(settings), passphrase(settings)) == []
