"""The Borg steps every backup flow composes: the passphrase, borg on the side that runs it, create,
check, list, extract, and the tree operations of the restore drills. One home for each, so a flow that
injects a backup fault runs the same steps as the backup it breaks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from tasks.borg import commands as borg
from tasks.borg.outcome import (
    BorgOutcome,
    PassphraseMissing,
    RepositoryMissing,
    SourceMissing,
    WrongPassphrase,
)
from tasks.borg.remote import RepoAccess
from tasks.borg.rotation import Archive, archive_name, is_checkpoint
from tasks.borg.run import run_borg
from tasks.borg.spot_check import ArchivedFile, parse_archive_mtime
from tasks.cluster import borg_passphrase_block_name, stored_secret
from tasks.context import current_executor
from tasks.executor import LOCAL, Target
from tasks.manifest import Entry
from tasks.settings import BackupSettings, Settings
from tasks.step import step


def passphrase(settings: Settings) -> str:
    """The repository's stored passphrase; never generated here (only ``init`` makes one)."""
    block = borg_passphrase_block_name(settings)
    value = stored_secret(block)
    if value is None:
        raise PassphraseMissing(
            f"no passphrase is stored for {settings.backup.repository} (Secret block {block}): "
            "`python -m flows.backup init` makes a new repository, `adopt` takes over an existing one"
        )
    current_executor().add_secret(value)
    return value


class BackupReport(BaseModel):
    archive: str
    files: int = 0
    original_bytes: int = 0
    deduplicated_bytes: int = 0
    warnings: list[str] = Field(default_factory=list)
    checked: list[str] = Field(default_factory=list)
    dry_run: bool = Field(False, description="Nothing was archived: the commands were printed.")
    hooks: list[str] = Field(default_factory=list, description="The hook stages that ran, in order.")
    databases: list[str] = Field(default_factory=list, description="The databases dumped into the archive.")


def run_on(access: RepoAccess, argv: list[str], secret: str, **kwargs: Any) -> BorgOutcome:
    """Run borg on the side ``access`` describes (its target, environment and account)."""
    return run_borg(argv, secret, access.target, env=access.env, account=access.account, **kwargs)


def repository_exists(access: RepoAccess, secret: str | None) -> bool:
    """Whether a repository answers at ``access`` (a wrong or empty passphrase still says it exists)."""
    try:
        run_on(access, borg.info_argv(access.url), secret or "", read_only=True)
    except RepositoryMissing:
        return False
    except WrongPassphrase:
        return True
    return True


@step(name="borg-init", timeout_seconds=600)
def init_repository(backup: BackupSettings, access: RepoAccess, secret: str) -> str:
    """Create the repository and export its key; returns the key file path."""
    run_on(access, borg.init_argv(access.url, backup.encryption), secret)
    run_on(access, borg.key_export_argv(access.url, backup.key_export_path), secret)
    current_executor().run(["chmod", "600", backup.key_export_path], access.target)
    return backup.key_export_path


@step(name="check-sources", timeout_seconds=120)
def check_sources(backup: BackupSettings, target: Target) -> None:
    """Every source exists and is readable: borg would otherwise store an empty or partial archive."""
    run = current_executor().run
    missing = [
        path
        for path in backup.sources
        if run(["test", "-r", path], target, read_only=True, ok_codes=(0, 1)).exit_code != 0
    ]
    if missing:
        raise SourceMissing(
            f"backup source {', '.join(missing)} on {target.name} does not exist or cannot be read; "
            "nothing was archived"
        )


@step(name="borg-create", timeout_seconds=7200)
def create_archive(backup: BackupSettings, access: RepoAccess, secret: str) -> BackupReport:
    archive = archive_name(backup.archive_prefix, datetime.now(UTC))
    argv = borg.create_argv(access.url, archive, backup.sources, lock_wait=backup.lock_wait_s)
    outcome = run_on(access, argv, secret, timeout=7200)
    if current_executor().dry_run:
        return BackupReport(archive=archive, dry_run=True)
    stats = json.loads(outcome.stdout)["archive"]["stats"]
    return BackupReport(
        archive=archive,
        files=stats["nfiles"],
        original_bytes=stats["original_size"],
        deduplicated_bytes=stats["deduplicated_size"],
        warnings=outcome.warnings,
    )


@step(name="borg-check", timeout_seconds=7200)
def check(
    access: RepoAccess, secret: str, verify_data: bool, lock_wait: int, last: int | None = 1
) -> list[str]:
    """Repository consistency, then the newest archive's (or every archive's) metadata, and data if asked."""
    repository = borg.check_argv(access.url, repository_only=True, lock_wait=lock_wait)
    run_on(access, repository, secret, read_only=True, timeout=7200)
    archives_argv = borg.check_argv(
        access.url, archives_only=True, verify_data=verify_data, last=last, lock_wait=lock_wait
    )
    run_on(access, archives_argv, secret, read_only=True, timeout=7200)
    archives = "newest archive" if last == 1 else "every archive"
    return ["repository", f"{archives} (data verified)" if verify_data else archives]


@step(name="borg-list", timeout_seconds=600)
def list_archives(
    access: RepoAccess,
    secret: str,
    glob: str | None = None,
    checkpoints: bool = False,
    lock_wait: int | None = None,
    timeout: float = 3600,
) -> list[Archive]:
    argv = borg.list_argv(access.url, glob=glob, checkpoints=checkpoints, lock_wait=lock_wait)
    listing = json.loads(run_on(access, argv, secret, read_only=True, timeout=timeout).stdout)
    return [Archive(name=a["name"], time=datetime.fromisoformat(a["time"])) for a in listing["archives"]]


ENTRIES_BATCH = 200  # paths per `borg list` of archive entries (keeps the command line short)


@step(name="borg-list-files", timeout_seconds=7200)
def archived_files(
    access: RepoAccess,
    secret: str,
    archive: str,
    paths: Sequence[str],
    with_content: bool = False,
    lock_wait: int = 600,
) -> dict[str, ArchivedFile]:
    """The regular files ``archive`` holds under ``paths`` (relative to /, as borg stores them), with
    their modification times and, ``with_content``, their sha256 (borg reads their chunks for it)."""
    keys = ("mtime", "sha256") if with_content else ("mtime",)
    batch = ENTRIES_BATCH if with_content else len(paths)  # under the sources' roots: a few paths
    files: dict[str, ArchivedFile] = {}
    for start in range(0, len(paths), max(batch, 1)):
        argv = borg.list_entries_argv(
            access.url, archive, paths[start : start + batch], keys, lock_wait=lock_wait
        )
        for line in run_on(access, argv, secret, read_only=True, timeout=7200).stdout.splitlines():
            entry = json.loads(line)
            if entry["type"] == "-":
                files[entry["path"]] = ArchivedFile(
                    sha256=entry.get("sha256", ""), mtime=parse_archive_mtime(entry["mtime"])
                )
    return files


@step(name="damage-tree", timeout_seconds=600)
def damage_tree(root: str, how: Literal["remove", "encrypt"], target: Target = LOCAL) -> None:
    """What the in-place drill recovers from: everything removed, or every file overwritten in place."""
    run = current_executor().run
    if how == "remove":
        run(["find", root, "-mindepth", "1", "-delete"], target)
    else:
        run(["find", root, "-type", "f", "-exec", "shred", "--iterations=1", "--exact", "{}", "+"], target)


@step(name="borg-extract", timeout_seconds=7200)
def extract(
    access: RepoAccess, secret: str, archive: str, into: str = "/", lock_wait: int = 600
) -> list[str]:
    """Restore ``archive`` under ``into`` (archives hold paths relative to /: ``/`` restores in place);
    returns borg's warnings — a file it could not write (a full disk) is one, not an error."""
    argv = borg.extract_argv(access.url, archive, lock_wait=lock_wait)
    return run_on(access, argv, secret, cwd=into, timeout=7200).warnings


@step(name="copy-tree", timeout_seconds=7200)
def copy_tree(source: str, dest: str, target: Target) -> None:
    """``dest`` becomes an exact copy of ``source``: emptied first, then ``cp -a`` (owners, modes, times,
    links, xattrs) — coreutils, so any client can do it."""
    run = current_executor().run
    run(["mkdir", "-p", dest], target)
    run(["find", dest, "-mindepth", "1", "-delete"], target, timeout=3600)
    run(["cp", "-a", f"{source.rstrip('/')}/.", f"{dest.rstrip('/')}/"], target, timeout=3600)


@step(name="remove-tree", timeout_seconds=600)
def remove_tree(path: str, target: Target) -> None:
    current_executor().run(["rm", "-rf", "--one-file-system", path], target)


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
    original = manifest[files[0]]  # leave the file as it was restored
    run(["truncate", "-s", str(original.size), path], target)
    run(["touch", "-m", "-d", f"@{original.mtime}", path], target)
    return edited


def checkpoints(access: RepoAccess, secret: str, prefix: str) -> list[str]:
    """Checkpoint archives: what an interrupted ``borg create`` left behind."""
    listed = list_archives(access, secret, glob=f"{prefix}-*", checkpoints=True)
    return [a.name for a in listed if is_checkpoint(a.name)]
