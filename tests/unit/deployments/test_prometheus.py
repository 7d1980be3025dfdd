"""deployments/prometheus/: the alert rules, judged by Debian's promtool — valid (``check rules``), and
each alert firing on the series it is for, when it should and not before (``test rules``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

RULES_DIR = Path(__file__).resolve().parents[3] / "deployments" / "prometheus"
RULES = RULES_DIR / "hsf-alerts.yml"
RULE_TESTS = RULES_DIR / "hsf-alerts.test.yml"


def promtool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *argv], capture_output=True, text=True, timeout=120, cwd=RULES_DIR)


def test_the_rules_are_valid() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 10 rules found" in checked.stdout


def test_every_alert_fires_on_its_series_and_not_before() -> None:
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_test() -> None:
    alerts = {
        rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    }
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert tested == alerts
    firing = {
        case["alertname"] for test in tests for case in test["alert_rule_test"] if case.get("exp_alerts")
    }
    assert firing == alerts - {"HsfBackupProbeFailing"}  # shown silent for 20 min of failures (6 h rule)


def test_the_rules_speak_of_the_exporter_s_metrics() -> None:
    from tests.unit.tasks.test_metrics import NAMES

    used = {
        word
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        for word in rule["expr"].replace("{", " ").replace("(", " ").split()
        if word.startswith("hsf_")
    }
    assert used and used <= NAMES, used - NAMES
