"""tasks/pictures.py: the timeline is a real PNG that matplotlib's own reader loads back."""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib import image

from tasks.pictures import ack_timeline_png, save_picture
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
