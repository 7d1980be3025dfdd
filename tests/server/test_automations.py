"""The project's automations fire on a real, PostgreSQL-backed Prefect server.

``python -m deployments automations`` creates them (the backup window set to seconds through the
settings), with a Custom Webhook block named ``hsf-alerts`` pointing at a receiver on 127.0.0.1:

- a drill's ``hsf.data.lost`` (emitted the way the flows emit it) is notified at once;
- a repository with no ``hsf.backup.verified`` within the window is notified, one whose backup is
  verified again within the window is not (its clock restarts: a real backup run verifies it), and one
  whose backups only ever failed is notified too.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks.events import BACKUP_FAILED, BACKUP_VERIFIED, DATA_LOST, backup_resource, cluster_resource, emit
from tests.processes import run, wait_for
from tests.server.conftest import TeamServer, WebhookReceiver

pytestmark = pytest.mark.server

WINDOW_S = 40  # the backup window here: longer than a real backup run on two busy cores (17 s seen)
NOTIFY_TIMEOUT_S = 60  # from the moment a notification is due


@pytest.fixture(scope="module")
def on_server(team_server: TeamServer) -> Iterator[TeamServer]:
    """This process's Prefect client talks to the team server (events, blocks). Prefect keeps one events
    worker per client type, bound to the API URL of its start: in a session whose flow tests started
    one against the test harness, events would go there. It is stopped on the way in and out, so the next
    emit starts one bound to the server of the moment."""
    EventsWorker.drain_all()
    with temporary_settings(updates={PREFECT_API_URL: team_server.api}):
        try:
            yield team_server
        finally:
            EventsWorker.drain_all()


def emitted(server: TeamServer, event: str, resource: str, payload: dict[str, object]) -> float:
    """Emit as the flows do and wait until the server stored it; when it occurred (epoch seconds)."""
    before = len(server.events(event, resource))
    emit(event, resource=resource, payload=payload)
    EventsWorker.drain_all()
    stored = wait_for(
        f"{event} about {resource} to reach the server",
        lambda: server.events(event, resource)[before:] or None,
        30,
        0.2,
    )
    return datetime.fromisoformat(stored[-1]["occurred"]).timestamp()


@pytest.fixture(scope="module")
def automations(on_server: TeamServer, webhook: WebhookReceiver) -> TeamServer:
    CustomWebhookNotificationBlock(
        name="hsf-alerts",
        url=webhook.url,
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
        allow_private_urls=True,  # the receiver is on 127.0.0.1
    ).save("hsf-alerts", overwrite=True)
    out = run(
        [sys.executable, "-m", "deployments", "automations"],
        on_server.env(HSF_DEPLOYMENTS__BACKUP_VERIFIED_WITHIN_S=str(WINDOW_S)),
    )
    assert "automation backup-overdue: created" in out and "automation data-lost: created" in out
    # The server's trigger service picks new automations up within seconds: proved by one firing.
    emitted(on_server, DATA_LOST, cluster_resource("readiness"), {"drill": "probe"})
    webhook.wait_about(cluster_resource("readiness"), NOTIFY_TIMEOUT_S)
    return on_server


def test_a_drill_that_lost_data_is_notified_at_once(
    automations: TeamServer, webhook: WebhookReceiver
) -> None:
    resource = cluster_resource("east")
    at = emitted(
        automations, DATA_LOST, resource, {"drill": "failover", "lost_bytes": 4096, "lost_files": ["f3"]}
    )
    note = webhook.wait_about(resource, NOTIFY_TIMEOUT_S)
    assert note.subject == f"HSF: data lost on {resource}"
    assert f"The failover drill reported lost data on {resource}" in note.body
    assert "'lost_bytes': 4096" in note.body
    print(f"data lost notified {note.at - at:.1f} s after the event")


def test_a_repository_without_a_verified_backup_within_the_window_is_notified(
    automations: TeamServer, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    # A real local repository, its backup settings in the environment as a worker's would be.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("kept every night\n")
    env = automations.env(
        HSF_CONFIG=str(tmp_path / "hsf.toml"),
        HSF_CLUSTER__NAME="nightly",
        HSF_CLUSTER__LOCK_DIR=str(tmp_path / "locks"),
        HSF_BACKUP__REPOSITORY=str(tmp_path / "repo"),
        HSF_BACKUP__SOURCES=json.dumps([str(tmp_path / "data")]),
        HSF_BACKUP__KEY_EXPORT_PATH=str(tmp_path / "repo.key"),
        HSF_BACKUP__SCRATCH_DIR=str(tmp_path / "scratch"),
        BORG_BASE_DIR=str(tmp_path / "borg-base"),
    )
    (tmp_path / "hsf.toml").write_text("# every setting from the environment\n")
    run([sys.executable, "-m", "flows.backup", "init"], env)
    verified_again = backup_resource(str(tmp_path / "repo"))  # what the backup flow names it
    silent, failing = backup_resource("/var/backups/silent"), backup_resource("/var/backups/failing")

    first = {
        verified_again: emitted(automations, BACKUP_VERIFIED, verified_again, {"archive": "first"}),
        silent: emitted(automations, BACKUP_VERIFIED, silent, {"archive": "first"}),
        failing: emitted(automations, BACKUP_FAILED, failing, {"error": "sources missing"}),
    }
    run([sys.executable, "-m", "flows.backup", "backup"], env)  # verified again, for real
    [*_, again] = wait_for(
        "the backup run's hsf.backup.verified to reach the server",
        lambda: automations.events(BACKUP_VERIFIED, verified_again)[1:] or None,
        30,
        0.2,
    )
    second = datetime.fromisoformat(again["occurred"]).timestamp()
    assert second - first[verified_again] < WINDOW_S, "the backup took longer than the window"

    for resource in (silent, failing):
        note = webhook.wait_about(resource, WINDOW_S + NOTIFY_TIMEOUT_S)
        assert note.subject == f"HSF: no verified backup of {resource}"
        assert note.at >= first[resource] + WINDOW_S  # never before the window is over
    note = webhook.wait_about(verified_again, WINDOW_S + NOTIFY_TIMEOUT_S)
    # Not at the end of its first window: the real backup's verification restarted its clock.
    assert note.at >= second + WINDOW_S > first[verified_again] + WINDOW_S
    assert "the last event about it was hsf.backup.verified" in note.body
    late = {r: webhook.about(r)[0].at - first[r] - WINDOW_S for r in (silent, failing)}
    print(
        f"overdue notified {late[silent]:.1f} s (silent) and {late[failing]:.1f} s (failing) after the "
        f"window; the verified one {note.at - second - WINDOW_S:.1f} s after its second window "
        f"({second - first[verified_again]:.1f} s after its first)"
    )
