"""The failover drill, the project's main job: ``python -m flows.failover``.

Builds (or confirms) the replicated volume, writes a dataset with a sha256 manifest on the primary,
kills the primary, detects the loss from the survivor's own DRBD state, promotes and mounts the
survivor, verifies every byte; then brings the old primary back, lets it resync as secondary, switches
roles back and verifies every byte again. The report answers, from evidence: was data lost, and what
had to be done on the other node. Exits 1 if any byte was lost.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from flows.setup import setup
from tasks.cli import run_cli
from tasks.cluster import drbd_resource, node_targets, secret_block_name, shared_secret
from tasks.context import current_executor, refuse_dry_run, run_context
from tasks.drbd import steps
from tasks.drbd.model import DrbdResource
from tasks.drbd.plan import Refused
from tasks.drbd.roles import rejoin, switch_primary
from tasks.events import DATA_LOST, FAILOVER_COMPLETED, cluster_resource, emit
from tasks.executor import SshTarget
from tasks.lab.host import wait_until
from tasks.manifest import Entry, contents, lost_files, tree_manifest
from tasks.nodes import kill_node
from tasks.settings import Settings, load_settings
from tasks.step import step


class Verification(BaseModel):
    node: str
    files_ok: int
    bytes_ok: int
    bytes_lost: int
    lost_files: list[str] = Field(default_factory=list)


class FailoverReport(BaseModel):
    resource: str
    killed: str = Field(description="The primary that was killed.")
    survivor: str
    fault: str
    dataset_files: int
    dataset_bytes: int
    detection_s: float = Field(description="Kill → survivor's DRBD reports the peer lost.")
    promote_s: float
    mount_s: float
    rto_s: float = Field(description="Kill → every byte verified on the survivor.")
    after_failover: Verification
    survivor_commands: list[str] = Field(description="State-changing commands run on the survivor.")
    returned_s: float = Field(description="Restart of the killed node → it answers SSH.")
    resync_s: float = Field(description="Old primary attached → both disks UpToDate again.")
    after_rejoin: list[Verification]
    started_at: str

    @property
    def bytes_lost(self) -> int:
        return max([self.after_failover.bytes_lost, *(v.bytes_lost for v in self.after_rejoin)])

    def answers(self) -> tuple[str, str]:
        lost = (
            f"No. All {self.dataset_bytes:,} bytes ({self.dataset_files} files) verified by sha256 on "
            f"{self.survivor} after {self.killed} was destroyed, and again on both nodes after the resync."
            if self.bytes_lost == 0
            else f"YES: {self.bytes_lost:,} of {self.dataset_bytes:,} bytes lost "
            f"({', '.join(self.after_failover.lost_files) or 'after rejoin'})."
        )
        commands = "; ".join(f"`{c}`" for c in self.survivor_commands) or "none"
        manual = (
            f"Yes. DRBD does not promote by itself: on {self.survivor} it took {commands} "
            f"(run by this flow; without a cluster manager an operator runs them)."
            if self.survivor_commands
            else "No: nothing had to run on the surviving node."
        )
        return lost, manual

    def render(self) -> str:
        lost, manual = self.answers()
        rows = [
            ("fault", f"{self.fault} on {self.killed} at {self.started_at}"),
            ("detection (kill → survivor sees peer lost)", f"{self.detection_s:.1f} s"),
            ("promote survivor", f"{self.promote_s:.1f} s"),
            ("mount (journal replay)", f"{self.mount_s:.1f} s"),
            ("RTO (kill → every byte verified)", f"{self.rto_s:.1f} s"),
            ("bytes lost", f"{self.bytes_lost:,} of {self.dataset_bytes:,}"),
            ("old primary back on SSH", f"{self.returned_s:.1f} s"),
            ("resync after rejoin", f"{self.resync_s:.1f} s"),
        ]
        width = max(len(r[0]) for r in rows)
        return "\n".join(
            [
                f"Failover drill, DRBD {self.resource}: {self.killed} → {self.survivor}",
                *(f"  {k:<{width}}  {v}" for k, v in rows),
                "",
                f"Have you lost data after destroying one node?  {lost}",
                f"Was it necessary to do something on the other node to get the data?  {manual}",
            ]
        )


@step(name="write-dataset", timeout_seconds=900)
def write_dataset(target: SshTarget, directory: str, files: int, file_mib: int) -> None:
    """Random files on the volume, flushed to disk (their manifest is read afterwards)."""
    run = current_executor().run
    run(["mkdir", "-p", directory], target)
    for i in range(1, files + 1):
        argv = ["dd", "if=/dev/urandom", f"of={directory}/f{i:04d}.bin", "bs=1M", f"count={file_mib}"]
        run([*argv, "status=none"], target, timeout=600)
    run(["sync"], target, timeout=300)


def verify_dataset(target: SshTarget, directory: str, manifest: dict[str, Entry]) -> Verification:
    """Hash every file on ``target`` and compare with the manifest kept by the flow (not the volume's)."""
    lost = lost_files(manifest, tree_manifest(target, directory))
    files = contents(manifest)
    return Verification(
        node=target.name,
        files_ok=len(files) - len(lost),
        bytes_ok=sum(manifest[p].size for p in files if p not in lost),
        bytes_lost=sum(manifest[p].size for p in lost),
        lost_files=lost,
    )


@step(name="remove-old-datasets", timeout_seconds=300)
def remove_old_datasets(target: SshTarget, mountpoint: str) -> None:
    argv = [
        "find",
        mountpoint,
        "-mindepth",
        "1",
        "-maxdepth",
        "1",
        "-name",
        "drill-*",
        "-exec",
        "rm",
        "-rf",
        "{}",
        "+",
    ]
    current_executor().run(argv, target, timeout=240)


@step(name="wait-peer-lost")
def wait_peer_lost(target: SshTarget, resource: DrbdResource, timeout_s: float) -> str:
    """Poll the survivor's own DRBD state until it reports the connection to the peer gone."""
    minor = resource.node(target.name).minor
    state = wait_until(
        lambda: (s := steps.drbd_state(target, minor)).connection != "Connected" and s,
        timeout_s,
        "the survivor to notice the peer is gone",
        interval_s=0.2,
    )
    return state.summary()


@flow(name="failover-drill")
def failover_drill(settings: Settings | None = None) -> FailoverReport:
    settings = settings or load_settings()
    refuse_dry_run(
        settings,
        "the failover drill",
        "its proof is a real kill of the primary (HSF_DRY_RUN=true python -m flows.setup shows the plan)",
    )
    if settings.fault == "none":
        raise Refused("failover.fault is 'none': the drill kills a node, so it must be enabled explicitly")
    with run_context(settings, changes_state=True):
        return _drill(settings)


def _drill(settings: Settings) -> FailoverReport:
    log = get_run_logger()
    executor = current_executor()
    drbd = settings.drbd

    # Phase 1: the volume, and a dataset whose every byte is recorded.
    setup(settings)
    targets = node_targets(settings)
    resource = drbd_resource(settings, shared_secret(secret_block_name(settings)))
    primary, survivor = settings.primary, resource.peer_of(settings.primary).name
    remove_old_datasets(targets[primary], drbd.mountpoint)
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    directory = f"{drbd.mountpoint}/drill-{started_at.replace(':', '')}"
    write_dataset(targets[primary], directory, settings.failover.dataset_files, settings.failover.file_mib)
    manifest = tree_manifest(targets[primary], directory)
    dataset = contents(manifest)
    dataset_bytes = sum(manifest[p].size for p in dataset)
    log.info("wrote %d files (%d bytes) with their sha256 on %s", len(dataset), dataset_bytes, primary)

    # Phase 2: kill the primary; the survivor takes over (every state-changing command is recorded).
    with executor.recording() as commands:
        killed_at = time.monotonic()
        kill_node(settings, targets[primary])
        seen = wait_peer_lost(targets[survivor], resource, timeout_s=120)
        detected_at = time.monotonic()
        log.info("%s lost its peer after %.1f s: %s", survivor, detected_at - killed_at, seen)
        promote_s = steps.promote(targets[survivor], resource)
        mount_s = steps.mount(targets[survivor], resource.node(survivor).device, drbd.mountpoint)
        after_failover = verify_dataset(targets[survivor], directory, manifest)
        verified_at = time.monotonic()
    survivor_commands = [c.command for c in commands if c.target == survivor]

    # Phase 3: the old primary rejoins as secondary, takes over again, and proves its copy.
    rejoined = rejoin(settings, targets, resource, primary)
    on_survivor = verify_dataset(targets[survivor], directory, manifest)
    switch_primary(targets, resource, drbd.mountpoint, old=survivor, new=primary)
    on_returned = verify_dataset(targets[primary], directory, manifest)

    report = FailoverReport(
        resource=resource.name,
        killed=primary,
        survivor=survivor,
        fault=settings.fault,
        dataset_files=len(dataset),
        dataset_bytes=dataset_bytes,
        detection_s=round(detected_at - killed_at, 2),
        promote_s=round(promote_s, 2),
        mount_s=round(mount_s, 2),
        rto_s=round(verified_at - killed_at, 2),
        after_failover=after_failover,
        survivor_commands=survivor_commands,
        returned_s=round(rejoined.returned_s, 1),
        resync_s=round(rejoined.resync_s, 1),
        after_rejoin=[on_survivor, on_returned],
        started_at=started_at,
    )
    _publish(report, settings.cluster_name)
    return report


def _publish(report: FailoverReport, cluster: str) -> None:
    """The report as markdown and table artifacts, then the events automations react to."""
    lost, manual = report.answers()
    create_markdown_artifact(
        key=f"failover-{report.resource}",
        markdown="\n\n".join(
            (
                f"# Failover drill: {report.killed} → {report.survivor}",
                f"**Have you lost data after destroying one node?** {lost}",
                f"**Was it necessary to do something on the other node to get the data?** {manual}",
                f"```\n{report.render()}\n```",
            )
        ),
        description=f"RTO {report.rto_s:.1f} s, {report.bytes_lost} bytes lost",
    )
    create_table_artifact(
        key=f"failover-{report.resource}-verification",
        table=[v.model_dump() for v in (report.after_failover, *report.after_rejoin)],
        description="Per-node verification against the sha256 manifest",
    )
    summary = {
        "resource": report.resource,
        "killed": report.killed,
        "survivor": report.survivor,
        "rto_s": report.rto_s,
        "detection_s": report.detection_s,
        "bytes_lost": report.bytes_lost,
        "dataset_bytes": report.dataset_bytes,
    }
    emit(FAILOVER_COMPLETED, resource=cluster_resource(cluster), payload=summary)
    if report.bytes_lost:
        lost_files = sorted({f for v in (report.after_failover, *report.after_rejoin) for f in v.lost_files})
        emit(
            DATA_LOST,
            resource=cluster_resource(cluster),
            payload={**summary, "drill": "failover", "lost_files": lost_files},
        )


def ui_hint(resource: str) -> str:
    """Where the report is kept: the runs and artifacts live in Prefect's database, shown by its UI."""
    return (
        "Reports in the Prefect UI: `.venv/bin/prefect server start`, open http://127.0.0.1:4200, then "
        f"Runs → this failover-drill run → Artifacts (or Artifacts → failover-{resource}); "
        "README: 'Prefect UI, deployments, events and the team server'."
    )


def _run_drill(settings: Settings) -> int:
    report = failover_drill(settings)
    print(report.render())
    if settings.target == "lab":
        print(
            "\nThe lab is still running for a look around (python -m flows.lab status);"
            " make lab-down removes it."
        )
    print(ui_hint(report.resource))
    return 1 if report.bytes_lost else 0


def main() -> int:
    return run_cli(_run_drill)


if __name__ == "__main__":
    sys.exit(main())
