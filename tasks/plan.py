"""One probe → plan → apply shape for every part that builds state (DRBD setup, the lab, the backup
server): probes read real state into typed models, a pure plan turns them into :class:`PlannedStep`
lists, and :func:`apply` runs them — the one place that logs each step with its reason, records it,
honours dry run, and refuses a step kind nobody handles before anything runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

from tasks.context import current_executor


class PlannedStep(BaseModel):
    """What a plan wants done, where, and why."""

    kind: str = Field(description="What the step does (one of the plan's step kinds).")
    node: str | None = Field(None, description="Where it acts (None: this machine or the whole cluster).")
    reason: str = Field(description="Why the probe says it is needed.")
    force: bool = Field(False, description="Destructive variant, only planned behind an explicit setting.")

    def __str__(self) -> str:
        where = ", ".join(part for part in (self.node or "", "force" if self.force else "") if part)
        return f"{self.kind}{f'({where})' if where else ''}: {self.reason}"


class UnknownStep(Exception):
    """A plan produced a step kind that nothing applies: a bug, never a silent skip."""


@dataclass(frozen=True)
class Handler:
    """How to apply one step kind.

    ``commands_only``: every change it makes goes through the run's executor, which prints instead of
    running in a dry run, so the handler still runs then (and shows its commands). Handlers that call
    libvirt or touch local files set it False and are only logged in a dry run.
    """

    apply: Callable[[PlannedStep], object]
    commands_only: bool = True


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    from prefect.logging import get_run_logger

    return get_run_logger()


def apply(
    steps: Sequence[PlannedStep],
    handlers: Mapping[str, Handler | Callable[[PlannedStep], object]],
    *,
    nothing_to_do: str,
) -> list[str]:
    """Apply ``steps`` in order; return them as text (what this run did, or would do in a dry run)."""
    unknown = sorted({step.kind for step in steps} - set(handlers))
    if unknown:
        raise UnknownStep(f"no handler for planned step kind(s) {', '.join(unknown)}; nothing was applied")
    log = _logger()
    if not steps:
        log.info("nothing to do: %s", nothing_to_do)
        return []
    dry_run = current_executor().dry_run
    done = []
    for step in steps:
        handler = handlers[step.kind]
        if not isinstance(handler, Handler):
            handler = Handler(handler)
        if dry_run and not handler.commands_only:
            log.info("(dry run; not applying) %s", step)
        else:
            log.info("%s%s", "(dry run) " if dry_run else "", step)
            handler.apply(step)
        done.append(str(step))
    return done
