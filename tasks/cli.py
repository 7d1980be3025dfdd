"""The one way the flows' command lines start: settings, dry run, clear one-line failures, clean exit.

Every failure ends in one line on stderr and an exit code that means one thing (``EXIT_CODES``).
Prefect's console log keeps its one-line messages but shows no Python traceback unless ``--debug`` is
given; Prefect's API log handler (the server, the UI) still receives the full traceback.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tasks.borg.hooks import HookFailed
from tasks.borg.outcome import BorgError
from tasks.context import ClusterBusy, DryRunRefused, close_standalone
from tasks.drbd.plan import Refused
from tasks.executor import CommandError, HostKeyRejected, TransportError
from tasks.lab.host import LibvirtUnreachable
from tasks.postgres import DumpFailed
from tasks.settings import Settings, SettingsError, load_settings

EXIT_OK = 0
EXIT_DATA_LOST = 1  # returned by the drills' own actions, never for an error
EXIT_BAD_SETTINGS = 2
EXIT_REFUSED = 3
EXIT_COMMAND_FAILED = 4
EXIT_UNREACHABLE = 5
EXIT_INTERNAL = 70  # EX_SOFTWARE (sysexits.h): a bug, not something the user can fix by settings
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_DATA_LOST: "data lost (drills only)",
    EXIT_BAD_SETTINGS: "bad settings, or an unreachable libvirt",
    EXIT_REFUSED: "refused (to destroy data, to fake a dry run, a cluster held too long by another flow)",
    EXIT_COMMAND_FAILED: "a command failed, timed out or gave a wrong result (borg errors included)",
    EXIT_UNREACHABLE: "a host did not answer over SSH, or its host key is not the pinned one",
    EXIT_INTERNAL: "internal error (a bug): run again with --debug for the traceback",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

DEBUG_FLAG = "--debug"


class CheckFailed(Exception):
    """A step ran, but the flow's own check of its result failed; the message says what was kept."""


def take_debug_flag(argv: list[str]) -> bool:
    """Remove ``--debug`` from ``argv`` in place (not after a ``--``); whether it was there."""
    end = argv.index("--") if "--" in argv else len(argv)
    found = DEBUG_FLAG in argv[:end]
    argv[:end] = [arg for arg in argv[:end] if arg != DEBUG_FLAG]
    return found


# Prefect's records that repeat the error the CLI's last line states (or only point at its docs): on the
# console they keep their first line, at most REPEAT_WIDTH characters of it.
REPEAT_WIDTH = 160
_FIRST_LINE_ONLY = (
    "Encountered exception during execution",
    "Finished in state",
    "Starting temporary server",
)


class WithoutTraceback(logging.Formatter):
    """Formats a record as ``inner`` does, without its traceback or stack; Prefect's records that repeat
    the failure keep only their first line (a many-line refusal is said once, by the CLI's own last
    line). Leaves the record as it was (so the handlers after this one, such as Prefect's API log
    handler, still get all of it)."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()  # what a handler without a formatter uses

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        try:
            text = self.inner.format(record)
            if not str(record.msg).startswith(_FIRST_LINE_ONLY):
                return text
            first, *rest = text.split("\n", 1)
            cut = len(first) > REPEAT_WIDTH  # a repr() is one line however long the error: cut it too
            return f"{first[:REPEAT_WIDTH]} …" if rest or cut else first
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


def _console_handlers() -> list[logging.Handler]:
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    found: dict[int, logging.Handler] = {}
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, PrefectConsoleHandler):
                found[id(handler)] = handler
    return list(found.values())


@contextmanager
def console_without_tracebacks() -> Iterator[None]:
    """While inside, Prefect's console handlers print log records without their tracebacks."""
    wrapped: list[tuple[logging.Handler, WithoutTraceback]] = []
    for handler in _console_handlers():
        if not isinstance(handler.formatter, WithoutTraceback):
            wrapper = WithoutTraceback(handler.formatter)
            handler.setFormatter(wrapper)
            wrapped.append((handler, wrapper))
    try:
        yield
    finally:
        for handler, wrapper in wrapped:
            if handler.formatter is wrapper:
                handler.setFormatter(wrapper.inner)


def failure_line(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one line for an exception that ended a CLI run."""
    if isinstance(exc, (SettingsError, LibvirtUnreachable)):
        return EXIT_BAD_SETTINGS, str(exc)
    if isinstance(exc, (Refused, DryRunRefused, ClusterBusy)):
        return EXIT_REFUSED, f"refused: {exc}"
    if isinstance(exc, (TransportError, HostKeyRejected)):
        return EXIT_UNREACHABLE, str(exc)
    # borg: wrong passphrase, missing repository, unreachable server, …; a command on a host: its line
    # and the tail of its stderr; a wait that timed out; a result the flow checked and found wrong.
    if isinstance(exc, (BorgError, CommandError, CheckFailed, DumpFailed, HookFailed, TimeoutError)):
        return EXIT_COMMAND_FAILED, str(exc) or type(exc).__name__
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    lines = str(exc).strip().splitlines()
    message = (
        f"{type(exc).__name__}: {lines[0]}{' …' if len(lines) > 1 else ''}" if lines else type(exc).__name__
    )
    return EXIT_INTERNAL, f"internal error: {message}"


def run_cli(action: Callable[[Settings], int], debug: bool = False) -> int:
    """Run ``action`` with the loaded settings; every failure becomes one line on stderr and its code.

    Exit codes (``EXIT_CODES``): 0 success; 1 data lost (the drills' actions return it); 2 bad
    settings or an unreachable libvirt; 3 refused (to destroy data, to fake a dry run, or because
    another flow held the cluster for too long); 4 a command failed (borg: wrong passphrase, missing
    repository or source, unreachable server; any command on a host, with its stderr tail; a wait that
    timed out; a result the flow checked and found wrong); 5 a host did not answer over SSH (after the
    retries) or its host key is not the pinned one; 70 an unexpected error (a bug); 130 interrupted.
    ``--debug`` (taken out of ``sys.argv`` before the action runs; CLIs with their own argument parser
    declare it and pass ``debug``) keeps Prefect's tracebacks on the
    console and prints the final error's traceback above its line.
    Dry run, masking and SSH connections belong to each flow run (``tasks.context``), which closes them.
    """
    debug = take_debug_flag(sys.argv) or debug
    try:
        settings = load_settings()
        if debug:
            return action(settings)
        with console_without_tracebacks():
            return action(settings)
    except (Exception, KeyboardInterrupt) as exc:
        code, line = failure_line(exc)
        if debug:
            traceback.print_exception(exc, file=sys.stderr)
        elif code == EXIT_INTERNAL:
            line += f" (run again with {DEBUG_FLAG} for the traceback)"
        print(line, file=sys.stderr)
        return code
    finally:
        close_standalone()
