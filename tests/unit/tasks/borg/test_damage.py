"""tasks/borg/damage.py on a real local repository: the bytes flipped in the segment that holds an archive's
own data make borg's check fail naming the segment, that archive no longer restores while an older one
does, a repair (on a copy) says what it drops, and writing the bytes back makes the repository whole."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tasks.borg import commands as borg
from tasks.borg.damage import (
    complement,
    parse_segments,
    read_bytes_argv,
    segments_argv,
    write_bytes_argv,
)
from tasks.borg.outcome import BorgError
from tasks.borg.run import run_borg
from tests.unit.tasks.borg.conftest import PASS, needs_borg


def test_segments_are_listed_by_number_with_their_size() -> None:
    text = "17 /r/data/0/10\n1048900 /r/data/0/9\n5000 /r/data/1/1000\n"
    assert [(s.number, s.size) for s in parse_segments(text)] == [(9, 1048900), (10, 17), (1000, 5000)]
    assert parse_segments("") == []
    assert complement("00ff0f") == "ff00f0"


@needs_borg
def test_a_flipped_segment_is_caught_named_repaired_on_a_copy_and_undone(
    repo: str, tmp_path: Path, env: dict[str, str]
) -> None:
    source = tmp_path / "home"
    source.mkdir()
    (source / "old.bin").write_bytes(os.urandom(100_000))
    run_borg(borg.create_argv(repo, "old", [str(source)], compression="none"), PASS, env=env)

    def listed() -> dict[str, int]:
        out = subprocess.run(segments_argv(repo), capture_output=True, text=True, check=True).stdout
        return {s.path: s.size for s in parse_segments(out)}

    before = listed()
    (source / "new.bin").write_bytes(os.urandom(1 << 20))  # the new archive's own data
    run_borg(borg.create_argv(repo, "new", [str(source)], compression="none"), PASS, env=env)
    path, size = max(((p, s) for p, s in listed().items() if p not in before), key=lambda ps: ps[1])
    offset = size // 2
    original = subprocess.run(read_bytes_argv(path, offset, 16), capture_output=True, text=True, check=True)
    subprocess.run(write_bytes_argv(path, offset, complement(original.stdout.strip())), check=True)

    with pytest.raises(BorgError) as caught:
        run_borg(borg.check_argv(repo, repository_only=True), PASS, env=env)
    assert f"segment {Path(path).name}" in str(caught.value).splitlines()[0]
    with pytest.raises(BorgError):
        run_borg(borg.extract_argv(repo, "new", dry_run=True), PASS, env=env)
    assert run_borg(borg.extract_argv(repo, "old", dry_run=True), PASS, env=env).status == "ok"

    copy = str(tmp_path / "copy")
    shutil.copytree(repo, copy)
    repair_env = {
        **env,
        "BORG_CHECK_I_KNOW_WHAT_I_AM_DOING": "YES",
        "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
    }
    repaired = run_borg(borg.repair_argv(copy), PASS, env=repair_env)
    said = " ".join(m.message for m in repaired.messages)
    assert "new.bin" in said  # the file whose data was dropped is named

    subprocess.run(write_bytes_argv(path, offset, original.stdout.strip()), check=True)
    assert run_borg(borg.check_argv(repo, verify_data=True), PASS, env=env).status == "ok"
