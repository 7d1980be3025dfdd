"""Benchmark: the backup flow's steps vs the same borg commands run bare, on the same data set.

    .venv/bin/python -m benchmarks.backup [--mib 256] [--rounds 3]

Makes a data set (random and repetitive files), then per round, on fresh repositories on each side:

- like for like, step by step: ``borg create``, ``borg check`` (the repository, then the newest
  archive: the check after each backup) and ``borg list`` of the checkpoints — on one side the flow's own
  Prefect tasks (which also parse borg's JSON and judge its exit code), on the other the same argv built
  by the same builders, run bare; then ``borg extract`` of the archive the same two ways;
- the whole backup flow (sources checked, create, check, checkpoints listed, report, event) against the
  bare sequence of its three borg commands, on the unchanged data (a second backup);
- the restore drill's verification of the tree (its manifest: every entry's metadata and sha256, hashed
  in parallel on the client) against plain ``sha256sum`` over the same files, one process.

Prints the medians over the rounds and the flow/bare ratios. Figures only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow

from flows.backup import backup, init, passphrase
from tasks.borg import commands as borg
from tasks.borg.remote import RepoAccess, client_access
from tasks.borg.rotation import archive_name
from tasks.borg.steps import check, checkpoints, create_archive, extract
from tasks.context import current_executor, run_context
from tasks.executor import LOCAL
from tasks.manifest import tree_manifest
from tasks.settings import Settings, load_settings

ROWS = ("create", "check", "list checkpoints", "extract", "whole backup (unchanged data)")


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


def timed(action: Callable[[], Any]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def bare(argv: list[str], secret: str, cwd: str | None = None) -> float:
    """Plain borg, passphrase on stdin as the flow gives it; no task, no parsing, no interpretation."""
    full = borg.with_passphrase_on_stdin(argv if cwd is None else borg.in_directory(cwd, argv))
    return timed(lambda: current_executor().run(full, stdin=secret, timeout=3600))


@flow(name="bench-backup-steps")
def flow_steps(settings: Settings, secret: str, restore_into: str) -> dict[str, float]:
    """The backup flow's own tasks, one after another, as its run calls them."""
    with run_context(settings, changes_state=True):
        access, lock_wait = client_access(settings), settings.backup.lock_wait_s
        made: list[str] = []
        return {
            "create": timed(lambda: made.append(create_archive(settings.backup, access, secret).archive)),
            "check": timed(lambda: check(access, secret, False, lock_wait)),
            "list checkpoints": timed(lambda: checkpoints(access, secret, settings.backup.archive_prefix)),
            "extract": timed(lambda: extract(access, secret, made[0], into=restore_into)),
        }


def bare_backup(settings: Settings, access: RepoAccess, secret: str) -> tuple[dict[str, float], str]:
    """The backup flow's three borg commands, built by the same builders, run bare; returns each one's time
    and the archive's name."""
    lock_wait, prefix = settings.backup.lock_wait_s, settings.backup.archive_prefix
    archive = archive_name(prefix, datetime.now(UTC))
    create = borg.create_argv(access.url, archive, settings.backup.sources, lock_wait=lock_wait)
    check_repository = borg.check_argv(access.url, repository_only=True, lock_wait=lock_wait)
    check_archive = borg.check_argv(access.url, archives_only=True, last=1, lock_wait=lock_wait)
    listing = borg.list_argv(access.url, glob=f"{prefix}-*", checkpoints=True, lock_wait=lock_wait)
    figures = {
        "create": bare(create, secret),
        "check": bare(check_repository, secret) + bare(check_archive, secret),
        "list checkpoints": bare(listing, secret),
    }
    return figures, archive


def bare_steps(settings: Settings, access: RepoAccess, secret: str, restore_into: str) -> dict[str, float]:
    """Like :func:`flow_steps`, bare."""
    figures, archive = bare_backup(settings, access, secret)
    extract_argv = borg.extract_argv(access.url, archive, lock_wait=600)
    return {**figures, "extract": bare(extract_argv, secret, cwd=restore_into)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="size of the data set")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each on fresh repositories")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="hsf-bench-backup-"))
    flow_runs: list[dict[str, float]] = []
    bare_runs: list[dict[str, float]] = []
    try:
        data = work / "data"
        make_data(data, args.mib)
        os.environ["BORG_BASE_DIR"] = str(work / "borg-base")
        for round_no in range(1, args.rounds + 1):
            sides = {}
            for side in ("flow", "bare"):
                settings = load_settings(
                    backup={"repository": str(work / f"{side}-repo-{round_no}"), "sources": [str(data)],
                            "key_export_path": str(work / f"{side}-{round_no}.key"),
                            "passphrase_block": "bench-borg-passphrase"}
                )  # fmt: skip
                init(settings)  # the repository, with the (one, reused) passphrase block
                restore = work / f"{side}-restore-{round_no}"
                restore.mkdir()
                sides[side] = (settings, str(restore))
            (flow_settings, flow_restore), (bare_settings, bare_restore) = sides["flow"], sides["bare"]
            secret = passphrase(flow_settings)
            figures = flow_steps(flow_settings, secret, flow_restore)
            figures["whole backup (unchanged data)"] = timed(lambda: backup(flow_settings))  # noqa: B023
            bare_access = client_access(bare_settings)
            raw = bare_steps(bare_settings, bare_access, secret, bare_restore)
            second, _ = bare_backup(bare_settings, bare_access, secret)
            raw["whole backup (unchanged data)"] = sum(second.values())
            figures["verify a tree (vs sha256sum)"] = timed(lambda: tree_manifest.fn(LOCAL, str(data)))
            raw["verify a tree (vs sha256sum)"] = timed(
                lambda: current_executor().run(
                    ["find", str(data), "-type", "f", "-exec", "sha256sum", "{}", "+"], timeout=3600
                )
            )
            flow_runs.append(figures)
            bare_runs.append(raw)
            for restored in (flow_restore, bare_restore):
                shutil.rmtree(restored)
            print(f"round {round_no}: " + ", ".join(f"{k} {figures[k] / raw[k]:.2f}" for k in figures))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mib = args.mib
    print(f"\nbackup benchmark, {mib} MiB, {args.rounds} round(s), medians     flow       bare   flow/bare")
    for key in (*ROWS, "verify a tree (vs sha256sum)"):
        flow_s = statistics.median(r[key] for r in flow_runs)
        bare_s = statistics.median(r[key] for r in bare_runs)
        print(f"  {key:<36} {flow_s:8.2f} s {bare_s:8.2f} s {flow_s / bare_s:8.2f}")
    verify = statistics.median(r["verify a tree (vs sha256sum)"] for r in flow_runs)
    print(f"  the verification hashed {mib / verify:.1f} MiB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
