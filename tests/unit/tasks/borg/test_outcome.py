"""tasks/borg/outcome.py: borg's exit codes and ``--log-json`` messages, interpreted in one place."""

from __future__ import annotations

import json

import pytest

from tasks.borg.outcome import BorgError, interpret, status_of

EXIT_CODES = [(0, "ok"), (1, "warning"), (2, "error"), (3, "error"), (99, "error"), (100, "warning")]
EXIT_CODES += [(107, "warning"), (127, "warning"), (128, "error"), (143, "error")]


@pytest.mark.parametrize(("code", "status"), EXIT_CODES)
def test_exit_codes(code: int, status: str) -> None:
    assert status_of(code) == status


def test_exit_1_with_error_messages_is_an_error() -> None:
    line = {
        "type": "log_message",
        "levelname": "ERROR",
        "message": "Finished full repository check, errors found.",
    }
    with pytest.raises(BorgError, match=r"borg check failed: Finished full repository check, errors found\."):
        interpret(1, "", json.dumps(line), "check")


def test_warnings_are_reported_not_hidden() -> None:
    stderr = json.dumps(
        {"type": "log_message", "levelname": "WARNING", "message": "file changed while we backed it up"}
    )
    outcome = interpret(1, "", stderr, "create")
    assert outcome.status == "warning" and outcome.warnings == ["file changed while we backed it up"]
