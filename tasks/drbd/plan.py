"""Pure plans for building the fault-tolerant volume, in three phases with a probe before each.

1. ``plan_bring_up``: config, module, metadata, ``up`` — per node;
2. ``plan_replicate``: connect, the one initial promotion, the initial sync;
3. ``plan_filesystem``: mkfs (only on a volume without one) and mount on the primary.

Each returns the actions still needed; empty lists mean the volume is already as specified. A disk
that holds something else than DRBD metadata makes the plan refuse (:class:`Refused`) unless forced.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tasks.drbd.probes import BlockSignature, DrbdState, Mount
from tasks.plan import PlannedStep


class Refused(Exception):
    """The plan would destroy data the user did not ask to destroy."""


class NodeProbe(BaseModel):
    """One node's facts, read by the probe task."""

    node: str
    tools: bool = Field(description="drbdadm is installed.")
    config_current: bool = Field(description="/etc/drbd.d/<res>.res has the rendered content.")
    dual_primary_config: bool = Field(False, description="The node's resource file allows two primaries.")
    module_loaded: bool
    state: DrbdState
    backing: BlockSignature = Field(description="What blkid finds on the backing disk.")
    volume: BlockSignature | None = Field(None, description="What blkid finds on /dev/drbdN (Primary only).")
    mount: Mount | None = Field(None, description="What is mounted at the mountpoint.")


StepKind = Literal[
    "install_tools",
    "write_config",
    "load_module",
    "create_md",
    "up",
    "adjust",
    "wait_connected",
    "skip_initial_sync",
    "initial_promote",
    "promote",
    "wait_synced",
    "mkfs",
    "mount",
]


class Step(PlannedStep):
    kind: StepKind
    node: str


def plan_bring_up(probes: dict[str, NodeProbe], disk: str, force_create_md: bool) -> list[Step]:
    """Per node: tools, config, module, metadata, up (or adjust when the config changed)."""
    steps: list[Step] = []
    for node, probe in probes.items():
        if not probe.tools:
            steps.append(Step(kind="install_tools", node=node, reason="drbdadm not found"))
        if not probe.config_current:
            steps.append(Step(kind="write_config", node=node, reason="resource file missing or different"))
        if not probe.module_loaded:
            steps.append(Step(kind="load_module", node=node, reason="drbd module not loaded"))
        if probe.state.configured:
            if not probe.config_current:
                steps.append(Step(kind="adjust", node=node, reason="running resource needs the new config"))
            continue
        if not probe.backing.is_drbd_metadata:
            if not probe.backing.blank and not force_create_md:
                raise Refused(
                    f"{node}: {disk} already holds {probe.backing.type}"
                    f"{f' (label {probe.backing.label})' if probe.backing.label else ''}; refusing to write "
                    "DRBD metadata over it. Nothing was changed. "
                    "Set drbd.force_create_md = true to destroy it."
                )
            why = "disk is blank" if probe.backing.blank else f"forced over {probe.backing.type}"
            steps.append(Step(kind="create_md", node=node, reason=why, force=not probe.backing.blank))
        steps.append(Step(kind="up", node=node, reason="resource not configured in the kernel"))
    return steps


def plan_replicate(
    probes: dict[str, NodeProbe], primary: str, initial_sync: Literal["full", "skip"], fresh_metadata: bool
) -> list[Step]:
    """Connect, promote the primary (with --force only for a brand-new resource), sync."""
    steps: list[Step] = []
    if not all(p.state.connected for p in probes.values()):
        steps.append(Step(kind="wait_connected", node=primary, reason="peers not connected yet"))
    state = probes[primary].state
    brand_new = fresh_metadata or state.brand_new
    if not any(p.state.role == "Primary" for p in probes.values()):
        if brand_new and initial_sync == "skip":
            steps.append(
                Step(kind="skip_initial_sync", node=primary, reason="blank disks, initial_sync = skip")
            )
            steps.append(Step(kind="promote", node=primary, reason="no node is Primary"))
        elif brand_new:
            steps.append(
                Step(
                    kind="initial_promote",
                    node=primary,
                    reason="brand-new resource: no good copy yet",
                    force=True,
                )
            )
        else:
            steps.append(Step(kind="promote", node=primary, reason="no node is Primary"))
    if brand_new or not all(p.state.disk == "UpToDate" for p in probes.values()):
        steps.append(Step(kind="wait_synced", node=primary, reason="peer disk not UpToDate yet"))
    return steps


def plan_filesystem(probe: NodeProbe, fstype: str, mountpoint: str, device: str) -> list[Step]:
    """On the primary: mkfs only when blkid finds nothing on the volume; mount when not mounted."""
    steps: list[Step] = []
    if probe.volume is None or probe.volume.blank:
        steps.append(Step(kind="mkfs", node=probe.node, reason=f"no filesystem on {device}: making {fstype}"))
    if probe.mount is None:
        steps.append(Step(kind="mount", node=probe.node, reason=f"{device} not mounted at {mountpoint}"))
    elif probe.mount.source != device:
        raise Refused(f"{probe.node}: {mountpoint} has {probe.mount.source} mounted, not {device}")
    return steps
