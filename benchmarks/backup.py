"""Benchmark: the backup flow vs raw borg on the same data set, in one run.

    .venv/bin/python -m benchmarks.backup [--mib 256]

Makes a data set (random and repetitive files), then times: the flow's backup (create + check) and a
raw ``borg create`` to a second repository; a second, unchanged backup of each (dedup ratio); the
flow's extract vs a raw ``borg extract``; the restore drill's verification of the tree (its manifest:
metadata and sha256, hashed in parallel) vs one ``sha256sum`` over the same files. Prints throughput
and flow/raw ratios. Figures only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from flows.backup import backup, extract, init, passphrase
from tasks.borg.commands import in_directory, with_passphrase_on_stdin
from tasks.borg.remote import client_access
from tasks.context import current_executor
from tasks.executor import LOCAL
from tasks.manifest import tree_manifest
from tasks.settings import Settings, load_settings


def make_data(root: Path, mib: int) -> None:
    """Half random (incompressible), half repetitive text, in files of 1 to 8 MiB."""
    root.mkdir(parents=True)
    chunk = (b"log line: nothing happened here today\n" * 30000)[: 1 << 20]
    written, index = 0, 0
    while written < mib:
        size = 1 + index % 8
        body = os.urandom(size << 20) if index % 2 else chunk * size
        (root / f"f{index:04d}.bin").write_bytes(body)
        written, index = written + size, index + 1


def raw_borg(args: list[str], secret: str, env: dict[str, str], cwd: str | None = None) -> float:
    """Plain borg, passphrase on stdin as the flow does, no interpretation, no Prefect."""
    argv = ["borg", *args] if cwd is None else in_directory(cwd, ["borg", *args])
    started = time.monotonic()
    current_executor().run(with_passphrase_on_stdin(argv), stdin=secret, env=env, timeout=3600)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="size of the data set")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="hsf-bench-backup-"))
    try:
        data = work / "data"
        make_data(data, args.mib)
        env = {"BORG_BASE_DIR": str(work / "borg-base")}
        os.environ.update(env)
        settings: Settings = load_settings(
            backup={"repository": str(work / "flow-repo"), "sources": [str(data)],
                    "key_export_path": str(work / "flow.key"), "passphrase_block": "bench-borg-passphrase"}
        )  # fmt: skip
        init(settings)  # makes the repository and its passphrase
        secret = passphrase(settings)
        raw_repo = str(work / "raw-repo")
        raw_borg(["init", "--encryption", "repokey-blake2", raw_repo], secret, env)

        started = time.monotonic()
        first = backup(settings)
        flow_create = time.monotonic() - started
        raw_create = raw_borg(["create", "--compression", "lz4", f"{raw_repo}::a1", str(data)], secret, env)
        started = time.monotonic()
        second = backup(settings)
        flow_second = time.monotonic() - started
        raw_second = raw_borg(["create", "--compression", "lz4", f"{raw_repo}::a2", str(data)], secret, env)

        shutil.rmtree(data)
        started = time.monotonic()
        extract.fn(client_access(settings), secret, second.archive)
        flow_extract = time.monotonic() - started
        shutil.rmtree(data)
        raw_extract = raw_borg(["extract", f"{raw_repo}::a2"], secret, env, cwd="/")

        # the restore drill's verification (every entry's metadata and sha256) against plain sha256sum
        started = time.monotonic()
        tree_manifest.fn(LOCAL, str(data))
        flow_verify = time.monotonic() - started
        started = time.monotonic()
        current_executor().run(
            ["find", str(data), "-type", "f", "-exec", "sha256sum", "{}", "+"], timeout=3600
        )
        raw_verify = time.monotonic() - started

        mib = args.mib
        print(f"\nbackup benchmark, {mib} MiB ({first.files} files)   flow      raw    flow/raw")
        for label, flow_s, raw_s in (
            ("first backup (flow: + check)", flow_create, raw_create),
            ("second, unchanged backup", flow_second, raw_second),
            ("extract", flow_extract, raw_extract),
            ("verify a tree (vs sha256sum)", flow_verify, raw_verify),
        ):
            print(f"  {label:<32} {mib / flow_s:6.1f} MiB/s {mib / raw_s:6.1f} MiB/s  {flow_s / raw_s:5.2f}")
        ratio = second.original_bytes / max(second.deduplicated_bytes, 1)
        print(
            f"  dedup of the unchanged second backup: {second.deduplicated_bytes:,} new bytes of "
            f"{second.original_bytes:,} ({ratio:,.0f}:1)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
