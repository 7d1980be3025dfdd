"""The data-lost automation: valid for Prefect's own model, and accepted by a Prefect server."""

from __future__ import annotations

import uuid

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture

from deployments.automation import apply, build, definitions
from tasks.events import DATA_LOST, EVENTS


def test_data_lost_definition_is_a_valid_prefect_automation() -> None:
    definition = definitions()["data-lost"]
    block_id = uuid.uuid4()
    automation = build(definition, block_id)
    trigger = automation.trigger
    assert isinstance(trigger, EventTrigger)
    assert trigger.expect == {DATA_LOST} and trigger.expect <= EVENTS
    assert trigger.posture == Posture.Reactive and trigger.threshold == 1
    assert trigger.match.model_dump() == {"prefect.resource.id": "hsf.*"}
    [action] = automation.actions
    assert isinstance(action, SendNotification) and action.block_document_id == block_id
    assert "{{ event.payload.drill }}" in action.body and "{{ event.resource.id }}" in action.subject


def test_apply_creates_it_on_the_server_once(prefect_harness: None) -> None:
    definition = definitions()["data-lost"]
    with pytest.raises(LookupError, match="no notification block named 'hsf-alerts'"):
        apply(definition)
    CustomWebhookNotificationBlock(name="hsf-alerts", url="http://127.0.0.1:9/hook").save(
        "hsf-alerts", overwrite=True
    )
    first = apply(definition)
    second = apply(definition)  # replaces, never duplicates
    with get_client(sync_client=True) as client:
        [stored] = client.read_automations_by_name("hsf-data-lost")
        block = client.read_block_document_by_name("hsf-alerts", "custom-webhook")
    assert stored.id == second != first
    assert stored.trigger.expect == {DATA_LOST}  # type: ignore[union-attr]
    assert stored.actions[0].block_document_id == block.id  # type: ignore[union-attr]
