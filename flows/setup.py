"""Build the two-node fault-tolerant volume: ``python -m flows.setup``.

DRBD resource → metadata → up → one initial promotion → sync → mkfs (ext4/xfs) → mount on the
primary, then prove every node recognises the filesystem (the secondary after a controlled role
switch). Probe → plan → execute in three phases; a re-run plans nothing and changes nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from flows.lab import lab_up
from tasks.cli import run_cli
from tasks.cluster import drbd_resource, node_targets, secret_block_name, shared_secret
from tasks.context import DryRunRefused, current_executor, run_context
from tasks.drbd import steps
from tasks.drbd.model import DrbdResource
from tasks.drbd.plan import (
    Preconditions,
    Refused,
    Step,
    check_preconditions,
    plan_bring_up,
    plan_filesystem,
    plan_replicate,
    running_primary,
)
from tasks.drbd.roles import switch_primary
from tasks.executor import SshTarget
from tasks.plan import PlannedStep, apply
from tasks.settings import Settings, load_settings


class SetupReport(BaseModel):
    resource: str
    primary: str
    device: str
    fstype: str
    mountpoint: str
    steps: list[str] = Field(default_factory=list, description="What this run did, in order.")
    dry_run: bool = Field(False, description="Nothing was changed: the steps are what a real run would do.")
    filesystem_seen: dict[str, str] = Field(
        default_factory=dict, description="Filesystem type each node found on the volume (role-switch check)."
    )
    kept_files: list[str] = Field(
        default_factory=list, description="Resource files setup did not write, copied aside before replacing."
    )
    sync_s: float | None = Field(
        None, description="Waiting until both disks were UpToDate (initial sync or resync)."
    )
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.steps)

    def render(self) -> str:
        lines = [
            f"DRBD {self.resource}: {self.device} {self.fstype} on {self.primary}:{self.mountpoint}",
            "changes: "
            + ("none (already set up)" if not self.steps else f"{len(self.steps)} steps")
            + (" (dry run: planned, none applied)" if self.dry_run and self.steps else ""),
            *(f"  - {s}" for s in self.steps),
        ]
        if self.kept_files:
            lines.append(f"replaced files kept as: {', '.join(self.kept_files)}")
        if self.filesystem_seen:
            seen = ", ".join(f"{n}: {t}" for n, t in self.filesystem_seen.items())
            lines.append(f"every node recognises the filesystem: {seen}")
        if self.sync_s is not None and not self.dry_run:
            initial = any(s.startswith(("initial_promote", "skip_initial_sync")) for s in self.steps)
            lines.append(f"{'initial sync' if initial else 'resync'}: {self.sync_s:.1f} s")
        lines.append(f"took {self.seconds:.1f} s")
        return "\n".join(lines)


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
        if node != primary:
            switch_primary(targets, resource, mountpoint, old=primary, new=node)  # a real mount: readable
            seen[node] = steps.filesystem_type(targets[node], device) or "none"
            switch_primary(targets, resource, mountpoint, old=node, new=primary)
    return seen


@flow(name="drbd-setup")
def setup(settings: Settings | None = None) -> SetupReport:
    """Build (or confirm) the replicated volume; raises :class:`Refused` rather than destroy data."""
    settings = settings or load_settings()
    with run_context(settings, changes_state=True):
        return _build(settings)


def _build(settings: Settings) -> SetupReport:
    started = time.monotonic()
    drbd = settings.drbd
    if settings.cluster.manager != "none":  # never a volume silently built without the asked-for manager
        raise Refused(
            f"cluster.manager = {settings.cluster.manager!r}: building that cluster manager is not part of "
            "this version yet (only its settings are); set cluster.manager = 'none'. Nothing was changed."
        )
    if settings.target == "lab":
        lab = lab_up(settings)
        if lab.dry_run and lab.actions:
            raise DryRunRefused(
                f"the lab is not up, so a dry run has no nodes to probe; bringing it up takes "
                f"{len(lab.actions)} steps (HSF_DRY_RUN=true python -m flows.lab up lists them). "
                "Nothing was changed."
            )
    targets = node_targets(settings)
    resource = drbd_resource(settings, shared_secret(secret_block_name(settings)))
    current_executor().add_secret(resource.shared_secret.get_secret_value())
    allowed = Preconditions(
        fstype=drbd.fstype,
        install_packages=drbd.install_packages,
        adopt_existing=drbd.adopt_existing,
        force_create_md=drbd.force_create_md,
    )

    # Phase 0: every node probed, every precondition checked; one line per problem, nothing changed.
    probes = steps.probe_nodes(targets, resource, drbd.mountpoint, drbd.fstype)
    if any(p.dual_primary_config for p in probes.values()):
        raise Refused(
            f"{resource.name} runs in high-availability mode (dual-primary, OCFS2): the fault-tolerant setup "
            "manages single-primary volumes and changes nothing here"
        )
    for probe in probes.values():
        for secret in probe.file_secrets():
            current_executor().add_secret(secret)
    if problems := check_preconditions(probes, resource, allowed):
        raise Refused("nothing was changed:\n" + "\n".join(problems))
    primary = running_primary(probes) or settings.primary
    if primary != settings.primary:
        get_run_logger().warning(
            "%s is Primary now, not primary_node %s: it stays the primary (no role change, no mkfs)",
            primary,
            settings.primary,
        )
    device = resource.node(primary).device
    report = SetupReport(
        resource=resource.name,
        primary=primary,
        device=device,
        fstype=drbd.fstype,
        mountpoint=drbd.mountpoint,
        dry_run=settings.dry_run,
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    def on(step: PlannedStep) -> SshTarget:
        return targets[step.node or primary]

    def wait_synced(step: PlannedStep) -> None:
        report.sync_s = steps.wait_synced(on(step), resource, drbd.sync_timeout_s)

    def keep_config(step: PlannedStep) -> None:
        report.kept_files.append(f"{step.node}:{steps.keep_config(on(step), resource, stamp)}")

    def disconnect(step: PlannedStep) -> None:
        assert isinstance(step, Step)
        steps.disconnect(on(step), *step.endpoints)

    def install_tools(step: PlannedStep) -> None:
        assert isinstance(step, Step)
        steps.install_tools(on(step), step.packages, drbd.fstype)

    handlers: dict[str, Callable[[PlannedStep], object]] = {
        "install_tools": install_tools,
        "keep_config": keep_config,
        "write_config": lambda s: steps.write_config(on(s), resource),
        "load_module": lambda s: steps.load_module(on(s)),
        "create_md": lambda s: steps.create_md(on(s), resource, s.force),
        "up": lambda s: steps.up(on(s), resource),
        "disconnect": disconnect,
        "adjust": lambda s: steps.adjust(on(s), resource),
        "wait_connected": lambda s: steps.wait_connected(on(s), resource, drbd.connect_timeout_s),
        "skip_initial_sync": lambda s: steps.skip_initial_sync(on(s), resource),
        "initial_promote": lambda s: steps.promote(on(s), resource, force=s.force),
        "promote": lambda s: steps.promote(on(s), resource, force=s.force),
        "wait_synced": wait_synced,
        "mkfs": lambda s: steps.mkfs(on(s), device, drbd.fstype, label=resource.name),
        "mount": lambda s: steps.mount(on(s), device, drbd.mountpoint),
    }

    # Phase 1: configuration, module, metadata, attach — per node; a running resource adjusted.
    bring_up = plan_bring_up(probes, allowed)
    report.steps += apply(bring_up, handlers, nothing_to_do=f"{resource.name} is configured on every node")

    # Phase 2: connect, the one initial promotion, the initial sync.
    if bring_up:
        probes = steps.probe_nodes(targets, resource, drbd.mountpoint, drbd.fstype)
    fresh_metadata = any(s.kind == "create_md" for s in bring_up)
    replicate = plan_replicate(probes, primary, drbd.initial_sync, fresh_metadata)
    report.steps += apply(replicate, handlers, nothing_to_do="connected, one primary, both disks UpToDate")

    # Phase 3: the filesystem on the primary, then proof that every node can read it.
    if replicate:
        probes = steps.probe_nodes(targets, resource, drbd.mountpoint, drbd.fstype)
    filesystem = plan_filesystem(probes, primary, drbd.fstype, drbd.mountpoint, device)
    report.steps += apply(filesystem, handlers, nothing_to_do=f"{drbd.fstype} mounted on {primary}")
    if any(s.kind == "mkfs" for s in filesystem) and not current_executor().dry_run:
        report.filesystem_seen = verify_every_node(targets, resource, primary, drbd.mountpoint)
        report.steps.append("verified the filesystem on every node by a controlled role switch")

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
