"""Build the two-node fault-tolerant volume: ``python -m flows.setup``.

DRBD resource → metadata → up → one initial promotion → sync → mkfs (ext4/xfs) → mount on the
primary, then prove every node recognises the filesystem (the secondary after a controlled role
switch). Probe → plan → execute in three phases; a re-run plans nothing and changes nothing.
"""

from __future__ import annotations

import sys
import time

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from flows.cli import run_cli
from tasks.cluster import drbd_resource, node_targets, secret_block_name, shared_secret
from tasks.drbd import steps
from tasks.drbd.model import DrbdResource
from tasks.drbd.plan import NodeProbe, Refused, Step, plan_bring_up, plan_filesystem, plan_replicate
from tasks.executor import SshTarget, default_executor
from tasks.settings import Settings, load_settings


class SetupReport(BaseModel):
    resource: str
    primary: str
    device: str
    fstype: str
    mountpoint: str
    steps: list[str] = Field(default_factory=list, description="What this run did, in order.")
    filesystem_seen: dict[str, str] = Field(
        default_factory=dict, description="Filesystem type each node found on the volume (role-switch check)."
    )
    initial_sync_s: float | None = None
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.steps)

    def render(self) -> str:
        lines = [
            f"DRBD {self.resource}: {self.device} {self.fstype} on {self.primary}:{self.mountpoint}",
            "changes: " + ("none (already set up)" if not self.steps else f"{len(self.steps)} steps"),
            *(f"  - {s}" for s in self.steps),
        ]
        if self.filesystem_seen:
            seen = ", ".join(f"{n}: {t}" for n, t in self.filesystem_seen.items())
            lines.append(f"every node recognises the filesystem: {seen}")
        if self.initial_sync_s is not None:
            lines.append(f"initial sync: {self.initial_sync_s:.1f} s")
        lines.append(f"took {self.seconds:.1f} s")
        return "\n".join(lines)


def _probe_all(
    targets: dict[str, SshTarget], resource: DrbdResource, mountpoint: str
) -> dict[str, NodeProbe]:
    futures = {
        node: steps.probe_node.submit(target, resource, mountpoint) for node, target in targets.items()
    }
    return {node: future.result() for node, future in futures.items()}


def verify_every_node(
    targets: dict[str, SshTarget], resource: DrbdResource, primary: str, mountpoint: str
) -> dict[str, str]:
    """Role switch: each secondary in turn becomes primary and reports the volume's filesystem type.

    DRBD 8.4 does not let a Secondary open the device at all, so this is the only honest check that
    the replica is a usable filesystem. The original primary is primary and mounted again at the end.
    """
    device = resource.node(primary).device
    seen = {primary: steps.filesystem_type(targets[primary], device) or "none"}
    for node in targets:
        if node == primary:
            continue
        steps.umount(targets[primary], mountpoint)
        steps.demote(targets[primary], resource)
        steps.promote(targets[node], resource)
        seen[node] = steps.filesystem_type(targets[node], device) or "none"
        steps.mount(targets[node], device, mountpoint)  # a real mount: the journal and tree are readable
        steps.umount(targets[node], mountpoint)
        steps.demote(targets[node], resource)
        steps.promote(targets[primary], resource)
        steps.mount(targets[primary], device, mountpoint)
    return seen


@flow(name="drbd-setup")
def setup(settings: Settings | None = None) -> SetupReport:
    """Build (or confirm) the replicated volume; raises :class:`Refused` rather than destroy data."""
    settings = settings or load_settings()
    log = get_run_logger()
    started = time.monotonic()
    drbd = settings.drbd
    if settings.target == "lab":
        from flows.lab import lab_up

        lab_up(settings.lab)
    targets = node_targets(settings)
    resource = drbd_resource(settings, shared_secret(secret_block_name(settings)))
    default_executor().add_secret(resource.shared_secret.get_secret_value())
    primary = settings.primary
    device = resource.node(primary).device
    report = SetupReport(
        resource=resource.name, primary=primary, device=device, fstype=drbd.fstype, mountpoint=drbd.mountpoint
    )

    def execute(step: Step) -> None:
        log.info("%s", step)
        report.steps.append(str(step))
        target = targets[step.node]
        match step.kind:
            case "install_tools":
                steps.install_tools(target)
            case "write_config":
                steps.write_config(target, resource)
            case "load_module":
                steps.load_module(target)
            case "create_md":
                steps.create_md(target, resource, step.force)
            case "up":
                steps.up(target, resource)
            case "adjust":
                steps.adjust(target, resource)
            case "wait_connected":
                steps.wait_connected(target, resource, drbd.connect_timeout_s)
            case "skip_initial_sync":
                steps.skip_initial_sync(target, resource)
            case "initial_promote" | "promote":
                steps.promote(target, resource, force=step.force)
            case "wait_synced":
                report.initial_sync_s = steps.wait_synced(target, resource, drbd.sync_timeout_s)
            case "mkfs":
                steps.mkfs(target, device, drbd.fstype, label=resource.name)
            case "mount":
                steps.mount(target, device, drbd.mountpoint)

    probes = _probe_all(targets, resource, drbd.mountpoint)
    if any(p.dual_primary_config for p in probes.values()):
        raise Refused(
            f"{resource.name} runs in high-availability mode (dual-primary, OCFS2): the fault-tolerant setup "
            "manages single-primary volumes and changes nothing here"
        )
    bring_up = plan_bring_up(probes, drbd.disk, drbd.force_create_md)
    fresh_metadata = any(s.kind == "create_md" for s in bring_up)
    for step in bring_up:
        execute(step)
    if bring_up:
        probes = _probe_all(targets, resource, drbd.mountpoint)
    replicate = plan_replicate(probes, primary, drbd.initial_sync, fresh_metadata)
    for step in replicate:
        execute(step)
    if replicate:
        probes = _probe_all(targets, resource, drbd.mountpoint)
    filesystem = plan_filesystem(probes[primary], drbd.fstype, drbd.mountpoint, device)
    for step in filesystem:
        execute(step)
    if any(s.kind == "mkfs" for s in filesystem) and not default_executor().dry_run:
        report.filesystem_seen = verify_every_node(targets, resource, primary, drbd.mountpoint)
        report.steps.append("verified the filesystem on every node by a controlled role switch")
    if not report.steps:
        log.info(
            "nothing to do: %s is connected, UpToDate, %s mounted on %s", resource.name, drbd.fstype, primary
        )
    report.seconds = round(time.monotonic() - started, 1)
    create_markdown_artifact(
        key=f"drbd-setup-{resource.name}", markdown=f"# DRBD setup\n\n```\n{report.render()}\n```"
    )
    return report


def _print_setup(settings: Settings) -> int:
    print(setup(settings).render())
    return 0


def main() -> int:
    return run_cli(_print_setup)


if __name__ == "__main__":
    sys.exit(main())
