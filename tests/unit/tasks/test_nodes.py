"""tasks/nodes.py's pure parts: the sysrq trigger, the power commands' placeholders, the fault wording
and the line a drill ends with when the killed node does not come back."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.executor import Executor
from tasks.nodes import (
    FAULT_OUTCOMES,
    NodeDidNotReturn,
    NodeStillUp,
    did_not_return,
    fault_outcome,
    power_argv,
    sysrq_argv,
    sysrq_key,
)


@pytest.mark.parametrize(("fault", "key"), [("sysrq-poweroff", "o"), ("sysrq-crash", "c")])
def test_each_sysrq_fault_has_its_command_character(fault: str, key: str) -> None:
    assert sysrq_key(fault) == key


@pytest.mark.parametrize("fault", ["destroy", "command", "none", "auto", "sysrq-reboot"])
def test_other_faults_have_no_sysrq_character(fault: str) -> None:
    with pytest.raises(ValueError, match=f"fault '{fault}' is not a sysrq fault"):
        sysrq_key(fault)


def test_the_trigger_is_written_by_dd_from_stdin_without_a_shell() -> None:
    assert sysrq_argv() == ["dd", "of=/proc/sysrq-trigger", "status=none"]


def test_the_trigger_argv_writes_exactly_the_one_character_and_prints_nothing(tmp_path: Path) -> None:
    """The same argv with its output redirected to a file (never the real trigger here): dd writes the
    character as it came on stdin (no newline added) and prints nothing that could block the channel."""
    written = tmp_path / "sysrq-trigger"
    argv = [f"of={written}" if part.startswith("of=") else part for part in sysrq_argv()]
    result = Executor().run(argv, stdin=sysrq_key("sysrq-poweroff"))
    assert written.read_bytes() == b"o"
    assert (result.stdout, result.stderr) == ("", "")


def test_power_command_placeholders_are_filled_in_every_element() -> None:
    template = ("ipmitool", "-H", "{node}-bmc.example", "-U", "admin", "-E", "chassis", "power", "off")
    assert power_argv(template, "nodea", "10.0.0.11") == [
        "ipmitool", "-H", "nodea-bmc.example", "-U", "admin", "-E", "chassis", "power", "off",
    ]  # fmt: skip
    assert power_argv(["virsh", "destroy", "{node}", "--address={address}:{address}"], "b", "fd00::2") == [
        "virsh",
        "destroy",
        "b",
        "--address=fd00::2:fd00::2",
    ]


def test_power_command_elements_are_never_split_or_reparsed() -> None:
    """An element with spaces or shell characters stays one argument: the command runs without a shell."""
    template = ["sh", "-c", 'printf "%s|" "$@"', "sh", "{node} and ; $(x)", "{address}"]
    argv = power_argv(template, "nodea", "10.0.0.11")
    assert argv[4] == "nodea and ; $(x)"
    assert Executor().run(argv).stdout == "nodea and ; $(x)|10.0.0.11|"


def test_other_braces_are_left_as_they_are() -> None:
    template = ["find", "/x", "-exec", "echo", "{}", ";", "${HOME}", "{ node }"]
    assert power_argv(template, "n", "a") == template


def test_an_empty_power_command_is_refused() -> None:
    with pytest.raises(ValueError, match="empty power command"):
        power_argv((), "nodea", "10.0.0.11")


def test_every_fault_has_its_own_wording() -> None:
    assert fault_outcome("destroy") == "destroyed"
    assert fault_outcome("sysrq-poweroff") == "powered off"
    assert fault_outcome("sysrq-crash") == "crashed"
    assert fault_outcome("command") == "cut by power_off_command"
    assert len(set(FAULT_OUTCOMES.values())) == len(FAULT_OUTCOMES)


def test_a_node_that_does_not_return_says_what_to_do() -> None:
    line = did_not_return("nodea", "10.0.0.11", 600, powered_on=False)
    assert line == (
        "nodea (10.0.0.11) did not answer SSH within 600 s (nobody powered it on?): power it on, then run "
        "`python -m flows.setup` to reattach it and resync it as secondary (or raise failover.boot_timeout_s)"
    )
    assert "\n" not in line
    assert "after power_on_command ran" in did_not_return("nodea", "10.0.0.11", 90.5, powered_on=True)


def test_the_node_errors_are_timeouts() -> None:
    """The CLI turns a TimeoutError into one line and exit 4 (a failed command), not a traceback."""
    assert issubclass(NodeDidNotReturn, TimeoutError)
    assert issubclass(NodeStillUp, TimeoutError)
