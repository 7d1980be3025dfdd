"""Borg backups: ``python -m flows.backup init|backup|verify|restore-drill|rotate|preview``.

The repository is a local path, or lives on a backup server that the client (where the sources are)
reaches with a key restricted to ``borg serve --append-only --restrict-to-path`` (``tasks.borg.remote``).

- ``init``: prepare the server (account, restricted client key, pinned host key), then
  ``borg init --encryption repokey-blake2`` with a passphrase from a Prefect ``Secret`` block
  (generated if absent), then ``borg key export`` to a file the user is told about.
- ``backup``: ``borg create --json`` of the sources, then ``check`` of the repository and the new
  archive (``--verify-data`` when asked). Warnings are reported, not hidden.
- ``verify``: ``check`` of the repository and ``--verify-data`` of every archive (the weekly one).
- ``restore-drill``: manifest of the sources (sha256, mode, owner, mtime, symlinks), a fresh archive,
  damage the sources (remove, or overwrite in place like ransomware), extract that archive, compare
  every entry, prove a restored file is editable (and put it back as it was).
- ``rotate``: keep what a scheme (GFS, FIFO, Tower of Hanoi) selects, delete the rest, compact — on
  the server, as the repository's owner: the client's key cannot remove data.
- ``preview``: what each scheme keeps over a simulated year, as text and a PNG (no repository needed).

The passphrase travels on stdin (``BORG_PASSPHRASE_FD=0``), never on a command line or in a log.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from tasks.borg import commands as borg
from tasks.borg.outcome import BorgOutcome, RepositoryMissing
from tasks.borg.preview import preview
from tasks.borg.remote import RepoAccess, backup_server, client_access, server_access
from tasks.borg.rotation import Archive, fifo, gfs, hanoi
from tasks.borg.run import run_borg
from tasks.borg.server import prepare_backup_server
from tasks.cli import run_cli
from tasks.cluster import borg_passphrase_block_name, shared_secret
from tasks.context import current_executor, refuse_dry_run, run_context
from tasks.events import (
    BACKUP_FAILED,
    BACKUP_VERIFIED,
    RESTORE_FAILED,
    RESTORE_VERIFIED,
    backup_resource,
    emit,
)
from tasks.executor import LOCAL, Target
from tasks.manifest import Entry, differences, tree_manifest
from tasks.settings import BackupSettings, Settings, load_settings
from tasks.step import step

Scheme = Literal["gfs", "fifo", "hanoi"]


def passphrase(settings: Settings) -> str:
    value = shared_secret(borg_passphrase_block_name(settings))
    current_executor().add_secret(value)
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


def _borg(access: RepoAccess, argv: list[str], secret: str, **kwargs: Any) -> BorgOutcome:
    """Run borg on the side ``access`` describes (its target, environment and account)."""
    return run_borg(argv, secret, access.target, env=access.env, account=access.account, **kwargs)


@step(name="borg-init", timeout_seconds=600)
def init_repository(backup: BackupSettings, access: RepoAccess, secret: str) -> str:
    """Create the repository (refusing if one exists) and export its key; returns the key file path."""
    try:
        _borg(access, borg.info_argv(access.url), secret, read_only=True)
        raise FileExistsError(f"a borg repository already exists at {access.url}")
    except RepositoryMissing:
        pass
    _borg(access, borg.init_argv(access.url, backup.encryption), secret)
    _borg(access, borg.key_export_argv(access.url, backup.key_export_path), secret)
    current_executor().run(["chmod", "600", backup.key_export_path], access.target)
    return backup.key_export_path


@step(name="borg-create", timeout_seconds=7200)
def create_archive(backup: BackupSettings, access: RepoAccess, secret: str) -> BackupReport:
    archive = f"{backup.archive_prefix}-{datetime.now(UTC):%Y-%m-%dT%H:%M:%S}"
    outcome = _borg(access, borg.create_argv(access.url, archive, backup.sources), secret)
    stats = json.loads(outcome.stdout)["archive"]["stats"]
    return BackupReport(
        archive=archive,
        files=stats["nfiles"],
        original_bytes=stats["original_size"],
        deduplicated_bytes=stats["deduplicated_size"],
        warnings=outcome.warnings,
    )


@step(name="borg-check", timeout_seconds=7200)
def check(access: RepoAccess, secret: str, verify_data: bool, last: int | None = 1) -> list[str]:
    """Repository consistency, then the newest archive's (or every archive's) metadata, and data if asked."""
    _borg(access, borg.check_argv(access.url, repository_only=True), secret, read_only=True, timeout=7200)
    _borg(
        access,
        borg.check_argv(access.url, archives_only=True, verify_data=verify_data, last=last),
        secret,
        read_only=True,
        timeout=7200,
    )
    archives = "newest archive" if last == 1 else "every archive"
    return ["repository", f"{archives} (data verified)" if verify_data else archives]


@step(name="borg-list", timeout_seconds=600)
def list_archives(access: RepoAccess, secret: str) -> list[Archive]:
    listing = json.loads(_borg(access, borg.list_argv(access.url), secret, read_only=True).stdout)
    return [Archive(name=a["name"], time=datetime.fromisoformat(a["time"])) for a in listing["archives"]]


@step(name="damage-tree", timeout_seconds=600)
def damage_tree(root: str, how: Literal["remove", "encrypt"], target: Target = LOCAL) -> None:
    """What the drill recovers from: everything removed, or every file overwritten with noise in place."""
    run = current_executor().run
    if how == "remove":
        run(["find", root, "-mindepth", "1", "-delete"], target)
    else:
        run(["find", root, "-type", "f", "-exec", "shred", "--iterations=1", "--exact", "{}", "+"], target)


@step(name="borg-extract", timeout_seconds=7200)
def extract(access: RepoAccess, secret: str, archive: str) -> None:
    """Restore in place: archives hold paths relative to /, so extract from /."""
    _borg(access, borg.extract_argv(access.url, archive), secret, cwd="/", timeout=7200)


@step(name="prove-editable", timeout_seconds=120)
def prove_editable(root: str, manifest: dict[str, Entry], target: Target = LOCAL) -> bool:
    files = sorted(path for path, entry in manifest.items() if entry.kind == "f")
    if not files:
        return False
    path = f"{root.rstrip('/')}/{files[0]}"
    marker = f"edited after restore {datetime.now(UTC).isoformat()}\n"
    run = current_executor().run
    run(["dd", f"of={path}", "oflag=append", "conv=notrunc", "status=none"], target, stdin=marker)
    edited = run(["tail", "-c", str(len(marker.encode())), path], target, read_only=True).stdout == marker
    original = manifest[files[0]]  # leave the user's file as it was restored
    run(["truncate", "-s", str(original.size), path], target)
    run(["touch", "-m", "-d", f"@{original.mtime}", path], target)
    return edited


def _publish(key: str, title: str, lines: list[str], rows: list[dict[str, Any]]) -> None:
    """Every backup flow run leaves a markdown report and a table in Prefect."""
    create_markdown_artifact(key=key, markdown="\n".join([f"# {title}", "", *lines]), description=title)
    create_table_artifact(key=f"{key}-table", table=rows, description=title)


def _emit(settings: Settings, event: str, payload: dict[str, Any]) -> None:
    emit(event, resource=backup_resource(client_access(settings).url), payload=payload)


@flow(name="borg-init")
def init(settings: Settings | None = None) -> str:
    """Prepare the backup server (account, restricted client key, pinned host key), create the repository."""
    settings = settings or load_settings()
    with run_context(settings, changes_state=True):
        return _init(settings)


def _init(settings: Settings) -> str:
    server = backup_server(settings)
    access = client_access(settings)
    if server is not None:
        prepare_backup_server(settings.backup, server, access.target)
    key = init_repository(settings.backup, access, passphrase(settings))
    get_run_logger().info(
        "repository %s created; its key is exported to %s on %s — keep a copy off that machine",
        access.url,
        key,
        access.target.name,
    )
    return key


@flow(name="borg-backup")
def backup(settings: Settings | None = None, verify_data: bool = False) -> BackupReport:
    settings = settings or load_settings()
    refuse_dry_run(settings, "the backup", "its archive and its check are the result; run it for real")
    with run_context(settings, changes_state=True):
        return _backup(settings, verify_data)


def _backup(settings: Settings, verify_data: bool) -> BackupReport:
    secret, access = passphrase(settings), client_access(settings)
    try:
        report = create_archive(settings.backup, access, secret)
        report.checked = check(access, secret, verify_data)
    except Exception as exc:
        _emit(settings, BACKUP_FAILED, {"error": str(exc)})
        raise
    for warning in report.warnings:
        get_run_logger().warning("borg create warned: %s", warning)
    _publish(
        "borg-backup",
        f"Backup {report.archive}",
        [
            f"{report.files} files, {report.original_bytes:,} bytes read, "
            f"{report.deduplicated_bytes:,} bytes new in {access.url} (from {access.target.name}).",
            f"Checked: {', '.join(report.checked)}.",
            *(f"- warning: {w}" for w in report.warnings),
        ],
        [report.model_dump()],
    )
    _emit(settings, BACKUP_VERIFIED, report.model_dump())
    return report


@flow(name="borg-verify")
def verify(settings: Settings | None = None) -> list[str]:
    """The weekly deep check: the repository, then every archive with every chunk's data read back."""
    settings = settings or load_settings()
    with run_context(settings, changes_state=False):
        return _verify(settings)


def _verify(settings: Settings) -> list[str]:
    access = client_access(settings)
    try:
        checked = check(access, passphrase(settings), verify_data=True, last=None)
    except Exception as exc:
        _emit(settings, BACKUP_FAILED, {"error": str(exc), "check": "verify-data"})
        raise
    _publish(
        "borg-verify",
        f"Verify {access.url}",
        [f"Checked: {', '.join(checked)}."],
        [{"checked": c} for c in checked],
    )
    _emit(settings, BACKUP_VERIFIED, {"checked": checked})
    return checked


@flow(name="borg-restore-drill")
def restore_drill(
    settings: Settings | None = None, damage: Literal["remove", "encrypt"] = "remove"
) -> RestoreReport:
    settings = settings or load_settings()
    refuse_dry_run(settings, "the restore drill", "its proof is a real damage and restore of the sources")
    with run_context(settings, changes_state=True):
        return _restore_drill(settings, damage)


def _restore_drill(settings: Settings, damage: Literal["remove", "encrypt"]) -> RestoreReport:
    secret, access = passphrase(settings), client_access(settings)
    client = access.target
    root = settings.backup.sources[0]
    # The drill restores an archive it takes itself, right after recording the tree: a comparison with
    # last night's archive would report every change made since as a failed restore.
    before = tree_manifest(client, root)
    fresh = create_archive(settings.backup, access, secret)
    damage_tree(root, damage, client)
    extract(access, secret, fresh.archive)
    after = tree_manifest(client, root)
    report = RestoreReport(
        archive=fresh.archive,
        damage=damage,
        entries=len(before),
        problems=differences(before, after),
        editable=prove_editable(root, after, client),
    )
    verdict = "every entry identical" if not report.problems else f"{len(report.problems)} problems"
    _publish(
        "borg-restore-drill",
        "Restore drill",
        [
            f"{root} on {client.name} damaged ({damage}), restored from {fresh.archive}: {verdict} "
            f"across {report.entries} entries; restored files editable: {report.editable}.",
            "",
            *(f"- {p}" for p in report.problems[:50]),
        ],
        [{"entry": p} for p in report.problems] or [{"entry": f"all {report.entries} identical"}],
    )
    _emit(settings, RESTORE_VERIFIED if report.ok else RESTORE_FAILED, report.model_dump())
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
    """Keep what the scheme selects, delete the rest and compact — on the server, where data is removed."""
    settings = settings or load_settings()
    refuse_dry_run(settings, "rotation", "it deletes archives and cannot yet list them without deleting")
    with run_context(settings, changes_state=True):
        return _rotate(settings, scheme, daily, weekly, monthly, last, levels)


def _rotate(
    settings: Settings, scheme: Scheme, daily: int, weekly: int, monthly: int, last: int, levels: int
) -> RotationReport:
    secret, access = passphrase(settings), server_access(settings)
    repo = access.url
    archives = list_archives(access, secret)
    if scheme == "gfs":
        keep = gfs(archives, daily, weekly, monthly)
        _borg(
            access, borg.prune_argv(repo, keep_daily=daily, keep_weekly=weekly, keep_monthly=monthly), secret
        )
    elif scheme == "fifo":
        keep = fifo(archives, last)
        _borg(access, borg.prune_argv(repo, keep_last=last), secret)
    else:  # borg has no Tower of Hanoi: select here, delete the rest by name
        keep = hanoi(archives, levels)
        doomed = [a.name for a in archives if a.name not in keep]
        if doomed:
            _borg(access, borg.delete_argv(repo, doomed), secret)
    _borg(access, borg.compact_argv(repo), secret)
    remaining = {a.name for a in list_archives(access, secret)}
    report = RotationReport(
        scheme=scheme,
        kept=sorted(remaining),
        deleted=sorted(a.name for a in archives if a.name not in remaining),
    )
    if remaining != keep:
        raise RuntimeError(f"{scheme}: borg kept {sorted(remaining)} but the scheme selects {sorted(keep)}")
    _publish(
        "borg-rotate",
        f"Rotation ({scheme})",
        [
            f"kept {len(report.kept)}, deleted {len(report.deleted)}; "
            f"compacted {repo} on {access.target.name}."
        ],
        [{"archive": a, "kept": a in remaining} for a in sorted(a.name for a in archives)],
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.backup", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["init", "backup", "verify", "restore-drill", "rotate", "preview"])
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
        elif args.command == "verify":
            print(f"verified: {', '.join(verify(settings))}")
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
