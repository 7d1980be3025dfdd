"""deployments/metrics.py end to end: after a real backup, verify, a spot check that finds a changed file
and a restore drill on a local borg repository, ``python -m deployments metrics`` serves /metrics on
127.0.0.1 and a real Prometheus (Debian's /usr/bin/prometheus, its own port, config and storage, the
project's alert rules) scrapes it; the project's figures and the one alert that should fire are read back
through Prometheus' HTTP API. Everything started here is stopped here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flows.backup import backup, init, restore_drill, spot_check, verify
from tasks.settings import Settings, write_settings_file
from tests.flow.conftest import local_repository_settings
from tests.processes import REPO_ROOT, free_port, started, wait_for

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/prometheus").exists() or subprocess.run(["which", "borg"]).returncode != 0,
    reason="needs Debian's prometheus and borg (make deps)",
)
ALERT_RULES = REPO_ROOT / "deployments" / "prometheus" / "hsf-alerts.yml"


def get(url: str) -> bytes | None:
    """The body of a 200 answer, or None while the server is not answering (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return bytes(response.read()) if response.status == 200 else None
    except OSError:
        return None


def query(prometheus: str, promql: str) -> list[dict[str, Any]] | None:
    """Prometheus' instant query: the result vector, or None while it is empty."""
    body = get(f"{prometheus}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
    if body is None:
        return None
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return answer["data"]["result"] or None


def value(prometheus: str, promql: str, timeout_s: float = 90) -> float:
    """The one sample ``promql`` selects, once Prometheus has scraped it."""
    result = wait_for(f"Prometheus to have {promql}", lambda: query(prometheus, promql), timeout_s)
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def alerts(prometheus: str) -> list[dict[str, Any]]:
    """The alerts Prometheus holds firing (pending ones left out)."""
    body = get(f"{prometheus}/api/v1/alerts")
    found = json.loads(body)["data"]["alerts"] if body else []
    return [alert for alert in found if alert["state"] == "firing"]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("BORG_BASE_DIR", str(tmp_path / "borg-base"))
    home = tmp_path / "home"
    (home / "alice").mkdir(parents=True)
    (home / "alice" / "notes.txt").write_text("what the exporter should count\n")
    (home / "alice" / "data.bin").write_bytes(os.urandom(200_000))
    block = f"test-borg-{tmp_path.name}".lower().replace("_", "-")
    return local_repository_settings(tmp_path, home, block)


def test_prometheus_scrapes_the_backup_and_the_drill(
    prefect_harness: None, settings: Settings, tmp_path: Path
) -> None:
    from prefect.events.worker import EventsWorker
    from prefect.settings import get_current_settings

    started_at = datetime.now(UTC).timestamp()
    init(settings)
    backup(settings)
    verify(settings)
    # a file changed behind its modification time (bit rot, or a tool that restores mtimes): the daily
    # spot check finds the archive no longer holds what the file holds, and records a failed check
    for path in [p for p in Path(settings.backup.sources[0]).rglob("*") if p.is_file()]:
        times = path.stat()
        path.write_bytes(bytes(b ^ 0xFF for b in path.read_bytes()))
        os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert not spot_check(settings).ok
    drill = restore_drill(settings)  # a fresh archive of the sources as they are now: restored intact
    assert drill.ok
    EventsWorker.drain_all()  # the events are on their way to the server

    # The exporter as an operator starts it: its settings from a file, the Prefect server from the
    # environment (here the harness's); only the backup and the recorded results (no nodes here).
    exporter_settings = settings.model_copy(
        update={"metrics": settings.metrics.model_copy(update={"probes": ("backup", "drills")})}
    )
    config = write_settings_file(exporter_settings, tmp_path / "hsf-metrics.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HSF_", "PREFECT_API_"))}
    env |= {"HSF_CONFIG": str(config), "PREFECT_API_URL": str(get_current_settings().api.url)}
    exporter_port, prometheus_port = free_port(), free_port()
    exporter = f"http://127.0.0.1:{exporter_port}"
    prometheus = f"http://127.0.0.1:{prometheus_port}"
    (tmp_path / "prometheus.yml").write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "5s", "scrape_timeout": "5s", "evaluation_interval": "5s"},
                "rule_files": [str(ALERT_RULES)],
                "scrape_configs": [
                    {"job_name": "hsf", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}
                ],
            }
        )
    )
    exporter_argv = [sys.executable, "-m", "deployments", "metrics", "--port", str(exporter_port)]
    prometheus_argv = [
        "/usr/bin/prometheus",
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
    ]
    with (
        started(exporter_argv, env, tmp_path / "exporter.log") as exporter_process,
        started(prometheus_argv, env, tmp_path / "prometheus.log") as prometheus_process,
    ):
        scraped = wait_for("the exporter to answer", lambda: get(f"{exporter}/metrics"), 120)
        checked = subprocess.run(["promtool", "check", "metrics"], input=scraped, capture_output=True)
        assert (checked.returncode, checked.stdout + checked.stderr) == (0, b""), scraped.decode()
        wait_for("Prometheus to be ready", lambda: get(f"{prometheus}/-/ready"), 60)

        repository = settings.backup.repository
        assert value(prometheus, 'hsf_probe_success{probe="backup"}') == 1
        assert value(prometheus, 'hsf_probe_success{probe="drills"}') == 1
        # the backup and the drill's fresh archive, both this project's
        assert value(prometheus, f'hsf_backup_project_archives{{repository="{repository}"}}') == 2
        assert value(prometheus, "hsf_backup_checkpoint_archives") == 0
        assert value(prometheus, "hsf_backup_repository_size_bytes") > 200_000 * 0.9  # random: no compression
        newest = value(prometheus, "hsf_backup_last_archive_timestamp_seconds")
        assert started_at - 1 <= newest <= time.time()
        # the recorded results: the check after the backup, the weekly kind, the restore drill
        for check in ("backup", "verify-data"):
            verified = value(prometheus, f'hsf_backup_last_verified_timestamp_seconds{{check="{check}"}}')
            assert started_at <= verified <= time.time()
        assert value(prometheus, 'hsf_drill_last_success{drill="restore"}') == 1
        assert value(prometheus, 'hsf_drill_last_timestamp_seconds{drill="restore"}') >= started_at
        assert value(prometheus, 'hsf_backup_check_last_success{check="spot"}') == 0
        assert value(prometheus, 'hsf_backup_check_last_success{check="verify-data"}') == 1
        # the project's alert rules, loaded by Prometheus: the failed spot check fires, nothing else does
        firing = wait_for("HsfBackupCheckFailed to fire", lambda: alerts(prometheus) or None, 60)
        assert [(a["labels"]["alertname"], a["labels"]["check"], a["state"]) for a in firing] == [
            ("HsfBackupCheckFailed", "spot", "firing")
        ]
        assert firing[0]["labels"]["repository"] == repository
        rules = json.loads(get(f"{prometheus}/api/v1/rules") or b"{}")["data"]["groups"]
        assert sum(len(group["rules"]) for group in rules) == 10
        durations = query(prometheus, "hsf_probe_duration_seconds") or []
        print(
            "\nprobe durations (s):",
            {d["metric"]["probe"]: round(float(d["value"][1]), 2) for d in durations},
        )
        assert exporter_process.poll() is None and prometheus_process.poll() is None
    assert exporter_process.returncode == 0  # SIGTERM: served, then stopped cleanly
    assert prometheus_process.returncode == 0
    assert get(f"{exporter}/metrics") is None and get(f"{prometheus}/-/ready") is None  # nothing left
