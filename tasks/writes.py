"""Acknowledged writes, Jepsen-style: a workload that runs on the writing node(s) during a drill, and a
checker that proves no write the application was told is safe ever vanished.

The writer is a fixed Python program (the guests have python3: crmsh needs it) given its parameters as
arguments, never a shell line. It appends numbered, checksummed records to ``<writer>.records`` —
one line ``<writer> <seq> <payload hex> <sha256[:16] of the rest>`` each — fsyncs the file, and only
then prints ``ack <writer> <seq> <seconds the write took>``. The flow stamps each acknowledgement with
its own clock as it arrives over the open SSH connection: the log of what was acknowledged lives on the
control host, where the fault cannot destroy it.

The checker reads the survivor's files back and classifies every record: acknowledged and present
(good), acknowledged and missing or corrupt (**lost**), present but never acknowledged (in flight:
allowed), duplicated or out of order (reported). The acknowledgement times give the write outage the
application saw: the longest gap between two acknowledgements around the fault.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterable

from pydantic import BaseModel, Field

from tasks.cli import CheckFailed
from tasks.context import current_executor
from tasks.executor import SshTarget
from tasks.lab.host import wait_until
from tasks.settings import WriteSettings
from tasks.step import step

RECORDS_SUFFIX = ".records"

WRITER = """\
import hashlib, os, sys, time
path, stop, name = sys.argv[1], sys.argv[2], sys.argv[3]
max_s, size, interval = float(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
durable = sys.argv[7] == "fsync"
folder = os.path.dirname(path)
os.makedirs(folder, exist_ok=True)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
if durable:
    os.fsync(fd)
    entry = os.open(folder, os.O_RDONLY)
    os.fsync(entry)
    os.close(entry)
end = time.monotonic() + max_s
seq = 0
while time.monotonic() < end and not os.path.exists(stop):
    seq += 1
    body = "%s %d %s" % (name, seq, os.urandom(size).hex())
    started = time.monotonic()
    os.write(fd, ("%s %s\\n" % (body, hashlib.sha256(body.encode()).hexdigest()[:16])).encode())
    if durable:
        os.fsync(fd)
    print("ack %s %d %.4f" % (name, seq, time.monotonic() - started), flush=True)
    if interval:
        time.sleep(interval)
"""

READER = """\
import base64, os, sys
folder = sys.argv[1]
for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
    if name.endswith(".records"):
        with open(os.path.join(folder, name), "rb") as records:
            print("records %s %s" % (name[: -len(".records")], base64.b64encode(records.read()).decode()))
"""


def records_path(directory: str, writer: str) -> str:
    return f"{directory}/{writer}{RECORDS_SUFFIX}"


def writer_argv(
    path: str,
    stop_file: str,
    writer: str,
    max_s: float,
    payload_bytes: int,
    interval_s: float,
    durable: bool = True,
) -> list[str]:
    """``durable=False`` is the broken application the checker must catch: it acknowledges a record as
    soon as ``write()`` returned, before the data is on any disk."""
    return [
        "python3",
        "-c",
        WRITER,
        path,
        stop_file,
        writer,
        str(max_s),
        str(payload_bytes),
        str(interval_s),
        "fsync" if durable else "no-fsync",
    ]


def reader_argv(directory: str) -> list[str]:
    return ["python3", "-c", READER, directory]


def bulk_write_argv(path: str, mib: int) -> list[str]:
    """``mib`` MiB of random bytes into ``path``, flushed to disk before ``dd`` exits (conv=fsync)."""
    return ["dd", "if=/dev/urandom", f"of={path}", "bs=1M", f"count={mib}", "conv=fsync", "status=none"]


def traffic_argv(unit: str, path: str, mib: int) -> list[str]:
    """``mib`` MiB of random bytes into ``path`` with direct I/O, in the background as the transient
    systemd unit ``unit`` (it outlives the SSH session; it dies with its node)."""
    dd = ["dd", "if=/dev/urandom", f"of={path}", "bs=1M", f"count={mib}", "oflag=direct", "status=none"]
    return ["systemd-run", "--quiet", "--collect", f"--unit={unit}", *dd]


def unit_active_argv(unit: str) -> list[str]:
    """Exit 0 while the unit runs, 3 (or 4: unknown) once it has ended."""
    return ["systemctl", "is-active", "--quiet", unit]


def stop_unit_argv(unit: str) -> list[str]:
    """Stop a transient unit (exit 5: not loaded, already ended)."""
    return ["systemctl", "stop", unit]


def remove_directory_argv(directory: str) -> list[str]:
    return ["rm", "-rf", "--one-file-system", directory]


def record_line(writer: str, seq: int, payload_hex: str) -> bytes:
    """One record as the writer writes it (for the checker's tests and the checksum rule)."""
    body = f"{writer} {seq} {payload_hex}"
    return f"{body} {hashlib.sha256(body.encode()).hexdigest()[:16]}\n".encode()


class Ack(BaseModel):
    """One record the writer was told is on stable storage."""

    writer: str
    seq: int
    took_s: float = Field(description="write + fsync on the node.")
    at: float = Field(description="time.monotonic() on the control host when the acknowledgement arrived.")


def parse_ack(line: str, at: float) -> Ack | None:
    """``ack <writer> <seq> <seconds>``; None for any other line."""
    parts = line.split()
    if len(parts) != 4 or parts[0] != "ack" or not parts[2].isdigit():
        return None
    try:
        took = float(parts[3])
    except ValueError:
        return None
    return Ack(writer=parts[1], seq=int(parts[2]), took_s=took, at=at)


def parse_records_dump(text: str) -> dict[str, bytes]:
    """The reader's output: writer → the raw bytes of its records file."""
    files: dict[str, bytes] = {}
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) == 3 and parts[0] == "records":
            try:
                files[parts[1]] = base64.b64decode(parts[2], validate=True)
            except binascii.Error as exc:
                raise ValueError(f"the records of {parts[1]} came back garbled: {exc}") from None
    return files


class AckLog:
    """The acknowledgements as they arrive, stamped with the control host's clock (the writers run in
    other threads)."""

    def __init__(self) -> None:
        self._acks: list[Ack] = []
        self._lock = threading.Lock()

    def line(self, line: str) -> None:
        if ack := parse_ack(line, time.monotonic()):
            with self._lock:
                self._acks.append(ack)

    def acks(self, writer: str | None = None) -> list[Ack]:
        with self._lock:
            return [a for a in self._acks if writer is None or a.writer == writer]

    def __len__(self) -> int:
        with self._lock:
            return len(self._acks)

    def bytes_between(self, start: float, end: float, payload_bytes: int) -> int:
        """What the records acknowledged from ``start`` to ``end`` (monotonic) put on the disk."""
        return sum(record_size(a.writer, a.seq, payload_bytes) for a in self.acks() if start <= a.at <= end)


class WriterCheck(BaseModel):
    """One writer's records read back on one node, against what it was told."""

    writer: str
    node: str = Field(description="Where the records were read.")
    acked: int = Field(description="Records the writer was told are safe.")
    good: int = Field(description="Acknowledged and present intact.")
    lost: list[int] = Field(default_factory=list, description="Acknowledged, then missing or corrupt.")
    corrupt: list[int] = Field(
        default_factory=list, description="Of the lost: present but failing their checksum."
    )
    in_flight: list[int] = Field(
        default_factory=list, description="Present but never acknowledged: allowed (the ack was in flight)."
    )
    duplicated: list[int] = Field(default_factory=list)
    out_of_order: list[int] = Field(default_factory=list)
    torn: int = Field(0, description="Lines that are no record at all (a write cut mid-way, never acked).")
    payload_bytes: int = Field(description="Random bytes in each record.")

    @property
    def lost_bytes(self) -> int:
        """The lost records' size on disk."""
        return sum(record_size(self.writer, seq, self.payload_bytes) for seq in self.lost)

    def row(self) -> dict[str, object]:
        """For a table artifact: counts, and the lost records by number."""
        return {
            "writer": self.writer,
            "read on": self.node,
            "acknowledged": self.acked,
            "intact": self.good,
            "lost": len(self.lost),
            "lost records": _ranges(self.lost) or "-",
            "corrupt": len(self.corrupt),
            "in flight": len(self.in_flight),
            "duplicated": len(self.duplicated),
            "out of order": len(self.out_of_order),
            "torn": self.torn,
        }

    def summary(self) -> str:
        extra = [
            f"{len(self.in_flight)} in flight" if self.in_flight else "",
            f"{len(self.duplicated)} duplicated" if self.duplicated else "",
            f"{len(self.out_of_order)} out of order" if self.out_of_order else "",
            f"{self.torn} torn" if self.torn else "",
        ]
        lost = (
            f"{len(self.lost)} LOST ({_ranges(self.lost)}"
            + (f"; {len(self.corrupt)} of them corrupt" if self.corrupt else "")
            + ")"
            if self.lost
            else "0 lost"
        )
        more = ", ".join(e for e in extra if e)
        return f"{self.writer} on {self.node}: {self.good}/{self.acked} acknowledged intact, {lost}" + (
            f"; {more}" if more else ""
        )


def record_size(writer: str, seq: int, payload_bytes: int) -> int:
    return len(writer) + len(str(seq)) + 2 * payload_bytes + 16 + 4  # three spaces and the newline


def check_records(
    writer: str, node: str, acks: Iterable[Ack], data: bytes | None, payload_bytes: int
) -> WriterCheck:
    """Classify every record of ``writer`` found in ``data`` (its records file, None if missing)."""
    acked = {a.seq for a in acks if a.writer == writer}
    seen: Counter[int] = Counter()
    corrupt: set[int] = set()
    out_of_order: list[int] = []
    torn = 0
    highest = 0
    for line in (data or b"").split(b"\n"):
        if not line:
            continue
        parts = line.split(b" ")
        seq = int(parts[1]) if len(parts) == 4 and parts[0] == writer.encode() and parts[1].isdigit() else 0
        if not seq:
            torn += 1
            continue
        if record_line(writer, seq, parts[2].decode("ascii", "replace")) != line + b"\n":
            corrupt.add(seq)
            continue
        if seen[seq]:
            seen[seq] += 1
            continue
        seen[seq] = 1
        if seq < highest:
            out_of_order.append(seq)
        highest = max(highest, seq)
    present = set(seen)
    return WriterCheck(
        writer=writer,
        node=node,
        acked=len(acked),
        good=len(acked & present),
        lost=sorted(acked - present),
        corrupt=sorted((acked & corrupt) - present),
        in_flight=sorted(present - acked),
        duplicated=sorted(s for s, n in seen.items() if n > 1),
        out_of_order=out_of_order,
        torn=torn,
        payload_bytes=payload_bytes,
    )


class WriteOutage(BaseModel):
    """The application-visible outage: the longest gap between two acknowledgements that ends after the
    fault (or, if none came after it, from the last one to the end of the watch)."""

    gap_s: float
    from_s: float = Field(description="The last acknowledgement before the gap, relative to the fault.")
    to_s: float | None = Field(description="The first one after it; None if no write was acknowledged again.")
    usual_s: float = Field(description="The longest gap before the fault: the workload's normal rhythm.")

    def describe(self) -> str:
        if self.to_s is None:
            return f"no write acknowledged since {self.from_s:+.1f} s (≥ {self.gap_s:.1f} s)"
        return (
            f"{self.gap_s:.1f} s without an acknowledged write ({self.from_s:+.1f} s → {self.to_s:+.1f} s "
            f"around the fault; normally ≤ {self.usual_s:.2f} s)"
        )


def write_outage(times: Iterable[float], fault_at: float, ended_at: float) -> WriteOutage | None:
    """From the acknowledgement times of the writers that together are the application (merged)."""
    ordered = sorted(times)
    before = [t for t in ordered if t <= fault_at]
    if not before:
        return None
    usual = max((b - a for a, b in itertools.pairwise(before)), default=0.0)
    gaps = [(a, b) for a, b in itertools.pairwise(ordered) if b > fault_at]
    if len(ordered) == len(before):  # nothing after the fault
        return WriteOutage(
            gap_s=round(ended_at - before[-1], 2),
            from_s=round(before[-1] - fault_at, 2),
            to_s=None,
            usual_s=round(usual, 3),
        )
    start, end = max(gaps, key=lambda gap: gap[1] - gap[0])
    return WriteOutage(
        gap_s=round(end - start, 2),
        from_s=round(start - fault_at, 2),
        to_s=round(end - fault_at, 2),
        usual_s=round(usual, 3),
    )


def _ranges(numbers: list[int], limit: int = 6) -> str:
    """``3-7, 9, 12-14`` (at most ``limit`` runs, then ``…``)."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    shown = [f"#{a}" if a == b else f"#{a}-{b}" for a, b in runs[:limit]]
    return ", ".join(shown) + (", …" if len(runs) > limit else "")


class Writer:
    """One writer on one node, running in a background thread until stopped — or until its node dies,
    when the flow abandons it: the acknowledgements it sent are already in the flow's log."""

    def __init__(
        self,
        target: SshTarget,
        directory: str,
        name: str,
        log: AckLog,
        settings: WriteSettings,
        max_s: float,
        durable: bool = True,
    ) -> None:
        self.target, self.name, self.log = target, name, log
        self.stop_file = f"/run/hsf-writer-{name}.stop"
        self.argv = writer_argv(
            records_path(directory, name),
            self.stop_file,
            name,
            max_s,
            settings.payload_bytes,
            settings.interval_s,
            durable,
        )
        self.timeout_s = max_s + 120
        self.error: Exception | None = None
        self.abandoned = False
        self._executor = current_executor()  # the thread has no run context of its own
        self._thread = threading.Thread(target=self._run, name=f"writer-{name}", daemon=True)

    def start(self, first_acks: int, timeout_s: float) -> Writer:
        """Start, and return once ``first_acks`` records are acknowledged (the workload is really on)."""
        self._executor.run(["rm", "-f", self.stop_file], self.target, workload=True)
        self._thread.start()
        wait_until(
            lambda: len(self.log.acks(self.name)) >= first_acks or not self._thread.is_alive(),
            timeout_s,
            f"the writer {self.name} on {self.target.name} to acknowledge {first_acks} records",
            interval_s=0.2,
        )
        if len(self.log.acks(self.name)) < first_acks:
            raise self.failure()
        return self

    def keep_writing(self, seconds: float, timeout_s: float) -> None:
        """Return once its acknowledgements span ``seconds`` (a stall does not count: the application
        waits through it too)."""

        def spanned() -> bool:
            acks = self.log.acks(self.name)
            if not self._thread.is_alive():
                raise self.failure()
            return bool(acks) and acks[-1].at - acks[0].at >= seconds

        wait_until(spanned, timeout_s, f"the writer {self.name} to write for {seconds:.0f} s", interval_s=0.2)

    @property
    def running(self) -> bool:
        """Its command still runs (it has not ended, been stopped or lost its node)."""
        return self._thread.is_alive()

    def failure(self) -> Exception:
        """Why the writer ended early: its command's own error (one line, its exit code), or that it
        ended without one."""
        return self.error or CheckFailed(
            f"the writer {self.name} on {self.target.name} ended before it was asked to stop"
        )

    def _run(self) -> None:
        try:
            self._executor.run(
                self.argv,
                self.target,
                timeout=self.timeout_s,
                on_line=self.log.line,
                quiet=True,
                workload=True,
            )
        except Exception as exc:  # a dead node ends it; anything else is raised by stop()
            self.error = exc

    def stop(self, timeout_s: float = 120) -> int:
        """Ask the writer to stop after its current record; returns how many it acknowledged."""
        self._executor.run(["touch", self.stop_file], self.target, workload=True)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(
                f"the writer {self.name} on {self.target.name} did not stop in {timeout_s:.0f} s"
            )
        self._executor.run(["rm", "-f", self.stop_file], self.target, workload=True)
        if self.error:
            raise self.error
        return len(self.log.acks(self.name))

    def abandon(self) -> None:
        """Its node was killed: stop listening at once (closing the connection ends the command's wait;
        the drill's clock runs, so nothing here waits for the thread)."""
        self.abandoned = True
        self._executor.drop_connection(self.target)


class AckedWrites(BaseModel):
    """What a drill's writers were told, and what the nodes hold afterwards."""

    checks: list[WriterCheck] = Field(description="Each writer's records, read on each node checked.")
    outage: WriteOutage | None = Field(description="The application-visible write outage around the fault.")
    timeline: dict[str, list[float]] = Field(
        default_factory=dict, description="Each writer's acknowledgement times, seconds from the fault."
    )

    @property
    def acked(self) -> int:
        return sum(len(times) for times in self.timeline.values())

    @property
    def lost(self) -> int:
        """Acknowledged records missing or corrupt on some node checked (each counted once, however many
        nodes miss it)."""
        return sum(len(seqs) for seqs in self.lost_records().values())

    @property
    def lost_bytes(self) -> int:
        payload = {check.writer: check.payload_bytes for check in self.checks}
        lost = self.lost_records()
        return sum(record_size(w, seq, payload[w]) for w, seqs in lost.items() for seq in seqs)

    def lost_records(self) -> dict[str, list[int]]:
        """For events: each writer's lost records, by number (on any node checked)."""
        lost: dict[str, set[int]] = {}
        for check in self.checks:
            if check.lost:
                lost.setdefault(check.writer, set()).update(check.lost)
        return {writer: sorted(seqs) for writer, seqs in lost.items()}

    def lines(self) -> list[str]:
        outage = self.outage.describe() if self.outage else "not measured (no write before the fault)"
        return [f"write outage: {outage}", *(c.summary() for c in self.checks)]


@step(name="read-acknowledged-records", retry_transport=True, timeout_seconds=900)
def read_records(target: SshTarget, directory: str) -> dict[str, bytes]:
    """Every writer's records file under ``directory`` on ``target`` (a missing directory: none)."""
    run = current_executor().run
    return parse_records_dump(run(reader_argv(directory), target, read_only=True, timeout=600).stdout)


@step(name="write-bulk", timeout_seconds=3600)
def write_bulk(target: SshTarget, path: str, mib: int) -> int:
    """The application writes ``mib`` MiB at once (durably); returns the bytes written."""
    current_executor().run(bulk_write_argv(path, mib), target, timeout=3000, workload=True)
    return mib << 20


@step(name="start-traffic", retry_transport=True, timeout_seconds=120)
def start_traffic(target: SshTarget, path: str, mib: int, unit: str) -> None:
    """Unacknowledged bulk writes in the background: the link busy while a fault strikes."""
    run = current_executor().run
    run(["mkdir", "-p", path.rsplit("/", 1)[0]], target, workload=True)
    run(traffic_argv(unit, path, mib), target, workload=True)


def traffic_running(target: SshTarget, unit: str) -> bool:
    """The background traffic still writes (it has not finished its MiB)."""
    result = current_executor().run(unit_active_argv(unit), target, read_only=True, ok_codes=(0, 3, 4))
    return result.ok


@step(name="stop-traffic", retry_transport=True, timeout_seconds=120)
def stop_traffic(target: SshTarget, unit: str) -> None:
    current_executor().run(stop_unit_argv(unit), target, ok_codes=(0, 5), workload=True)


@step(name="remove-drill-files", retry_transport=True, timeout_seconds=900)
def remove_drill_files(target: SshTarget, directory: str) -> None:
    """A drill's records and files, once checked: the volume is left as the drill found it."""
    current_executor().run(remove_directory_argv(directory), target, timeout=600, workload=True)


def check_writers(
    target: SshTarget, directory: str, log: AckLog, writers: Iterable[str], payload_bytes: int
) -> list[WriterCheck]:
    """Each writer's records on ``target`` against its acknowledgements."""
    found = read_records(target, directory)
    acks = log.acks()
    return [check_records(w, target.name, acks, found.get(w), payload_bytes) for w in writers]


def acked_writes(
    log: AckLog,
    checks: list[WriterCheck],
    fault_at: float,
    ended_at: float,
    application: Iterable[str] | None = None,
) -> AckedWrites:
    """The drill's verdict on its writes; the outage is measured on ``application``'s writers (default:
    all of them, merged: a writer restarted on the survivor continues the one that died)."""
    acks = log.acks()
    names = set(application) if application is not None else {a.writer for a in acks}
    timeline: dict[str, list[float]] = {}
    for ack in acks:
        timeline.setdefault(ack.writer, []).append(round(ack.at - fault_at, 3))
    return AckedWrites(
        checks=checks,
        outage=write_outage((a.at for a in acks if a.writer in names), fault_at, ended_at),
        timeline=timeline,
    )
