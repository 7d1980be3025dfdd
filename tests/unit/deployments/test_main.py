"""deployments/__main__.py: ``python -m deployments list`` prints each deployment and its next runs;
bad schedule settings are one line (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deployments.__main__ import main

EXPECTED: dict[str, tuple[str, str, str]] = {
    # deployment name: (flow name, entrypoint, cron) with the default settings
    "nightly-backup": ("borg-backup", "flows/backup.py:backup", "0 2 * * *"),
    "daily-spot-check": ("borg-spot-check", "flows/backup.py:spot_check", "0 7 * * *"),
    "weekly-verify": ("borg-verify", "flows/backup.py:verify", "0 4 * * 0"),
    "monthly-restore-drill": ("borg-restore-drill", "flows/backup.py:restore_drill", "0 5 1 * *"),
    "weekly-failover-drill": ("failover-drill", "flows/failover.py:failover_drill", "0 3 * * 6"),
}


def test_list_command_prints_every_deployment_with_next_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--count", "2"]) == 0
    out = capsys.readouterr().out
    for name, (flow_name, entrypoint, cron) in EXPECTED.items():
        assert f"{flow_name}/{name}  ({entrypoint})" in out
        assert f"schedule    {cron}  [UTC]" in out
    assert out.count("next runs") == len(EXPECTED) and out.count(" UTC,") == len(EXPECTED)


def test_bad_schedule_settings_fail_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HSF_DEPLOYMENTS__WEEKLY_VERIFY_CRON", "0 4 * *")
    assert main(["list"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("setting deployments.weekly_verify_cron [HSF_DEPLOYMENTS__WEEKLY_VERIFY_CRON]:")
    assert "\n" not in err


def test_yaml_output_writes_the_settings_deployments_to_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HSF_DEPLOYMENTS__CLUSTERS", '{"east": "berlin"}')
    target = tmp_path / "prefect.yaml"
    assert main(["yaml", "--output", str(target)]) == 0
    assert capsys.readouterr().out == f"{target}: {len(EXPECTED)} deployments\n"
    written = yaml.safe_load(target.read_text())["deployments"]
    assert {d["name"] for d in written} == {f"{name}-east" for name in EXPECTED}
    assert {d["work_pool"]["work_queue_name"] for d in written} == {"berlin"}
