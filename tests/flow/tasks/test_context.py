"""tasks/context.py: two state-changing flows on one cluster never act at once; dry run per run."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flows.setup import SetupReport, setup
from tasks.context import (
    LEASE_PARENT_VARIABLE,
    ClusterBusy,
    current_executor,
    lease_for_child,
    run_context,
    take_back_lease,
)
from tasks.processes import PROJECT_ROOT, FlowProcess, kill_when
from tasks.settings import load_settings
from tests.flow.conftest import Replay
from tests.replay import Ran, ReplayExecutor


def _in_thread(results: dict[str, object], name: str) -> threading.Thread:
    def target() -> None:
        try:
            results[name] = setup()
        except BaseException as exc:  # the test inspects it
            results[name] = exc

    thread = threading.Thread(target=target, name=name)
    thread.start()
    return thread


def _hold_first_flow(
    release: threading.Event, first_started: threading.Event
) -> Callable[[ReplayExecutor, Ran], None]:
    """The first flow run to send a command is held there until ``release`` (the other runs pass)."""
    first: list[ReplayExecutor] = []

    def before_command(executor: ReplayExecutor, ran: Ran) -> None:
        if not first:
            first.append(executor)
        if executor is first[0]:
            first_started.set()
            assert release.wait(120), "test never released the first flow"

    return before_command


def _wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_the_second_state_changing_flow_waits_for_the_first(replay: Callable[..., Replay]) -> None:
    release, first_started = threading.Event(), threading.Event()
    nodes = replay("fault-tolerant", before_command=_hold_first_flow(release, first_started))
    results: dict[str, object] = {}
    first = _in_thread(results, "first")
    assert first_started.wait(60), "the first flow never reached its nodes"
    second = _in_thread(results, "second")
    _wait_for(lambda: any("is in use by another state-changing flow run" in line for line in nodes.logs),
              "the second flow to say it waits")  # fmt: skip
    assert len(nodes.executors) == 2 and nodes.executors[1].ran == [], "the second flow acted while waiting"
    release.set()
    first.join(120)
    second.join(120)
    assert isinstance(results["first"], SetupReport) and isinstance(results["second"], SetupReport)
    first_ran, second_ran = (executor.ran for executor in nodes.executors)
    assert first_ran and second_ran
    assert min(r.at for r in second_ran) > max(r.at for r in first_ran), "the two flows overlapped"


def test_the_second_flow_refuses_clearly_after_its_timeout(
    replay: Callable[..., Replay], monkeypatch: pytest.MonkeyPatch
) -> None:
    release, first_started = threading.Event(), threading.Event()
    nodes = replay("fault-tolerant", before_command=_hold_first_flow(release, first_started))
    results: dict[str, object] = {}
    first = _in_thread(results, "first")
    assert first_started.wait(60)
    monkeypatch.setenv("HSF_CLUSTER__LOCK_TIMEOUT_S", "2")
    try:
        with pytest.raises(ClusterBusy, match=r"cluster inventory stayed in use by another flow run for 2 s"):
            setup()
    finally:
        release.set()
        first.join(120)
    assert isinstance(results["first"], SetupReport)
    assert [len(e.ran) > 0 for e in nodes.executors] == [True, False], "the refused flow touched a node"


def test_read_only_code_outside_a_flow_run_gets_a_plain_executor() -> None:
    executor = current_executor()
    assert not executor.dry_run and executor is current_executor()


_TAKE_THE_CLUSTER = """
from tasks.context import ClusterBusy, cluster_lease
from tasks.settings import load_settings
try:
    with cluster_lease(load_settings()):
        print("acting under the cluster")
except ClusterBusy as exc:
    print(exc)
"""


def test_a_process_the_holding_run_starts_acts_under_its_hold_and_no_other_does(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real child process of a run that holds the cluster: lent the lease, it acts at once; without it,
    or naming a process that is not its parent, it waits and gives up as any other run would."""
    for name in list(os.environ):
        if name.startswith("HSF_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    env = os.environ | {"HSF_CLUSTER__LOCK_DIR": str(tmp_path), "HSF_CLUSTER__LOCK_TIMEOUT_S": "2"}
    settings = load_settings(cluster={"lock_dir": str(tmp_path), "lock_timeout_s": 2})

    def child(extra: dict[str, str]) -> str:
        argv = [sys.executable, "-c", _TAKE_THE_CLUSTER]
        done = subprocess.run(
            argv, env=env | extra, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip()

    with pytest.raises(RuntimeError, match="only a run that holds the cluster can lend it"):
        lease_for_child(settings)
    with run_context(settings, changes_state=True):
        lent = lease_for_child(settings)
        assert lent == {LEASE_PARENT_VARIABLE: str(os.getpid())}
        assert child(lent) == "acting under the cluster"
        assert child({}).startswith("cluster hsf stayed in use by another flow run for 2 s")
        assert child({LEASE_PARENT_VARIABLE: "1"}).startswith("cluster hsf stayed in use")
    assert child(lent) == "acting under the cluster"  # released: it takes the lease itself


_ACT_UNTIL_KILLED = """
import time
from prefect import flow
from tasks.context import run_context
from tasks.settings import load_settings

@flow(name="victim")
def victim() -> None:
    with run_context(load_settings(), changes_state=True):
        print("acting", flush=True)
        time.sleep(300)

victim()
"""


def test_the_run_of_a_killed_process_it_lent_the_cluster_to_is_marked_crashed(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flow in a real child process acts under the lent lease and is SIGKILLed: taking the lease back
    names its flow run and marks it Crashed (it would stay Running for ever on the server)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType

    for name in list(os.environ):
        if name.startswith("HSF_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(cluster={"lock_dir": str(tmp_path)})
    with get_client(sync_client=True) as client:
        api_url = str(client.api_url)
    env = os.environ | {"HSF_CLUSTER__LOCK_DIR": str(tmp_path), "PREFECT_API_URL": api_url}
    with run_context(settings, changes_state=True):
        assert take_back_lease(settings, "no child yet") == ""
        log = tmp_path / "victim.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-c", _ACT_UNTIL_KILLED], env=env | lease_for_child(settings),
                cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        victim = FlowProcess(process=process, log=log, started_at=time.monotonic())
        kill_when(victim, lambda: "acting" if "acting" in victim.output_tail() else None, timeout_s=120)
        taken = take_back_lease(settings, "killed by the test")
    assert taken.startswith("flow run ") and "(victim), pid " in taken, taken
    assert taken.endswith("; its flow run is now marked Crashed")
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    named = FlowRunFilter(name=FlowRunFilterName(any_=taken.split()))  # the session's harness holds many runs
    with get_client(sync_client=True) as client:
        [run] = client.read_flow_runs(flow_run_filter=named)
        assert run.state is not None and run.state.type == StateType.CRASHED
        assert run.state.message == "killed by the test"
