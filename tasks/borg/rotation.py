"""Rotation schemes as pure functions: which archives each keeps, given names and times.

- **GFS** (grandfather-father-son): the newest archive of each of the last N days, weeks (ISO) and
  months that have archives — the same rule as ``borg prune --keep-daily/weekly/monthly``.
- **FIFO**: the newest N archives (``--keep-last N``).
- **Tower of Hanoi**, which borg lacks: the backup of day k (days since a fixed epoch, so the number
  survives deletions) goes to "tape" ``min(trailing_zeros(k), levels - 1)``; the newest archive on
  each tape is kept. Tape 0 is reused every 2nd day, tape 1 every 4th, tape 2 every 8th…, so kept
  archives are spaced exponentially into the past with only ``levels`` of them. The project deletes
  the rest by name.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import date, datetime

from pydantic import BaseModel

HANOI_EPOCH = date(1970, 1, 1)


class Archive(BaseModel):
    name: str
    time: datetime


def _prune_split(
    archives: Sequence[Archive], count: int, period: Callable[[datetime], Hashable], kept: set[str]
) -> set[str]:
    """borg prune's rule for one period: newest first, the first archive of each period not already
    kept by an earlier rule counts, up to ``count``; if the archives run out first, the oldest is kept."""
    chosen: set[str] = set()
    if count == 0:
        return chosen
    last: Hashable = None
    oldest: Archive | None = None
    for archive in sorted(archives, key=lambda a: a.time, reverse=True):
        oldest = archive
        key = period(archive.time)
        if key != last:
            last = key
            if archive.name not in kept:
                chosen.add(archive.name)
                kept.add(archive.name)
                if len(chosen) == count:
                    return chosen
    if oldest is not None and oldest.name not in kept:
        chosen.add(oldest.name)
        kept.add(oldest.name)
    return chosen


def gfs(archives: Sequence[Archive], daily: int, weekly: int, monthly: int) -> set[str]:
    kept: set[str] = set()
    _prune_split(archives, daily, lambda t: t.strftime("%Y-%m-%d"), kept)
    _prune_split(archives, weekly, lambda t: t.strftime("%G-%V"), kept)
    _prune_split(archives, monthly, lambda t: t.strftime("%Y-%m"), kept)
    return kept


def fifo(archives: Sequence[Archive], last: int) -> set[str]:
    return {a.name for a in sorted(archives, key=lambda a: a.time, reverse=True)[:last]}


def hanoi_tape(number: int, levels: int) -> int:
    """The tape backup ``number`` (1-based, in time order) is written to."""
    if number < 1 or levels < 1:
        raise ValueError("backup numbers and levels start at 1")
    trailing_zeros = (number & -number).bit_length() - 1
    return min(trailing_zeros, levels - 1)


def hanoi(archives: Sequence[Archive], levels: int, epoch: date = HANOI_EPOCH) -> set[str]:
    """Newest archive per tape; the backup number is the day number, so it is the same before and
    after earlier rotations deleted archives (a position in the current list would not be)."""
    newest_on_tape: dict[int, str] = {}
    for archive in sorted(archives, key=lambda a: a.time):
        number = (archive.time.date() - epoch).days + 1
        newest_on_tape[hanoi_tape(number, levels)] = archive.name
    return set(newest_on_tape.values())
