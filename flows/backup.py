"""Borg backups: ``python -m flows.backup init|adopt|backup|verify|spot-check|restore-drill|rotate|preview``.

The repository is a local path, or lives on a backup server that the client (where the sources are)
reaches with a key restricted to ``borg serve --append-only --restrict-to-path`` (``tasks.borg.remote``).

- ``init``: prepare the server (account, restricted client key, pinned host key); refuse if a
  repository exists there; generate a passphrase into a Prefect ``Secret`` block, ``borg init
  --encryption repokey-blake2``, ``borg key export`` to a file the user is told about.
- ``adopt``: take over a repository made by hand: its passphrase from standard input (or an
  environment variable), proved against the repository, then stored. No flow ever generates a
  passphrase for a repository that exists.
- ``backup``: every source must exist and be readable; ``borg create --json`` into a uniquely named
  archive, then ``check`` of the repository and the new archive (``--verify-data`` when asked). An
  archive whose check failed is named as suspect. Warnings are reported, not hidden.
- ``verify``: ``check`` of the repository and ``--verify-data`` of every archive (the weekly one);
  borg's lines that say what is damaged are kept.
- ``spot-check``: the daily check between full verifications: ``backup.spot_check_share`` of the
  source files read back from the newest archive (``borg list --format {sha256}``: only their chunks are
  read) and compared; a file unchanged since (same modification time) must match, one changed since is
  only counted; the file counts must agree within ``backup.spot_check_count_tolerance_pct``. Reads only.
- ``restore-drill``: manifest of the sources (type, mode, owner, mtime, size, link, sha256), a fresh
  archive of them, restored into a scratch directory and compared entry by entry; the sources are
  never touched. ``backup.restore_drill = "in-place"`` then also damages the sources and restores
  over them — only after the scratch restore was intact, with a safety copy that puts them back if
  anything fails.
- ``rotate``: keep what the configured scheme (GFS, FIFO, Tower of Hanoi) selects *of this project's
  archives* — never one made by hand or a checkpoint — delete the rest by name and compact, on the
  server as the repository's owner (the client's key cannot remove data). A dry run lists exactly what
  would be deleted.
- ``preview``: what each scheme keeps over a simulated year with the same settings, as text and a PNG.

The passphrase travels on stdin (``BORG_PASSPHRASE_FD=0``), never on a command line or in a log.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Literal

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from blocks.prefect_blocks import cluster_settings
from tasks.borg import commands as borg
from tasks.borg.hooks import Hooks
from tasks.borg.outcome import (
    BorgError,
    PassphraseMissing,
    ResultWrong,
)
from tasks.borg.preview import preview
from tasks.borg.remote import RepoAccess, backup_server, client_access, server_access
from tasks.borg.rotation import Scheme, is_ours
from tasks.borg.server import prepare_backup_server
from tasks.borg.spot_check import (
    SourceFile,
    SpotCheckReport,
    archived_path,
    compare,
    count_problem,
    sample,
)
from tasks.borg.steps import (
    BackupReport,
    archived_files,
    check,
    check_sources,
    checkpoints,
    copy_tree,
    create_archive,
    damage_tree,
    extract,
    init_repository,
    list_archives,
    passphrase,
    prove_editable,
    remove_tree,
    repository_exists,
    run_on,
)
from tasks.cli import run_cli
from tasks.cluster import borg_passphrase_block_name, store_secret, stored_secret
from tasks.context import current_executor, run_context
from tasks.drbd.plan import Refused
from tasks.events import (
    BACKUP_FAILED,
    BACKUP_VERIFIED,
    RESTORE_FAILED,
    RESTORE_VERIFIED,
    backup_resource,
    emit,
)
from tasks.manifest import Entry, differences, file_hashes, tree_listing, tree_manifest
from tasks.postgres import (
    Access,
    Dump,
    describe,
    dump_databases,
    postgres_access,
    prove_dump_restores,
    remove_dumps,
)
from tasks.settings import Settings, load_settings

DELETE_BATCH = 100  # archive names per `borg delete` (keeps the command line short)


class RestoreReport(BaseModel):
    archive: str
    mode: Literal["scratch", "in-place"]
    damage: str | None = Field(None, description="In-place only: what was done to the sources.")
    entries: int
    problems: list[str]
    editable: bool
    restored_into: str = Field(description="Where the archive was restored and compared.")
    sources_put_back: bool | None = Field(
        None, description="In-place only: a failed restore was undone from the safety copy."
    )
    databases: list[str] = Field(
        default_factory=list, description="Each database dump restored into a scratch database, and its rows."
    )
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return self.dry_run or (not self.problems and self.editable)


class RotationReport(BaseModel):
    scheme: str
    kept: list[str]
    deleted: list[str] = Field(description="Deleted, or (dry run) what a real run deletes.")
    untouched: list[str] = Field(
        default_factory=list,
        description="Archives this project did not make (or checkpoints): never rotated.",
    )
    dry_run: bool = False


def _publish(key: str, title: str, lines: list[str], rows: list[dict[str, Any]]) -> None:
    """Every backup flow run leaves a markdown report and a table in Prefect."""
    create_markdown_artifact(key=key, markdown="\n".join([f"# {title}", "", *lines]), description=title)
    create_table_artifact(key=f"{key}-table", table=rows, description=title)


def _emit(settings: Settings, event: str, payload: dict[str, Any]) -> None:
    emit(event, resource=backup_resource(client_access(settings).url), payload=payload)


# -- init and adopt ----------------------------------------------------------------------------------


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
    block = borg_passphrase_block_name(settings)
    stored = stored_secret(block)
    if repository_exists(access, stored):
        raise Refused(
            f"a borg repository already exists at {access.url}; nothing was changed "
            "(`python -m flows.backup adopt` takes it over with its passphrase)"
        )
    if stored is None and not current_executor().dry_run:
        stored = secrets.token_urlsafe(24)
        store_secret(block, stored)
    secret = stored or "(generated at init)"
    current_executor().add_secret(secret)
    key = init_repository(settings.backup, access, secret)
    get_run_logger().info(
        "repository %s created; its key is exported to %s on %s — keep a copy off that machine",
        access.url,
        key,
        access.target.name,
    )
    return key


@flow(name="borg-adopt")
def adopt(
    settings: Settings | None = None, passphrase_env: str | None = None, replace: bool = False
) -> list[str]:
    """Take over an existing repository: its passphrase (stdin, or the variable ``passphrase_env``),
    proved against it, then stored in the Secret block. Returns its archives."""
    settings = settings or load_settings()
    with run_context(settings, changes_state=True):
        return _adopt(settings, passphrase_env, replace)


def _read_passphrase(passphrase_env: str | None) -> str:
    if passphrase_env is not None:
        value = os.environ.get(passphrase_env, "")
        if not value:
            raise PassphraseMissing(f"environment variable {passphrase_env} is empty or not set")
        return value
    value = sys.stdin.readline().rstrip("\n")
    if not value:
        raise PassphraseMissing("no passphrase on standard input (one line; or use --passphrase-env NAME)")
    return value


def _adopt(settings: Settings, passphrase_env: str | None, replace: bool) -> list[str]:
    value = _read_passphrase(passphrase_env)
    current_executor().add_secret(value)
    access, block = client_access(settings), borg_passphrase_block_name(settings)
    archives = list_archives(access, value)  # proves the passphrase opens the repository
    stored = stored_secret(block)
    if stored is not None and stored != value and not replace:
        raise Refused(
            f"Secret block {block} already holds a different passphrase; nothing was changed "
            "(--replace overwrites it)"
        )
    if not current_executor().dry_run:
        store_secret(block, value, replace=replace)
    names = [a.name for a in archives]
    ours = [n for n in names if is_ours(settings.backup.archive_prefix, n)]
    get_run_logger().info(
        "adopted %s: passphrase stored in Secret block %s; %d archives (%d named like this project's, "
        "prefix %r; only those are ever rotated)",
        access.url,
        block,
        len(names),
        len(ours),
        settings.backup.archive_prefix,
    )
    return names


# -- backup and verify -------------------------------------------------------------------------------


@flow(name="borg-backup")
def backup(
    settings: Settings | None = None, verify_data: bool = False, cluster: str | None = None
) -> BackupReport:
    """Archive the sources, then check the repository and the new archive (``cluster``: the saved
    blocks' name to act on; None: the settings of the environment / hsf.toml)."""
    settings = settings or cluster_settings(cluster)
    with run_context(settings, changes_state=True):
        return _backup(settings, verify_data)


def _backup(settings: Settings, verify_data: bool) -> BackupReport:
    log = get_run_logger()
    access = client_access(settings)
    hooks: Hooks | None = None
    try:
        secret = passphrase(settings)
        hooks = Hooks.load(settings.backup.hooks, access.target)  # every hook readable before any runs
        databases = postgres_access(settings.backup, access.target)
        check_sources(settings.backup, access.target)
        hooks.run("before_backup")  # e.g. a dump of its own into the sources; its failure stops the backup
        try:
            dumps = dump_databases(databases) if databases else []
            report = create_archive(settings.backup, access, secret)
        finally:
            if databases:
                remove_dumps(databases)  # they live on in the archive only
        report.databases = [describe(d) for d in dumps]
        if report.dry_run:
            log.info("dry run: archive %s not made, so nothing to check", report.archive)
            hooks.run("after_backup")
            report.hooks = list(hooks.ran)
            return report
        try:
            report.checked = check(access, secret, verify_data, settings.backup.lock_wait_s)
        except BorgError as exc:
            raise type(exc)(
                f"archive {report.archive} was stored, but the check that followed failed — treat it as "
                f"suspect:\n{exc}",
                exc.exit_code,
                exc.msgid,
            ) from None
        report.warnings += [
            f"checkpoint archive {name}: an earlier backup was interrupted"
            for name in checkpoints(access, secret, settings.backup.archive_prefix)
        ]
        hooks.run("after_backup")
        report.hooks = list(hooks.ran)
    except Exception as exc:
        if hooks is not None:
            hooks.after_failure(exc)
        _emit(settings, BACKUP_FAILED, {"error": str(exc)})
        raise
    for warning in report.warnings:
        log.warning("backup: %s", warning)
    _publish(
        "borg-backup",
        f"Backup {report.archive}",
        [
            f"{report.files} files, {report.original_bytes:,} bytes read, "
            f"{report.deduplicated_bytes:,} bytes new in {access.url} (from {access.target.name}).",
            f"Checked: {', '.join(report.checked)}.",
            *([f"Hooks: {', '.join(report.hooks)}."] if report.hooks else []),
            *(
                [f"Databases dumped into the archive: {'; '.join(report.databases)}."]
                if report.databases
                else []
            ),
            *(f"- warning: {w}" for w in report.warnings),
        ],
        [report.model_dump()],
    )
    _emit(settings, BACKUP_VERIFIED, report.model_dump())
    return report


@flow(name="borg-verify")
def verify(settings: Settings | None = None, cluster: str | None = None) -> list[str]:
    """The weekly deep check: the repository, then every archive with every chunk's data read back."""
    settings = settings or cluster_settings(cluster)
    with run_context(settings, changes_state=False):
        return _verify(settings)


def _verify(settings: Settings) -> list[str]:
    access = client_access(settings)
    try:
        secret = passphrase(settings)
        checked = check(access, secret, verify_data=True, lock_wait=settings.backup.lock_wait_s, last=None)
        checked += [
            f"checkpoint archive {name} (an interrupted backup)"
            for name in checkpoints(access, secret, settings.backup.archive_prefix)
        ]
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


# -- spot check --------------------------------------------------------------------------------------


@flow(name="borg-spot-check")
def spot_check(settings: Settings | None = None, cluster: str | None = None) -> SpotCheckReport:
    """The daily check between full verifications: a share of the source files compared by content with
    the newest archive, and the file counts compared. Reads only."""
    settings = settings or cluster_settings(cluster)
    with run_context(settings, changes_state=False):
        return _spot_check(settings)


def _spot_check(settings: Settings) -> SpotCheckReport:
    backup_settings, access = settings.backup, client_access(settings)
    try:
        secret = passphrase(settings)
        ours = [a for a in list_archives(access, secret) if is_ours(backup_settings.archive_prefix, a.name)]
        if not ours:
            prefix = backup_settings.archive_prefix
            raise Refused(
                f"{access.url} holds no archive made by this project (prefix {prefix}) to compare with: run "
                "python -m flows.backup backup first"
            )
        newest = max(ours, key=lambda a: a.time)
        # Phase 1: what the sources hold now, and which files of the archive are under them.
        now: dict[str, SourceFile] = {}
        for root in backup_settings.sources:
            for relative, entry in tree_listing(access.target, root).items():
                if entry.kind == "f":
                    now[archived_path(root, relative)] = SourceFile(mtime=entry.mtime)
        roots = [root.strip("/") for root in backup_settings.sources]
        lock_wait = backup_settings.lock_wait_s
        archive_count = len(archived_files(access, secret, newest.name, roots, lock_wait=lock_wait))
        # Phase 2: the sample, read on both sides and compared.
        picked = sample(sorted(now), backup_settings.spot_check_share)
        hashes = file_hashes(access.target, [f"/{path}" for path in picked])
        for path in picked:
            now[path].sha256 = hashes.get(f"/{path}", "")
        then = archived_files(access, secret, newest.name, picked, with_content=True, lock_wait=lock_wait)
        changed, problems = compare(picked, now, then, int(newest.time.timestamp()))
        count = count_problem(len(now), archive_count, backup_settings.spot_check_count_tolerance_pct)
    except Exception as exc:
        _emit(settings, BACKUP_FAILED, {"error": str(exc), "check": "spot"})
        raise
    report = SpotCheckReport(
        archive=newest.name,
        archive_time=newest.time.isoformat(),
        source_files=len(now),
        archive_files=archive_count,
        sampled=picked,
        changed_since=changed,
        problems=[*problems, *([count] if count else [])],
    )
    verdict = "as archived" if report.ok else f"{len(report.problems)} problems"
    _publish(
        "borg-spot-check",
        f"Spot check of {newest.name}",
        [
            f"{len(picked)} of {len(now):,} source files read back from {newest.name} in {access.url}: "
            f"{verdict}; {len(changed)} changed since the archive (only counted). The archive holds "
            f"{archive_count:,} files of the sources.",
            "",
            *(f"- {p}" for p in report.problems[:50]),
        ],
        [{"path": f"/{path}", "result": _spot_result(path, report)} for path in picked],
    )
    if report.ok:
        _emit(settings, BACKUP_VERIFIED, {"check": "spot", **report.model_dump()})
    else:
        _emit(settings, BACKUP_FAILED, {"check": "spot", **report.model_dump()})
    return report


def _spot_result(path: str, report: SpotCheckReport) -> str:
    if path in report.changed_since:
        return "changed since the archive"
    return next((p for p in report.problems if p.endswith(f"/{path}")), "as archived")


# -- restore drill -----------------------------------------------------------------------------------


@flow(name="borg-restore-drill")
def restore_drill(
    settings: Settings | None = None,
    damage: Literal["remove", "encrypt"] = "remove",
    cluster: str | None = None,
) -> RestoreReport:
    """Restore a fresh archive of the sources and compare every entry (``damage``: in-place mode only)."""
    settings = settings or cluster_settings(cluster)
    with run_context(settings, changes_state=True):
        return _restore_drill(settings, damage)


def _restore_into_scratch(
    settings: Settings,
    access: RepoAccess,
    secret: str,
    archive: str,
    before: dict[str, Entry],
    dumps: tuple[Access, list[Dump]] | None = None,
) -> tuple[list[str], bool, str, list[str]]:
    """Extract ``archive`` into a scratch directory and compare it with ``before``; each of ``dumps``,
    as restored there, is restored into a scratch database and its rows compared. Always cleaned up.
    Returns the problems, whether a restored file proved editable, the scratch path and the databases."""
    client, root = access.target, settings.backup.sources[0]
    scratch = f"{settings.backup.scratch_dir}/{archive}"
    current_executor().run(["mkdir", "-p", scratch], client)
    try:
        try:
            warned = extract(access, secret, archive, into=scratch, lock_wait=settings.backup.lock_wait_s)
        except BorgError as exc:
            return [f"the archive could not be restored: {exc}"], False, scratch, []
        restored_root = f"{scratch}/{root.lstrip('/')}"
        after = tree_manifest(client, restored_root)
        problems = [f"borg warned: {w}" for w in warned] + differences(before, after)
        databases = []
        if dumps is not None:
            pg, written = dumps
            for dump in written:
                scratch_db = f"hsf_drill_{dump.database}"[:63]
                found = prove_dump_restores(pg, dump, f"{scratch}/{dump.path.lstrip('/')}", scratch_db)
                problems += found
                if not found:
                    databases.append(f"{describe(dump)} restored into {scratch_db}: every table's rows match")
        # an incomplete restore is not worth editing (and a full disk would fail the edit itself)
        return problems, not problems and prove_editable(restored_root, after, client), scratch, databases
    finally:
        remove_tree(scratch, client)


def _restore_drill(settings: Settings, damage: Literal["remove", "encrypt"]) -> RestoreReport:
    """The drill between its hooks: before_restore, then after_restore when it passed, on_error when not."""
    secret, access = passphrase(settings), client_access(settings)
    hooks = Hooks.load(settings.backup.hooks, access.target)  # every hook readable before any runs
    try:
        hooks.run("before_restore")
        report = _restore_phases(settings, secret, access, damage)
        if report.ok:
            hooks.run("after_restore")
    except Exception as exc:
        hooks.after_failure(exc)
        raise
    if not report.ok:
        found = report.problems[0] if report.problems else "the restored copy could not be edited"
        hooks.after_failure(RuntimeError(f"the restore drill found: {found}"))
    return report


def _restore_phases(
    settings: Settings, secret: str, access: RepoAccess, damage: Literal["remove", "encrypt"]
) -> RestoreReport:
    log = get_run_logger()
    client, root, mode = access.target, settings.backup.sources[0], settings.backup.restore_drill
    dry_run = current_executor().dry_run

    # Phase 1: what the sources hold now (the databases dumped into them), and an archive of exactly
    # that (last night's would differ).
    check_sources(settings.backup, client)
    databases = postgres_access(settings.backup, client)
    try:
        dumps = dump_databases(databases) if databases else []
        before = tree_manifest(client, root)
        fresh = create_archive(settings.backup, access, secret)
    finally:
        if databases:
            remove_dumps(databases)

    # Phase 2: restore into scratch and compare; the sources are not touched.
    if dry_run:
        log.info(
            "dry run: archive %s not made, so nothing to restore; the sources are untouched", fresh.archive
        )
        return RestoreReport(
            archive=fresh.archive, mode=mode, entries=len(before), problems=[], editable=False,
            restored_into=settings.backup.scratch_dir, dry_run=True,
        )  # fmt: skip
    problems, editable, scratch, restored_databases = _restore_into_scratch(
        settings, access, secret, fresh.archive, before, (databases, dumps) if databases else None
    )
    report = RestoreReport(
        archive=fresh.archive, mode=mode, entries=len(before), problems=problems, editable=editable,
        restored_into=scratch, databases=restored_databases,
    )  # fmt: skip

    # Phase 3 (in-place only, and only after an intact scratch restore): damage, restore over, verify.
    if mode == "in-place":
        if not report.ok:
            _publish_restore(settings, report)
            raise Refused(
                f"archive {fresh.archive} did not restore intact into {scratch} ({problems[0]}); "
                f"the sources were not touched"
            )
        try:
            report = _restore_in_place(settings, access, secret, fresh.archive, before, damage)
        finally:
            if databases:
                remove_dumps(databases)  # restored over the sources with them
        report = report.model_copy(update={"databases": restored_databases})
    _publish_restore(settings, report)
    return report


def _restore_in_place(
    settings: Settings,
    access: RepoAccess,
    secret: str,
    archive: str,
    before: dict[str, Entry],
    damage: Literal["remove", "encrypt"],
) -> RestoreReport:
    log = get_run_logger()
    client, root = access.target, settings.backup.sources[0]
    safety = f"{settings.backup.safety_dir}/{archive}"
    copy_tree(root, safety, client)
    if problems := differences(before, tree_manifest(client, safety)):
        remove_tree(safety, client)
        raise Refused(f"the safety copy of {root} differs ({problems[0]}); the sources were not touched")
    damage_tree(root, damage, client)
    try:
        warned = extract(access, secret, archive, into="/", lock_wait=settings.backup.lock_wait_s)
        problems = [f"borg warned: {w}" for w in warned] + differences(before, tree_manifest(client, root))
    except BorgError as exc:
        problems = [f"the in-place restore failed: {exc}"]
    editable = not problems and prove_editable(root, before, client)
    put_back = None
    if problems:
        log.warning("in-place restore of %s differs: putting the sources back from %s", root, safety)
        copy_tree(safety, root, client)
        put_back = not differences(before, tree_manifest(client, root))
        if not put_back:
            raise ResultWrong(f"{root} could not be put back as it was; the safety copy is kept at {safety}")
    remove_tree(safety, client)
    return RestoreReport(
        archive=archive, mode="in-place", damage=damage, entries=len(before), problems=problems,
        editable=editable, restored_into=root, sources_put_back=put_back,
    )  # fmt: skip


def _publish_restore(settings: Settings, report: RestoreReport) -> None:
    verdict = "every entry identical" if not report.problems else f"{len(report.problems)} problems"
    how = (
        f"restored into {report.restored_into} (the sources were not touched)"
        if report.mode == "scratch"
        else f"damaged in place ({report.damage}) and restored"
        + (
            " — the restore differed, so the sources were put back from the safety copy"
            if report.sources_put_back
            else ""
        )
    )
    _publish(
        "borg-restore-drill",
        "Restore drill",
        [
            f"{settings.backup.sources[0]} from {report.archive}: {how}; {verdict} across {report.entries} "
            f"entries; restored files editable: {report.editable}.",
            *(f"Database: {d}." for d in report.databases),
            "",
            *(f"- {p}" for p in report.problems[:50]),
        ],
        [{"entry": p} for p in report.problems] or [{"entry": f"all {report.entries} identical"}],
    )
    _emit(settings, RESTORE_VERIFIED if report.ok else RESTORE_FAILED, report.model_dump())


# -- rotation ----------------------------------------------------------------------------------------


@flow(name="borg-rotate")
def rotate(settings: Settings | None = None, scheme: Scheme | None = None) -> RotationReport:
    """Keep what the scheme (default: ``backup.rotation.scheme``) selects of this project's archives,
    delete the rest by name and compact — on the server, where data is removed."""
    settings = settings or load_settings()
    with run_context(settings, changes_state=True):
        return _rotate(settings, scheme or settings.backup.rotation.scheme)


def _rotate(settings: Settings, scheme: Scheme) -> RotationReport:
    log = get_run_logger()
    backup_settings = settings.backup
    secret, access = passphrase(settings), server_access(settings)
    repo, lock_wait = access.url, backup_settings.lock_wait_s
    archives = list_archives(access, secret, checkpoints=True)
    ours = [a for a in archives if is_ours(backup_settings.archive_prefix, a.name)]
    untouched = sorted(a.name for a in archives if a not in ours)
    keep = backup_settings.rotation.keep(ours, scheme)
    doomed = sorted(a.name for a in ours if a.name not in keep)
    report = RotationReport(
        scheme=scheme,
        kept=sorted(keep),
        deleted=doomed,
        untouched=untouched,
        dry_run=current_executor().dry_run,
    )
    if report.dry_run:
        log.info("dry run: %s would delete %d archives: %s", scheme, len(doomed), ", ".join(doomed) or "none")
    else:
        for start in range(0, len(doomed), DELETE_BATCH):
            names = doomed[start : start + DELETE_BATCH]
            run_on(access, borg.delete_argv(repo, names, lock_wait=lock_wait), secret)
        run_on(access, borg.compact_argv(repo, lock_wait=lock_wait), secret)
        remaining = {a.name for a in list_archives(access, secret, checkpoints=True)}
        if remaining != keep | set(untouched):
            raise ResultWrong(f"{scheme}: after rotation {sorted(remaining)} remain, expected {sorted(keep)}")
    _publish(
        "borg-rotate",
        f"Rotation ({scheme}){' — dry run' if report.dry_run else ''}",
        [
            f"{'would delete' if report.dry_run else 'deleted'} {len(doomed)}, kept {len(keep)} of this "
            f"project's archives (prefix {backup_settings.archive_prefix!r}) in {repo} "
            f"on {access.target.name}; "
            f"{len(untouched)} others never touched.",
        ],
        [
            {"archive": a.name, "kept": a.name not in doomed, "ours": a.name not in untouched}
            for a in sorted(archives, key=lambda a: a.time)
        ],
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.backup", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command",
        choices=["init", "adopt", "backup", "verify", "spot-check", "restore-drill", "rotate", "preview"],
    )
    parser.add_argument(
        "--png", type=Path, default=Path("rotation-preview.png"), help="preview: picture file"
    )
    parser.add_argument("--verify-data", action="store_true", help="backup: also verify every chunk")
    parser.add_argument(
        "--damage", choices=["remove", "encrypt"], default="remove", help="in-place restore drills only"
    )
    parser.add_argument("--scheme", choices=["gfs", "fifo", "hanoi"], help="rotate: default backup.rotation")
    parser.add_argument(
        "--passphrase-env", metavar="NAME", help="adopt: read the passphrase from this variable, not stdin"
    )
    parser.add_argument(
        "--replace", action="store_true", help="adopt: overwrite a different stored passphrase"
    )
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks of failures")
    args = parser.parse_args(argv)

    def act(settings: Settings) -> int:
        if args.command == "init":
            print(f"repository {settings.backup.repository} created; key exported to {init(settings)}")
        elif args.command == "adopt":
            names = adopt(settings, passphrase_env=args.passphrase_env, replace=args.replace)
            print(f"adopted {settings.backup.repository}: {len(names)} archives; passphrase stored")
        elif args.command == "backup":
            print(backup(settings, verify_data=args.verify_data).model_dump_json(indent=2))
        elif args.command == "verify":
            print(f"verified: {', '.join(verify(settings))}")
        elif args.command == "spot-check":
            checked = spot_check(settings)
            print(checked.model_dump_json(indent=2))
            return 0 if checked.ok else 1
        elif args.command == "restore-drill":
            report = restore_drill(settings, damage=args.damage)
            print(report.model_dump_json(indent=2))
            return 0 if report.ok else 1
        elif args.command == "rotate":
            print(rotate(settings, scheme=args.scheme).model_dump_json(indent=2))
        else:
            print(preview(args.png, settings.backup.rotation))
        return 0

    return run_cli(act, debug=args.debug)


if __name__ == "__main__":
    raise SystemExit(main())
