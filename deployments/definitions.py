"""The project's scheduled deployments, defined once and used three ways.

``specs()`` turns the ``[deployments]`` settings into plain data; from it come the ``serve``
deployments (:func:`runner_deployments`), the ``prefect.yaml`` that ``prefect deploy`` reads
(:func:`prefect_yaml`, checked against the file by a test) and the local list of next run times
(:func:`next_runs`, the scheduler's own cron arithmetic, no server). Parameters stay plain JSON: the
flows load their settings from the environment / ``hsf.toml`` of the process that runs them.
"""

from __future__ import annotations

import asyncio
import importlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from tasks.settings import DeploymentSettings

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment

PROJECT = "ha-storage-flows"
PREFECT_VERSION = "3.9.1"


class DeploymentSpec(BaseModel):
    """One scheduled deployment: which flow, when (cron in an explicit time zone), with what."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Deployment name; the full name is '<flow name>/<name>'.")
    flow_name: str = Field(description="The Prefect flow's name (what the UI lists).")
    entrypoint: str = Field(description="'path/to/file.py:function', relative to the project root.")
    cron: str = Field(description="Five-field cron expression.")
    timezone: str = Field(description="IANA time zone the cron is read in.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Plain JSON flow parameters.")
    description: str = Field(description="Why this runs on this schedule.")
    tags: tuple[str, ...] = Field(description="Tags for filtering in the UI.")
    work_queue: str | None = Field(
        None, description="The work queue of the cluster's site; None: the pool's default queue."
    )

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


def specs(settings: DeploymentSettings) -> list[DeploymentSpec]:
    """Every scheduled deployment, with schedules and parameters taken from the settings: one of each,
    or one of each per cluster of ``settings.clusters`` (named ``<deployment>-<cluster>``, the cluster
    its parameter, its site's work queue)."""
    if not settings.clusters:
        return _specs(settings)
    return [
        spec.model_copy(
            update={
                "name": f"{spec.name}-{cluster}",
                "parameters": {**spec.parameters, "cluster": cluster},
                "tags": (*spec.tags, f"cluster:{cluster}", f"site:{site}"),
                "work_queue": site,
            }
        )
        for cluster, site in settings.clusters.items()
        for spec in _specs(settings)
    ]


def _specs(settings: DeploymentSettings) -> list[DeploymentSpec]:
    tz = settings.timezone
    return [
        DeploymentSpec(
            name="nightly-backup",
            flow_name="borg-backup",
            entrypoint="flows/backup.py:backup",
            cron=settings.nightly_backup_cron,
            timezone=tz,
            parameters={"verify_data": settings.nightly_backup_verify_data},
            description="Borg backup of the sources, then a check of the repository and the new archive.",
            tags=("hsf", "backup"),
        ),
        DeploymentSpec(
            name="daily-spot-check",
            flow_name="borg-spot-check",
            entrypoint="flows/backup.py:spot_check",
            cron=settings.daily_spot_check_cron,
            timezone=tz,
            description="A share of the source files compared with the newest archive, and the file counts.",
            tags=("hsf", "backup"),
        ),
        DeploymentSpec(
            name="weekly-verify",
            flow_name="borg-verify",
            entrypoint="flows/backup.py:verify",
            cron=settings.weekly_verify_cron,
            timezone=tz,
            description="Repository check and check --verify-data of every archive: every chunk read back.",
            tags=("hsf", "backup"),
        ),
        DeploymentSpec(
            name="monthly-restore-drill",
            flow_name="borg-restore-drill",
            entrypoint="flows/backup.py:restore_drill",
            cron=settings.monthly_restore_drill_cron,
            timezone=tz,
            parameters={"damage": settings.restore_drill_damage},
            description="Archive the sources, restore into scratch, compare every entry; sources untouched.",
            tags=("hsf", "backup", "drill"),
        ),
        DeploymentSpec(
            name="weekly-failover-drill",
            flow_name="failover-drill",
            entrypoint="flows/failover.py:failover_drill",
            cron=settings.weekly_failover_drill_cron,
            timezone=tz,
            description="Kill the DRBD primary, fail over, verify every byte, rejoin and verify again.",
            tags=("hsf", "drill", "drbd"),
        ),
    ]


def load_flow(entrypoint: str) -> Flow[..., Any]:
    """Import the flow an entrypoint names (as a module, so it matches what a worker runs)."""
    from prefect import Flow

    path, _, function = entrypoint.partition(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    found = getattr(module, function)
    if not isinstance(found, Flow):
        raise TypeError(f"{entrypoint} is not a Prefect flow")
    return found


def runner_deployments(deployments: list[DeploymentSpec]) -> list[RunnerDeployment]:
    """The deployments for ``serve``: built locally, no API call until they are served."""
    from prefect.deployments.runner import RunnerDeployment
    from prefect.schedules import Cron

    built = []
    for spec in deployments:
        deployment = load_flow(spec.entrypoint).to_deployment(
            name=spec.name,
            schedules=[Cron(spec.cron, timezone=spec.timezone)],
            parameters=dict(spec.parameters),
            description=spec.description,
            tags=list(spec.tags),
        )
        assert isinstance(deployment, RunnerDeployment)  # sync context: never a coroutine
        built.append(deployment)
    return built


def next_runs(spec: DeploymentSpec, count: int, after: datetime) -> list[datetime]:
    """The next ``count`` run times after ``after``, by the Prefect scheduler's own cron code."""
    from prefect.server.schemas.schedules import CronSchedule

    schedule = CronSchedule(cron=spec.cron, timezone=spec.timezone)
    return list(asyncio.run(schedule.get_dates(n=count, start=after)))


def prefect_yaml(deployments: list[DeploymentSpec], work_pool: str) -> dict[str, Any]:
    """The content of ``prefect.yaml`` for ``prefect deploy --all`` to a process work pool.

    No ``pull`` section: ``prefect deploy`` then records the directory it runs in, which is where the
    process worker starts each run (the project root, or /opt/hsf in the compose image).
    """
    return {
        "name": PROJECT,
        "prefect-version": PREFECT_VERSION,
        "deployments": [
            {
                "name": spec.name,
                "entrypoint": spec.entrypoint,
                "description": spec.description,
                "tags": list(spec.tags),
                "parameters": dict(spec.parameters),
                "schedules": [{"cron": spec.cron, "timezone": spec.timezone}],
                "work_pool": {"name": work_pool}
                | ({"work_queue_name": spec.work_queue} if spec.work_queue else {}),
            }
            for spec in deployments
        ],
    }
