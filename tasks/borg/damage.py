"""Damage to a repository's segment files, and its undoing: the segment-corrupted fault.

A few bytes in the middle of a segment are overwritten with their complement, as a failing disk or a
bad copy would; the original bytes are kept by the flow and written back afterwards, which makes the
repository whole again (borg's own ``check`` proves it). Reading and writing go through ``python3``
with arguments, never a shell: borg needs python3 on the server anyway.
"""

from __future__ import annotations

from pydantic import BaseModel

from tasks.context import current_executor
from tasks.executor import SshTarget
from tasks.step import step

READ = (
    "import sys; f = open(sys.argv[1], 'rb'); f.seek(int(sys.argv[2])); print(f.read(int(sys.argv[3])).hex())"
)
WRITE = (
    "import sys; f = open(sys.argv[1], 'r+b'); f.seek(int(sys.argv[2])); f.write(bytes.fromhex(sys.argv[3]))"
)


class Segment(BaseModel):
    number: int
    path: str
    size: int


class Damage(BaseModel):
    """Bytes overwritten in one segment: where, and what they were (to put back)."""

    segment: Segment
    offset: int
    original_hex: str


def segments_argv(repository: str) -> list[str]:
    """Every data file of the repository with its size: ``<size> <path>`` per line."""
    return ["find", f"{repository}/data", "-type", "f", "-regex", r".*/[0-9]+", "-printf", r"%s %p\n"]


def parse_segments(text: str) -> list[Segment]:
    """Segments by number (a segment file is named by its number)."""
    found = []
    for line in text.splitlines():
        size, path = line.split(" ", 1)
        found.append(Segment(number=int(path.rsplit("/", 1)[1]), path=path, size=int(size)))
    return sorted(found, key=lambda segment: segment.number)


def read_bytes_argv(path: str, offset: int, count: int) -> list[str]:
    return ["python3", "-c", READ, path, str(offset), str(count)]


def write_bytes_argv(path: str, offset: int, data_hex: str) -> list[str]:
    return ["python3", "-c", WRITE, path, str(offset), data_hex]


def complement(data_hex: str) -> str:
    """Every bit flipped: never the same bytes, so the damage is certain."""
    return bytes(b ^ 0xFF for b in bytes.fromhex(data_hex)).hex()


@step(name="list-segments", timeout_seconds=120, retry_transport=True)
def list_segments(server: SshTarget, repository: str) -> list[Segment]:
    return parse_segments(current_executor().run(segments_argv(repository), server, read_only=True).stdout)


@step(name="corrupt-segment", timeout_seconds=120)
def corrupt_segment(server: SshTarget, segment: Segment, offset: int, count: int = 16) -> Damage:
    """Flip ``count`` bytes of ``segment`` at ``offset``; returns what to put back."""
    run = current_executor().run
    original = run(read_bytes_argv(segment.path, offset, count), server, read_only=True).stdout.strip()
    if len(original) != 2 * count:
        raise ValueError(f"{segment.path} holds fewer than {offset + count} bytes")
    run(write_bytes_argv(segment.path, offset, complement(original)), server)
    return Damage(segment=segment, offset=offset, original_hex=original)


@step(name="repair-segment", timeout_seconds=120, retry_transport=True)
def undo_damage(server: SshTarget, damage: Damage) -> None:
    """Write the original bytes back (idempotent: writing them twice is the same)."""
    current_executor().run(write_bytes_argv(damage.segment.path, damage.offset, damage.original_hex), server)
