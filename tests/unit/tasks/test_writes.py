"""tasks/writes.py: the acknowledged writer runs here for real (python3, fsync on this machine's disk),
its acknowledgements are parsed as the drill parses them, and read back with the drills' manifest."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from tasks.executor import LOCAL
from tasks.writes import Ack, AckLog, parse_ack, verify_acks, writer_argv


def _write(tmp_path: Path, max_s: float, chunk: int = 4096) -> tuple[Path, list[str]]:
    directory = tmp_path / "acked"
    argv = writer_argv(str(directory), str(tmp_path / "stop"), max_s, chunk, 0.05)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return directory, result.stdout.splitlines()


def test_every_acknowledged_chunk_is_on_disk_with_the_acknowledged_content(tmp_path: Path) -> None:
    directory, lines = _write(tmp_path, max_s=0.5)
    log = AckLog()
    for line in lines:
        log.line(line)
    acks = log.acks()
    assert len(acks) == len(lines) >= 3
    assert [a.name for a in acks] == [f"w{n:05d}" for n in range(1, len(acks) + 1)]
    for ack in acks:
        data = (directory / ack.name).read_bytes()
        assert len(data) == 4096 and hashlib.sha256(data).hexdigest() == ack.sha256
        assert 0 <= ack.latency_s < 5
    assert sorted(p.name for p in directory.iterdir()) == [a.name for a in acks]  # nothing unacknowledged


def test_the_writer_stops_when_the_stop_file_appears(tmp_path: Path) -> None:
    (tmp_path / "stop").touch()
    directory, lines = _write(tmp_path, max_s=30)  # would run 30 s without the stop file
    assert lines == [] and list(directory.iterdir()) == []


def test_parse_ack_reads_only_acknowledgements() -> None:
    line = "acked w00007 " + "a" * 64 + " 0.012"
    assert parse_ack(line) == Ack(name="w00007", sha256="a" * 64, latency_s=0.012)
    for other in ("", "Traceback (most recent call last):", "acked w00007", "acked a b c d"):
        assert parse_ack(other) is None


def test_verify_acks_names_every_acknowledged_chunk_lost_or_changed(
    prefect_harness: None, tmp_path: Path
) -> None:
    directory, lines = _write(tmp_path, max_s=0.4, chunk=1024)
    acks = [a for line in lines if (a := parse_ack(line))]
    intact = verify_acks(LOCAL, str(directory), acks, 1024)
    assert (intact.acked, intact.intact, intact.lost, intact.lost_bytes) == (len(acks), len(acks), [], 0)
    (directory / acks[0].name).unlink()
    (directory / acks[1].name).write_bytes(b"\0" * 1024)  # same size, other content
    damaged = verify_acks(LOCAL, str(directory), acks, 1024)
    assert damaged.lost == [acks[0].name, acks[1].name]
    assert (damaged.intact, damaged.lost_bytes) == (len(acks) - 2, 2048)
