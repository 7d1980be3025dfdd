"""The failover drill's faults, the killed node's return and the recovery after a failed drill, in
flow runs under the Prefect harness, on nodes replayed from real captured output.

Replay answers probes with what real nodes printed; it has no notion of a host that stops answering.
:class:`PoweredReplay` adds exactly that, at the transport: a node that is off fails to connect
(the ``TransportError`` the real executor raises), a node that is on answers ``true``. A node's power
is a file in a directory, so the power commands the drill runs on this machine are real processes
whose effect decides whether the node answers. The sysrq trigger, when it reaches a replayed node,
switches it off and then gives the answer the test chose: none at all, a channel that closes, or a
clean exit — what a real host can do as it dies.

What replay cannot express, and the lab test covers: a DRBD state that changes during the run (the
survivor noticing its peer lost, a promotion taking effect), so neither the whole drill nor the
recovery's successful promotion run here; and the whole drill also needs the manifest of a dataset
written during the run.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from flows import failover
from tasks import context
from tasks.cluster import drbd_resource, node_targets, secret_block_name, shared_secret
from tasks.context import run_context
from tasks.drbd.roles import Recovery, restore_service
from tasks.executor import CommandError, CommandTimeout, Executor, SshTarget, TransportError
from tasks.nodes import NodeDidNotReturn, NodeStillUp, confirm_down, fire_fault, kill_node, restart_node
from tasks.settings import Settings, load_settings
from tests.flow.conftest import Replay
from tests.replay import Ran, ReplayExecutor

TRIGGER = "dd of=/proc/sysrq-trigger status=none"
UNREACHABLE = "NoValidConnectionsError: [Errno None] Unable to connect to port 22 on {address}"


@dataclass
class Sent:
    node: str
    command: str
    stdin: str | None
    timeout: float


@dataclass
class PoweredReplay(ReplayExecutor):
    """Replay, plus power: ``<power_dir>/<node>.off`` exists while the node is off."""

    power_dir: Path = Path()
    trigger: str = "no answer"  # what the sysrq trigger's channel does: no answer, closed, exit 0, ignored
    fail: dict[str, tuple[int, str]] = field(default_factory=dict)  # command prefix → (exit code, stderr)
    sent: list[Sent] = field(default_factory=list)

    def is_off(self, node: str) -> bool:
        return (self.power_dir / f"{node}.off").exists()

    def _run_ssh(
        self,
        argv: list[str],
        target: SshTarget,
        timeout: float,
        stdin: str | None,
        shown: str,
        on_line: Callable[[str], None] | None,
    ) -> tuple[int, str, str]:
        command = shlex.join(argv)
        self.sent.append(Sent(target.name, command, stdin, timeout))
        if self.is_off(target.name):
            raise TransportError(shown, 255, UNREACHABLE.format(address=target.address), target.name)
        if command == "true":
            return self._ran(target, command, (0, "", ""))
        if command == TRIGGER and self.trigger != "ignored":
            self._ran(target, command, (0, "", ""))
            (self.power_dir / f"{target.name}.off").touch()
            if self.trigger == "no answer":
                raise CommandTimeout(shown, -1, f"after {timeout:.0f} s", target.name)
            if self.trigger == "closed":
                raise TransportError(shown, 255, "connection closed before the command exited", target.name)
            return 0, "", ""
        for prefix, (code, stderr) in self.fail.items():
            if command.startswith(prefix):
                self._ran(target, command, (code, "", stderr))
                raise CommandError(shown, code, stderr, target.name)
        return super()._run_ssh(argv, target, timeout, stdin, shown, on_line)

    def _ran(self, target: SshTarget, command: str, answer: tuple[int, str, str]) -> tuple[int, str, str]:
        with self._replay_lock:
            self.ran.append(Ran(target=target.name, command=command, read_only=self._read_only.value))
        return answer


@dataclass
class Cluster:
    replay: Replay
    power_dir: Path

    @property
    def executor(self) -> PoweredReplay:
        [executor] = self.replay.executors
        assert isinstance(executor, PoweredReplay)
        return executor

    def power_off(self, node: str) -> None:
        (self.power_dir / f"{node}.off").touch()


@pytest.fixture
def cluster(
    replay: Callable[..., Replay], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[..., Cluster]]:
    """``cluster(state, **PoweredReplay options)``: the captured nodes, with power."""

    def use(state: str, **options: Any) -> Cluster:
        nodes = replay(state)
        power_dir = tmp_path / "power"
        power_dir.mkdir(exist_ok=True)

        def new_executor(dry: bool) -> Executor:
            executor = PoweredReplay(dry_run=dry, state=state, power_dir=power_dir, **options)
            nodes.executors.append(executor)
            return executor

        monkeypatch.setattr(context, "new_executor", new_executor)
        return Cluster(nodes, power_dir)

    yield use


@flow
def on_nodes(settings: Settings, action: Callable[[dict[str, SshTarget]], Any]) -> Any:
    """A flow run of its own, as every drill's: the run's executor, then ``action`` on the nodes."""
    with run_context(settings, changes_state=False):
        return action(node_targets(settings))


def failover_settings(**failover: Any) -> Settings:
    return load_settings(failover=failover)  # the nodes come from the environment, as a deployment's


# -- the fault ------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["no answer", "closed", "exit 0"])
@pytest.mark.parametrize(("fault", "key"), [("sysrq-poweroff", "o"), ("sysrq-crash", "c")])
def test_sysrq_does_not_wait_for_the_answer_and_confirms_the_node_is_gone(
    cluster: Callable[..., Cluster], fault: str, key: str, answer: str
) -> None:
    """The host dies under the trigger: whatever its channel does, the kill goes on and then proves,
    by SSH, that the node is gone. Before, "no answer" was a CommandTimeout after 15 s that ended the
    drill with a traceback."""
    nodes = cluster("fault-tolerant", trigger=answer)
    settings = failover_settings(fault=fault)

    on_nodes(settings, lambda targets: kill_node(settings, targets["nodea"]))

    sent = nodes.executor.sent
    [trigger] = [s for s in sent if s.command == TRIGGER]
    assert (trigger.node, trigger.stdin) == ("nodea", key)
    assert trigger.timeout <= 2, "the trigger's answer is not waited for"
    assert [(r.target, r.command) for r in nodes.replay.changed] == [("nodea", TRIGGER)], (
        "nothing else changed"
    )
    after = sent[sent.index(trigger) + 1 :]
    assert after and {(s.node, s.command) for s in after} == {("nodea", "true")}, "confirmed by SSH alone"
    assert any(line.startswith("nodea no longer answers SSH") for line in nodes.replay.logs)


def test_a_fault_that_did_nothing_is_one_line_and_changes_nothing_else(
    cluster: Callable[..., Cluster],
) -> None:
    """The trigger was written and the host kept running: the drill must stop there (promoting the
    survivor next to a live primary would split the volume), with one line saying so."""
    nodes = cluster("fault-tolerant", trigger="ignored")
    settings = failover_settings(fault="sysrq-poweroff")

    def kill_and_confirm(targets: dict[str, SshTarget]) -> float:
        fire_fault(settings, targets["nodea"])
        return confirm_down(settings, targets["nodea"], timeout_s=1)

    with pytest.raises(NodeStillUp) as raised:
        on_nodes(settings, kill_and_confirm)
    assert str(raised.value).startswith(
        "nodea (10.77.0.11) still answers SSH 1 s after sysrq-poweroff: the fault did nothing ("
    )
    assert str(raised.value).endswith("; nothing else was changed")
    assert "\n" not in str(raised.value)
    assert [(r.target, r.command) for r in nodes.replay.changed] == [("nodea", TRIGGER)]


def test_the_command_fault_runs_power_off_command_here_with_the_node_filled_in(
    cluster: Callable[..., Cluster],
) -> None:
    """fault = 'command': the user's argv runs on this machine (a real process, no shell around it),
    with {node} and {address} replaced; nothing is sent to the node; then the node is confirmed gone."""
    nodes = cluster("fault-tolerant")
    record = nodes.power_dir / "nodea.off"
    settings = failover_settings(
        fault="command",
        power_off_command=[
            "sh",
            "-c",
            'printf "%s" "$1" > "$0"',
            str(nodes.power_dir / "{node}.off"),
            "{address}",
        ],
    )

    on_nodes(settings, lambda targets: kill_node(settings, targets["nodea"]))

    assert record.read_text() == "10.77.0.11"
    assert nodes.replay.changed == [], "the power was cut from this machine, not over SSH"
    assert {(s.node, s.command) for s in nodes.executor.sent} == {("nodea", "true")}


def test_a_power_off_command_that_fails_is_its_own_error(cluster: Callable[..., Cluster]) -> None:
    cluster("fault-tolerant")
    settings = failover_settings(
        fault="command", power_off_command=["sh", "-c", "echo 'Unable to establish IPMI session' >&2; exit 1"]
    )
    with pytest.raises(CommandError, match=r"exited 1\nUnable to establish IPMI session"):
        on_nodes(settings, lambda targets: kill_node(settings, targets["nodea"]))


# -- the return -----------------------------------------------------------------------------------


def test_restart_runs_power_on_command_here_and_waits_for_ssh(cluster: Callable[..., Cluster]) -> None:
    nodes = cluster("fault-tolerant")
    nodes.power_off("nodea")
    power = nodes.power_dir
    settings = failover_settings(
        fault="sysrq-poweroff",
        power_on_command=["mv", str(power / "{node}.off"), str(power / "{node}-{address}.was-off")],
    )

    seconds = cast(float, on_nodes(settings, lambda targets: restart_node(settings, targets["nodea"])))

    assert (power / "nodea-10.77.0.11.was-off").exists() and not (power / "nodea.off").exists()
    assert 0 <= seconds < 10
    assert [(s.node, s.command) for s in nodes.executor.sent] == [("nodea", "true")], "answered at once"
    assert any(
        line.startswith("powering nodea (10.77.0.11) on from this machine: mv ") for line in nodes.replay.logs
    )
    assert nodes.replay.changed == []


def test_without_power_on_command_it_asks_for_the_power_and_waits(cluster: Callable[..., Cluster]) -> None:
    nodes = cluster("fault-tolerant")
    nodes.power_off("nodea")
    settings = failover_settings(fault="sysrq-poweroff", boot_timeout_s=30)
    someone = threading.Timer(1.5, (nodes.power_dir / "nodea.off").unlink)  # whoever operates the host
    someone.start()
    try:
        seconds = cast(float, on_nodes(settings, lambda targets: restart_node(settings, targets["nodea"])))
    finally:
        someone.cancel()
    assert 1.5 <= seconds < 10
    assert (
        "power nodea (10.77.0.11) on now; waiting up to 30 s (failover.boot_timeout_s)" in nodes.replay.logs
    )
    assert {s.command for s in nodes.executor.sent} == {"true"}


def test_a_node_that_does_not_return_is_one_line_saying_what_to_do(cluster: Callable[..., Cluster]) -> None:
    nodes = cluster("fault-tolerant")
    nodes.power_off("nodea")
    settings = failover_settings(fault="sysrq-poweroff", boot_timeout_s=1)
    with pytest.raises(NodeDidNotReturn) as raised:
        on_nodes(settings, lambda targets: restart_node(settings, targets["nodea"]))
    assert isinstance(raised.value, TimeoutError)
    assert str(raised.value) == (
        "nodea (10.77.0.11) did not answer SSH within 1 s (nobody powered it on?): power it on, then run "
        "`python -m flows.setup` to reattach it and resync it as secondary (or raise failover.boot_timeout_s)"
    )


# -- the recovery after a drill failed midway -----------------------------------------------------


def recover(settings: Settings, prefer: str) -> Recovery:
    def restore(targets: dict[str, SshTarget]) -> Recovery:
        resource = drbd_resource(settings, shared_secret(secret_block_name(settings)))
        return restore_service(targets, resource, settings.drbd.mountpoint, prefer=prefer)

    result = on_nodes(settings, restore)
    assert isinstance(result, Recovery)
    return result


def test_recovery_leaves_a_serving_primary_alone(cluster: Callable[..., Cluster]) -> None:
    """A drill that failed before its fault (or whose fault did nothing): nodea still serves."""
    nodes = cluster("fault-tolerant")
    recovery = recover(failover_settings(fault="sysrq-poweroff"), prefer="nodea")
    assert recovery.restored and recovery.serving == "nodea" and recovery.done == []
    assert nodes.replay.changed == []
    assert recovery.summary() == (
        "Service: nodea is Primary with /dev/drbd0 mounted at /mnt/r0: service is up; nothing was changed."
    )


def test_recovery_never_promotes_next_to_a_primary_the_survivor_still_sees(
    cluster: Callable[..., Cluster],
) -> None:
    """nodea does not answer this machine, but nodeb is still connected to it as Primary (its real
    captured state): nodea runs, so nothing is promoted and nothing changes; the line says so."""
    nodes = cluster("fault-tolerant")
    nodes.power_off("nodea")

    recovery = recover(failover_settings(fault="sysrq-poweroff"), prefer="nodeb")

    assert not recovery.restored and recovery.to_run == []
    assert nodes.replay.changed == []
    assert [s.describe() for s in recovery.seen] == [
        "nodea: does not answer (no SSH answer)",
        "nodeb: cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate, nothing mounted",
    ]
    assert recovery.summary() == (
        "Service not restored: nodeb is still connected to nodea, which is Primary: nodea runs but does not "
        "answer this machine, and a second Primary would split the data. Check nodea; nothing was changed."
    )


def test_recovery_with_no_node_to_promote_changes_nothing_and_gives_the_commands(
    cluster: Callable[..., Cluster],
) -> None:
    """nodea (the only Primary) is gone and nodeb's resource is not up: nothing is safe to do here."""
    nodes = cluster("secondary-down")
    nodes.power_off("nodea")

    recovery = recover(failover_settings(fault="sysrq-poweroff"), prefer="nodeb")

    assert not recovery.restored and not recovery.plan.automatic
    assert nodes.replay.changed == []
    assert recovery.to_run == [
        "drbdadm up r0",
        "drbdadm primary r0",
        "mkdir -p /mnt/r0",
        "mount /dev/drbd0 /mnt/r0",
    ]
    assert "run on nodeb: `drbdadm up r0`; `drbdadm primary r0`;" in recovery.summary()


# -- the drill ------------------------------------------------------------------------------------

NO_SPACE = "dd: error writing '/mnt/r0/drill/f0001.bin': No space left on device"


def test_a_drill_that_fails_midway_checks_the_service_publishes_what_it_saw_and_exits_4(
    cluster: Callable[..., Cluster], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole drill from its command line, failing where replay can make it fail (writing the
    dataset: nothing after needs a state replay cannot show). The recovery check runs, the partial
    report is logged and published, and the CLI ends with the original error's line, exit 4."""
    nodes = cluster("fault-tolerant", fail={"dd if=/dev/urandom of=/mnt/r0/drill-": (1, NO_SPACE)})
    monkeypatch.setenv("HSF_FAILOVER__FAULT", "sysrq-poweroff")

    code = failover.main()

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 4
    assert err[-2].startswith("[nodea] `dd if=/dev/urandom of=/mnt/r0/drill-") and err[-2].endswith(
        " exited 1"
    )
    assert err[-1] == NO_SPACE
    changed = [(r.target, r.command.split(" ")[0]) for r in nodes.replay.changed]
    assert changed == [("nodea", "find"), ("nodea", "mkdir"), ("nodea", "dd")], "no fault, no promotion"
    report = next(line for line in nodes.replay.logs if line.startswith("Failover drill FAILED"))
    assert "writing the dataset and its sha256 manifest on the primary" in report
    assert "not fired: nodea was not touched" in report
    assert (
        "Service: nodea is Primary with /dev/drbd0 mounted at /mnt/r0: service is up; nothing was changed."
        in report.splitlines()
    )

    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["failover-r0"])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    assert artifact.type == "markdown"
    assert str(artifact.data).startswith("# Failover drill FAILED: nodea → nodeb")
    assert NO_SPACE in str(artifact.data)
    assert str(artifact.description).startswith("FAILED while dataset: CommandError: [nodea] `dd ")


def test_a_power_command_with_a_wrong_placeholder_stops_at_the_settings_before_anything_is_touched(
    cluster: Callable[..., Cluster], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes = cluster("fault-tolerant")
    monkeypatch.setenv("HSF_FAILOVER__FAULT", "command")
    monkeypatch.setenv("HSF_FAILOVER__POWER_OFF_COMMAND", '["ipmitool", "-H", "{node}-bmc", "power", "off"]')
    monkeypatch.setenv("HSF_FAILOVER__POWER_ON_COMMAND", '["ipmitool", "-H", "{host}-bmc", "power", "on"]')

    assert failover.main() == 2
    assert capsys.readouterr().err.strip() == (
        "setting failover.power_on_command [HSF_FAILOVER__POWER_ON_COMMAND]: unknown placeholder "
        "{host} in ['ipmitool', '-H', '{host}-bmc', 'power', 'on'] (use {node}, {address})"
    )
    assert nodes.replay.executors == [], "no run touched a node"
