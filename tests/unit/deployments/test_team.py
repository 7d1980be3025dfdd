"""deployments/team.py: the team server's argvs (docker-compose.yml runs the same; tests/unit/
test_docker_compose.py compares them, tests/server runs them natively)."""

from __future__ import annotations

import pytest

from deployments import team


def test_database_url_quotes_the_password() -> None:
    assert (
        team.database_url("p@ss/w:rd", "127.0.0.1", 5433)
        == "postgresql+asyncpg://prefect:p%40ss%2Fw%3Ard@127.0.0.1:5433/prefect"
    )
    assert team.database_url("x", "postgres").endswith("@postgres:5432/prefect")


def test_server_env_names_the_database_and_the_address_and_sends_nothing() -> None:
    assert team.server_env("postgresql+asyncpg://u:p@h:1/d", "0.0.0.0") == {
        "PREFECT_API_DATABASE_CONNECTION_URL": "postgresql+asyncpg://u:p@h:1/d",
        "PREFECT_SERVER_API_HOST": "0.0.0.0",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (team.server_argv("h", 4321), ["prefect", "server", "start", "--host", "h", "--port", "4321"]),
        (
            team.work_pool_argv("p"),
            ["prefect", "work-pool", "create", "p", "--type", "process", "--overwrite"],
        ),
        (
            team.deployments_file_argv("/d.yaml", "py"),
            ["py", "-m", "deployments", "yaml", "--output", "/d.yaml"],
        ),
        (
            team.deploy_argv("/d.yaml"),
            ["prefect", "--no-prompt", "deploy", "--all", "--prefect-file", "/d.yaml"],
        ),
        (team.blocks_argv(), ["python", "-m", "blocks", "register"]),
        (team.worker_argv("p"), ["prefect", "worker", "start", "--pool", "p", "--type", "process"]),
        (
            team.worker_argv("p", ["berlin", "lab"], name="w1", healthcheck=True, prefect="/v/prefect"),
            [
                "/v/prefect",
                "worker",
                "start",
                "--pool",
                "p",
                "--type",
                "process",
                "--work-queue",
                "berlin",
                "--work-queue",
                "lab",
                "--name",
                "w1",
                "--with-healthcheck",
            ],
        ),
    ],
)
def test_argvs(argv: list[str], expected: list[str]) -> None:
    assert argv == expected


def test_deploy_steps_make_the_pool_then_the_settings_deployments_then_the_blocks() -> None:
    steps = team.deploy_steps("p", "/tmp/d.yaml", prefect="pf", python="py")
    assert steps == [
        team.work_pool_argv("p", "pf"),
        team.deployments_file_argv("/tmp/d.yaml", "py"),
        team.deploy_argv("/tmp/d.yaml", "pf"),
        team.blocks_argv("py"),
    ]
