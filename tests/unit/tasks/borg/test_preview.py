"""tasks/borg/preview.py: the rotation preview's summary and its picture."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from tasks.borg.preview import GAP, preview
from tasks.borg.rotation import Rotation


def test_preview_summarises_and_draws_every_scheme(tmp_path: Path) -> None:

    picture = tmp_path / "rotation.png"
    summary = preview(picture, Rotation(last=10, levels=6), days=120)
    assert "fifo (last 10): 10 archives, ages in days [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" in summary
    assert "hanoi (6 levels): 6 archives" in summary
    data = picture.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (3 * 120 + 2 * GAP, 120)
    idat_length = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41 : 41 + idat_length])
    last_row = raw[-width:]  # the last day: in the fifo panel exactly the newest 10 archives are dark
    fifo_panel = last_row[120 + GAP : 2 * 120 + GAP]
    assert [x for x, value in enumerate(fifo_panel) if value < 0x80] == list(range(110, 120))
