"""A tree's manifest — every entry's type, mode, owner, mtime, size, symlink target and sha256 — read
with ``find`` and ``sha256sum`` on any target, and compared entry by entry after a restore."""

from __future__ import annotations

from pydantic import BaseModel

# type, mode, uid, gid, mtime (whole seconds), size, symlink target, path — NUL-separated records
FIND_FORMAT = r"%y\t%m\t%U\t%G\t%T@\t%s\t%l\t%P\0"


class Entry(BaseModel):
    kind: str  # f file, d directory, l symlink, …
    mode: str
    uid: int
    gid: int
    mtime: int
    size: int
    link: str = ""
    sha256: str = ""


def find_argv(root: str) -> list[str]:
    return ["find", root, "-mindepth", "1", "-printf", FIND_FORMAT]


def hash_argv(root: str) -> list[str]:
    return ["find", root, "-type", "f", "-exec", "sha256sum", "{}", "+"]


def parse_manifest(find_output: str, sha_output: str, root: str) -> dict[str, Entry]:
    """Entries by path relative to ``root``; directory sizes are ignored (they depend on the fs)."""
    entries: dict[str, Entry] = {}
    for record in find_output.split("\0"):
        if not record:
            continue
        kind, mode, uid, gid, mtime, size, link, path = record.split("\t", 7)
        entries[path] = Entry(
            kind=kind, mode=mode, uid=int(uid), gid=int(gid), mtime=int(float(mtime)),
            size=0 if kind == "d" else int(size), link=link,
        )  # fmt: skip
    prefix = root.rstrip("/") + "/"
    for line in sha_output.splitlines():
        digest, _, path = line.partition("  ")
        relative = path[len(prefix) :] if path.startswith(prefix) else path
        if relative in entries:
            entries[relative].sha256 = digest
    return entries


def differences(expected: dict[str, Entry], found: dict[str, Entry]) -> list[str]:
    """One line per entry that is missing, extra, or differs in any recorded attribute."""
    problems = [f"missing: {path}" for path in sorted(set(expected) - set(found))]
    problems += [f"unexpected: {path}" for path in sorted(set(found) - set(expected))]
    for path in sorted(set(expected) & set(found)):
        want, got = expected[path], found[path]
        changed = [field for field in Entry.model_fields if getattr(want, field) != getattr(got, field)]
        if changed:
            problems.append(f"differs: {path} ({', '.join(changed)})")
    return problems
