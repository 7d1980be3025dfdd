"""The one place that interprets borg's exit codes and its ``--log-json`` messages.

Exit codes: 0 success, 1 warning, 2 error; borg >= 1.4 adds specific codes 3-99 (errors) and
100-127 (warnings); 128+N means killed by signal N. A warning is reported, never hidden: it is part
of the outcome the flows publish. Errors with a known ``msgid`` become typed exceptions with one
clear line (wrong passphrase, missing repository, unreachable server).

Exit code 1 with ERROR-level messages is an error: borg 1.2's ``check`` reports a damaged repository
("Finished full repository check, errors found.") with exit code 1. The error then names borg's
first line that says what is damaged (segment, offset, archive), and lists borg's other error lines
below it. A Python traceback in borg's log (a missing segment file, say) becomes its exception line.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, Field


class BorgMessage(BaseModel):
    level: str
    message: str
    msgid: str | None = None


class BorgOutcome(BaseModel):
    exit_code: int
    status: Literal["ok", "warning", "error"]
    messages: list[BorgMessage] = Field(default_factory=list)
    stdout: str = ""

    @property
    def warnings(self) -> list[str]:
        return [m.message for m in self.messages if m.level == "WARNING"]

    @property
    def errors(self) -> list[BorgMessage]:
        return [m for m in self.messages if m.level in ("ERROR", "CRITICAL")]


class BorgError(Exception):
    """borg failed; the message is borg's own error line."""

    def __init__(self, message: str, exit_code: int = 2, msgid: str | None = None) -> None:
        self.exit_code, self.msgid = exit_code, msgid
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.exit_code, self.msgid))


class WrongPassphrase(BorgError):
    pass


class RepositoryMissing(BorgError):
    pass


class ServerUnreachable(BorgError):
    pass


class PassphraseMissing(BorgError):
    """No passphrase is stored for the repository; only ``init`` (a new one) or ``adopt`` sets one."""


class ResultWrong(BorgError):
    """borg finished, but the flow's own check of the result failed (rotation left other archives than
    it selected; sources could not be put back after a failed in-place restore)."""


class ServerNotPrepared(BorgError):
    """The backup server has no account for the repository: ``python -m flows.backup init`` prepares it."""


class SourceMissing(BorgError):
    """A source of the backup does not exist or cannot be read: the backup would be empty or partial."""


MAX_DETAIL_LINES = 10
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")
_DAMAGE = re.compile(r"segment|offset|integrity|missing|corrupt", re.IGNORECASE)


def traceback_summary(message: str) -> str:
    """The exception line of a traceback borg logged (its last one), or the message as it is."""
    if "Traceback (most recent call last)" not in message:
        return message
    found = [line for line in message.splitlines() if _EXCEPTION_LINE.match(line)]
    return found[-1] if found else message.splitlines()[0]


_TYPED: dict[str, type[BorgError]] = {
    "PassphraseWrong": WrongPassphrase,
    "Repository.DoesNotExist": RepositoryMissing,
    "Repository.InvalidRepository": RepositoryMissing,
    "InvalidRepository": RepositoryMissing,  # the same, reported through `borg serve`
    "ConnectionClosed": ServerUnreachable,
    "ConnectionClosedWithHint": ServerUnreachable,
}


def status_of(exit_code: int) -> Literal["ok", "warning", "error"]:
    if exit_code == 0:
        return "ok"
    if exit_code == 1 or 100 <= exit_code <= 127:
        return "warning"
    return "error"


def parse_log_json(stderr: str) -> list[BorgMessage]:
    """borg's ``--log-json`` lines (other lines, e.g. from ssh, become plain messages)."""
    messages = []
    for line in stderr.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            messages.append(BorgMessage(level="WARNING", message=line))
            continue
        if record.get("type") == "log_message":
            messages.append(
                BorgMessage(
                    level=record.get("levelname", "INFO"),
                    message=traceback_summary(record.get("message", "")),
                    msgid=record.get("msgid"),
                )
            )
    # "Local Exception" only announces the traceback that follows it.
    return [m for m in messages if not (m.message == "Local Exception" and len(messages) > 1)]


def interpret(exit_code: int, stdout: str, stderr: str, what: str) -> BorgOutcome:
    """The outcome of one borg run; raises a (typed) :class:`BorgError` on error."""
    outcome = BorgOutcome(
        exit_code=exit_code, status=status_of(exit_code), messages=parse_log_json(stderr), stdout=stdout
    )
    if outcome.status == "warning" and outcome.errors:
        outcome.status = "error"
    if outcome.status != "error":
        return outcome
    errors = outcome.errors or [
        BorgMessage(level="ERROR", message=stderr.strip()[-500:] or f"exit {exit_code}")
    ]
    first = next(
        (e for e in errors if e.msgid in _TYPED),
        next((e for e in errors if _DAMAGE.search(e.message)), errors[-1]),
    )
    error_type = _TYPED.get(first.msgid or "", BorgError)
    # borg's other error lines, and the warnings that place missing objects ("committed index: (segment,
    # offset)"), each once and not repeating the first line.
    named = [m for m in outcome.messages if m.level == "WARNING" and "committed index: (" in m.message]
    details = list(
        dict.fromkeys(
            " ".join(e.message.split())
            for e in [*errors, *named]
            if e is not first and not e.message.endswith(first.message)
        )
    )
    lines = [f"borg {what} failed: {first.message}", *(f"  {d}" for d in details[:MAX_DETAIL_LINES])]
    raise error_type("\n".join(lines), exit_code, first.msgid)
