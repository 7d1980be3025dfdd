"""Pure argv builders for borg, one per command (borgmatic style: optional parts as tuples).

The passphrase never appears here: every command runs with ``BORG_PASSPHRASE_FD=0`` and the
passphrase on stdin (see :func:`with_passphrase_on_stdin`), so it stays off command lines, process
lists and logs — locally and over SSH alike.
"""

from __future__ import annotations

from collections.abc import Sequence

Argv = list[str]


def _flag(name: str, value: object) -> tuple[str, ...]:
    return (name, str(value)) if value is not None and value is not False else ()


def with_passphrase_on_stdin(argv: Sequence[str]) -> Argv:
    """Run ``argv`` with borg reading its passphrase from file descriptor 0 (stdin)."""
    return ["env", "BORG_PASSPHRASE_FD=0", *argv]


def dies_with_parent(argv: Sequence[str]) -> Argv:
    """Run ``argv`` so that it is terminated when the process that started it dies (util-linux
    ``setpriv --pdeathsig``): a killed flow run leaves no borg behind to finish an unchecked archive.
    Over SSH the parent is the session's sshd process, which ends with the connection."""
    return ["setpriv", "--pdeathsig", "TERM", "--", *argv]


def in_directory(directory: str, argv: Sequence[str]) -> Argv:
    """Run ``argv`` with ``directory`` as working directory (borg extract writes there)."""
    return ["env", "-C", directory, *argv]


def as_account_argv(account: str, home: str, argv: Sequence[str]) -> Argv:
    """Run ``argv`` as ``account`` with its own HOME (borg keeps its cache and security data there)."""
    return ["runuser", "-u", account, "--", "env", f"HOME={home}", *argv]


def common(remote_path: str | None, lock_wait: int | None) -> tuple[str, ...]:
    return _flag("--remote-path", remote_path) + _flag("--lock-wait", lock_wait)


def init_argv(
    repo: str, encryption: str = "repokey-blake2", append_only: bool = False, remote_path: str | None = None
) -> Argv:
    return [
        "borg", "init", "--encryption", encryption,
        *(("--append-only",) if append_only else ()), *common(remote_path, None), repo,
    ]  # fmt: skip


def create_argv(
    repo: str,
    archive: str,
    paths: Sequence[str],
    *,
    compression: str | None = "lz4",
    excludes: Sequence[str] = (),
    one_file_system: bool = True,
    remote_path: str | None = None,
    lock_wait: int | None = 60,
) -> Argv:
    """``borg create --json``: the stats come back as JSON on stdout."""
    return [
        "borg", "create", "--json",
        *_flag("--compression", compression),
        *(("--one-file-system",) if one_file_system else ()),
        *(part for pattern in excludes for part in ("--exclude", pattern)),
        *common(remote_path, lock_wait),
        f"{repo}::{archive}", *paths,
    ]  # fmt: skip


def list_argv(
    repo: str,
    glob: str | None = None,
    remote_path: str | None = None,
    lock_wait: int | None = None,
    checkpoints: bool = False,
) -> Argv:
    """``checkpoints``: also the checkpoint archives an interrupted ``create`` left (borg hides them)."""
    return [
        "borg", "list", "--json", *(("--consider-checkpoints",) if checkpoints else ()),
        *_flag("--glob-archives", glob), *common(remote_path, lock_wait), repo,
    ]  # fmt: skip


def list_entries_argv(
    repo: str,
    archive: str,
    paths: Sequence[str] = (),
    keys: Sequence[str] = (),
    remote_path: str | None = None,
    lock_wait: int | None = None,
) -> Argv:
    """One JSON object per entry of ``archive``, only those under ``paths`` when given (borg matches them
    as path prefixes, whole components); ``keys`` adds keys such as ``sha256`` (read from the chunks:
    costly) or ``mtime``."""
    return [
        "borg", "list", "--json-lines", *_flag("--format", "".join(f"{{{key}}}" for key in keys) or None),
        *common(remote_path, lock_wait), f"{repo}::{archive}", *paths,
    ]  # fmt: skip


def info_argv(
    repo: str, archive: str | None = None, remote_path: str | None = None, lock_wait: int | None = None
) -> Argv:
    target = f"{repo}::{archive}" if archive else repo
    return ["borg", "info", "--json", *common(remote_path, lock_wait), target]


def check_argv(
    repo: str,
    *,
    repository_only: bool = False,
    archives_only: bool = False,
    verify_data: bool = False,
    last: int | None = None,
    remote_path: str | None = None,
    lock_wait: int | None = None,
) -> Argv:
    if repository_only and (archives_only or verify_data):
        raise ValueError("--repository-only cannot be combined with archive checks or --verify-data")
    return [
        "borg", "check",
        *(("--repository-only",) if repository_only else ()),
        *(("--archives-only",) if archives_only else ()),
        *(("--verify-data",) if verify_data else ()),
        *_flag("--last", last), *common(remote_path, lock_wait), repo,
    ]  # fmt: skip


def extract_argv(
    repo: str,
    archive: str,
    paths: Sequence[str] = (),
    remote_path: str | None = None,
    lock_wait: int | None = None,
    dry_run: bool = False,
) -> Argv:
    """``dry_run``: read and check every chunk of the archive, write nothing (can it be restored?)."""
    return [
        "borg", "extract", *(("--dry-run",) if dry_run else ()), *common(remote_path, lock_wait),
        f"{repo}::{archive}", *paths,
    ]  # fmt: skip


def repair_argv(repo: str, lock_wait: int | None = None) -> Argv:
    """``borg check --repair``: drops damaged objects and patches archives around them. It changes the
    repository for good; the segment-corrupted fault runs it on a copy only, to say what it would do."""
    return ["borg", "check", "--repair", *common(None, lock_wait), repo]


def delete_argv(
    repo: str, archives: Sequence[str], remote_path: str | None = None, lock_wait: int | None = None
) -> Argv:
    if not archives:
        raise ValueError("delete needs at least one archive name (never the whole repository)")
    return ["borg", "delete", *common(remote_path, lock_wait), repo, *archives]


def prune_argv(
    repo: str,
    *,
    keep_last: int | None = None,
    keep_daily: int | None = None,
    keep_weekly: int | None = None,
    keep_monthly: int | None = None,
    glob: str | None = None,
    dry_run: bool = False,
    remote_path: str | None = None,
) -> Argv:
    keeps = _flag("--keep-last", keep_last) + _flag("--keep-daily", keep_daily)
    keeps += _flag("--keep-weekly", keep_weekly) + _flag("--keep-monthly", keep_monthly)
    if not keeps:
        raise ValueError("prune without any --keep-* rule would delete every archive")
    return [
        "borg", "prune", "--list", *(("--dry-run",) if dry_run else ()), *keeps,
        *_flag("--glob-archives", glob), *common(remote_path, None), repo,
    ]  # fmt: skip


def compact_argv(repo: str, remote_path: str | None = None, lock_wait: int | None = None) -> Argv:
    return ["borg", "compact", *common(remote_path, lock_wait), repo]


def key_export_argv(repo: str, path: str, remote_path: str | None = None) -> Argv:
    return ["borg", "key", "export", *common(remote_path, None), repo, path]


def serve_restricted_argv(repo_path: str, append_only: bool) -> Argv:
    """The forced command for a client key in the server's authorized_keys."""
    return ["borg", "serve", *(("--append-only",) if append_only else ()), "--restrict-to-path", repo_path]
