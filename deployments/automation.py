"""The project's automations: YAML definitions in ``deployments/automations/``, Prefect's own model.

A definition names its notification block instead of holding a block id (ids differ per server), and
may name the ``[deployments]`` setting its trigger's window comes from (``within_setting``); :func:`build`
puts the id and the window in and validates the whole thing with Prefect's ``AutomationCore``, and
:func:`apply` creates it on the server, replacing an older automation of the same name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from prefect.events.schemas.automations import AutomationCore

from tasks.settings import DeploymentSettings

AUTOMATIONS_DIR = Path(__file__).resolve().parent / "automations"


def definitions() -> dict[str, dict[str, Any]]:
    """Every definition file by name (without .yaml)."""
    return {path.stem: yaml.safe_load(path.read_text()) for path in sorted(AUTOMATIONS_DIR.glob("*.yaml"))}


def build(
    definition: dict[str, Any], notification_block_id: UUID, settings: DeploymentSettings
) -> AutomationCore:
    """The automation with the notification block's id in every notification action and its trigger's
    window from ``settings`` (when the definition names one), validated."""
    body = dict(definition["automation"])
    setting = definition.get("within_setting")
    if setting is not None:
        if setting not in DeploymentSettings.model_fields:
            raise ValueError(f"within_setting {setting!r} is not a [deployments] setting")
        body["trigger"] = {**body["trigger"], "within": getattr(settings, setting)}
    body["actions"] = [
        {**action, "block_document_id": str(notification_block_id)}
        if action["type"] == "send-notification"
        else action
        for action in body["actions"]
    ]
    return AutomationCore.model_validate(body)


def apply(definition: dict[str, Any], settings: DeploymentSettings) -> UUID:
    """Create the automation on the server (the notification block must exist); returns its id."""
    from prefect.client.orchestration import get_client

    block_name = definition["notification_block"]
    with get_client(sync_client=True) as client:
        matches = _notification_blocks(client, block_name)
        if not matches:
            raise LookupError(
                f"no notification block named {block_name!r}: create one (Blocks in the UI) and run again"
            )
        automation = build(definition, matches[0], settings)
        for old in client.read_automations_by_name(automation.name):
            client.delete_automation(old.id)
        return client.create_automation(automation)


def _notification_blocks(client: Any, name: str) -> list[UUID]:
    """Ids of blocks called ``name`` whose type can notify (Slack, email, webhooks…)."""
    found = []
    for document in client.read_block_documents(include_secrets=False):
        schema = document.block_schema
        if document.name == name and schema is not None and "notify" in schema.capabilities:
            found.append(document.id)
    return found
