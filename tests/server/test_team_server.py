"""One team server, many clusters, each site's worker running its own cluster's runs.

On the PostgreSQL-backed server of this tier: two clusters (``east`` and ``west``, each a local Borg
repository of its own) are initialised and saved as blocks, the deploy job's steps run with
``deployments.clusters`` naming their sites (``site-a``, ``site-b``), and a process worker per site
serves its site's work queue only. Each cluster's nightly backup is triggered through the API, runs
on its site's worker with the settings of its saved blocks (the workers' own environment names no
repository), completes, and its report artifact is read back. A run naming a cluster that was never
saved fails with one line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from deployments import team
from tests.processes import run, started, tail, wait_for
from tests.server.conftest import PREFECT, TeamServer

pytestmark = pytest.mark.server

POOL = "hsf-process"
SITES = {"east": "site-a", "west": "site-b"}
RUN_TIMEOUT_S = 300
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def cluster_env(server: TeamServer, root: Path, cluster: str) -> dict[str, str]:
    """A cluster's settings, as an operator's hsf.toml would hold them, in the environment."""
    home = root / cluster
    (home / "data" / "docs").mkdir(parents=True)
    (home / "data" / "docs" / "notes.txt").write_text(f"what {cluster} keeps\n")
    return server.env(
        HSF_CONFIG=str(root / "hsf.toml"),
        HSF_CLUSTER__NAME=cluster,
        HSF_CLUSTER__LOCK_DIR=str(root / "locks"),
        HSF_BACKUP__REPOSITORY=str(home / "repo"),
        HSF_BACKUP__SOURCES=json.dumps([str(home / "data")]),
        HSF_BACKUP__KEY_EXPORT_PATH=str(home / "repo.key"),
        HSF_BACKUP__SCRATCH_DIR=str(home / "scratch"),
        HSF_BACKUP__ARCHIVE_PREFIX=cluster,
        HSF_DEPLOYMENTS__CLUSTERS=json.dumps(SITES),
        BORG_BASE_DIR=str(root / "borg-base"),
    )


def test_one_server_runs_each_clusters_backup_on_its_sites_worker(
    team_server: TeamServer, tmp_path: Path
) -> None:
    started_at = time.monotonic()
    http = team_server.http
    (tmp_path / "hsf.toml").write_text("# every setting from the environment\n")
    envs = {cluster: cluster_env(team_server, tmp_path, cluster) for cluster in SITES}
    for env in envs.values():
        run([sys.executable, "-m", "flows.backup", "init"], env)  # the repository and its passphrase
    # The compose file's deploy job, step by step; then the other cluster's blocks.
    for step in team.deploy_steps(
        POOL, str(tmp_path / "prefect.yaml"), prefect=PREFECT, python=sys.executable
    ):
        run(step, envs["east"])
    run(team.blocks_argv(sys.executable), envs["west"])
    deployed_s = time.monotonic() - started_at

    deployments = {
        d["name"]: d for d in http.post("/deployments/filter", json={"limit": 100}).raise_for_status().json()
    }
    for cluster, site in SITES.items():
        nightly = deployments[f"nightly-backup-{cluster}"]
        assert nightly["entrypoint"] == "flows/backup.py:backup"
        assert nightly["parameters"] == {"verify_data": False, "cluster": cluster}
        assert (nightly["work_pool_name"], nightly["work_queue_name"]) == (POOL, site)
        assert f"weekly-failover-drill-{cluster}" in deployments

    # The workers' own environment names no repository: each run must load its cluster's blocks.
    worker_env = team_server.env(
        HSF_CONFIG=str(tmp_path / "hsf.toml"),
        HSF_CLUSTER__LOCK_DIR=str(tmp_path / "locks"),
        BORG_BASE_DIR=str(tmp_path / "borg-base"),
    )
    logs = {site: tmp_path / f"worker-{site}.log" for site in SITES.values()}
    with (
        started(
            team.worker_argv(POOL, ["site-a"], name="worker-site-a", prefect=PREFECT),
            worker_env,
            logs["site-a"],
        ),
        started(
            team.worker_argv(POOL, ["site-b"], name="worker-site-b", prefect=PREFECT),
            worker_env,
            logs["site-b"],
        ),
    ):
        runs = {
            cluster: http.post(
                f"/deployments/{deployments[f'nightly-backup-{cluster}']['id']}/create_flow_run", json={}
            )
            .raise_for_status()
            .json()["id"]
            for cluster in SITES
        }
        runs["nowhere"] = (
            http.post(
                f"/deployments/{deployments['nightly-backup-east']['id']}/create_flow_run",
                json={"parameters": {"cluster": "nowhere"}},
            )
            .raise_for_status()
            .json()["id"]
        )

        def finished(run_id: str) -> dict[str, Any] | None:
            flow_run = http.get(f"/flow_runs/{run_id}").raise_for_status().json()
            return flow_run if flow_run["state"]["type"] in FINAL else None

        done = {}
        for name, run_id in runs.items():
            try:
                done[name] = wait_for(f"run {name}", lambda run_id=run_id: finished(run_id), RUN_TIMEOUT_S, 1)
            except TimeoutError:
                pytest.fail(
                    f"run {name} did not finish:\n" + "\n".join(tail(log, 30) for log in logs.values())
                )
    ran_s = time.monotonic() - started_at

    for cluster, site in SITES.items():
        flow_run = done[cluster]
        assert flow_run["state"]["type"] == "COMPLETED", (
            f"{cluster}: {flow_run['state']}\n{tail(logs[site], 60)}"
        )
        assert flow_run["work_queue_name"] == site
        other = next(s for s in SITES.values() if s != site)
        assert runs[cluster] in logs[site].read_text() and runs[cluster] not in logs[other].read_text()
        artifacts = (
            http.post("/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [runs[cluster]]}}})
            .raise_for_status()
            .json()
        )
        report = next(a for a in artifacts if a["key"] == "borg-backup")
        assert f"# Backup {cluster}-" in report["data"]  # the archive has the cluster's own prefix
        assert str(tmp_path / cluster / "repo") in report["data"]  # in the cluster's own repository
    refused = done["nowhere"]
    assert refused["state"]["type"] == "FAILED"
    assert "no saved cluster named 'nowhere' (block hsf-cluster/nowhere)" in refused["state"]["message"]
    print(f"team server: deployed at {deployed_s:.1f} s, both clusters' backups done at {ran_s:.1f} s")
