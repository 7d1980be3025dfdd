"""Preview of the rotation schemes over a simulated year of nightly backups, as text and as a picture
(``tasks.pictures.rotation_png``: one panel per scheme, left to right GFS, FIFO, Tower of Hanoi; row y
the day the rotation ran, column x an archive's day, dark where that archive was still kept).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from tasks.borg.rotation import Archive, Rotation
from tasks.pictures import rotation_png

Selector = Callable[[list[Archive]], set[str]]


def schemes(rotation: Rotation) -> dict[str, Selector]:
    """Each scheme with the counts ``rotate`` uses (the same settings)."""
    r = rotation
    return {
        f"gfs (daily {r.daily}, weekly {r.weekly}, monthly {r.monthly})": lambda a: r.keep(a, "gfs"),
        f"fifo (last {r.last})": lambda a: r.keep(a, "fifo"),
        f"hanoi ({r.levels} levels)": lambda a: r.keep(a, "hanoi"),
    }


def simulate(select: Selector, days: int, start: datetime) -> list[set[int]]:
    """Day by day: back up, rotate (deleting what is not kept); the kept archive days after each day."""
    repository: list[Archive] = []
    history = []
    for day in range(days):
        repository.append(Archive(name=str(day), time=start + timedelta(days=day)))
        kept = select(repository)
        repository = [a for a in repository if a.name in kept]
        history.append({int(a.name) for a in repository})
    return history


def preview(path: Path, rotation: Rotation | None = None, days: int = 365) -> str:
    """Write the PNG to ``path`` and return the text summary (what each scheme keeps on the last day)."""
    start = datetime(2026, 1, 1, 3, 0)
    lines = [f"after {days} nightly backups starting {start:%Y-%m-%d}, each scheme keeps:"]
    histories = {}
    for label, select in schemes(rotation or Rotation()).items():
        history = simulate(select, days, start)
        histories[label] = history
        ages = sorted(days - 1 - d for d in history[-1])
        lines.append(f"  {label}: {len(ages)} archives, ages in days {ages}")
    path.write_bytes(rotation_png(histories, days))
    lines.append(f"picture (panels left to right: gfs, fifo, hanoi; row = day, dark = kept): {path}")
    return "\n".join(lines)
