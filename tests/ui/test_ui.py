"""The Prefect UI on a real server: a project deployment run by a worker, its report, a screenshot.

Starts ``prefect server start`` (SQLite in a temporary PREFECT_HOME, 127.0.0.1, a free port), deploys
the nightly backup from the project's own ``prefect.yaml`` to a process work pool, starts a worker,
triggers a run through the API against a temporary borg repository, waits for it to complete, reads
its artifacts back, and has headless Chromium render the flow run's page. Every process it starts is
killed (its whole process group) whatever happens. The screenshot is kept in build/ui/.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from deployments import team
from tests.processes import REPO_ROOT, free_port, run, started, tail, wait_for

pytestmark = [
    pytest.mark.ui,
    pytest.mark.skipif(shutil.which("borg") is None, reason="no borg (scripts/install-host-packages.sh)"),
    pytest.mark.skipif(
        shutil.which("chromium") is None, reason="no chromium (scripts/install-host-packages.sh)"
    ),
]

EVIDENCE_DIR = REPO_ROOT / "build" / "ui"
PREFECT = str(Path(sys.executable).with_name("prefect"))
POOL = "hsf-process"
DEPLOYMENT = "borg-backup/nightly-backup"
ARCHIVE_PREFIX = "uitest"
SERVER_START_TIMEOUT_S = 180  # fresh database on 2 busy cores (26.6 s when idle)
RUN_TIMEOUT_S = 300


def chromium_argv(url: str, profile: Path, output: list[str]) -> list[str]:
    """Headless Chromium as root on a machine without GPU or network access (flags measured here)."""
    return [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1400,900",
        "--virtual-time-budget=20000",  # let the single-page app fetch and render the run first
        *output,
        url,
    ]


def environment(home: Path, api_url: str, work: Path) -> dict[str, str]:
    """A clean environment: this server only, and the backup settings of a temporary repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HSF_", "BORG_"))}
    (work / "hsf.toml").write_text("# empty: every setting below comes from the environment\n")
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_WORKER_QUERY_SECONDS="2",
        HSF_CONFIG=str(work / "hsf.toml"),
        HSF_BACKUP__REPOSITORY=str(work / "repo"),
        HSF_BACKUP__SOURCES=json.dumps([str(work / "data")]),
        HSF_BACKUP__KEY_EXPORT_PATH=str(work / "repo.key"),
        HSF_BACKUP__ARCHIVE_PREFIX=ARCHIVE_PREFIX,
        BORG_BASE_DIR=str(work / "borg-base"),
    )
    return env


def test_a_deployed_backup_runs_and_its_report_shows_in_the_ui(tmp_path: Path) -> None:
    started_at = time.monotonic()
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    (tmp_path / "data" / "docs").mkdir(parents=True)
    (tmp_path / "data" / "docs" / "notes.txt").write_text("what the nightly backup keeps\n")
    (tmp_path / "data" / "blob.bin").write_bytes(os.urandom(200_000))
    env = environment(tmp_path / "prefect-home", api, tmp_path)
    server_log, worker_log = tmp_path / "server.log", tmp_path / "worker.log"
    http = httpx.Client(base_url=api, timeout=30)

    def healthy() -> bool | None:
        with contextlib.suppress(httpx.HTTPError):
            if http.get("/health").status_code == 200:
                return True
        return None

    with started(team.server_argv("127.0.0.1", port, prefect=PREFECT), env, server_log) as server:
        try:
            wait_for("the server's /api/health", healthy, SERVER_START_TIMEOUT_S)
        except TimeoutError:
            pytest.fail(f"server did not start (exit {server.poll()}):\n{tail(server_log)}")
        server_ready_s = time.monotonic() - started_at

        # The repository and its passphrase (a Secret block on this server), as a user would make them.
        run([sys.executable, "-m", "flows.backup", "init"], env)
        run(team.work_pool_argv(POOL, PREFECT), env)
        run([PREFECT, "--no-prompt", "deploy", "--name", "nightly-backup"], env)

        flow_name, name = DEPLOYMENT.split("/")
        deployment = http.get(f"/deployments/name/{flow_name}/{name}").raise_for_status().json()
        expected = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"][0]
        assert deployment["entrypoint"] == expected["entrypoint"] == "flows/backup.py:backup"
        assert deployment["parameters"] == expected["parameters"]
        assert deployment["work_pool_name"] == POOL
        [schedule] = deployment["schedules"]
        assert schedule["active"]
        assert (schedule["schedule"]["cron"], schedule["schedule"]["timezone"]) == ("0 2 * * *", "UTC")

        with started(team.worker_argv(POOL, name="hsf-ui-test", prefect=PREFECT), env, worker_log):
            flow_run = http.post(
                f"/deployments/{deployment['id']}/create_flow_run", json={}
            ).raise_for_status()
            run_id = flow_run.json()["id"]

            def finished() -> dict[str, Any] | None:
                state = http.get(f"/flow_runs/{run_id}").raise_for_status().json()["state"]
                return state if state["type"] in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"} else None

            state = wait_for("the flow run to finish", finished, RUN_TIMEOUT_S, interval_s=2)
            assert state["type"] == "COMPLETED", f"run ended {state}\nworker log:\n{tail(worker_log, 80)}"
        run_done_s = time.monotonic() - started_at

        artifacts = (
            http.post("/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}})
            .raise_for_status()
            .json()
        )
        reports = [a for a in artifacts if a["type"] in {"markdown", "table"} and a["key"]]
        assert reports, f"no report artifact for run {run_id}: {artifacts}"
        report = next(a for a in reports if f"{ARCHIVE_PREFIX}-" in json.dumps(a["data"]))

        # The flow run's page, Artifacts tab, and the report's own page: pictures, and the DOM as the
        # browser built it. The V2 UI keeps ?tab= across the first load (the default UI resets it).
        EVIDENCE_DIR.mkdir(parents=True, exist_ok=True)
        ui = f"http://127.0.0.1:{port}/v2"
        pages = {
            "flow-run": f"{ui}/runs/flow-run/{run_id}?tab=Artifacts",
            "report": f"{ui}/artifacts/artifact/{report['id']}",
        }
        profile = tmp_path / "chromium"
        dom = {}
        for page, url in pages.items():
            png = EVIDENCE_DIR / f"{page}.png"
            png.unlink(missing_ok=True)
            shot = subprocess.run(
                chromium_argv(url, profile, [f"--screenshot={png}"]),
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert png.exists(), f"no screenshot of {url}: {shot.returncode}\n{shot.stderr[-2000:]}"
            dom[page] = subprocess.run(
                chromium_argv(url, profile, ["--dump-dom"]), capture_output=True, text=True, timeout=180
            ).stdout
    elapsed = time.monotonic() - started_at

    for page in pages:
        data = (EVIDENCE_DIR / f"{page}.png").read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert (width, height) == (1400, 900)
        assert len(data) > 30_000, f"{page}: screenshot too small to show a rendered page"
    # The run page lists the artifact under its key; the report page shows its content (the archive name).
    assert "Completed" in dom["flow-run"] and "nightly-backup" in dom["flow-run"]
    assert f">{report['key']}<" in dom["flow-run"], "the report artifact is not listed on the run's page"
    archive = re.search(rf"{ARCHIVE_PREFIX}-[0-9T:-]+", json.dumps(report["data"]))
    assert archive, f"no archive name in the report: {report['data']}"
    assert archive[0] in dom["report"], f"the report's content ({archive[0]}) is not rendered on its page"
    (EVIDENCE_DIR / "timings.txt").write_text(
        f"server ready {server_ready_s:.1f} s; run completed at {run_done_s:.1f} s; total {elapsed:.1f} s\n"
    )
    print(f"UI test: server ready {server_ready_s:.1f} s, run done {run_done_s:.1f} s, total {elapsed:.1f} s")
