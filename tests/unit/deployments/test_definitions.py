"""deployments/definitions.py: schedules, parameters and entrypoints from the settings; prefect.yaml agrees.

No server: ``to_deployment`` builds deployments locally and the next run times come from the
scheduler's own cron code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from deployments.__main__ import render_yaml
from deployments.definitions import load_flow, next_runs, prefect_yaml, runner_deployments, specs
from tasks.settings import DeploymentSettings, SettingsError, load_settings
from tests.unit.deployments.conftest import REPO_ROOT

EXPECTED: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    # deployment name: (flow name, entrypoint, cron, parameters) with the default settings
    "nightly-backup": ("borg-backup", "flows/backup.py:backup", "0 2 * * *", {"verify_data": False}),
    "daily-spot-check": ("borg-spot-check", "flows/backup.py:spot_check", "0 7 * * *", {}),
    "weekly-verify": ("borg-verify", "flows/backup.py:verify", "0 4 * * 0", {}),
    "monthly-restore-drill": (
        "borg-restore-drill",
        "flows/backup.py:restore_drill",
        "0 5 1 * *",
        {"damage": "remove"},
    ),
    "weekly-failover-drill": ("failover-drill", "flows/failover.py:failover_drill", "0 3 * * 6", {}),
}


def test_runner_deployments_have_the_expected_schedule_parameters_and_entrypoint() -> None:
    deployments = runner_deployments(specs(DeploymentSettings()))
    assert {d.name for d in deployments} == set(EXPECTED)
    for deployment in deployments:
        flow_name, entrypoint, cron, parameters = EXPECTED[deployment.name]
        assert deployment.flow_name == flow_name
        assert deployment.entrypoint == entrypoint
        assert deployment.parameters == parameters
        [schedule] = deployment.schedules
        assert schedule.active
        assert schedule.schedule.model_dump(include={"cron", "timezone"}) == {"cron": cron, "timezone": "UTC"}


def test_parameters_are_plain_json_the_flow_accepts() -> None:
    for spec in specs(DeploymentSettings()):
        flow = load_flow(spec.entrypoint)
        assert flow.name == spec.flow_name
        validated = flow.validate_parameters(dict(spec.parameters))
        assert validated.get("settings") is None  # settings come from the worker's environment / hsf.toml
        assert yaml.safe_load(yaml.safe_dump(spec.parameters)) == spec.parameters


def test_schedules_and_parameters_follow_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HSF_DEPLOYMENTS__TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("HSF_DEPLOYMENTS__NIGHTLY_BACKUP_CRON", "30 1 * * *")
    monkeypatch.setenv("HSF_DEPLOYMENTS__RESTORE_DRILL_DAMAGE", "encrypt")
    monkeypatch.setenv("HSF_DEPLOYMENTS__NIGHTLY_BACKUP_VERIFY_DATA", "true")
    by_name = {d.name: d for d in runner_deployments(specs(load_settings().deployments))}
    nightly = by_name["nightly-backup"].schedules[0].schedule
    assert (nightly.cron, nightly.timezone) == ("30 1 * * *", "Europe/Berlin")  # type: ignore[union-attr]
    assert by_name["nightly-backup"].parameters == {"verify_data": True}
    assert by_name["monthly-restore-drill"].parameters == {"damage": "encrypt"}
    assert {d.schedules[0].schedule.timezone for d in by_name.values()} == {"Europe/Berlin"}  # type: ignore[union-attr]


def test_prefect_yaml_agrees_with_the_code() -> None:
    text = (REPO_ROOT / "prefect.yaml").read_text()
    assert yaml.safe_load(text) == prefect_yaml(specs(DeploymentSettings()), "hsf-process")
    assert text == render_yaml(
        specs(DeploymentSettings()), "hsf-process"
    )  # regenerate: python -m deployments yaml
    for entry in yaml.safe_load(text)["deployments"]:
        flow_name, entrypoint, cron, parameters = EXPECTED[entry["name"]]
        assert (entry["entrypoint"], entry["parameters"]) == (entrypoint, parameters)
        assert entry["schedules"] == [{"cron": cron, "timezone": "UTC"}]
        assert entry["work_pool"] == {"name": "hsf-process"}
        assert load_flow(entrypoint).name == flow_name


def test_next_runs_are_computed_locally_in_the_schedule_time_zone() -> None:
    by_name = {s.name: s for s in specs(DeploymentSettings())}
    start = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday
    assert next_runs(by_name["nightly-backup"], 2, start) == [
        datetime(2026, 1, 1, 2, tzinfo=UTC),
        datetime(2026, 1, 2, 2, tzinfo=UTC),
    ]
    assert next_runs(by_name["weekly-verify"], 1, start) == [datetime(2026, 1, 4, 4, tzinfo=UTC)]  # Sunday
    assert next_runs(by_name["weekly-failover-drill"], 1, start) == [datetime(2026, 1, 3, 3, tzinfo=UTC)]
    assert next_runs(by_name["monthly-restore-drill"], 2, start) == [
        datetime(2026, 1, 1, 5, tzinfo=UTC),
        datetime(2026, 2, 1, 5, tzinfo=UTC),
    ]
    berlin = specs(DeploymentSettings(timezone="Europe/Berlin"))[0]
    winter, summer = next_runs(berlin, 1, start)[0], next_runs(berlin, 1, datetime(2026, 7, 1, tzinfo=UTC))[0]
    assert winter == datetime(2026, 1, 1, 1, tzinfo=UTC)  # 02:00 CET
    assert summer == datetime(2026, 7, 1, 0, tzinfo=UTC)  # 02:00 CEST


def test_one_server_many_clusters_makes_each_deployment_per_cluster_in_its_sites_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HSF_DEPLOYMENTS__CLUSTERS", '{"east": "berlin", "west": "paris"}')
    deployments = specs(load_settings().deployments)
    assert len(deployments) == 2 * len(EXPECTED)
    by_name = {spec.name: spec for spec in deployments}
    for base, (flow_name, _, cron, parameters) in EXPECTED.items():
        for cluster, site in (("east", "berlin"), ("west", "paris")):
            spec = by_name[f"{base}-{cluster}"]
            assert (spec.flow_name, spec.cron, spec.work_queue) == (flow_name, cron, site)
            assert spec.parameters == {**parameters, "cluster": cluster}
            assert {f"cluster:{cluster}", f"site:{site}"} <= set(spec.tags)
            validated = load_flow(spec.entrypoint).validate_parameters(dict(spec.parameters))
            assert validated["cluster"] == cluster  # the flow takes it
    pools = [d["work_pool"] for d in prefect_yaml(deployments, "hsf-process")["deployments"]]
    assert {p["work_queue_name"] for p in pools} == {"berlin", "paris"}
    assert {p["name"] for p in pools} == {"hsf-process"}


def test_a_cluster_or_site_name_that_cannot_be_a_block_or_queue_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HSF_DEPLOYMENTS__CLUSTERS", '{"East": "berlin"}')
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert str(refused.value).startswith(
        "setting deployments.clusters.East.[key] [HSF_DEPLOYMENTS__CLUSTERS__EAST__[KEY]]: "
        "String should match"
    )
