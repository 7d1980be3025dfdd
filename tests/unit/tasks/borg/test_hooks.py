"""tasks/borg/hooks.py: the script a hook's shell runs, judged by running it in the real shells."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tasks.borg.hooks import Hook, hook_argv, hook_script
from tasks.executor import LOCAL, CommandError, Executor


def _run(hook: Hook, secret_env: dict[str, str] | None = None) -> str:
    return (
        Executor().run(hook_argv(hook), LOCAL, stdin=hook_script(hook, secret_env or {}), timeout=30).stdout
    )


@pytest.mark.parametrize("shell", [s for s in ("bash", "sh", "dash") if shutil.which(s)])
def test_values_arrive_intact_in_the_working_directory_and_stdin_cannot_eat_the_script(
    tmp_path: Path, shell: str
) -> None:
    odd = 'it\'s a "quoted" $HOME `x` \\ value\nsecond line'
    hook = Hook(
        stage="before_backup", block="dump", shell=shell, working_dir=str(tmp_path), env={"ODD": odd},
        commands=('printf "%s|" "$ODD" "$TOKEN"', "pwd", "cat", "echo after-cat"),
    )  # fmt: skip
    lines = _run(hook, {"TOKEN": "s3cret value"}).splitlines()
    assert lines == [
        'it\'s a "quoted" $HOME `x` \\ value',
        f"second line|s3cret value|{tmp_path}",
        "after-cat",
    ]


def test_the_last_command_sets_the_exit_code_and_set_e_stops_at_the_first_failure(tmp_path: Path) -> None:
    """As ShellOperation runs its commands: one script, no ``set -e`` unless the block says so."""
    marker = tmp_path / "ran"
    loose = Hook(stage="before_backup", block="b", commands=("false", f": > {marker}"))
    _run(loose)
    assert marker.exists()
    marker.unlink()
    strict = Hook(
        stage="before_backup", block="b", commands=("set -e", "echo boom >&2; exit 7", f": > {marker}")
    )
    with pytest.raises(CommandError) as failed:
        _run(strict)
    assert (failed.value.exit_code, failed.value.stderr_tail) == (7, "boom")
    assert not marker.exists()


def test_a_working_directory_that_is_gone_stops_the_hook_before_its_commands(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hook = Hook(
        stage="after_backup", block="b", working_dir=str(tmp_path / "gone"), commands=(f": > {marker}",)
    )
    with pytest.raises(CommandError):
        _run(hook)
    assert not marker.exists()


def test_secrets_travel_in_the_script_never_in_the_argv() -> None:
    hook = Hook(stage="on_error", block="b", commands=("true",))
    assert "t0ken" not in " ".join(hook_argv(hook))
    assert "export PGPASSWORD=t0ken\n" in hook_script(hook, {"PGPASSWORD": "t0ken"})
