"""A tree's manifest — every entry's type, mode, owner, mtime, size, symlink target and sha256 — read
with ``find`` and ``sha256sum`` on any target. Every drill proves its data with it: the failover and
node-loss drills compare contents, the split-brain drill what each side changed, the HA upgrade and
the restore drill every attribute of every entry."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from tasks.context import current_executor
from tasks.executor import Target
from tasks.step import step

# type, mode, uid, gid, mtime (whole seconds), size, symlink target, path — NUL-separated records
FIND_FORMAT = r"%y\t%m\t%U\t%G\t%T@\t%s\t%l\t%P\0"


class Entry(BaseModel):
    """One entry of a tree (directories have size 0: their size depends on the filesystem)."""

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


HASH_FILES_PER_PROCESS = 16  # small enough that the processes share a tree of few large files


def hash_argv(jobs: int) -> list[str]:
    """``sha256sum`` over the NUL-separated paths on stdin, ``jobs`` processes at once: one core per
    process, so hashing a tree keeps pace with the client's disks instead of one core."""
    return [
        "xargs", "--null", "--no-run-if-empty", f"--max-procs={jobs}", f"--max-args={HASH_FILES_PER_PROCESS}",
        "sha256sum", "--",
    ]  # fmt: skip


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


def contents(manifest: dict[str, Entry]) -> dict[str, str]:
    """Regular files and their sha256: what a drill's data is, whatever the filesystem's directories."""
    return {path: entry.sha256 for path, entry in manifest.items() if entry.kind == "f"}


def lost_files(expected: dict[str, Entry], found: dict[str, Entry]) -> list[str]:
    """Regular files of ``expected`` that are missing from ``found`` or differ in size or content."""
    return sorted(
        path
        for path, entry in expected.items()
        if entry.kind == "f"
        and (path not in found or (found[path].size, found[path].sha256) != (entry.size, entry.sha256))
    )


@step(name="tree-manifest", timeout_seconds=3600)
def tree_manifest(target: Target, root: str) -> dict[str, Entry]:
    """The manifest of ``root`` on ``target``; a missing root is an empty tree (everything lost)."""
    run = current_executor().run
    listing = run(find_argv(root), target, read_only=True, ok_codes=(0, 1), timeout=3000).stdout
    prefix = root.rstrip("/") + "/"
    files = [prefix + path for path, entry in parse_manifest(listing, "", root).items() if entry.kind == "f"]
    jobs = int(run(["nproc"], target, read_only=True).stdout.strip() or 1)
    # xargs exits 123 when a sha256sum could not read a file: that file has no hash, as before
    hashed = run(
        hash_argv(jobs), target, stdin="\0".join(files), read_only=True, ok_codes=(0, 123), timeout=3000
    )
    return parse_manifest(listing, hashed.stdout, root)


@step(name="tree-listing", timeout_seconds=3600)
def tree_listing(target: Target, root: str) -> dict[str, Entry]:
    """The manifest of ``root`` without contents (no sha256): what is there, cheaply."""
    listing = current_executor().run(find_argv(root), target, read_only=True, ok_codes=(0, 1), timeout=3000)
    return parse_manifest(listing.stdout, "", root)


HASH_BATCH = 500  # paths per sha256sum (keeps the command line short)


@step(name="file-hashes", timeout_seconds=3600)
def file_hashes(target: Target, paths: Sequence[str]) -> dict[str, str]:
    """sha256 of each of ``paths`` (absolute) on ``target``; a path that cannot be read has none."""
    found: dict[str, str] = {}
    for start in range(0, len(paths), HASH_BATCH):
        batch = list(paths[start : start + HASH_BATCH])
        out = (
            current_executor()
            .run(["sha256sum", "--", *batch], target, read_only=True, ok_codes=(0, 1), timeout=3000)
            .stdout
        )
        for line in out.splitlines():
            digest, _, path = line.partition("  ")
            found[path] = digest
    return found
