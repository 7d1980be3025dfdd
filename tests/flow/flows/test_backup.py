"""Backup flows on real borg with local repositories, under the Prefect harness."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from flows.backup import (
    backup,
    extract,
    init,
    list_archives,
    passphrase,
    restore_drill,
    rotate,
)
from tasks.borg import commands as borg
from tasks.borg.remote import client_access
from tasks.borg.rotation import fifo, gfs, hanoi
from tasks.borg.run import run_borg
from tasks.executor import LOCAL
from tasks.manifest import differences, tree_manifest
from tasks.settings import Settings, load_settings

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "borg"], capture_output=True).returncode, reason="no borg"
)
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("BORG_BASE_DIR", str(tmp_path / "borg-base"))
    home = tmp_path / "home"
    (home / "alice" / "docs").mkdir(parents=True)
    (home / "alice" / "docs" / "report.txt").write_text("quarterly numbers\n")
    (home / "alice" / "photo.raw").write_bytes(os.urandom(300_000))
    (home / "alice" / "link").symlink_to("docs/report.txt")
    (home / "alice" / "docs" / "report.txt").chmod(0o640)
    return load_settings(
        backup={
            "repository": str(tmp_path / "repo"),
            "sources": [str(home)],
            "key_export_path": str(tmp_path / "repo.key"),
            "passphrase_block": f"test-borg-{tmp_path.name}".lower().replace("_", "-"),
        }
    )


def test_init_backup_verify_and_dedup(prefect_harness: None, settings: Settings) -> None:
    key = init(settings)
    assert Path(key).read_text().startswith("BORG_KEY ")
    assert oct(Path(key).stat().st_mode)[-3:] == "600"
    first = backup(settings, verify_data=True)
    assert first.files == 2  # regular files; the symlink is archived but not counted
    assert first.checked == ["repository", "newest archive (data verified)"]
    second = backup(settings)
    assert second.deduplicated_bytes < first.deduplicated_bytes / 10  # nothing changed: almost nothing stored
    with pytest.raises(FileExistsError):
        init(settings)  # never over an existing repository


@pytest.mark.parametrize("damage", ["remove", "encrypt"])
def test_restore_drill_recovers_every_entry(prefect_harness: None, settings: Settings, damage: str) -> None:
    init(settings)
    backup(settings)
    report = restore_drill(settings, damage=damage)
    assert report.problems == [] and report.entries == 5 and report.editable


def test_a_corrupted_restore_is_detected(prefect_harness: None, settings: Settings) -> None:
    init(settings)
    backup(settings)
    root = settings.backup.sources[0]
    before = tree_manifest.fn(LOCAL, root)
    access = client_access(settings)
    newest = max(list_archives.fn(access, passphrase(settings)), key=lambda a: a.time)
    extract.fn(access, passphrase(settings), newest.name)
    with (Path(root) / "alice" / "photo.raw").open("r+b") as photo:  # a restore that went wrong
        photo.seek(1000)
        photo.write(b"\0")
    problems = differences(before, tree_manifest.fn(LOCAL, root))
    assert (
        len(problems) == 1
        and problems[0].startswith("differs: alice/photo.raw (")
        and "sha256" in problems[0]
    )


def test_rotation_schemes_delete_what_they_do_not_keep(prefect_harness: None, settings: Settings) -> None:
    init(settings)
    secret, repo = passphrase(settings), settings.backup.repository
    start = datetime(2026, 3, 1, 2, 0)
    for day in range(12):
        argv = borg.create_argv(repo, f"home-{day:02d}", settings.backup.sources)
        run_borg([*argv[:2], "--timestamp", (start + timedelta(days=day)).isoformat(), *argv[2:]], secret)
    archives = list_archives.fn(client_access(settings), secret)
    hanoi_report = rotate(settings, scheme="hanoi", levels=3)
    assert set(hanoi_report.kept) == hanoi(archives, 3) and len(hanoi_report.kept) == 3
    assert "home-11" in hanoi_report.kept and len(hanoi_report.deleted) == 9
    remaining = list_archives.fn(client_access(settings), secret)
    fifo_report = rotate(settings, scheme="fifo", last=2)
    assert set(fifo_report.kept) == fifo(remaining, 2) == set(sorted(hanoi_report.kept)[-2:])
    gfs_report = rotate(settings, scheme="gfs", daily=1, weekly=0, monthly=0)
    assert (
        set(gfs_report.kept) == gfs(list_archives.fn(client_access(settings), secret), 1, 0, 0) == {"home-11"}
    )


def test_wrong_passphrase_and_missing_repository_are_one_line(tmp_path: Path, settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSF_")}
    env |= {
        "HSF_BACKUP__REPOSITORY": str(tmp_path / "missing"),
        "HSF_BACKUP__PASSPHRASE_BLOCK": "test-borg-missing",
    }
    argv = [sys.executable, "-m", "flows.backup", "backup"]
    result = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 4, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"borg create failed: Repository {tmp_path / 'missing'} does not exist."
    assert not (tmp_path / "missing").exists()


def test_an_unreachable_backup_server_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    """The server's SSH port is closed (loopback): init stops before touching the client."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSF_")}
    client_key = tmp_path / "client-key"
    env |= {
        "HSF_TARGET": "inventory",
        "HSF_INVENTORY": '[{"name": "vault", "address": "127.0.0.1", "port": 1}]',
        "HSF_BACKUP__SERVER": "vault",
        "HSF_BACKUP__CLIENT_KEY": str(client_key),
        "HSF_BACKUP__KEY_EXPORT_PATH": str(tmp_path / "repo.key"),
        "HSF_BACKUP__PASSPHRASE_BLOCK": "test-borg-unreachable",
    }
    result = subprocess.run(
        [sys.executable, "-m", "flows.backup", "init"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 5, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("[vault] SSH transport error running `getent passwd borg`"), last
    assert "Unable to connect to port 1 on 127.0.0.1" in last, last
    assert not client_key.exists() and not (tmp_path / "repo.key").exists()
