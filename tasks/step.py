"""The project's Prefect task decorator: one default instead of options repeated on every task.

A step acts on live state, so it is never served from Prefect's result cache (the default policy would
return the first ``promote`` of a run for the second one). A step that is pure and costly opts in with
its own ``cache_policy``. Only SSH transport errors are retried, and only where asked: the command may
not have run, so running it again can help; a real error never is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

from tasks.executor import is_transport_error

P = ParamSpec("P")


class _ThreadTimeoutNotice(logging.Filter):
    """Drops Prefect's warning that a task's ``timeout_seconds`` cannot interrupt a worker thread: it comes
    for every step a submitted task runs (several volumes, several nodes at once), and says nothing new
    here, where every command carries the executor's own timeout and every wait its own deadline."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout of %s seconds configured for this task, but the task")


logging.getLogger("prefect.task_runs").addFilter(_ThreadTimeoutNotice())
R = TypeVar("R")


def _retry_on_transport(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except Exception as exc:  # the failed state re-raises its exception
        return is_transport_error(exc)
    return False


def step(
    name: str, *, retry_transport: bool = False, **options: Any
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """``@task`` with the project's defaults: no result cache; SSH transport retries when asked."""
    options.setdefault("cache_policy", NO_CACHE)
    if retry_transport:
        options.update(retries=2, retry_delay_seconds=3, retry_condition_fn=_retry_on_transport)
    return task(name=name, **options)
