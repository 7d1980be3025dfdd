"""The team server's docker-compose.yml, checked by Debian's docker-compose (no Docker engine needed), and
its commands and settings those of deployments/team.py, which tests/server runs natively."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployments import team
from tasks.settings import DeploymentSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE = REPO_ROOT / "docker-compose.yml"


PASSWORD = "test-only-3f9c1a"


def compose_argv(*args: str) -> list[str]:
    return ["docker-compose", "-f", str(COMPOSE), *args]


def compose(*args: str, password: str | None = PASSWORD) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"}
    if password is not None:
        env["POSTGRES_PASSWORD"] = password
    return subprocess.run(compose_argv(*args), capture_output=True, text=True, cwd=REPO_ROOT, env=env)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The file as docker-compose resolves it (anchors merged, variables substituted)."""
    checked = compose("config", "-q")
    assert checked.returncode == 0, checked.stderr
    resolved = compose("config")
    assert resolved.returncode == 0, resolved.stderr
    return dict(yaml.safe_load(resolved.stdout))


def test_the_database_password_has_no_default(config: dict[str, Any]) -> None:
    missing = compose("config", "-q", password=None)
    assert missing.returncode != 0 and "set POSTGRES_PASSWORD" in missing.stderr
    server, postgres = config["services"]["server"], config["services"]["postgres"]
    assert postgres["environment"]["POSTGRES_PASSWORD"] == PASSWORD
    assert f"prefect:{PASSWORD}@postgres" in server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]


def test_server_uses_postgres_and_listens_only_on_localhost(config: dict[str, Any]) -> None:
    server, postgres = config["services"]["server"], config["services"]["postgres"]
    assert server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].startswith(
        "postgresql+asyncpg://prefect:"
    )
    assert server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].endswith("@postgres:5432/prefect")
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert server["ports"] == ["127.0.0.1:4200:4200/tcp"]  # the UI/API: never on every interface
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_every_long_running_service_has_a_health_check(config: dict[str, Any]) -> None:
    for name in ("postgres", "server", "worker"):
        assert config["services"][name]["healthcheck"]["test"], name
    assert "--with-healthcheck" in config["services"]["worker"]["command"]


def test_state_lives_in_named_volumes(config: dict[str, Any]) -> None:
    assert set(config["volumes"]) == {"postgres", "prefect", "config", "backups", "ssh"}
    mounts = {m.split(":")[0] for s in config["services"].values() for m in s.get("volumes", [])}
    assert mounts == set(config["volumes"])  # no bind mounts of host paths


def test_worker_and_deploy_run_the_project_image_against_the_server(config: dict[str, Any]) -> None:
    pool = DeploymentSettings().work_pool
    worker, deploy = config["services"]["worker"], config["services"]["deploy"]
    for service in (worker, deploy):
        assert service["build"]["context"] == str(REPO_ROOT)
        assert service["environment"]["PREFECT_API_URL"] == "http://server:4200/api"
        assert service["depends_on"]["server"]["condition"] == "service_healthy"
    assert worker["command"] == team.worker_argv(pool, healthcheck=True)
    assert deploy["command"][:2] == ["sh", "-ec"]
    assert deploy["command"][-1] == "; ".join(
        shlex.join(step) for step in team.deploy_steps(pool, "/tmp/hsf-prefect.yaml")
    )
    assert (
        yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"][0]["work_pool"]["name"]
        == pool
    )


def test_the_image_carries_what_prefect_deploy_and_the_flows_need() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    for needed in (
        "COPY prefect.yaml",
        "COPY flows",
        "COPY tasks",
        "COPY blocks",
        "COPY deployments",
        "borgbackup",
    ):
        assert needed in dockerfile
    assert "WORKDIR /opt/hsf" in dockerfile


def test_the_server_and_its_database_are_those_of_the_native_topology(config: dict[str, Any]) -> None:
    """tests/server starts the server with the same argv and environment, on 127.0.0.1."""
    server, postgres = config["services"]["server"], config["services"]["postgres"]
    assert server["command"] == team.server_argv("0.0.0.0", team.PORT)
    expected = team.server_env(team.database_url(PASSWORD, "postgres"), "0.0.0.0")
    assert {key: server["environment"][key] for key in expected} == expected
    assert (postgres["environment"]["POSTGRES_USER"], postgres["environment"]["POSTGRES_DB"]) == (
        team.DATABASE_USER,
        team.DATABASE,
    )
