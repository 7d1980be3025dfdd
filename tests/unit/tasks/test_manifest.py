"""tasks/manifest.py on a real tree: the same find and sha256sum the drills run on the nodes, run here."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tasks.executor import LOCAL
from tasks.manifest import contents, differences, lost_files, tree_manifest


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a b.bin").write_bytes(b"first file")
    (root / "sub" / "c").write_bytes(b"second")
    (root / "link").symlink_to("sub/c")
    os.utime(root / "a b.bin", (1_700_000_000, 1_700_000_000))
    return root


def test_manifest_records_every_entry_relative_to_the_root(tmp_path: Path) -> None:
    root = _tree(tmp_path / "tree")
    manifest = tree_manifest.fn(LOCAL, str(root))
    assert sorted(manifest) == ["a b.bin", "link", "sub", "sub/c"]
    assert [manifest[p].kind for p in ("a b.bin", "link", "sub")] == ["f", "l", "d"]
    assert manifest["link"].link == "sub/c" and manifest["a b.bin"].mtime == 1_700_000_000
    assert manifest["a b.bin"].size == len(b"first file") and manifest["sub"].size == 0
    assert contents(manifest) == {
        "a b.bin": hashlib.sha256(b"first file").hexdigest(),
        "sub/c": hashlib.sha256(b"second").hexdigest(),
    }


def test_a_missing_root_is_an_empty_tree(tmp_path: Path) -> None:
    assert tree_manifest.fn(LOCAL, str(tmp_path / "absent")) == {}


def test_lost_files_and_differences_name_what_changed(tmp_path: Path) -> None:
    root = _tree(tmp_path / "tree")
    before = tree_manifest.fn(LOCAL, str(root))
    (root / "sub" / "c").write_bytes(b"changed")  # content
    (root / "a b.bin").chmod(0o600)  # mode only: not lost, but a difference
    (root / "new").write_bytes(b"")
    after = tree_manifest.fn(LOCAL, str(root))
    assert lost_files(before, after) == ["sub/c"]
    assert lost_files(before, {}) == ["a b.bin", "sub/c"]
    problems = differences(before, after)
    assert "unexpected: new" in problems
    assert any(p.startswith("differs: a b.bin (mode") for p in problems)
    assert any(p.startswith("differs: sub/c (") and "sha256" in p for p in problems)


def test_many_files_are_hashed_in_parallel_and_every_one_gets_its_own_digest(tmp_path: Path) -> None:
    """More files than one sha256sum takes (16), hashed by several at once: no digest lands on another
    file, and odd names (spaces, a leading dash) arrive whole through xargs' NUL-separated input."""
    root = tmp_path / "many"
    root.mkdir()
    bodies = {f"{'-' if n % 7 == 0 else ''}file {n:03d}": os.urandom(n * 97 % 4096) for n in range(100)}
    for name, body in bodies.items():
        (root / name).write_bytes(body)
    assert contents(tree_manifest.fn(LOCAL, str(root))) == {
        name: hashlib.sha256(body).hexdigest() for name, body in bodies.items()
    }
