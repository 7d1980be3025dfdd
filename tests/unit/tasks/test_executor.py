"""The executor on real local processes: exit codes, masking, dry run, timeouts, SSH transport errors."""

from __future__ import annotations

import logging
import pickle

import pytest

from tasks.executor import (
    LOCAL,
    MASK,
    CommandError,
    CommandTimeout,
    Executor,
    TransportError,
    _ChunkedStdin,
    mask,
    tail,
)


def test_runs_argv_and_captures_output() -> None:
    result = Executor().run(["sh", "-c", 'echo out; echo err >&2; printf "%s" "$0"', "a b;c"])
    assert result.ok
    assert result.stdout == "out\na b;c"  # argv elements arrive intact: no shell re-parsing
    assert result.stderr == "err\n"
    assert result.command == "sh -c 'echo out; echo err >&2; printf \"%s\" \"$0\"' 'a b;c'"


def test_non_zero_exit_raises_with_code_and_stderr_tail() -> None:
    script = "for i in $(seq 1 30); do echo line$i >&2; done; exit 3"
    with pytest.raises(CommandError) as info:
        Executor().run(["sh", "-c", script])
    error = info.value
    assert not isinstance(error, TransportError)
    assert error.exit_code == 3
    assert error.stderr_tail.splitlines() == [f"line{i}" for i in range(16, 31)]
    assert "exited 3" in str(error)


def test_expected_non_zero_codes_are_accepted() -> None:
    assert Executor().run(["sh", "-c", "exit 1"], ok_codes=(0, 1)).exit_code == 1


def test_missing_binary_is_a_command_error() -> None:
    with pytest.raises(CommandError) as info:
        Executor().run(["no-such-binary-hsf"])
    assert info.value.exit_code == 127


def test_secrets_are_masked_in_command_stderr_and_errors(caplog: pytest.LogCaptureFixture) -> None:
    executor = Executor()
    executor.add_secret("hunter2")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CommandError) as info:
        executor.run(["sh", "-c", "echo pass=$0 >&2; exit 1", "hunter2"])
    assert "hunter2" not in str(info.value)
    assert MASK in info.value.command and MASK in info.value.stderr_tail
    assert "hunter2" not in caplog.text


def test_env_values_are_passed_but_never_shown() -> None:
    result = Executor().run(["sh", "-c", 'echo "$TOKEN" >&2; echo ok'], env={"TOKEN": "s3cr3t-value"})
    assert result.stdout == "ok\n"
    assert result.stderr == f"{MASK}\n"


def test_dry_run_runs_nothing_but_probes(tmp_path) -> None:
    marker = tmp_path / "made"
    executor = Executor(dry_run=True)
    result = executor.run(["touch", str(marker)])
    assert result.dry_run and not marker.exists()
    probe = executor.run(["echo", "state"], read_only=True)
    assert probe.stdout == "state\n" and not probe.dry_run


def test_timeout_stops_the_process_group() -> None:
    with pytest.raises(CommandTimeout):
        Executor().run(["sh", "-c", "sleep 30 & wait"], timeout=0.5)


def test_streams_lines_as_they_come() -> None:
    lines: list[str] = []
    Executor().run(["sh", "-c", "echo one; echo two >&2"], on_line=lines.append)
    assert sorted(lines) == ["one", "two"]


def test_ssh_client_exit_255_is_a_retryable_transport_error() -> None:
    # A real ssh client that fails before any packet leaves: its ProxyCommand exits at once.
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ProxyCommand=false", "root@lab-node", "true"]
    with pytest.raises(TransportError) as info:
        Executor().run(argv, timeout=20)
    assert info.value.exit_code == 255


def test_errors_survive_pickling() -> None:
    for error in (
        CommandError("c", 2, "tail", "n"),
        TransportError("c", 255, "t", "n"),
        CommandTimeout("c", -1, "", "n"),
    ):
        clone = pickle.loads(pickle.dumps(error))
        assert type(clone) is type(error) and str(clone) == str(error)


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("a secret b", ["secret"], f"a {MASK} b"),
        ("pw=abcdef", ["abc", "abcdef"], f"pw={MASK}"),  # longest first: no partial leak
        ("nothing", [""], "nothing"),
    ],
)
def test_mask(text: str, secrets: list[str], expected: str) -> None:
    assert mask(text, secrets) == expected


def test_tail_keeps_last_lines() -> None:
    assert tail("\n".join(str(i) for i in range(40)), 3) == "37\n38\n39"


def test_an_unset_known_hosts_is_the_users_own_file() -> None:
    from pathlib import Path

    from tasks.executor import SshAccess, known_hosts_of

    assert known_hosts_of(SshAccess(name="a", address="192.0.2.1")) == Path.home() / ".ssh" / "known_hosts"
    pinned = SshAccess(name="a", address="192.0.2.1", known_hosts=Path("/etc/hsf/known_hosts"))
    assert known_hosts_of(pinned) == Path("/etc/hsf/known_hosts")


def test_recordings_keep_operator_commands_not_probes_or_the_drills_workload() -> None:
    executor = Executor()
    with executor.recording() as commands:
        executor.run(["true"], LOCAL)
        executor.run(["echo", "probe"], LOCAL, read_only=True)
        executor.run(["echo", "the application"], LOCAL, workload=True)
    executor.run(["false"], LOCAL, ok_codes=(1,))  # after the block: not recorded
    assert [(c.target, c.command, c.exit_code) for c in commands] == [("localhost", "true", 0)]


def test_stdin_is_handed_to_invoke_in_chunks_whatever_size_it_asks_for() -> None:
    """invoke asks a stream that is not a terminal for one character per 10 ms: the stream answers with
    a whole chunk, so 1 MiB goes in 16 reads, not a million."""
    from invoke.terminals import bytes_to_read

    text = "x" * (1 << 20) + "end"
    stream = _ChunkedStdin(text)
    reads = list(iter(lambda: stream.read(bytes_to_read(stream)), ""))
    assert "".join(reads) == text
    assert len(reads) == -(-len(text) // _ChunkedStdin.CHUNK_CHARS) == 17
