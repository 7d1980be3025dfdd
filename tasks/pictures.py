"""Pictures of the drills (matplotlib, no display): a reader sees the outage and that nothing
acknowledged vanished without the README."""

from __future__ import annotations

import io
import re
from pathlib import Path

from matplotlib.figure import Figure  # a Figure of its own: no pyplot state, no display needed

from tasks.writes import AckedWrites


def ack_timeline_png(writes: AckedWrites, title: str, fault: str) -> bytes:
    """Acknowledged records over time, one line per writer, the fault at 0, the write outage shaded and
    every acknowledged record that was lost marked by a red cross where it had been acknowledged."""
    figure = Figure(figsize=(9, 4.5), dpi=100)
    axes = figure.subplots()
    for writer, times in sorted(writes.timeline.items()):
        axes.step(times, range(1, len(times) + 1), where="post", label=f"writer {writer}")
    lost = [
        (times[seq - 1], seq)
        for check in writes.checks
        for times in [writes.timeline.get(check.writer, [])]
        for seq in check.lost
        if 0 < seq <= len(times)
    ]
    if lost:
        axes.scatter(
            [t for t, _ in lost],
            [s for _, s in lost],
            marker="x",
            color="red",
            zorder=3,
            label=f"acknowledged, then LOST ({len(lost)})",
        )
    axes.axvline(0, color="black", linestyle="--", label=f"fault: {fault}")
    if writes.outage is not None:
        end = writes.outage.to_s if writes.outage.to_s is not None else axes.get_xlim()[1]
        axes.axvspan(
            writes.outage.from_s,
            end,
            color="orange",
            alpha=0.25,
            label=f"no write acknowledged ({writes.outage.gap_s:.1f} s)",
        )
    axes.set_title(title)
    axes.set_xlabel("seconds from the fault (control host's clock)")
    axes.set_ylabel("records acknowledged (after fsync)")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def save_picture(png: bytes, reports_dir: Path, name: str) -> Path:
    """``<reports_dir>/<name>.png`` (a name made of anything but letters, digits, ``.-_`` is cleaned)."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', name)}.png"
    path.write_bytes(png)
    return path
