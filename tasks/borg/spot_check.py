"""The spot check between full verifications: a share of the source files, read back from the newest
archive and compared with what the sources hold, and the file counts compared.

A file whose modification time is the one the archive recorded must have the archived content: a
difference means the archive does not hold what the file held (or the file changed without its time
changing — both worth a human's look). A file modified since was backed up as it was then, and is only
counted. A file the archive lacks is a problem unless it appeared after the archive was made.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from datetime import datetime

from pydantic import BaseModel, Field


class ArchivedFile(BaseModel):
    """A regular file as the archive holds it."""

    sha256: str = ""
    mtime: int = Field(description="Modification time in whole seconds since the epoch.")


class SourceFile(BaseModel):
    """A regular file of the sources now."""

    mtime: int
    sha256: str = ""


class SpotCheckReport(BaseModel):
    archive: str
    archive_time: str
    source_files: int = Field(description="Regular files in the sources now.")
    archive_files: int = Field(description="Regular files the archive holds of the same sources.")
    sampled: list[str] = Field(description="Paths compared by content (relative to /).")
    changed_since: list[str] = Field(
        default_factory=list, description="Sampled files modified (or made) after the archive: only counted."
    )
    problems: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def sample(paths: Sequence[str], share: float, seed: int | None = None) -> list[str]:
    """``share`` of ``paths`` (at least one when there are any), drawn at random, sorted."""
    if not paths:
        return []
    count = min(len(paths), max(1, math.ceil(share * len(paths))))
    return sorted(random.Random(seed).sample(list(paths), count))


def archived_path(root: str, relative: str) -> str:
    """Where borg keeps ``root``/``relative``: archives hold paths relative to /."""
    return f"{root.strip('/')}/{relative}"


def parse_archive_mtime(text: str) -> int:
    """borg's ``mtime`` (ISO, local time, microseconds) in whole seconds since the epoch."""
    return int(datetime.fromisoformat(text).timestamp())


def compare(
    sampled: Sequence[str],
    sources: Mapping[str, SourceFile],
    archived: Mapping[str, ArchivedFile],
    archive_epoch: int,
) -> tuple[list[str], list[str]]:
    """(changed since the archive, problems) for the sampled paths; every map is keyed by the path
    relative to /, as borg stores it."""
    changed, problems = [], []
    for path in sampled:
        now, then = sources[path], archived.get(path)
        if then is None:
            if now.mtime >= archive_epoch:
                changed.append(path)
            else:
                problems.append(f"missing from the archive: /{path}")
        elif now.mtime != then.mtime:
            changed.append(path)
        elif now.sha256 != then.sha256:
            problems.append(f"differs from the archive with the same modification time: /{path}")
    return changed, problems


def count_problem(source_files: int, archive_files: int, tolerance_pct: float) -> str | None:
    """One line when the archive's file count is further from the sources' than the tolerance allows."""
    if source_files == archive_files:
        return None
    off_pct = abs(source_files - archive_files) * 100 / max(source_files, 1)
    if off_pct <= tolerance_pct:
        return None
    return (
        f"the archive holds {archive_files:,} files and the sources {source_files:,} now "
        f"({off_pct:.1f} % apart, the tolerance is {tolerance_pct:g} %)"
    )
