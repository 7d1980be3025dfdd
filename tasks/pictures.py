"""Pictures of the drills (matplotlib, no display): a reader sees the outage and that nothing
acknowledged vanished without the README."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure  # a Figure of its own: no pyplot state, no display needed
from matplotlib.patches import Patch

from tasks.faults import FaultOutcome, Verdict, summarise
from tasks.writes import AckedWrites

VERDICT_COLOURS: dict[Verdict, str] = {
    "as expected": "tab:green",
    "unexpected": "tab:orange",
    "data lost": "tab:red",
}


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


def fault_matrix_png(outcomes: Sequence[FaultOutcome]) -> bytes:
    """The fault matrix at a glance: one bar per fault, its median write outage (the worst run's at the
    bar's end), coloured by verdict, so an outage that grew or a fault that lost data stands out."""
    summaries = summarise(outcomes)
    figure = Figure(figsize=(9, max(4.5, 1.5 + 0.5 * len(summaries))), dpi=100)
    axes = figure.subplots()
    names = [f"{s.fault} ({s.mode})" for s in summaries]
    medians = [s.outage_median_s or 0.0 for s in summaries]
    positions = range(len(summaries))
    axes.barh(positions, medians, color=[VERDICT_COLOURS[s.verdict] for s in summaries])
    for y, s in zip(positions, summaries, strict=True):
        if s.outage_median_s is None:
            label = "no outage measured"
        elif s.runs > 1:
            label = f"{s.outage_median_s:.1f} s (max {s.outage_max_s or 0.0:.1f} s)"
        else:
            label = f"{s.outage_median_s:.1f} s"
        if s.verdict != "as expected":  # said in words too: a zero-length bar shows no colour
            label += f" — {s.verdict}"
        axes.annotate(label, (medians[y], y), xytext=(4, 0), textcoords="offset points", va="center")
    axes.set_yticks(list(positions), names)
    axes.invert_yaxis()  # the catalogue's order, top down
    axes.set_xlim(0, max([*medians, 1.0]) * 1.7)  # room for the labels
    if not summaries:
        axes.text(0.5, 0.5, "no fault ran", transform=axes.transAxes, ha="center", va="center")
    faults = len(summaries)
    axes.set_title(
        f"Fault matrix: median write outage per fault ({faults} fault{'s' if faults != 1 else ''}, "
        f"{len(outcomes)} run{'s' if len(outcomes) != 1 else ''} in all)"
    )
    axes.set_xlabel("median write outage, seconds (from the application's acknowledged writes)")
    axes.set_ylabel("fault (mode)")
    axes.grid(axis="x", alpha=0.3)
    axes.legend(
        handles=[Patch(color=colour, label=verdict) for verdict, colour in VERDICT_COLOURS.items()],
        loc="lower right",
        fontsize="small",
    )
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def timeline_png(phases: Sequence[tuple[str, float, float]], title: str, rto_s: float) -> bytes:
    """A drill's phases on one time axis (one bar each, its length written beside it), the kill at 0 and
    the moment the service was back (every byte verified) marked, so where the time went shows."""
    figure = Figure(figsize=(9, max(4.5, 2.2 + 0.45 * len(phases))), dpi=100)
    axes = figure.subplots()
    positions = range(len(phases))
    starts = [start for _, start, _ in phases]
    widths = [max(end - start, 0.0) for _, start, end in phases]
    colours = ["tab:red" if end <= rto_s else "tab:blue" for _, _, end in phases]
    axes.barh(positions, widths, left=starts, color=colours, height=0.6)
    for y, width in zip(positions, widths, strict=True):
        axes.annotate(
            f"{width:.1f} s", (starts[y] + width, y), xytext=(4, 0), textcoords="offset points", va="center"
        )
    axes.set_yticks(list(positions), [label for label, _, _ in phases])
    axes.invert_yaxis()  # in order, top down
    end = max([rto_s, *(start + width for start, width in zip(starts, widths, strict=True))])
    axes.set_xlim(0, end * 1.15 + 1)
    axes.axvline(0, color="black", linestyle="--", label="the kill")
    axes.axvline(
        rto_s, color="tab:green", linewidth=2, label=f"service back, every byte verified ({rto_s:.1f} s)"
    )
    axes.legend(  # below the axes: the bars run to the right edge
        handles=[
            *axes.get_legend_handles_labels()[0],
            Patch(color="tab:red", label="until the service was back"),
            Patch(color="tab:blue", label="the old primary's return"),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=2,
        fontsize="small",
    )
    axes.set_title(title)
    axes.set_xlabel("seconds from the kill")
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def rotation_png(histories: Mapping[str, Sequence[set[int]]], days: int) -> bytes:
    """What each rotation scheme keeps over ``days`` nightly backups: one panel per scheme, a row per day
    the rotation ran, a dark cell where that day's rotation still kept the archive of that column's
    day — GFS's daily/weekly/monthly ladder, FIFO's band, Tower of Hanoi's exponentially spaced
    survivors."""
    figure = Figure(figsize=(5 * max(len(histories), 1), 5.6), dpi=100)
    panels = figure.subplots(1, max(len(histories), 1), squeeze=False)[0]
    for axes, (label, history) in zip(panels, histories.items(), strict=False):
        kept = [[1.0 if archive in archives else 0.0 for archive in range(days)] for archives in history]
        axes.imshow(kept, cmap="Greys", vmin=0, vmax=1, interpolation="nearest", aspect="equal")
        axes.set_title(f"{label}\nkeeps {len(history[-1])} archives on day {days}", fontsize="medium")
        axes.set_xlabel("the archive made on day")
        axes.set_ylabel("the day the rotation ran")
    panels[-1].legend(
        handles=[
            Patch(facecolor="black", label="kept"),
            Patch(facecolor="white", edgecolor="grey", label="deleted"),
        ],
        loc="lower left",
        fontsize="small",
    )
    figure.suptitle(f"What each rotation scheme keeps over {days} nightly backups")
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def resync_png(curve: Sequence[tuple[float, float]], title: str, copied: str) -> bytes:
    """A resync's progress as DRBD reported it (percent of what it had to copy, against seconds since
    the returning node attached), with what it copied in the legend."""
    figure = Figure(figsize=(9, 4.5), dpi=100)
    axes = figure.subplots()
    if curve:
        axes.plot([t for t, _ in curve], [p for _, p in curve], marker="o", label=f"resync: {copied}")
        axes.legend(loc="lower right", fontsize="small")
    else:
        axes.text(
            0.5, 0.5, "no resync in progress was seen", transform=axes.transAxes, ha="center", va="center"
        )
    axes.set_ylim(0, 105)
    axes.set_title(title)
    axes.set_xlabel("seconds since the returning node attached")
    axes.set_ylabel("synced, % of what was out of sync")
    axes.grid(alpha=0.3)
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
