"""The failover drill, the project's main job: ``python -m flows.failover``.

Builds (or confirms) the replicated volume, writes a dataset with a sha256 manifest on the primary,
kills the primary, detects the loss from the survivor's own DRBD state, promotes and mounts the
survivor, verifies every byte; then brings the old primary back, lets it resync as secondary, switches
roles back and verifies every byte again. The report answers, from evidence: was data lost, and what
had to be done on the other node. Exits 1 if any byte was lost.
"""

from __future__ import annotations

import contextlib
import sys
import time
from datetime import UTC, datetime

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from flows.cli import run_cli
from flows.setup import setup
from tasks.cluster import drbd_resource, node_targets, secret_block_name, shared_secret
from tasks.drbd import steps
from tasks.drbd.model import DrbdResource
from tasks.events import DATA_LOST, FAILOVER_COMPLETED, cluster_resource, emit
from tasks.executor import SshTarget, TransportError, default_executor
from tasks.lab import host
from tasks.lab import steps as lab_steps
from tasks.settings import Settings, load_settings


class FileCheck(BaseModel):
    name: str
    size: int
    sha256: str


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


@task(name="write-dataset", cache_policy=NO_CACHE, timeout_seconds=900)
def write_dataset(target: SshTarget, directory: str, files: int, file_mib: int) -> list[FileCheck]:
    """Random files plus a sha256 manifest on the volume, flushed to disk; returns the manifest."""
    run = default_executor().run
    run(["mkdir", "-p", directory], target)
    names = [f"{directory}/f{i:04d}.bin" for i in range(1, files + 1)]
    for name in names:
        run(
            ["dd", "if=/dev/urandom", f"of={name}", "bs=1M", f"count={file_mib}", "status=none"],
            target,
            timeout=600,
        )
    sums = run(["sha256sum", *names], target, read_only=True, timeout=600).stdout
    run(["dd", f"of={directory}/MANIFEST.sha256", "status=none"], target, stdin=sums)
    run(["sync"], target, timeout=300)
    return [
        FileCheck(name=name, size=file_mib * 1024 * 1024, sha256=digest)
        for digest, name in (line.split(maxsplit=1) for line in sums.splitlines())
    ]


@task(name="verify-dataset", cache_policy=NO_CACHE, timeout_seconds=900)
def verify_dataset(target: SshTarget, manifest: list[FileCheck]) -> Verification:
    """Hash every file on ``target`` and compare with the manifest kept by the flow (not the volume's)."""
    names = [f.name for f in manifest]
    result = default_executor().run(
        ["sha256sum", *names], target, read_only=True, ok_codes=(0, 1), timeout=600
    )
    found = {name: digest for digest, name in (line.split(maxsplit=1) for line in result.stdout.splitlines())}
    lost = [f for f in manifest if found.get(f.name) != f.sha256]
    ok = [f for f in manifest if f not in lost]
    return Verification(
        node=target.name,
        files_ok=len(ok),
        bytes_ok=sum(f.size for f in ok),
        bytes_lost=sum(f.size for f in lost),
        lost_files=[f.name for f in lost],
    )


@task(name="remove-old-datasets", cache_policy=NO_CACHE, timeout_seconds=300)
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
    default_executor().run(argv, target, timeout=240)


@task(name="kill-node", cache_policy=NO_CACHE, timeout_seconds=120)
def kill_node(settings: Settings, target: SshTarget, fault: str) -> None:
    if fault == "destroy":
        lab_steps.power_off_vm.fn(settings.lab, target.name)
    elif fault == "sysrq-poweroff":
        with contextlib.suppress(TransportError):  # immediate power-off: the host dies mid-command
            default_executor().run(
                ["dd", "of=/proc/sysrq-trigger", "status=none"], target, stdin="o", timeout=15
            )
    else:
        raise ValueError(f"fault {fault!r} kills nothing")
    default_executor().drop_connection(target)


@task(name="wait-peer-lost", cache_policy=NO_CACHE)
def wait_peer_lost(target: SshTarget, resource: DrbdResource, timeout_s: float) -> str:
    """Poll the survivor's own DRBD state until it reports the connection to the peer gone."""
    minor = resource.node(target.name).minor
    state = host.wait_until(
        lambda: (s := steps.drbd_state(target, minor)).connection not in ("Connected",) and s,
        timeout_s,
        "the survivor to notice the peer is gone",
        interval_s=0.2,
    )
    return state.summary()


@task(name="restart-node", cache_policy=NO_CACHE)
def restart_node(settings: Settings, target: SshTarget) -> float:
    """Lab: start the VM again; real host: wait for someone/something to power it on. Returns seconds."""
    started = time.monotonic()
    if settings.target == "lab":
        lab_steps.start_vm.fn(settings.lab, target.name)
        lab_steps.wait_for_ssh.fn(settings.lab, target.name, target.netns is not None)
    else:
        host.wait_until(
            lambda: _answers(target), settings.failover.boot_timeout_s, f"{target.name} to return"
        )
    return time.monotonic() - started


def _answers(target: SshTarget) -> bool:
    try:
        default_executor().run(["true"], target, timeout=15, read_only=True, quiet=True)
        return True
    except TransportError:
        return False


@flow(name="failover-drill")
def failover_drill(settings: Settings | None = None) -> FailoverReport:
    settings = settings or load_settings()
    log = get_run_logger()
    fault = settings.fault
    if fault == "none":
        raise RuntimeError(
            "failover.fault is 'none': the drill kills a node, so it must be enabled explicitly"
        )
    setup(settings)
    targets = node_targets(settings)
    resource = drbd_resource(settings, shared_secret(secret_block_name(settings)))
    drbd = settings.drbd
    device = resource.node(settings.primary).device
    primary, survivor = settings.primary, resource.peer_of(settings.primary).name
    executor = default_executor()

    remove_old_datasets(targets[primary], drbd.mountpoint)
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    directory = f"{drbd.mountpoint}/drill-{started_at.replace(':', '')}"
    manifest = write_dataset(
        targets[primary], directory, settings.failover.dataset_files, settings.failover.file_mib
    )
    log.info(
        "wrote %d files (%d bytes) with their sha256 on %s",
        len(manifest),
        sum(f.size for f in manifest),
        primary,
    )

    with executor.recording() as commands:
        killed_at = time.monotonic()
        kill_node(settings, targets[primary], fault)
        seen = wait_peer_lost(targets[survivor], resource, timeout_s=120)
        detected_at = time.monotonic()
        log.info("%s lost its peer after %.1f s: %s", survivor, detected_at - killed_at, seen)
        promote_s = steps.promote(targets[survivor], resource)
        mount_s = steps.mount(targets[survivor], device, drbd.mountpoint)
        after_failover = verify_dataset(targets[survivor], manifest)
        verified_at = time.monotonic()
    survivor_commands = [c.command for c in commands if c.target == survivor]

    returned_s = restart_node(settings, targets[primary])
    steps.load_module(targets[primary])
    steps.up(targets[primary], resource)
    steps.wait_connected(targets[survivor], resource, drbd.connect_timeout_s)
    resync_s = steps.wait_synced(targets[survivor], resource, drbd.sync_timeout_s)
    on_survivor = verify_dataset(targets[survivor], manifest)
    # Back to the original layout: the old primary takes over again and proves its copy byte for byte.
    steps.umount(targets[survivor], drbd.mountpoint)
    steps.demote(targets[survivor], resource)
    steps.promote(targets[primary], resource)
    steps.mount(targets[primary], device, drbd.mountpoint)
    on_returned = verify_dataset(targets[primary], manifest)

    report = FailoverReport(
        resource=resource.name,
        killed=primary,
        survivor=survivor,
        fault=fault,
        dataset_files=len(manifest),
        dataset_bytes=sum(f.size for f in manifest),
        detection_s=round(detected_at - killed_at, 2),
        promote_s=round(promote_s, 2),
        mount_s=round(mount_s, 2),
        rto_s=round(verified_at - killed_at, 2),
        after_failover=after_failover,
        survivor_commands=survivor_commands,
        returned_s=round(returned_s, 1),
        resync_s=round(resync_s, 1),
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
