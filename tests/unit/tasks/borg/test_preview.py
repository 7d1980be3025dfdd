"""tasks/borg/preview.py: the rotation preview's summary and its picture."""

from __future__ import annotations

from pathlib import Path

from matplotlib import image

from tasks.borg.preview import preview
from tasks.borg.rotation import Rotation


def test_preview_summarises_and_draws_every_scheme(tmp_path: Path) -> None:
    picture = tmp_path / "rotation.png"
    summary = preview(picture, Rotation(last=10, levels=6), days=120)
    assert "fifo (last 10): 10 archives, ages in days [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" in summary
    assert "hanoi (6 levels): 6 archives" in summary
    pixels = image.imread(picture, format="png")  # matplotlib's own reader: a real PNG
    assert pixels.shape[:2] == (560, 1500)  # three 5-inch panels at 100 dpi
    assert pixels[..., :3].std() > 0.1  # not blank: dark kept cells on white
