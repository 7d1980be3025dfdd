"""tasks/borg/run.py on real borg: each failure becomes one clear, typed error (never the passphrase)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tasks.borg import commands as borg
from tasks.borg.outcome import BorgError, RepositoryMissing, ServerUnreachable, WrongPassphrase
from tasks.borg.run import run_borg
from tests.unit.tasks.borg.conftest import PASS, needs_borg


@needs_borg
def test_wrong_passphrase_is_one_clear_error_without_the_passphrase(repo: str, env: dict[str, str]) -> None:
    with pytest.raises(WrongPassphrase) as info:
        run_borg(borg.list_argv(repo), "not the passphrase", env=env)
    assert str(info.value) == (
        "borg list failed: passphrase supplied in BORG_PASSPHRASE, by BORG_PASSCOMMAND or via "
        "BORG_PASSPHRASE_FD is incorrect."
    )
    assert "not the passphrase" not in str(info.value)


@needs_borg
def test_missing_repository_is_one_clear_error(tmp_path: Path, env: dict[str, str]) -> None:
    missing = str(tmp_path / "nowhere")
    with pytest.raises(
        RepositoryMissing, match=f"borg list failed: Repository {re.escape(missing)} does not exist"
    ):
        run_borg(borg.list_argv(missing), PASS, env=env)
    assert not Path(missing).exists()  # nothing half-made


@needs_borg
def test_unreachable_server_is_one_clear_error(env: dict[str, str]) -> None:
    # ssh fails before sending a packet: its ProxyCommand exits at once.
    env = {**env, "BORG_RSH": "ssh -o BatchMode=yes -o ProxyCommand=false"}
    with pytest.raises(ServerUnreachable, match="Connection closed by remote host"):
        run_borg(borg.list_argv("ssh://borg@backup.invalid/srv/borg/repo"), PASS, env=env)


@needs_borg
def test_corrupted_repository_fails_verify_data(tmp_path: Path, repo: str, env: dict[str, str]) -> None:
    source = tmp_path / "home"
    source.mkdir()
    (source / "data.bin").write_bytes(bytes(range(256)) * 512)
    run_borg(borg.create_argv(repo, "home-1", [str(source)], compression="none"), PASS, env=env)
    segment = max((Path(repo) / "data").rglob("[0-9]*"), key=lambda p: p.stat().st_size)
    blob = bytearray(segment.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte inside a data chunk
    segment.write_bytes(bytes(blob))
    with pytest.raises(
        BorgError, match=r"(?s)borg check failed: .*\[segment \d+, offset \d+\].*errors found"
    ):
        run_borg(borg.check_argv(repo, verify_data=True), PASS, env=env)
