"""tasks/borg/outcome.py: borg's exit codes and ``--log-json`` messages, interpreted in one place."""

from __future__ import annotations

import json
from pathlib import Path

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


FIXTURES = Path(__file__).parents[3] / "fixtures" / "borg"


def _error(fixture: str, exit_code: int, what: str) -> BorgError:
    with pytest.raises(BorgError) as raised:
        interpret(exit_code, "", (FIXTURES / fixture).read_text(), what)
    return raised.value


def test_a_missing_segment_is_one_line_not_a_traceback() -> None:
    """Captured: ``borg extract`` with a segment file removed logs a 52-line Python traceback."""
    error = _error("extract_missing_segment.log-json", 2, "extract")
    assert str(error) == (
        "borg extract failed: FileNotFoundError: [Errno 2] No such file or directory: '/tmp/bt/repo/data/0/2'"
    )


def test_a_damaged_check_names_the_segment_and_offset_first_and_keeps_borgs_other_lines() -> None:
    error = _error("check_verify_data_flipped_byte.log-json", 1, "check")
    first, *details = str(error).splitlines()
    assert first == (
        "borg check failed: Data integrity error: Segment entry checksum mismatch [segment 2, offset 530819]"
    )
    assert "  Finished full repository check, errors found." in details
    assert any("committed index: (2, 530819)" in line for line in details)


def test_a_check_of_a_repository_missing_a_segment_lists_where_objects_were() -> None:
    lines = str(_error("check_missing_segment.log-json", 1, "check")).splitlines()
    assert lines[0] == "borg check failed: Finished full repository check, errors found."
    assert sum("committed index: (2, " in line for line in lines) == 4


def test_an_integrity_error_on_extract_is_said_once() -> None:
    error = _error("extract_flipped_byte.log-json", 2, "extract")
    damage = "Data integrity error: Segment entry checksum mismatch [segment 2, offset 530819]"
    assert str(error) == f"borg extract failed: {damage}"
