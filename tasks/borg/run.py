"""Run a borg argv through the executor: passphrase on stdin, ``--log-json``, one interpretation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tasks.borg.commands import as_account_argv, dies_with_parent, in_directory, with_passphrase_on_stdin
from tasks.borg.outcome import BorgOutcome, ServerNotPrepared, interpret
from tasks.context import current_executor
from tasks.executor import LOCAL, Target


def run_borg(
    argv: Sequence[str],
    passphrase: str,
    target: Target = LOCAL,
    *,
    timeout: float = 3600,
    env: Mapping[str, str] | None = None,
    read_only: bool = False,
    cwd: str | None = None,
    account: str | None = None,
) -> BorgOutcome:
    """Run ``argv`` (starting with ``borg``); raise a typed BorgError on error, return warnings too.

    ``account``: run as that account with its own HOME (the repository's owner on a backup server).
    """
    if not argv or argv[0] != "borg":
        raise ValueError(f"not a borg command: {argv[:2]}")
    full: list[str] = ["borg", "--log-json", *argv[1:]]
    if cwd is not None:  # borg extract writes into its working directory
        full = in_directory(cwd, full)
    full = with_passphrase_on_stdin(full)
    if account is not None:
        full = as_account_argv(account, account_home(account, target), full)
    full = dies_with_parent(full)
    result = current_executor().run(
        full,
        target,
        stdin=passphrase,
        secrets=[passphrase],
        env=env,
        ok_codes=range(256),
        timeout=timeout,
        read_only=read_only,
    )
    return interpret(result.exit_code, result.stdout, result.stderr, what=argv[1])


def account_home(account: str, target: Target) -> str:
    """The account's home directory from the passwd database of ``target``."""
    entry = current_executor().run(["getent", "passwd", account], target, read_only=True, ok_codes=(0, 2))
    if not entry.stdout.strip():
        raise ServerNotPrepared(
            f"{target.name}: no account {account!r}: the backup server is not prepared "
            "(`python -m flows.backup init` prepares it)"
        )
    return entry.stdout.split(":")[5]
