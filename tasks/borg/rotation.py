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

import re
from collections.abc import Callable, Hashable, Sequence
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

HANOI_EPOCH = date(1970, 1, 1)
CHECKPOINT_SUFFIX = ".checkpoint"
Scheme = Literal["gfs", "fifo", "hanoi"]


class Archive(BaseModel):
    name: str
    time: datetime


class Rotation(BaseModel):
    """What a rotation keeps: the settings ``rotate`` and ``preview`` share (``[backup.rotation]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: Scheme = Field("gfs", description="gfs (daily/weekly/monthly), fifo (last N) or hanoi.")
    daily: int = Field(7, ge=0, le=3650, description="GFS: newest archive of each of the last N days.")
    weekly: int = Field(4, ge=0, le=520, description="GFS: newest archive of each of the last N weeks.")
    monthly: int = Field(6, ge=0, le=1200, description="GFS: newest archive of each of the last N months.")
    last: int = Field(10, ge=1, le=10000, description="FIFO: the newest N archives.")
    levels: int = Field(8, ge=1, le=30, description="Tower of Hanoi: tapes (kept archives).")

    def keep(self, archives: Sequence[Archive], scheme: Scheme | None = None) -> set[str]:
        """Names of the archives the scheme (default: the configured one) keeps."""
        match scheme or self.scheme:
            case "gfs":
                return gfs(archives, self.daily, self.weekly, self.monthly)
            case "fifo":
                return fifo(archives, self.last)
            case "hanoi":
                return hanoi(archives, self.levels)
        raise ValueError(f"unknown rotation scheme {scheme!r}")


def archive_name(prefix: str, when: datetime) -> str:
    """A name no other run of this project gives (microseconds), readable and sortable."""
    return f"{prefix}-{when:%Y-%m-%dT%H:%M:%S.%f}"


def is_ours(prefix: str, name: str) -> bool:
    """An archive this project made with ``prefix`` (also the older whole-second names) — never a
    hand-made one that shares the prefix, and never a checkpoint."""
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?"
    return re.fullmatch(rf"{re.escape(prefix)}-{stamp}", name) is not None


def is_checkpoint(name: str) -> bool:
    """What borg leaves behind when ``create`` was interrupted after a checkpoint."""
    return name.endswith(CHECKPOINT_SUFFIX)


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
