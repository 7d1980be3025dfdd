"""Preview of the rotation schemes over a simulated year of nightly backups, as text and as a PNG.

The picture has one square panel per scheme (left to right: GFS, FIFO, Tower of Hanoi). In a
panel, row y is the day the rotation ran and column x an archive's day: a dark pixel means that on
day y the archive of day x was still kept. GFS shows its daily/weekly/monthly ladder, FIFO a band of
constant width, Tower of Hanoi its exponentially spaced survivors.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from tasks.borg.rotation import Archive, Rotation

Selector = Callable[[list[Archive]], set[str]]
GAP = 12  # white columns between panels


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


def png(width: int, height: int, rows: list[bytes]) -> bytes:
    """An 8-bit greyscale PNG from raw rows (one byte per pixel)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def render(histories: list[list[set[int]]], days: int) -> bytes:
    width = len(histories) * days + (len(histories) - 1) * GAP
    rows = []
    for day in range(days):
        row = bytearray(b"\xff" * width)
        for panel, history in enumerate(histories):
            offset = panel * (days + GAP)
            for kept_day in history[day]:
                row[offset + kept_day] = 0x20
            if day % 30 == 0:  # faint monthly grid line
                for x in range(offset, offset + days):
                    row[x] = min(row[x], 0xE0)
        rows.append(bytes(row))
    return png(width, days, rows)


def preview(path: Path, rotation: Rotation | None = None, days: int = 365) -> str:
    """Write the PNG to ``path`` and return the text summary (what each scheme keeps on the last day)."""
    start = datetime(2026, 1, 1, 3, 0)
    lines = [f"after {days} nightly backups starting {start:%Y-%m-%d}, each scheme keeps:"]
    histories = []
    for label, select in schemes(rotation or Rotation()).items():
        history = simulate(select, days, start)
        histories.append(history)
        ages = sorted(days - 1 - d for d in history[-1])
        lines.append(f"  {label}: {len(ages)} archives, ages in days {ages}")
    path.write_bytes(render(histories, days))
    lines.append(f"picture (panels left to right: gfs, fifo, hanoi; row = day, dark = kept): {path}")
    return "\n".join(lines)
