"""tasks/writes.py: the writer runs here for real (python3, fsync on this machine's disk) and is read
back by the real reader; the checker is proven on hand-made histories — lost, in flight, duplicated,
reordered, corrupt, torn — and must fail exactly when it should."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tasks.executor import LOCAL, CommandError
from tasks.settings import WriteSettings
from tasks.writes import (
    Ack,
    AckLog,
    Writer,
    acked_writes,
    bulk_write_argv,
    check_records,
    parse_ack,
    parse_records_dump,
    reader_argv,
    record_line,
    record_size,
    records_path,
    remove_directory_argv,
    stop_unit_argv,
    traffic_argv,
    unit_active_argv,
    write_outage,
    writer_argv,
)


def _acks(writer: str, seqs: range | list[int], start: float = 0.0, step: float = 0.1) -> list[Ack]:
    return [Ack(writer=writer, seq=s, took_s=0.01, at=start + i * step) for i, s in enumerate(seqs)]


def _records(writer: str, seqs: list[int]) -> bytes:
    return b"".join(record_line(writer, s, f"{s:04x}" * 8) for s in seqs)


def _run_writer(tmp_path: Path, max_s: float, durable: bool = True) -> tuple[Path, AckLog]:
    argv = writer_argv(
        records_path(str(tmp_path / "acked"), "w1"), str(tmp_path / "stop"), "w1", max_s, 64, 0.02, durable
    )
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    log = AckLog()
    for line in result.stdout.splitlines():
        log.line(line)
    return tmp_path / "acked", log


def test_every_acknowledged_record_is_on_disk_as_the_reader_returns_it(tmp_path: Path) -> None:
    directory, log = _run_writer(tmp_path, max_s=0.5)
    acks = log.acks()
    assert len(acks) >= 5 and [a.seq for a in acks] == list(range(1, len(acks) + 1))
    assert all(a.writer == "w1" and 0 <= a.took_s < 5 for a in acks)
    assert [a.at for a in acks] == sorted(a.at for a in acks)
    dump = subprocess.run(reader_argv(str(directory)), capture_output=True, text=True, check=True).stdout
    files = parse_records_dump(dump)
    assert set(files) == {"w1"}
    check = check_records("w1", "here", acks, files["w1"], 64)
    assert (check.acked, check.good, check.lost, check.in_flight, check.torn) == (
        len(acks),
        len(acks),
        [],
        [],
        0,
    )
    assert record_size("w1", 25, 64) == len(record_line("w1", 25, "00" * 64))


def test_the_writer_stops_when_the_stop_file_appears(tmp_path: Path) -> None:
    (tmp_path / "stop").touch()
    directory, log = _run_writer(tmp_path, max_s=30)  # would run 30 s without the stop file
    assert len(log) == 0 and (directory / "w1.records").read_bytes() == b""


def test_the_reader_of_a_missing_directory_returns_nothing(tmp_path: Path) -> None:
    dump = subprocess.run(reader_argv(str(tmp_path / "gone")), capture_output=True, text=True, check=True)
    assert parse_records_dump(dump.stdout) == {}


def test_parse_ack_reads_only_acknowledgements() -> None:
    assert parse_ack("ack w1 7 0.012", 5.0) == Ack(writer="w1", seq=7, took_s=0.012, at=5.0)
    for other in ("", "Traceback (most recent call last):", "ack w1 7", "ack w1 x 0.1", "ack w1 7 soon"):
        assert parse_ack(other, 0.0) is None


def test_a_garbled_dump_is_an_error_naming_the_writer() -> None:
    with pytest.raises(ValueError, match="records of w1 came back garbled"):
        parse_records_dump("records w1 not*base64")


def test_intact_history() -> None:
    check = check_records("w1", "b", _acks("w1", range(1, 11)), _records("w1", list(range(1, 11))), 16)
    assert (check.acked, check.good, check.lost, check.lost_bytes) == (10, 10, [], 0)
    assert check.summary() == "w1 on b: 10/10 acknowledged intact, 0 lost"


def test_acknowledged_and_missing_is_lost() -> None:
    check = check_records("w1", "b", _acks("w1", range(1, 11)), _records("w1", [1, 2, 3, 4, 5, 6, 7]), 16)
    assert check.lost == [8, 9, 10] and check.good == 7
    assert check.lost_bytes == sum(len(record_line("w1", s, "0001" * 8)) for s in (8, 9, 10))
    assert "3 LOST (#8-10)" in check.summary()


def test_a_missing_file_loses_every_acknowledged_record() -> None:
    check = check_records("w1", "b", _acks("w1", range(1, 4)), None, 16)
    assert check.lost == [1, 2, 3] and check.good == 0


def test_present_but_never_acknowledged_is_in_flight_not_lost() -> None:
    check = check_records("w1", "b", _acks("w1", range(1, 5)), _records("w1", [1, 2, 3, 4, 5, 6]), 16)
    assert (check.lost, check.in_flight, check.good) == ([], [5, 6], 4)


def test_duplicated_and_reordered_records_are_reported_not_lost() -> None:
    check = check_records("w1", "b", _acks("w1", range(1, 6)), _records("w1", [1, 2, 4, 3, 3, 5]), 16)
    assert (check.lost, check.duplicated, check.out_of_order, check.good) == ([], [3], [3], 5)
    assert "1 duplicated, 1 out of order" in check.summary()


def test_a_corrupt_acknowledged_record_is_lost_and_named_corrupt() -> None:
    data = bytearray(_records("w1", [1, 2, 3]))
    second = len(record_line("w1", 1, "0001" * 8))
    data[second + 6] ^= 0x01  # one bit of record 2's payload
    check = check_records("w1", "b", _acks("w1", [1, 2, 3]), bytes(data), 16)
    assert (check.lost, check.corrupt, check.good) == ([2], [2], 2)
    assert "1 of them corrupt" in check.summary()


def test_a_torn_tail_that_was_never_acknowledged_is_allowed() -> None:
    data = _records("w1", [1, 2, 3]) + record_line("w1", 4, "0004" * 8)[:20] + b"\0" * 100
    check = check_records("w1", "b", _acks("w1", [1, 2, 3]), data, 16)
    assert (check.lost, check.torn, check.good) == ([], 1, 3)


def test_another_writers_records_do_not_count() -> None:
    check = check_records("w1", "b", _acks("w1", [1, 2]), _records("w2", [1, 2]), 16)
    assert check.lost == [1, 2] and check.torn == 2


def test_write_outage_is_the_longest_gap_ending_after_the_fault() -> None:
    times = [0.0, 0.1, 0.2, 0.3, 5.0, 5.1, 5.2, 9.0, 9.1]  # fault at 0.25: a 4.7 s gap, then a 3.8 s one
    outage = write_outage(times, fault_at=0.25, ended_at=10)
    assert outage is not None and (outage.gap_s, outage.from_s, outage.to_s) == (4.7, 0.05, 4.75)
    assert outage.usual_s == 0.1
    assert outage.describe().startswith("4.7 s without an acknowledged write (+0.1 s → +4.8 s")


def test_write_outage_with_no_acknowledgement_after_the_fault_is_open() -> None:
    outage = write_outage([0.0, 0.1, 0.2], fault_at=1.0, ended_at=31.0)
    assert outage is not None and (outage.gap_s, outage.from_s, outage.to_s) == (30.8, -0.8, None)
    assert outage.describe() == "no write acknowledged since -0.8 s (≥ 30.8 s)"
    assert write_outage([2.0], fault_at=1.0, ended_at=3.0) is None  # nothing before: not measurable


def test_acked_writes_merges_the_restarted_writer_into_one_application() -> None:
    log = AckLog()
    log._acks = [*_acks("a-1", range(1, 4), start=10.0), *_acks("b-2", range(1, 3), start=20.0)]
    checks = [
        check_records("a-1", "b", log.acks(), _records("a-1", [1, 2, 3, 4]), 16),
        check_records("b-2", "b", log.acks(), _records("b-2", [1]), 16),
    ]
    writes = acked_writes(log, checks, fault_at=10.25, ended_at=25.0)
    assert writes.outage is not None and writes.outage.gap_s == 9.8  # last ack of a-1 → first of b-2
    assert (writes.acked, writes.lost) == (5, 1)
    assert writes.timeline == {"a-1": [-0.25, -0.15, -0.05], "b-2": [9.75, 9.85]}
    assert writes.lines()[0].startswith("write outage: 9.8 s without an acknowledged write")
    only_b = acked_writes(log, checks, fault_at=10.25, ended_at=25.0, application=["b-2"])
    assert only_b.outage is None


def test_the_broken_writer_acknowledges_without_fsync(tmp_path: Path) -> None:
    """The mode the lab uses to show the checker failing: same records, no fsync before the ack."""
    durable = writer_argv("/v/w.records", "/run/s", "w", 1, 8, 0, durable=True)
    broken = writer_argv("/v/w.records", "/run/s", "w", 1, 8, 0, durable=False)
    assert durable[-1] == "fsync" and broken[-1] == "no-fsync" and durable[:-1] == broken[:-1]
    _, log = _run_writer(tmp_path, max_s=0.2, durable=False)
    assert len(log) >= 2  # it still writes the same records (a kill is what loses them)


def test_a_record_lost_on_two_nodes_counts_once() -> None:
    log = AckLog()
    log._acks = _acks("a-1", range(1, 4))
    data = _records("a-1", [1, 2])
    checks = [check_records("a-1", node, log.acks(), data, 16) for node in ("nodea", "nodeb")]
    writes = acked_writes(log, checks, fault_at=0.25, ended_at=1.0)
    assert writes.lost == 1 and writes.lost_records() == {"a-1": [3]}
    assert writes.lost_bytes == record_size("a-1", 3, 16) == len(record_line("a-1", 3, "0003" * 8))


def test_a_writer_that_cannot_write_ends_with_its_own_error_line() -> None:
    """Here the writer runs on this machine; a directory it cannot create fails it at once, and start()
    raises the command's own error (one line, exit 4), not an internal one."""
    log = AckLog()
    settings = WriteSettings(interval_s=0.01)
    writer = Writer(LOCAL, "/proc/hsf-cannot-be-created", "w1", log, settings, max_s=10)  # type: ignore[arg-type]
    with pytest.raises(CommandError, match="exited 1"):
        writer.start(first_acks=1, timeout_s=30)
    assert len(log) == 0


def test_bulk_data_is_written_durably_and_a_drill_directory_removed_on_its_filesystem_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "away.bin"
    subprocess.run(bulk_write_argv(str(path), 2), check=True)
    assert path.stat().st_size == 2 << 20
    assert "conv=fsync" in bulk_write_argv(str(path), 2)
    subprocess.run(remove_directory_argv(str(tmp_path / "faults")), check=True)  # a missing one is fine
    subprocess.run(remove_directory_argv(str(tmp_path)), check=True)
    assert not tmp_path.exists()
    assert "--one-file-system" in remove_directory_argv("/mnt/r0/faults/x")


def test_background_traffic_is_direct_io_in_a_transient_unit(tmp_path: Path) -> None:
    """The unit wraps dd (the lab runs it under systemd: the site-loss test); the dd part writes here, with
    direct I/O, and the unit's options are ones this machine's systemd-run knows."""
    path = tmp_path / "traffic.bin"
    argv = traffic_argv("hsf-site-loss-traffic", str(path), 2)
    dd = argv.index("dd")
    assert argv[:dd] == ["systemd-run", "--quiet", "--collect", "--unit=hsf-site-loss-traffic"]
    subprocess.run(argv[dd:], check=True)
    assert path.stat().st_size == 2 << 20 and "oflag=direct" in argv
    if shutil.which("systemd-run"):
        usage = subprocess.run(["systemd-run", "--help"], capture_output=True, text=True).stdout
        assert all(option.split("=")[0] in usage for option in argv[1:dd])
    assert unit_active_argv("u") == ["systemctl", "is-active", "--quiet", "u"]
    assert stop_unit_argv("u") == ["systemctl", "stop", "u"]
