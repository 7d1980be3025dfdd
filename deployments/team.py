"""The team server's processes as argvs: PostgreSQL's URL, ``prefect server start``, the deploy steps and a
worker per site. ``docker-compose.yml`` runs exactly these (a unit test compares them) and the server
test runs them natively (Debian's PostgreSQL, the venv's ``prefect``), so the two cannot drift apart.

Each builder is pure: no process starts here.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

DATABASE = "prefect"
DATABASE_USER = "prefect"
PORT = 4200


def database_url(password: str, host: str, port: int = 5432) -> str:
    """The server's PostgreSQL connection URL (asyncpg, the driver Prefect's server uses)."""
    return f"postgresql+asyncpg://{DATABASE_USER}:{quote(password, safe='')}@{host}:{port}/{DATABASE}"


def server_env(url: str, host: str) -> dict[str, str]:
    """What ``prefect server start`` needs besides its argv: the database, the address it serves on, and
    nothing sent anywhere."""
    return {
        "PREFECT_API_DATABASE_CONNECTION_URL": url,
        "PREFECT_SERVER_API_HOST": host,
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def server_argv(host: str, port: int = PORT, prefect: str = "prefect") -> list[str]:
    return [prefect, "server", "start", "--host", host, "--port", str(port)]


def work_pool_argv(pool: str, prefect: str = "prefect") -> list[str]:
    return [prefect, "work-pool", "create", pool, "--type", "process", "--overwrite"]


def deployments_file_argv(path: str, python: str = "python") -> list[str]:
    """Writes the prefect.yaml of *these* settings (the clusters and their sites included)."""
    return [python, "-m", "deployments", "yaml", "--output", path]


def deploy_argv(prefect_file: str, prefect: str = "prefect") -> list[str]:
    return [prefect, "--no-prompt", "deploy", "--all", "--prefect-file", prefect_file]


def blocks_argv(python: str = "python") -> list[str]:
    return [python, "-m", "blocks", "register"]


def deploy_steps(
    pool: str, prefect_file: str, *, prefect: str = "prefect", python: str = "python"
) -> list[list[str]]:
    """The one-shot deploy job, in order: the pool, the deployments of the settings, this cluster's blocks."""
    return [
        work_pool_argv(pool, prefect),
        deployments_file_argv(prefect_file, python),
        deploy_argv(prefect_file, prefect),
        blocks_argv(python),
    ]


def worker_argv(
    pool: str,
    queues: Sequence[str] = (),
    *,
    name: str | None = None,
    healthcheck: bool = False,
    prefect: str = "prefect",
) -> list[str]:
    """A process worker of ``pool``; with ``queues``, only the runs of those sites' work queues."""
    return (
        [prefect, "worker", "start", "--pool", pool, "--type", "process"]
        + [arg for queue in queues for arg in ("--work-queue", queue)]
        + (["--name", name] if name else [])
        + (["--with-healthcheck"] if healthcheck else [])
    )
