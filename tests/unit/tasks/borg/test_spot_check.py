"""tasks/borg/spot_check.py: the sample, the comparison and the count, as tables."""

from __future__ import annotations

from datetime import datetime

import pytest

from tasks.borg.spot_check import (
    ArchivedFile,
    SourceFile,
    archived_path,
    compare,
    count_problem,
    parse_archive_mtime,
    sample,
)

SAMPLES = [(0, 0.1, 0), (1, 0.1, 1), (9, 0.1, 1), (42, 0.1, 5), (42, 1.0, 42), (3, 0.5, 2)]


@pytest.mark.parametrize(("files", "share", "count"), SAMPLES)
def test_the_sample_is_the_share_rounded_up_and_at_least_one(files: int, share: float, count: int) -> None:
    paths = [f"home/f{i}" for i in range(files)]
    picked = sample(paths, share)
    assert len(picked) == count and picked == sorted(set(picked)) and set(picked) <= set(paths)


def test_the_sample_is_drawn_at_random() -> None:
    paths = [f"home/f{i:03}" for i in range(200)]
    assert sample(paths, 0.1, seed=1) == sample(paths, 0.1, seed=1) != sample(paths, 0.1, seed=2)


ARCHIVE_EPOCH = 2_000
HOLDS = "the archive holds"
DIFFERS = "differs from the archive with the same modification time: "
THEN = {
    "home/same": ArchivedFile(sha256="aa", mtime=1_000),
    "home/rotted": ArchivedFile(sha256="bb", mtime=1_000),
    "home/edited": ArchivedFile(sha256="cc", mtime=1_000),
}


@pytest.mark.parametrize(
    ("path", "now", "changed", "problem"),
    [
        ("home/same", SourceFile(mtime=1_000, sha256="aa"), False, None),
        ("home/rotted", SourceFile(mtime=1_000, sha256="b0"), False, f"{DIFFERS}/home/rotted"),
        ("home/edited", SourceFile(mtime=2_500, sha256="c0"), True, None),
        ("home/new", SourceFile(mtime=2_000, sha256="dd"), True, None),
        ("home/lost", SourceFile(mtime=1_500, sha256="ee"), False, "missing from the archive: /home/lost"),
    ],
)  # fmt: skip
def test_a_file_is_judged_by_its_time_then_its_content(
    path: str, now: SourceFile, changed: bool, problem: str | None
) -> None:
    assert compare([path], {path: now}, THEN, ARCHIVE_EPOCH) == (
        [path] if changed else [],
        [problem] if problem else [],
    )


@pytest.mark.parametrize(
    ("sources", "archived", "tolerance", "problem"),
    [
        (100, 100, 0, None),
        (100, 95, 5, None),
        (
            100,
            94,
            5,
            "the archive holds 94 files and the sources 100 now (6.0 % apart, the tolerance is 5 %)",
        ),
        (0, 3, 50, "the archive holds 3 files and the sources 0 now (300.0 % apart, the tolerance is 50 %)"),
    ],
)
def test_the_counts_may_differ_by_the_tolerance(
    sources: int, archived: int, tolerance: float, problem: str | None
) -> None:
    assert count_problem(sources, archived, tolerance) == problem


def test_borgs_local_times_and_paths_relative_to_root() -> None:
    """borg writes times in local time with microseconds; a file's time is compared in whole seconds."""
    assert parse_archive_mtime("2026-12-06T19:16:28.702312") == int(
        datetime(2026, 12, 6, 19, 16, 28).timestamp()
    )
    assert archived_path("/home/", "alice/notes.txt") == "home/alice/notes.txt"
    assert archived_path("/srv/data", "x") == "srv/data/x"
