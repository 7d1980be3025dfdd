"""Per-run context: dry run, secret masking and SSH connections belong to the flow run.

Every flow opens :func:`run_context` from its own settings, so a run started by a deployment, a worker,
a test or the CLI behaves the same: ``HSF_DRY_RUN`` is honoured wherever the settings come from. A
subflow joins the context of the flow that called it (one executor, one set of connections, one lease).

A flow that changes state on the cluster's nodes asks for the cluster (``changes_state=True``): the
context then holds it (:func:`cluster_lease`) for as long as the run lasts, so two state-changing flows
never act on the same nodes at once. The second waits, saying for what, up to
``cluster.lock_timeout_s``; then it fails with one line. Read-only flows (status, list, preview,
verify) do not ask for it. A flow process that a holding run starts itself (an orchestration fault's
victim) acts under that run's hold, as a subflow would (:func:`lease_for_child`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from pydantic import BaseModel

from tasks.executor import Executor
from tasks.settings import Settings

LOCK_PREFIX = "hsf-cluster-"
# Set by a run for a flow process it starts under its own hold of the cluster (an orchestration fault's
# victim): the pid of the run that holds it. Not an HSF_ variable: it is no setting.
LEASE_PARENT_VARIABLE = "HA_STORAGE_FLOWS_LEASE_PARENT"
FIRST_TRY_S = 1.0  # how long to try for a free cluster before saying that this run waits


class ClusterBusy(Exception):
    """Another state-changing flow held the cluster for longer than this run would wait."""


class DryRunRefused(Exception):
    """The flow cannot honour a dry run (its proof needs a real fault), so it refuses to start."""


@dataclass
class RunContext:
    executor: Executor
    cluster: str
    holds_cluster: bool = False


_CURRENT: ContextVar[RunContext | None] = ContextVar("hsf_run_context", default=None)


def new_executor(dry_run: bool) -> Executor:
    """The executor of a new run (the flow-tier tests replace this to replay captured output)."""
    return Executor(dry_run=dry_run)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("hsf.context")


@contextlib.contextmanager
def run_context(settings: Settings, *, changes_state: bool) -> Iterator[Executor]:
    """The run's executor (dry run from ``settings``); with ``changes_state``, hold the cluster too."""
    outer = _CURRENT.get()
    if outer is not None:
        if outer.executor.dry_run != settings.dry_run:
            raise ValueError("a subflow must run with the dry-run setting of the flow that called it")
        if outer.cluster != settings.cluster_name:
            raise ValueError(f"a flow on cluster {outer.cluster} called a subflow on {settings.cluster_name}")
        if not changes_state or outer.holds_cluster:
            yield outer.executor
            return
        with cluster_lease(settings):
            outer.holds_cluster = True
            try:
                yield outer.executor
            finally:
                outer.holds_cluster = False
        return
    context = RunContext(executor=new_executor(settings.dry_run), cluster=settings.cluster_name)
    token = _CURRENT.set(context)
    try:
        if changes_state:
            with cluster_lease(settings):
                context.holds_cluster = True
                yield context.executor
        else:
            yield context.executor
    finally:
        _CURRENT.reset(token)
        context.executor.close()


def current_executor() -> Executor:
    """The executor of the flow run this code runs in.

    Outside any run (a test calling a step's ``.fn``, a benchmark's own shell commands) there is a
    plain executor that never dry-runs; inside a Prefect flow run without a run context that would
    silently ignore the run's dry-run setting, so it is an error.
    """
    context = _CURRENT.get()
    if context is not None:
        return context.executor
    from prefect.context import FlowRunContext

    flow_run = FlowRunContext.get()
    if flow_run is not None:
        raise RuntimeError(
            f"flow {flow_run.flow.name if flow_run.flow else '?'} runs commands without opening "
            "tasks.context.run_context (its dry-run setting would be ignored)"
        )
    return _standalone()


_STANDALONE: Executor | None = None


def _standalone() -> Executor:
    global _STANDALONE
    if _STANDALONE is None:
        _STANDALONE = Executor()
    return _STANDALONE


def close_standalone() -> None:
    """Close the connections the standalone executor opened (tests and tools outside a flow run)."""
    if _STANDALONE is not None:
        _STANDALONE.close()


def refuse_dry_run(settings: Settings, flow: str, why: str) -> None:
    """One clear line instead of a dry run that would fake its proof."""
    if settings.dry_run:
        raise DryRunRefused(f"{flow} does not dry-run: {why}. Nothing was changed.")


def lock_name(cluster: str) -> str:
    return f"{LOCK_PREFIX}{cluster}"


class Holder(BaseModel):
    """Who holds a cluster: written into the lock file while held, emptied on release."""

    pid: int
    host: str
    flow_run_id: str | None = None
    flow_run_name: str | None = None
    flow: str | None = None
    since: str

    def describe(self) -> str:
        run = (
            f"flow run {self.flow_run_name or self.flow_run_id} ({self.flow})"
            if self.flow_run_id
            else "a run"
        )
        return f"{run}, pid {self.pid} on {self.host}, since {self.since}"


def _current_holder() -> Holder:
    from prefect.context import FlowRunContext

    flow_run = FlowRunContext.get()
    run = flow_run.flow_run if flow_run else None
    return Holder(
        pid=os.getpid(),
        host=socket.gethostname(),
        flow_run_id=str(run.id) if run else None,
        flow_run_name=run.name if run else None,
        flow=flow_run.flow.name if flow_run and flow_run.flow else None,
        since=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _read_holder(path: Path) -> Holder | None:
    try:
        return Holder.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def cluster_lease(settings: Settings) -> Iterator[None]:
    """Hold the cluster while the block runs; wait for it (saying for what), or give up with one line.

    Two locks, both released by whoever holds them when the block ends:

    - a ``flock`` on ``cluster.lock_dir/hsf-cluster-<cluster>.lock`` on this machine, which the kernel
      releases when the holding process dies — so a killed run never locks the cluster for good, and
      the next run finds its record in the file and reports it (its flow run is marked Crashed);
    - with a Prefect server (``PREFECT_API_URL``), its global concurrency limit of 1 named after the
      cluster, so workers on other machines wait too (the server reclaims a dead holder's lease).
      Prefect's temporary server of a CLI run does not reclaim leases, so it is not used there.
    """
    from prefect.settings import get_current_settings

    if _held_by_parent(settings):
        # the run that lent it reads who acted under its hold (to mark the run Crashed if it kills it)
        _lent_record(settings).write_text(_current_holder().model_dump_json())
        yield
        return
    deadline = time.monotonic() + settings.cluster.lock_timeout_s
    with contextlib.ExitStack() as stack:
        stack.enter_context(_host_lock(settings, deadline))
        if get_current_settings().api.url:
            stack.enter_context(_server_slot(settings, deadline))
        yield


def lease_for_child(settings: Settings) -> dict[str, str]:
    """The environment that lets a flow process this run starts act under this run's hold of the cluster
    (it would wait for it otherwise); raises RuntimeError when this run does not hold it. The process
    records its flow run for :func:`take_back_lease`."""
    context = _CURRENT.get()
    if context is None or not context.holds_cluster:
        raise RuntimeError("only a run that holds the cluster can lend it to a process it starts")
    _lent_record(settings).unlink(missing_ok=True)  # an earlier child's
    return {LEASE_PARENT_VARIABLE: str(os.getpid())}


def _lent_record(settings: Settings) -> Path:
    return settings.cluster.lock_dir / f"{lock_name(settings.cluster_name)}.lent"


def take_back_lease(settings: Settings, why: str) -> str:
    """After the process this run lent the cluster to has ended (killed, or done): forget its record, and
    mark its flow run Crashed if it did not end (``why`` says why). Returns the run, described, and what
    was done; empty when the process never acted under the lease."""
    record = _lent_record(settings)
    holder = _read_holder(record)
    record.unlink(missing_ok=True)
    return f"{holder.describe()}{_mark_crashed(holder, why)}" if holder else ""


def _held_by_parent(settings: Settings) -> bool:
    """This process was started by the run that holds the cluster: the variable names the parent process,
    the lock file names it as the holder, and the lock is held. Any other case takes the lease as usual."""
    parent = os.getppid()
    if os.environ.get(LEASE_PARENT_VARIABLE) != str(parent):
        return False
    path = settings.cluster.lock_dir / f"{lock_name(settings.cluster_name)}.lock"
    holder = _read_holder(path)
    if holder is None or holder.pid != parent or holder.host != socket.gethostname():
        return False
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # held, by the parent the file names
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _waiting(settings: Settings, holder: str) -> None:
    line = (
        f"cluster {settings.cluster_name} is in use by another state-changing flow run ({holder}): "
        f"waiting up to {settings.cluster.lock_timeout_s:g} s for it"
    )
    _logger().warning("%s", line)


def _busy(settings: Settings, holder: str) -> ClusterBusy:
    return ClusterBusy(
        f"cluster {settings.cluster_name} stayed in use by another flow run for "
        f"{settings.cluster.lock_timeout_s:g} s (cluster.lock_timeout_s; {holder}); nothing was changed"
    )


@contextlib.contextmanager
def _host_lock(settings: Settings, deadline: float) -> Iterator[None]:
    directory = settings.cluster.lock_dir
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{lock_name(settings.cluster_name)}.lock"
    with path.open("a+") as handle:
        said = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                held_by = _read_holder(path)
                holder = held_by.describe() if held_by else "a run starting up"
                if not said:
                    _waiting(settings, holder)
                    said = True
                if time.monotonic() >= deadline:
                    raise _busy(settings, holder) from None
                time.sleep(0.5)
        try:
            interrupted = _read_holder(path)
            if interrupted is not None:
                _report_interrupted(settings, interrupted)
            handle.seek(0)
            handle.truncate()
            handle.write(_current_holder().model_dump_json())
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _report_interrupted(settings: Settings, holder: Holder) -> None:
    """The previous holder ended without releasing the cluster: say so, and mark its flow run Crashed."""
    message = f"interrupted: its process ended without finishing (found by the next run on {holder.host})"
    _logger().warning(
        "the previous state-changing run on cluster %s did not finish: %s%s. Check the cluster before "
        "trusting it (a backup it made is unchecked; a drill may have left a node down).",
        settings.cluster_name,
        holder.describe(),
        _mark_crashed(holder, message),
    )


def _mark_crashed(holder: Holder, message: str) -> str:
    """Mark the holder's flow run Crashed unless it ended; returns what was done, as a clause."""
    if not holder.flow_run_id:
        return ""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(holder.flow_run_id))
            if run.state is None or run.state.is_final():
                return ""
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            return "; its flow run is now marked Crashed"
    except Exception as exc:  # another server's run, or none: reporting it is what matters
        return f"; its flow run could not be marked Crashed ({type(exc).__name__})"


@contextlib.contextmanager
def _server_slot(settings: Settings, deadline: float) -> Iterator[None]:
    """The Prefect server's global concurrency limit of 1 for the cluster (created on first use)."""
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists

    name = lock_name(settings.cluster_name)
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.upsert_global_concurrency_limit_by_name(name, 1)  # two first runs may race to create it
    holder = f"a flow run on another machine (concurrency limit {name})"
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(concurrency(name, occupy=1, timeout_seconds=FIRST_TRY_S, strict=True))
    except TimeoutError:
        _waiting(settings, holder)
        try:
            remaining = max(deadline - time.monotonic(), FIRST_TRY_S)
            stack.enter_context(concurrency(name, occupy=1, timeout_seconds=remaining, strict=True))
        except TimeoutError:
            raise _busy(settings, holder) from None
    with stack:
        yield
