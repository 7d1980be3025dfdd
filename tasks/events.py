"""The project's Prefect events: one way to emit them, one list of their names.

Automations react to these (``deployments/automations/``: a notification when ``hsf.data.lost``
arrives), so a typo in an event name would silently disarm them: :func:`emit` refuses names that are
not listed here. Emitted inside a flow run, Prefect relates the event to that run and its flow.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic_core import to_jsonable_python

FAILOVER_COMPLETED = "hsf.failover.completed"
DATA_LOST = "hsf.data.lost"
BACKUP_VERIFIED = "hsf.backup.verified"
BACKUP_FAILED = "hsf.backup.failed"
RESTORE_VERIFIED = "hsf.restore.verified"
RESTORE_FAILED = "hsf.restore.failed"
SPLIT_BRAIN_RESOLVED = "hsf.split-brain.resolved"
HA_UPGRADED = "hsf.ha.upgraded"
HA_NODE_LOSS_COMPLETED = "hsf.ha.node-loss.completed"
LINK_CUT_COMPLETED = "hsf.link-cut.completed"
STORAGE_FAULT_COMPLETED = "hsf.storage-fault.completed"
BACKUP_FAULT_COMPLETED = "hsf.backup-fault.completed"
ORCHESTRATION_FAULT_COMPLETED = "hsf.orchestration-fault.completed"
FAULT_OUTCOME = "hsf.fault.outcome"
STACKED_FAILOVER_COMPLETED = "hsf.stacked-failover.completed"
SITE_LOSS_COMPLETED = "hsf.site-loss.completed"

EVENTS = frozenset(
    {
        FAILOVER_COMPLETED,
        DATA_LOST,
        BACKUP_VERIFIED,
        BACKUP_FAILED,
        RESTORE_VERIFIED,
        RESTORE_FAILED,
        SPLIT_BRAIN_RESOLVED,
        HA_UPGRADED,
        HA_NODE_LOSS_COMPLETED,
        LINK_CUT_COMPLETED,
        STORAGE_FAULT_COMPLETED,
        BACKUP_FAULT_COMPLETED,
        ORCHESTRATION_FAULT_COMPLETED,
        FAULT_OUTCOME,
        STACKED_FAILOVER_COMPLETED,
        SITE_LOSS_COMPLETED,
    }
)


def cluster_resource(name: str) -> str:
    """Resource id of a storage cluster (the lab's name, or 'inventory')."""
    return f"hsf.cluster.{name}"


def backup_resource(repository: str) -> str:
    """Resource id of a Borg repository (its path or URL as configured)."""
    return f"hsf.backup.{repository}"


def emit(event: str, *, resource: str, payload: Mapping[str, object] | None = None) -> None:
    """Emit ``event`` about ``resource`` (e.g. ``hsf.cluster.hsf``) with a JSON-safe copy of ``payload``."""
    from prefect.events import emit_event

    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}; the project's events are: {', '.join(sorted(EVENTS))}")
    if not resource.startswith("hsf."):
        raise ValueError(f"resource id {resource!r} should start with 'hsf.' (e.g. hsf.cluster.<name>)")
    emit_event(
        event=event,
        resource={"prefect.resource.id": resource, "prefect.resource.name": resource.split(".", 2)[-1]},
        payload=to_jsonable_python(dict(payload or {})),
    )
