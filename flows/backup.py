"""Borg backups: ``python -m flows.backup init|backup|restore-drill|rotate``.

- ``init``: ``borg init --encryption repokey-blake2`` with a passphrase from a Prefect ``Secret``
  block (generated if absent), then ``borg key export`` to a file the user is told about.
- ``backup``: ``borg create --json`` of the sources, then ``check`` of the repository and the new
  archive (``--verify-data`` when asked). Warnings are reported, not hidden.
- ``restore-drill``: manifest of the sources (sha256, mode, owner, mtime, symlinks), damage them
  (remove, or overwrite in place like ransomware), extract the newest archive, compare every entry,
  prove a restored file is editable.
- ``rotate``: keep what a scheme (GFS, FIFO, Tower of Hanoi) selects, delete the rest, compact.
- ``preview``: what each scheme keeps over a simulated year, as text and a PNG (no repository needed).

The passphrase travels on stdin (``BORG_PASSPHRASE_FD=0``), never on a command line or in a log.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from blocks.settings import BackupSettings, Settings, load_settings
from flows.cli import run_cli
from tasks.borg import commands as borg
from tasks.borg.manifest import Entry, differences, find_argv, hash_argv, parse_manifest
from tasks.borg.outcome import RepositoryMissing
from tasks.borg.preview import preview
from tasks.borg.rotation import Archive, fifo, gfs, hanoi
from tasks.borg.run import run_borg
from tasks.cluster import shared_secret
from tasks.executor import LOCAL, Target, default_executor

Scheme = Literal["gfs", "fifo", "hanoi"]


def passphrase(settings: Settings) -> str:
    value = shared_secret(settings.backup.passphrase_block or f"{settings.cluster_name}-borg-passphrase")
    default_executor().add_secret(value)
    return value


class BackupReport(BaseModel):
    archive: str
    files: int
    original_bytes: int
    deduplicated_bytes: int
    warnings: list[str] = Field(default_factory=list)
    checked: list[str] = Field(default_factory=list)


class RestoreReport(BaseModel):
    archive: str
    damage: str
    entries: int
    problems: list[str]
    editable: bool

    @property
    def ok(self) -> bool:
        return not self.problems and self.editable


class RotationReport(BaseModel):
    scheme: str
    kept: list[str]
    deleted: list[str]


@task(name="borg-init", cache_policy=NO_CACHE, timeout_seconds=600)
def init_repository(backup: BackupSettings, secret: str, target: Target = LOCAL) -> str:
    """Create the repository (refusing if one exists) and export its key; returns the key file path."""
    try:
        run_borg(borg.info_argv(backup.repository), secret, target, read_only=True)
        raise FileExistsError(f"a borg repository already exists at {backup.repository}")
    except RepositoryMissing:
        pass
    run_borg(borg.init_argv(backup.repository, backup.encryption), secret, target)
    run_borg(borg.key_export_argv(backup.repository, backup.key_export_path), secret, target)
    default_executor().run(["chmod", "600", backup.key_export_path], target)
    return backup.key_export_path


@task(name="borg-create", cache_policy=NO_CACHE, timeout_seconds=7200)
def create_archive(backup: BackupSettings, secret: str, target: Target = LOCAL) -> BackupReport:
    archive = f"{backup.archive_prefix}-{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}"
    outcome = run_borg(borg.create_argv(backup.repository, archive, backup.sources), secret, target)
    stats = json.loads(outcome.stdout)["archive"]["stats"]
    return BackupReport(
        archive=archive,
        files=stats["nfiles"],
        original_bytes=stats["original_size"],
        deduplicated_bytes=stats["deduplicated_size"],
        warnings=outcome.warnings,
    )


@task(name="borg-check", cache_policy=NO_CACHE, timeout_seconds=7200)
def check(backup: BackupSettings, secret: str, verify_data: bool, target: Target = LOCAL) -> list[str]:
    """Repository consistency, then the newest archive's metadata (and every chunk's data if asked)."""
    run_borg(borg.check_argv(backup.repository, repository_only=True), secret, target, read_only=True)
    run_borg(
        borg.check_argv(backup.repository, archives_only=not verify_data, verify_data=verify_data, last=1),
        secret,
        target,
        read_only=True,
    )
    return ["repository", "newest archive (data verified)" if verify_data else "newest archive"]


@task(name="borg-list", cache_policy=NO_CACHE, timeout_seconds=600)
def list_archives(backup: BackupSettings, secret: str, target: Target = LOCAL) -> list[Archive]:
    listing = json.loads(run_borg(borg.list_argv(backup.repository), secret, target, read_only=True).stdout)
    return [Archive(name=a["name"], time=datetime.fromisoformat(a["time"])) for a in listing["archives"]]


@task(name="tree-manifest", cache_policy=NO_CACHE, timeout_seconds=3600)
def tree_manifest(root: str, target: Target = LOCAL) -> dict[str, Entry]:
    run = default_executor().run
    listing = run(find_argv(root), target, read_only=True, timeout=3000).stdout
    hashes = run(hash_argv(root), target, read_only=True, timeout=3000).stdout
    return parse_manifest(listing, hashes, root)


@task(name="damage-tree", cache_policy=NO_CACHE, timeout_seconds=600)
def damage_tree(root: str, how: Literal["remove", "encrypt"], target: Target = LOCAL) -> None:
    """What the drill recovers from: everything removed, or every file overwritten with noise in place."""
    run = default_executor().run
    if how == "remove":
        run(["find", root, "-mindepth", "1", "-delete"], target)
    else:
        run(["find", root, "-type", "f", "-exec", "shred", "--iterations=1", "--exact", "{}", "+"], target)


@task(name="borg-extract", cache_policy=NO_CACHE, timeout_seconds=7200)
def extract(backup: BackupSettings, secret: str, archive: str, target: Target = LOCAL) -> None:
    """Restore in place: archives hold paths relative to /, so extract from /."""
    run_borg(borg.extract_argv(backup.repository, archive), secret, target, cwd="/")


@task(name="prove-editable", cache_policy=NO_CACHE, timeout_seconds=120)
def prove_editable(root: str, manifest: dict[str, Entry], target: Target = LOCAL) -> bool:
    files = sorted(path for path, entry in manifest.items() if entry.kind == "f")
    if not files:
        return False
    path = f"{root.rstrip('/')}/{files[0]}"
    marker = f"edited after restore {datetime.now(UTC).isoformat()}\n"
    run = default_executor().run
    run(["dd", f"of={path}", "oflag=append", "conv=notrunc", "status=none"], target, stdin=marker)
    return run(["tail", "-n", "1", path], target, read_only=True).stdout == marker


@flow(name="borg-init")
def init(settings: Settings | None = None) -> str:
    settings = settings or load_settings()
    key = init_repository(settings.backup, passphrase(settings))
    get_run_logger().info(
        "repository %s created; its key is exported to %s — keep a copy off this machine",
        settings.backup.repository,
        key,
    )
    return key


@flow(name="borg-backup")
def backup(settings: Settings | None = None, verify_data: bool = False) -> BackupReport:
    settings = settings or load_settings()
    secret = passphrase(settings)
    report = create_archive(settings.backup, secret)
    report.checked = check(settings.backup, secret, verify_data)
    for warning in report.warnings:
        get_run_logger().warning("borg create warned: %s", warning)
    create_table_artifact(
        key="borg-backup", table=[report.model_dump()], description=f"Backup {report.archive}"
    )
    return report


@flow(name="borg-restore-drill")
def restore_drill(
    settings: Settings | None = None, damage: Literal["remove", "encrypt"] = "remove"
) -> RestoreReport:
    settings = settings or load_settings()
    secret = passphrase(settings)
    archives = list_archives(settings.backup, secret)
    if not archives:
        raise RuntimeError(f"no archive in {settings.backup.repository} to restore from: run a backup first")
    newest = max(archives, key=lambda a: a.time)
    root = settings.backup.sources[0]
    before = tree_manifest(root)
    damage_tree(root, damage)
    extract(settings.backup, secret, newest.name)
    after = tree_manifest(root)
    report = RestoreReport(
        archive=newest.name,
        damage=damage,
        entries=len(before),
        problems=differences(before, after),
        editable=prove_editable(root, after),
    )
    verdict = "every entry identical" if not report.problems else f"{len(report.problems)} problems"
    create_markdown_artifact(
        key="borg-restore-drill",
        markdown=f"# Restore drill\n\n{root} damaged ({damage}), restored from {newest.name}: {verdict} "
        f"across {report.entries} entries; restored files editable: {report.editable}.\n\n"
        + "\n".join(f"- {p}" for p in report.problems[:50]),
    )
    return report


@flow(name="borg-rotate")
def rotate(
    settings: Settings | None = None,
    scheme: Scheme = "gfs",
    daily: int = 7,
    weekly: int = 4,
    monthly: int = 6,
    last: int = 10,
    levels: int = 5,
) -> RotationReport:
    settings = settings or load_settings()
    secret = passphrase(settings)
    repo = settings.backup.repository
    archives = list_archives(settings.backup, secret)
    if scheme == "gfs":
        keep = gfs(archives, daily, weekly, monthly)
        run_borg(borg.prune_argv(repo, keep_daily=daily, keep_weekly=weekly, keep_monthly=monthly), secret)
    elif scheme == "fifo":
        keep = fifo(archives, last)
        run_borg(borg.prune_argv(repo, keep_last=last), secret)
    else:  # borg has no Tower of Hanoi: select here, delete the rest by name
        keep = hanoi(archives, levels)
        doomed = [a.name for a in archives if a.name not in keep]
        if doomed:
            run_borg(borg.delete_argv(repo, doomed), secret)
    run_borg(borg.compact_argv(repo), secret)
    remaining = {a.name for a in list_archives(settings.backup, secret)}
    report = RotationReport(
        scheme=scheme,
        kept=sorted(remaining),
        deleted=sorted(a.name for a in archives if a.name not in remaining),
    )
    if remaining != keep:
        raise RuntimeError(f"{scheme}: borg kept {sorted(remaining)} but the scheme selects {sorted(keep)}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.backup", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["init", "backup", "restore-drill", "rotate", "preview"])
    parser.add_argument(
        "--png", type=Path, default=Path("rotation-preview.png"), help="preview: picture file"
    )
    parser.add_argument("--verify-data", action="store_true", help="backup: also verify every chunk")
    parser.add_argument("--damage", choices=["remove", "encrypt"], default="remove")
    parser.add_argument("--scheme", choices=["gfs", "fifo", "hanoi"], default="gfs")
    args = parser.parse_args(argv)

    def act(settings: Settings) -> int:
        if args.command == "init":
            print(f"repository {settings.backup.repository} created; key exported to {init(settings)}")
        elif args.command == "backup":
            print(backup(settings, verify_data=args.verify_data).model_dump_json(indent=2))
        elif args.command == "restore-drill":
            report = restore_drill(settings, damage=args.damage)
            print(report.model_dump_json(indent=2))
            return 0 if report.ok else 1
        elif args.command == "rotate":
            print(rotate(settings, scheme=args.scheme).model_dump_json(indent=2))
        else:
            print(preview(args.png))
        return 0

    return run_cli(act)


if __name__ == "__main__":
    raise SystemExit(main())
