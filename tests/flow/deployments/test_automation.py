"""The automations: valid for Prefect's own model, the window from the settings, accepted by a Prefect server.

That they fire is proved on a real server: tests/server/test_automations.py."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture

from deployments.automation import apply, build, definitions
from tasks.events import BACKUP_FAILED, BACKUP_VERIFIED, DATA_LOST, EVENTS
from tasks.settings import DeploymentSettings, SettingsError, load_settings


def test_data_lost_definition_is_a_valid_prefect_automation() -> None:
    definition = definitions()["data-lost"]
    block_id = uuid.uuid4()
    automation = build(definition, block_id, DeploymentSettings())
    trigger = automation.trigger
    assert isinstance(trigger, EventTrigger)
    assert trigger.expect == {DATA_LOST} and trigger.expect <= EVENTS
    assert trigger.posture == Posture.Reactive and trigger.threshold == 1
    assert trigger.match.model_dump() == {"prefect.resource.id": "hsf.*"}
    [action] = automation.actions
    assert isinstance(action, SendNotification) and action.block_document_id == block_id
    assert "{{ event.payload.drill }}" in action.body and "{{ event.resource.id }}" in action.subject


def test_backup_overdue_is_a_proactive_clock_per_repository_restarted_by_each_verified_backup() -> None:
    definition = definitions()["backup-overdue"]
    block_id = uuid.uuid4()
    automation = build(definition, block_id, DeploymentSettings())
    trigger = automation.trigger
    assert isinstance(trigger, EventTrigger)
    assert trigger.posture == Posture.Proactive and trigger.threshold == 1
    assert trigger.expect == {BACKUP_VERIFIED} and trigger.after == {BACKUP_VERIFIED, BACKUP_FAILED}
    assert trigger.after <= EVENTS
    assert trigger.match.model_dump() == {"prefect.resource.id": "hsf.backup.*"}
    assert trigger.for_each == {"prefect.resource.id"}  # one clock per repository
    assert trigger.within == timedelta(hours=26)  # the default window
    [action] = automation.actions
    assert isinstance(action, SendNotification) and action.block_document_id == block_id
    assert "{{ event.resource.id }}" in action.subject


def test_the_backup_window_comes_from_the_settings_and_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HSF_DEPLOYMENTS__BACKUP_VERIFIED_WITHIN_S", "50400")
    window = load_settings().deployments
    automation = build(definitions()["backup-overdue"], uuid.uuid4(), window)
    assert automation.trigger.within == timedelta(hours=14)  # type: ignore[union-attr]
    monkeypatch.setenv("HSF_DEPLOYMENTS__BACKUP_VERIFIED_WITHIN_S", "5")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value) == (
        "setting deployments.backup_verified_within_s [HSF_DEPLOYMENTS__BACKUP_VERIFIED_WITHIN_S]: "
        "Input should be greater than or equal to 10 (got '5')"
    )


def test_a_definition_naming_an_unknown_setting_is_refused() -> None:
    definition = {**definitions()["backup-overdue"], "within_setting": "nightly_window"}
    with pytest.raises(ValueError, match=r"within_setting 'nightly_window' is not a \[deployments\] setting"):
        build(definition, uuid.uuid4(), DeploymentSettings())


def test_apply_creates_it_on_the_server_once(prefect_harness: None) -> None:
    definition = definitions()["data-lost"]
    with pytest.raises(LookupError, match="no notification block named 'hsf-alerts'"):
        apply(definition, DeploymentSettings())
    CustomWebhookNotificationBlock(name="hsf-alerts", url="http://127.0.0.1:9/hook").save(
        "hsf-alerts", overwrite=True
    )
    first = apply(definition, DeploymentSettings())
    second = apply(definition, DeploymentSettings())  # replaces, never duplicates
    with get_client(sync_client=True) as client:
        [stored] = client.read_automations_by_name("hsf-data-lost")
        block = client.read_block_document_by_name("hsf-alerts", "custom-webhook")
    assert stored.id == second != first
    assert stored.trigger.expect == {DATA_LOST}  # type: ignore[union-attr]
    assert stored.actions[0].block_document_id == block.id  # type: ignore[union-attr]
