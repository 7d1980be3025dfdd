"""Acknowledged writes: a writer on a node that reports each chunk only after ``fsync`` returned, so the
flow knows exactly which bytes the application was told are safe — and can prove none was lost.

The writer is a fixed Python program (the guests have python3: crmsh needs it) given its parameters as
arguments, never a shell line. It writes ``w00001``, ``w00002``… with random content, fsyncs the file and
the directory, prints ``acked <name> <sha256> <seconds the write took>``, and stops when the stop file
appears or after ``max_s``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping

from pydantic import BaseModel, Field

from tasks.context import current_executor
from tasks.executor import SshTarget
from tasks.manifest import Entry, contents, lost_files, tree_manifest
from tasks.step import step

WRITER = """\
import hashlib, os, sys, time
directory, stop = sys.argv[1], sys.argv[2]
max_s, size, interval = float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
os.makedirs(directory, exist_ok=True)
end = time.monotonic() + max_s
number = 0
while time.monotonic() < end and not os.path.exists(stop):
    number += 1
    name = "w%05d" % number
    data = os.urandom(size)
    started = time.monotonic()
    with open(os.path.join(directory, name), "wb") as chunk:
        chunk.write(data)
        chunk.flush()
        os.fsync(chunk.fileno())
    folder = os.open(directory, os.O_RDONLY)
    os.fsync(folder)
    os.close(folder)
    took = time.monotonic() - started
    print("acked %s %s %.3f" % (name, hashlib.sha256(data).hexdigest(), took), flush=True)
    time.sleep(interval)
"""


def writer_argv(
    directory: str, stop_file: str, max_s: float, chunk_bytes: int, interval_s: float
) -> list[str]:
    return ["python3", "-c", WRITER, directory, stop_file, str(max_s), str(chunk_bytes), str(interval_s)]


class Ack(BaseModel):
    """One chunk the writer was told is on stable storage."""

    name: str
    sha256: str
    latency_s: float = Field(description="write + fsync of the file and its directory.")


def parse_ack(line: str) -> Ack | None:
    """``acked <name> <sha256> <seconds>``; None for any other line."""
    parts = line.split()
    if len(parts) != 4 or parts[0] != "acked" or not re.fullmatch(r"\d+\.\d+", parts[3]):
        return None
    return Ack(name=parts[1], sha256=parts[2], latency_s=float(parts[3]))


class AckLog:
    """The acknowledgements as they arrive (the writer runs in another thread)."""

    def __init__(self) -> None:
        self._acks: list[Ack] = []
        self._lock = threading.Lock()

    def line(self, line: str) -> None:
        if ack := parse_ack(line):
            with self._lock:
                self._acks.append(ack)

    def acks(self) -> list[Ack]:
        with self._lock:
            return list(self._acks)

    def __len__(self) -> int:
        with self._lock:
            return len(self._acks)


@step(name="acknowledged-writer", retry_transport=False)  # a rerun would be another writer
def write_acknowledged(
    target: SshTarget,
    directory: str,
    stop_file: str,
    log: AckLog,
    max_s: float,
    chunk_bytes: int,
    interval_s: float,
) -> int:
    """Run the writer until the stop file appears (or ``max_s``); every ack goes to ``log``. Returns the
    number of chunks acknowledged."""
    argv = writer_argv(directory, stop_file, max_s, chunk_bytes, interval_s)
    current_executor().run(argv, target, timeout=max_s + 120, on_line=log.line, quiet=True)
    return len(log)


class AckVerification(BaseModel):
    node: str
    acked: int = Field(description="Chunks the writer was told were safe.")
    intact: int
    lost: list[str] = Field(default_factory=list, description="Acknowledged chunks missing or changed.")
    acked_bytes: int
    lost_bytes: int


def verify_acks(target: SshTarget, directory: str, acks: list[Ack], chunk_bytes: int) -> AckVerification:
    """Every acknowledged chunk, read back on ``target``: present, and with the content it was acked with."""
    found = tree_manifest(target, directory)
    expected: Mapping[str, Entry] = {
        a.name: Entry(kind="f", mode="", uid=0, gid=0, mtime=0, size=chunk_bytes, sha256=a.sha256)
        for a in acks
    }
    lost = lost_files(dict(expected), found)
    return AckVerification(
        node=target.name,
        acked=len(acks),
        intact=len(contents(dict(expected))) - len(lost),
        lost=lost,
        acked_bytes=chunk_bytes * len(acks),
        lost_bytes=chunk_bytes * len(lost),
    )
