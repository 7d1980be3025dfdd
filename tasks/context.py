"""Per-run context: dry run, secret masking and SSH connections belong to the flow run.

Every flow opens :func:`run_context` from its own settings, so a run started by a deployment, a worker,
a test or the CLI behaves the same: ``HSF_DRY_RUN`` is honoured wherever the settings come from. A
subflow joins the context of the flow that called it (one executor, one set of connections, one lease).

A flow that changes state on the cluster's nodes asks for the cluster (``changes_state=True``): the
context then holds the cluster's Prefect concurrency slot (a global concurrency limit of 1, named
after the cluster) for as long as the run lasts, so two state-changing flows never act on the same
nodes at once. The second waits, saying for what, up to ``cluster.lock_timeout_s``; then it fails with
one line. Read-only flows (status, list, preview, verify) do not ask for it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from tasks.executor import Executor
from tasks.settings import Settings

LOCK_PREFIX = "hsf-cluster-"
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


@contextlib.contextmanager
def cluster_lease(settings: Settings, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the cluster's concurrency slot (limit 1) while the block runs; wait for it, saying so."""
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists

    name = lock_name(settings.cluster_name)
    timeout_s = settings.cluster.lock_timeout_s
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.upsert_global_concurrency_limit_by_name(name, 1)  # two first runs may race to create it
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(concurrency(name, occupy=1, timeout_seconds=FIRST_TRY_S, strict=True))
    except TimeoutError:
        line = (
            f"cluster {settings.cluster_name} is in use by another state-changing flow run: waiting up to "
            f"{timeout_s:g} s for it (concurrency limit {name})"
        )
        _logger().warning("%s", line)
        if on_wait is not None:
            on_wait(line)
        try:
            stack.enter_context(concurrency(name, occupy=1, timeout_seconds=timeout_s, strict=True))
        except TimeoutError:
            raise ClusterBusy(
                f"cluster {settings.cluster_name} stayed in use by another flow run for {timeout_s:g} s "
                f"(cluster.lock_timeout_s); nothing was changed. Its runs hold concurrency limit {name}."
            ) from None
    with stack:
        yield
