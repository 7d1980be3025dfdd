"""tasks/cli.py: every failure is one line and an exit code that means one thing; tracebacks only with
--debug. The lab CLI refuses bad settings with one line each, before any flow or VM starts."""

from __future__ import annotations

import io
import logging
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prefect.logging.handlers import PrefectConsoleHandler

from tasks import cli as cli_module
from tasks.borg.outcome import ServerNotPrepared, WrongPassphrase
from tasks.cli import (
    REPEAT_WIDTH,
    CheckFailed,
    WithoutTraceback,
    console_without_tracebacks,
    run_cli,
    take_debug_flag,
)
from tasks.context import ClusterBusy, DryRunRefused
from tasks.drbd.plan import Refused
from tasks.executor import CommandError, CommandTimeout, HostKeyRejected, TransportError
from tasks.lab.host import LibvirtUnreachable
from tasks.settings import SettingsError

REPO = Path(__file__).resolve().parents[3]


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HSF_")}
    return subprocess.run(
        [sys.executable, "-m", "flows.lab", *args],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"HSF_LAB__MEMORY_MIB": "-512"},
            "setting lab.memory_mib [HSF_LAB__MEMORY_MIB]: Input should be greater",
        ),
        ({"HSF_PRIMARY_NODE": "nodez"}, "primary_node: unknown node 'nodez' (known: nodea, nodeb)"),
        (
            {"HSF_LAB__LIBVIRT_URI": "qemu:///system?socket=/nonexistent/hsf-libvirt-sock"},
            "libvirt URI 'qemu:///system?socket=/nonexistent/hsf-libvirt-sock' is unreachable: ",
        ),
        # A typo never runs the real thing: HSF_DRYRUN=true would otherwise run every command.
        (
            {"HSF_DRYRUN": "true"},
            "environment variable HSF_DRYRUN names no setting (did you mean HSF_DRY_RUN?)",
        ),
        (
            {"HSF_CONFIG": "/nonexistent/hsf.toml"},
            "HSF_CONFIG names /nonexistent/hsf.toml, which does not exist",
        ),
        (
            {
                "HSF_TARGET": "inventory",
                "HSF_INVENTORY": '[{"name": "store1", "address": "192.0.2.10", '
                '"key_file": "/nonexistent/id_ed25519"}]',
            },
            "setting inventory.0.key_file [HSF_INVENTORY__0__KEY_FILE]: "
            "key_file /nonexistent/id_ed25519 does not exist",
        ),
    ],
)
def test_bad_settings_one_line_and_exit_2(env: dict[str, str], expected: str) -> None:
    result = cli("status", env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_a_settings_file_that_is_not_toml_is_one_line_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "hsf.toml"
    config.write_text('target = "inventory\n[lab\n')
    result = cli("status", env={"HSF_CONFIG": str(config)})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"settings file {config} is not valid TOML: Illegal character '\\n' (at line 1, column 20)"
    ]


@pytest.fixture
def argv(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A fake sys.argv; settings are not loaded (run_cli gets a stand-in)."""
    fake = ["python -m flows.x"]
    monkeypatch.setattr(sys, "argv", fake)
    monkeypatch.setattr(cli_module, "load_settings", lambda: object())
    return fake


def _raise(exc: BaseException) -> Callable[[Any], int]:
    def action(_: object) -> int:
        raise exc

    return action


HINT = " (run again with --debug for the traceback)"


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (SettingsError("setting lab.memory_mib: too small"), 2, "setting lab.memory_mib: too small"),
        (
            LibvirtUnreachable("qemu:///x", "no socket"),
            2,
            "libvirt URI 'qemu:///x' is unreachable: no socket",
        ),
        (Refused("/dev/vdb holds ext4"), 3, "refused: /dev/vdb holds ext4"),
        (DryRunRefused("the drill needs a real fault"), 3, "refused: the drill needs a real fault"),
        (ClusterBusy("setup held the cluster for 3600 s"), 3, "refused: setup held the cluster for 3600 s"),
        (
            WrongPassphrase("borg: passphrase supplied is incorrect"),
            4,
            "borg: passphrase supplied is incorrect",
        ),
        (ServerNotPrepared("backup: no account 'borg'"), 4, "backup: no account 'borg'"),
        (CommandError("drbdadm up r0", 10, "", "nodea"), 4, "[nodea] `drbdadm up r0` exited 10"),
        (CommandTimeout("sync", -9, "", "nodea"), 4, "[nodea] `sync` timed out"),
        (
            CheckFailed("nodeb: saving failed; nothing was discarded"),
            4,
            "nodeb: saving failed; nothing was discarded",
        ),
        (TimeoutError("timed out after 60 s waiting for nodeb"), 4, "timed out after 60 s waiting for nodeb"),
        (TimeoutError(), 4, "TimeoutError"),
        (
            TransportError("ls", 255, "Connection refused", "nodea"),
            5,
            "[nodea] SSH transport error running `ls`: Connection refused",
        ),
        (
            HostKeyRejected("ssh", 255, "nodea's key is not in ~/.ssh/known_hosts", "nodea"),
            5,
            "[nodea] nodea's key is not in ~/.ssh/known_hosts",
        ),
        (KeyError("node"), 70, "internal error: KeyError: 'node'" + HINT),
        (RuntimeError("first\nsecond"), 70, "internal error: RuntimeError: first …" + HINT),
        (AssertionError(), 70, "internal error: AssertionError" + HINT),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_each_failure_is_one_line_and_its_exit_code(
    argv: list[str], capsys: pytest.CaptureFixture[str], exc: BaseException, code: int, line: str
) -> None:
    assert run_cli(_raise(exc)) == code
    err = capsys.readouterr().err
    assert err.splitlines() == [line]


def test_an_action_code_passes_through(argv: list[str]) -> None:
    assert run_cli(lambda _: 1) == 1  # data lost: the drill's own verdict
    assert run_cli(lambda _: 0) == 0


def test_bad_settings_before_the_action_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def bad() -> object:
        raise SettingsError("environment variable HSF_DRYRUN names no setting")

    monkeypatch.setattr(sys, "argv", ["prog"])
    monkeypatch.setattr(cli_module, "load_settings", bad)
    assert run_cli(lambda _: 0) == 2
    assert capsys.readouterr().err.splitlines() == ["environment variable HSF_DRYRUN names no setting"]


def test_debug_is_taken_out_of_argv_and_prints_the_traceback(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv += ["verify", "--debug"]
    seen: list[list[str]] = []

    def action(_: Any) -> int:
        seen.append(list(sys.argv))
        raise RuntimeError("boom")

    assert run_cli(action) == 70
    assert seen == [["python -m flows.x", "verify"]]
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and 'raise RuntimeError("boom")' in err
    assert err.splitlines()[-1] == "internal error: RuntimeError: boom"


def test_debug_after_a_double_dash_is_an_argument() -> None:
    args = ["--debug", "x", "--", "--debug"]
    assert take_debug_flag(args) is True
    assert args == ["x", "--", "--debug"]
    assert take_debug_flag(args) is False


def test_the_new_errors_survive_pickling() -> None:
    """Prefect pickles a failed task's exception."""
    for exc in (CheckFailed("nodea: o2cb not online"), ServerNotPrepared("no account", 2, None)):
        again = pickle.loads(pickle.dumps(exc))
        assert type(again) is type(exc) and str(again) == str(exc)


class _Full(logging.Handler):
    """Stands for Prefect's API log handler: formats with the traceback, keeps the records."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))
        self.records.append(record)


def _log_a_failure(logger: logging.Logger) -> None:
    try:
        raise Refused("no")
    except Refused:
        logger.exception("Encountered exception during execution: %r", Refused("no"))


@pytest.mark.parametrize("api_first", [True, False], ids=["api-handler-first", "console-first"])
def test_the_console_shows_no_traceback_and_other_handlers_get_it(api_first: bool) -> None:
    stream = io.StringIO()
    console = PrefectConsoleHandler(stream=stream)
    original = logging.Formatter("%(levelname)s | %(message)s")
    console.setFormatter(original)
    api = _Full()
    logger = logging.getLogger("hsf-test-cli")
    logger.propagate = False
    for handler in (api, console) if api_first else (console, api):
        logger.addHandler(handler)
    try:
        with console_without_tracebacks():
            assert isinstance(console.formatter, WithoutTraceback)
            _log_a_failure(logger)
        assert console.formatter is original  # restored on the way out
        _log_a_failure(logger)  # outside: the console is as Prefect made it
    finally:
        logger.removeHandler(api)
        logger.removeHandler(console)
    inside, outside = stream.getvalue().split("ERROR | ")[1:]
    assert inside.strip() == "Encountered exception during execution: Refused('no')"
    assert "…" not in inside
    assert "Traceback (most recent call last)" in outside
    assert all("Traceback (most recent call last)" in text for text in api.texts)
    assert all(record.exc_info is not None and record.exc_text for record in api.records)


def test_the_console_shows_the_first_line_of_a_multi_line_message() -> None:
    """Prefect repeats a failure's message in two records; a many-line refusal is said once, at the end."""
    stream = io.StringIO()
    console = PrefectConsoleHandler(stream=stream)
    console.setFormatter(logging.Formatter("%(levelname)s | %(message)s"))
    api = _Full()
    logger = logging.getLogger("hsf-test-cli-lines")
    logger.propagate = False
    logger.addHandler(console)
    logger.addHandler(api)
    try:
        with console_without_tracebacks():
            logger.error("Finished in state Failed('nothing was changed:\nnodea: one\nnodeb: two')")
            logger.error("%s", "Failover drill FAILED, DRBD r0\n  failed while  promoting")  # our report
            logger.error("Encountered exception during execution: %r", Refused("x" * 300 + "\nsecond"))
    finally:
        logger.removeHandler(console)
        logger.removeHandler(api)
    finished, ours, ours_second, repeated, end = stream.getvalue().split("\n")
    assert finished == "ERROR | Finished in state Failed('nothing was changed: …"
    assert (ours, ours_second) == ("ERROR | Failover drill FAILED, DRBD r0", "  failed while  promoting")
    assert repeated.startswith("ERROR | Encountered exception during execution: Refused('xxx")
    assert repeated.endswith("x …") and len(repeated) == REPEAT_WIDTH + 2 and end == ""
    assert api.texts[0:1] == ["Finished in state Failed('nothing was changed:\nnodea: one\nnodeb: two')"]
