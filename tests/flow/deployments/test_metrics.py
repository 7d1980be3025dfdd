"""deployments/metrics.py end to end: after a real backup, verify, a spot check that finds a changed file
and a restore drill on a local borg repository, ``python -m deployments metrics`` serves /metrics on
127.0.0.1 and a real Prometheus (Debian's /usr/bin/prometheus, its own port, config and storage, the
project's alert rules) scrapes it; the project's figures and the one alert that should fire are read back
through Prometheus' HTTP API. Everything started here is stopped here."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.backup import backup, init, restore_drill, spot_check, verify
from tasks.settings import Settings
from tests.flow.conftest import local_repository_settings
from tests.processes import wait_for
from tests.prometheus import PROMETHEUS, get, scraped

pytestmark = pytest.mark.skipif(
    not PROMETHEUS.exists() or subprocess.run(["which", "borg"]).returncode != 0,
    reason="needs Debian's prometheus and borg (make deps)",
)


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
    with scraped(exporter_settings, tmp_path, str(get_current_settings().api.url)) as scrape:
        checked = subprocess.run(
            ["promtool", "check", "metrics"], input=get(f"{scrape.exporter}/metrics"), capture_output=True
        )
        assert (checked.returncode, checked.stdout + checked.stderr) == (0, b"")
        value, query = scrape.value, scrape.query

        repository = settings.backup.repository
        assert value('hsf_probe_success{probe="backup"}') == 1
        assert value('hsf_probe_success{probe="drills"}') == 1
        # the backup and the drill's fresh archive, both this project's
        assert value(f'hsf_backup_project_archives{{repository="{repository}"}}') == 2
        assert value("hsf_backup_checkpoint_archives") == 0
        assert value("hsf_backup_repository_size_bytes") > 200_000 * 0.9  # random: no compression
        newest = value("hsf_backup_last_archive_timestamp_seconds")
        assert started_at - 1 <= newest <= time.time()
        # the recorded results: the check after the backup, the weekly kind, the restore drill
        for check in ("backup", "verify-data"):
            verified = value(f'hsf_backup_last_verified_timestamp_seconds{{check="{check}"}}')
            assert started_at <= verified <= time.time()
        assert value('hsf_drill_last_success{drill="restore"}') == 1
        assert value('hsf_drill_last_timestamp_seconds{drill="restore"}') >= started_at
        assert value('hsf_backup_check_last_success{check="spot"}') == 0
        assert value('hsf_backup_check_last_success{check="verify-data"}') == 1
        # the project's alert rules, loaded by Prometheus: the failed spot check fires, nothing else does
        firing = wait_for("HsfBackupCheckFailed to fire", lambda: scrape.alerts() or None, 60)
        assert [(a["labels"]["alertname"], a["labels"]["check"], a["state"]) for a in firing] == [
            ("HsfBackupCheckFailed", "spot", "firing")
        ]
        assert firing[0]["labels"]["repository"] == repository
        rules = json.loads(get(f"{scrape.prometheus}/api/v1/rules") or b"{}")["data"]["groups"]
        assert sum(len(group["rules"]) for group in rules) == 10
        durations = query("hsf_probe_duration_seconds") or []
        print(
            "\nprobe durations (s):",
            {d["metric"]["probe"]: round(float(d["value"][1]), 2) for d in durations},
        )
        assert scrape.exporter_process.poll() is None and scrape.prometheus_process.poll() is None
    assert scrape.exporter_process.returncode == 0  # SIGTERM: served, then stopped cleanly
    assert scrape.prometheus_process.returncode == 0
    # nothing left
    assert get(f"{scrape.exporter}/metrics") is None and get(f"{scrape.prometheus}/-/ready") is None
