"""tasks/pictures.py: the timeline and the fault matrix are real PNGs that matplotlib's own reader loads
back."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from matplotlib import image

from tasks.faults import FaultOutcome
from tasks.pictures import (
    ack_timeline_png,
    fault_matrix_png,
    resync_png,
    rotation_png,
    save_picture,
    timeline_png,
)
from tasks.writes import AckedWrites, WriteOutage, WriterCheck


def _writes(lost: list[int], outage: WriteOutage | None) -> AckedWrites:
    check = WriterCheck(writer="a-1", node="b", acked=4, good=4 - len(lost), lost=lost, payload_bytes=16)
    return AckedWrites(
        checks=[check], outage=outage, timeline={"a-1": [-0.3, -0.2, -0.1, 0.0], "b-2": [9.8, 9.9]}
    )


def test_the_timeline_is_a_png_of_the_promised_size() -> None:
    outage = WriteOutage(gap_s=9.8, from_s=0.0, to_s=9.8, usual_s=0.1)
    png = ack_timeline_png(_writes([3, 4], outage), "Failover drill: nodea → nodeb", "destroy nodea")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = image.imread(io.BytesIO(png), format="png")
    assert pixels.shape[:2] == (450, 900)


def test_an_open_outage_and_no_loss_still_draw(tmp_path: Path) -> None:
    outage = WriteOutage(gap_s=30.0, from_s=-0.1, to_s=None, usual_s=0.1)
    png = ack_timeline_png(_writes([], outage), "t", "f")
    path = save_picture(png, tmp_path / "reports", "failover r0 2026-01-01T00:00:00Z")
    assert path == tmp_path / "reports" / "failover-r0-2026-01-01T00-00-00Z.png"
    assert path.read_bytes() == png
    assert ack_timeline_png(_writes([], None), "t", "f").startswith(b"\x89PNG")


def _outcome(fault: str, run: int, outage_s: float | None, **extra: Any) -> FaultOutcome:
    fields: dict[str, Any] = {"mode": "pacemaker", "redundant_s": 30.0, "bytes_lost": 0, "summary": "s"}
    return FaultOutcome(fault=fault, run=run, outage_s=outage_s, **{**fields, **extra})


def test_the_fault_matrix_is_a_png_of_the_promised_size() -> None:
    outcomes = [
        _outcome("primary-killed", 1, 53.1),
        _outcome("primary-killed", 2, 70.2, problems=["write outage 70.2 s > 60 s"]),
        _outcome("link-cut", 1, 10.6, bytes_lost=1090, acked_lost=1, problems=["lost 1,090 bytes"]),
        _outcome("split-brain", 1, None),
    ]
    png = fault_matrix_png(outcomes)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert image.imread(io.BytesIO(png), format="png").shape[:2] == (450, 900)
    many = [_outcome(f"fault-{n}", 1, float(n)) for n in range(10)]
    assert image.imread(io.BytesIO(fault_matrix_png(many)), format="png").shape[:2] == (650, 900)
    assert fault_matrix_png([]).startswith(b"\x89PNG")


def _looks(png: bytes) -> tuple[tuple[int, int], float]:
    """The picture's size as matplotlib's own reader loads it, and how far from blank it is."""
    pixels = image.imread(io.BytesIO(png), format="png")
    return pixels.shape[:2], float(pixels[..., :3].std())


def test_the_drill_timeline_shows_every_phase_and_is_not_blank() -> None:
    phases = [
        ("survivor sees the peer lost", 0.0, 5.3), ("promote survivor", 5.3, 5.7),
        ("mount (journal replay)", 5.7, 6.2), ("every byte verified (RTO)", 6.2, 9.4),
        ("nodea boots", 21.0, 45.1), ("nodea attaches and resyncs", 45.1, 48.6),
    ]  # fmt: skip
    size, spread = _looks(timeline_png(phases, "Failover drill: nodea → nodeb", rto_s=9.4))
    assert size == (490, 900) and spread > 0.1
    assert _looks(timeline_png(phases[:4], "t", rto_s=9.4))[0] == (450, 900)  # no rejoin: still a picture


def test_the_rotation_picture_has_a_panel_per_scheme() -> None:
    history = [set(range(max(0, day - 2), day + 1)) for day in range(30)]
    size, spread = _looks(
        rotation_png({"fifo (last 3)": history, "all": [set(range(d + 1)) for d in range(30)]}, 30)
    )
    assert size == (560, 1000) and spread > 0.1


def test_the_resync_curve_draws_what_drbd_reported_and_says_when_it_saw_nothing() -> None:
    curve = [(0.0, 12.5), (1.0, 48.0), (2.0, 83.1), (3.4, 100.0)]
    size, spread = _looks(resync_png(curve, "Resync of nodea", "121,700,352 bytes in 3.5 s"))
    assert size == (450, 900) and spread > 0.1
    assert _looks(resync_png([], "Resync of nodea", "0 bytes"))[0] == (450, 900)
