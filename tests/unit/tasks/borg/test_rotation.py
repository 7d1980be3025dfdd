"""tasks/borg/rotation.py: GFS and FIFO equal borg prune's own choice on a real repository; Hanoi."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from datetime import date, datetime, timedelta

import pytest

from tasks.borg import commands as borg
from tasks.borg.rotation import Archive, fifo, gfs, hanoi, hanoi_tape
from tasks.borg.run import run_borg

needs_borg = pytest.mark.skipif(shutil.which("borg") is None, reason="borg is installed by make deps")


# Twenty weeks of backups: most nights, some missed, two on some days — 100 archives.
START = datetime(2026, 1, 1, 3, 0)
TABLE = [START + timedelta(days=d) for d in range(140) if d % 7 not in (2, 5) or d % 3 == 0]
TABLE += [START + timedelta(days=d, hours=9) for d in (40, 41, 100, 139)]
ARCHIVES = [Archive(name=f"home-{t:%Y%m%dT%H%M}", time=t) for t in sorted(TABLE)]
KEPT_LINE = re.compile(r"^Keeping archive \(rule: [^)]*\):\s+(\S+)")


@pytest.fixture(scope="module")
def table_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """One real repository holding an (empty) archive for every time in the table."""
    base = tmp_path_factory.mktemp("rotation")
    env = {"BORG_BASE_DIR": str(base / "borg-base")}
    repo, empty = str(base / "repo"), base / "empty"
    empty.mkdir()
    run_borg(borg.init_argv(repo, encryption="none"), "", env=env)
    for archive in ARCHIVES:
        argv = borg.create_argv(repo, archive.name, [str(empty)], compression=None)
        run_borg([*argv[:2], "--timestamp", archive.time.isoformat(), *argv[2:]], "", env=env)
    return repo, env


@needs_borg
@pytest.mark.parametrize(
    ("rule", "borg_flags"),
    [
        ({"daily": 7, "weekly": 4, "monthly": 6}, {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6}),
        ({"daily": 3, "weekly": 0, "monthly": 12}, {"keep_daily": 3, "keep_monthly": 12}),
        (
            {"daily": 30, "weekly": 30, "monthly": 30},
            {"keep_daily": 30, "keep_weekly": 30, "keep_monthly": 30},
        ),
        ({"last": 10}, {"keep_last": 10}),
    ],
)
def test_gfs_and_fifo_match_borg_prune(
    table_repo: tuple[str, dict[str, str]], rule: dict, borg_flags: dict
) -> None:
    """Our pure selection equals borg's own on a real repository holding the table's archives."""
    repo, env = table_repo
    listing = run_borg(borg.prune_argv(repo, dry_run=True, **borg_flags), "", env=env)
    kept_by_borg = {m[1] for msg in listing.messages if (m := KEPT_LINE.match(msg.message))}
    assert kept_by_borg, [m.message for m in listing.messages][:5]
    ours = fifo(ARCHIVES, rule["last"]) if "last" in rule else gfs(ARCHIVES, **rule)
    assert ours == kept_by_borg


def test_fifo_keeps_the_newest() -> None:
    assert fifo(ARCHIVES, 3) == {a.name for a in ARCHIVES[-3:]}


@pytest.mark.parametrize(
    ("numbers", "levels", "tapes"),
    [((1, 2, 3, 4, 5, 6, 7, 8), 4, (0, 1, 0, 2, 0, 1, 0, 3)), ((8, 16, 24, 32), 3, (2, 2, 2, 2))],
)
def test_hanoi_tapes(numbers: tuple[int, ...], levels: int, tapes: tuple[int, ...]) -> None:
    assert tuple(hanoi_tape(n, levels) for n in numbers) == tapes


NIGHTLY = [Archive(name=f"n{d:03d}", time=datetime(2026, 1, 1, 3) + timedelta(days=d)) for d in range(365)]


def test_hanoi_keeps_one_archive_per_tape_spaced_exponentially() -> None:
    kept = sorted((a for a in NIGHTLY if a.name in hanoi(NIGHTLY, 5)), key=lambda a: a.time)
    assert len(kept) == 5
    assert kept[-1] == NIGHTLY[-1]  # the newest backup is always the newest on its tape
    ages = [(NIGHTLY[-1].time - a.time).days for a in kept]
    tapes = [hanoi_tape((a.time.date() - date(1970, 1, 1)).days + 1, 5) for a in kept]
    assert sorted(tapes) == [0, 1, 2, 3, 4]
    for age, tape in zip(ages, tapes, strict=True):  # tape t is rewritten every 2**(t+1) days
        assert age < 2 ** (tape + 1) or tape == 4


@pytest.mark.parametrize(
    "select",
    [
        lambda archives: hanoi(archives, 5),
        lambda archives: fifo(archives, 7),
        lambda archives: gfs(archives, 7, 4, 6),
    ],
    ids=["hanoi", "fifo", "gfs"],
)
def test_daily_rotation_keeps_what_one_selection_keeps(select: Callable[[list[Archive]], set[str]]) -> None:
    """Rotating every night (deleting as we go) ends where selecting once from the full history does."""
    repository: list[Archive] = []
    for archive in NIGHTLY:
        repository.append(archive)
        kept = select(repository)
        repository = [a for a in repository if a.name in kept]
    assert {a.name for a in repository} == select(NIGHTLY)
