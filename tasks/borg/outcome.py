"""The one place that interprets borg's exit codes and its ``--log-json`` messages.

Exit codes: 0 success, 1 warning, 2 error; borg >= 1.4 adds specific codes 3-99 (errors) and
100-127 (warnings); 128+N means killed by signal N. A warning is reported, never hidden: it is part
of the outcome the flows publish. Errors with a known ``msgid`` become typed exceptions with one
clear line (wrong passphrase, missing repository, unreachable server).

Exit code 1 with ERROR-level messages is an error: borg 1.2's ``check`` reports a damaged repository
("Finished full repository check, errors found.") with exit code 1.
"""

from __future__ import annotations

import json
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
                    message=record.get("message", ""),
                    msgid=record.get("msgid"),
                )
            )
    return messages


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
    first = next((e for e in errors if e.msgid in _TYPED), errors[-1])
    error_type = _TYPED.get(first.msgid or "", BorgError)
    raise error_type(f"borg {what} failed: {first.message}", exit_code, first.msgid)
