"""Pure plans for building the fault-tolerant volume, in three phases with a probe before each.

0. ``check_preconditions``: every reason not to start, on every node, before anything changes;
1. ``plan_bring_up``: config, module, metadata, ``up`` — per node; a running resource adjusted;
2. ``plan_replicate``: connect, the one initial promotion, the initial sync;
3. ``plan_filesystem``: mkfs (only on a volume without one) and mount on the primary.

Each returns the actions still needed; empty lists mean the volume is already as specified. A disk
that holds something else than DRBD metadata makes the plan refuse (:class:`Refused`) unless forced.
"""

from __future__ import annotations

import difflib
from typing import Literal

from pydantic import BaseModel, Field

from tasks.drbd.model import OWN_FILE_HEADER, Resource, mask_secrets, render, secrets_in, stacked_end
from tasks.drbd.probes import AdjustPreview, BlockDevice, BlockSignature, DrbdState, Mount
from tasks.plan import PlannedStep


class Refused(Exception):
    """The plan would destroy data the user did not ask to destroy."""


# The tool each step needs, and the Debian package that brings it.
TOOL_PACKAGES = {
    "drbdadm": "drbd-utils",
    "mkfs.ext4": "e2fsprogs",
    "mkfs.xfs": "xfsprogs",
    "arping": "iputils-arping",
}


def tools_needed(fstype: str, announces: bool = False) -> list[str]:
    """The tools setup runs; ``announces``: the node holds a stacked end's moving address, and tells its
    neighbours when it takes it (measured without: the third node reconnected 68 s after the kill)."""
    return ["drbdadm", f"mkfs.{fstype}", *(["arping"] if announces else [])]


class NodeProbe(BaseModel):
    """One node's facts, read by the probe task (nothing on the node changes to read them)."""

    node: str
    hostname: str = Field(description="`uname -n`: DRBD finds its own 'on <name>' section by it.")
    tools_found: list[str] = Field(default_factory=list, description="Needed tools that are installed.")
    announces: bool = Field(False, description="It holds a stacked end's moving address (needs arping).")
    module_available: bool = Field(True, description="The running kernel has a drbd module (modinfo).")
    config_text: str | None = Field(None, description="The resource file as it is now (None: no file).")
    config_current: bool = Field(description="/etc/drbd.d/<res>.res has the rendered content.")
    module_loaded: bool
    state: DrbdState
    running: dict[str, list[int]] = Field(
        default_factory=dict, description="Resources configured in the kernel and their minors."
    )
    disk: BlockDevice | None = Field(None, description="The backing disk as lsblk sees it (None: no device).")
    addresses: list[str] | None = Field(None, description="Addresses configured on the host (None: unknown).")
    backing: BlockSignature = Field(description="What blkid finds on the whole backing disk.")
    head: BlockSignature = Field(
        default_factory=BlockSignature, description="What blkid finds in the disk's first MiB."
    )
    head_zero: bool | None = Field(
        None, description="The bytes drbdmeta checks are all zero (None: the disk could not be read)."
    )
    adjust: AdjustPreview | None = Field(
        None,
        description="What adjust would run for the rendered config (a running resource whose file differs).",
    )
    volume: BlockSignature | None = Field(None, description="What blkid finds on /dev/drbdN (Primary only).")
    mount: Mount | None = Field(None, description="What is mounted at the mountpoint.")

    def missing_tools(self, fstype: str) -> list[str]:
        """The tools setup needs for ``fstype`` that this node lacks."""
        return [t for t in tools_needed(fstype, self.announces) if t not in self.tools_found]

    @property
    def dual_primary_config(self) -> bool:
        """The node's resource file allows two primaries."""
        return self.config_text is not None and "allow-two-primaries yes" in self.config_text

    def file_secrets(self) -> list[str]:
        """Secrets in the node's resource file as it is (another's file holds another secret)."""
        return secrets_in(self.config_text or "")

    @property
    def own_config(self) -> bool:
        """No file yet, or one this project wrote (its own to rewrite)."""
        return self.config_text is None or self.config_text.startswith(OWN_FILE_HEADER)

    def stacked_on(self, device: str) -> list[str]:
        """Devices stacked on the DRBD ``device`` (an upper resource of a three-node volume), from lsblk."""
        return [
            grandchild.path
            for child in (self.disk.children if self.disk else [])
            if child.path == device
            for grandchild in child.children
            if grandchild.type != "part"
        ]

    @property
    def attached(self) -> bool:
        """The resource runs here with its backing disk attached (DRBD holds the disk)."""
        return self.state.configured and self.state.disk not in ("Diskless", "DUnknown")


StepKind = Literal[
    "install_tools",
    "keep_config",
    "write_config",
    "load_module",
    "hold_address",
    "release_address",
    "create_md",
    "up",
    "disconnect",
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
    packages: tuple[str, ...] = Field((), description="install_tools: the Debian packages to install.")
    endpoints: tuple[str, ...] = Field((), description="disconnect: the running connection's endpoints.")
    resource: str = Field("", description="keep/write_config: another resource's file ('': the plan's own).")


class Preconditions(BaseModel):
    """What the setup may do, given the settings that allow more than the default."""

    fstype: str
    install_packages: bool = False
    adopt_existing: bool = False
    force_create_md: bool = False


def config_difference(node: str, current: str | None, wanted: str, path: str) -> str:
    """A unified diff of the node's resource file against the one setup would write, secrets masked."""
    diff = difflib.unified_diff(
        mask_secrets(current or "").splitlines(),
        mask_secrets(wanted).splitlines(),
        fromfile=f"{node}:{path} (now)",
        tofile=f"{node}:{path} (setup would write)",
        lineterm="",
    )
    return "\n".join(f"    {line}" for line in diff)


def check_preconditions(
    probes: dict[str, NodeProbe], resource: Resource, allowed: Preconditions
) -> list[str]:
    """Every reason not to start, one line each (a refused file adds its difference below its line).

    Checked on every node before the first change, so that a typo or a host that is not what the
    settings say stops the run with nothing changed.
    """
    problems: list[str] = []
    rendered = render(resource)
    live_change = [n for n, p in probes.items() if p.state.configured and not p.config_current]
    for node, probe in probes.items():
        spec = resource.node(node)
        if probe.hostname != node:
            problems.append(
                f"{node}: the host's name is {probe.hostname!r}, and DRBD finds its section by that name: "
                f"name the inventory host {probe.hostname!r} (or rename the host)"
            )
        missing = probe.missing_tools(allowed.fstype)
        if missing and not allowed.install_packages:
            packages = ", ".join(f"{t} ({TOOL_PACKAGES[t]})" for t in missing)
            problems.append(
                f"{node}: missing {packages}: install the package, or set drbd.install_packages = true"
            )
        if not probe.module_loaded and not probe.module_available:
            problems.append(
                f"{node}: the running kernel has no drbd module (modinfo drbd): DRBD 8.4 needs it"
            )
        if probe.addresses is None:
            problems.append(
                f"{node}: could not list the host's addresses (ip address): is iproute2 installed?"
            )
        elif str(spec.address) not in probe.addresses and not stacked_end(resource, node):  # it moves there
            has = ", ".join(a for a in probe.addresses if not a.startswith(("127.", "::1", "fe80")))
            problems.append(
                f"{node}: replication address {spec.address} is not configured on the host (it has "
                f"{has or 'none'}): set the inventory host's replication_address"
            )
        for other, minors in probe.running.items():
            if other != resource.name and spec.minor in minors:
                problems.append(
                    f"{node}: {spec.device} belongs to the running resource {other!r}: "
                    "choose another drbd.minor"
                )
        problems += _disk_problems(node, probe, spec.disk, spec.device, allowed)
        if not allowed.adopt_existing:
            problems += foreign_config_problems(node, probe, resource, rendered)
        if probe.adjust is not None and probe.adjust.rejected:
            problems.append(
                f"{node}: drbdadm cannot apply the new config to the running {resource.name}: "
                f"{probe.adjust.rejected}"
            )
        if probe.adjust is not None:
            for harm in probe.adjust.harms:
                problems.append(
                    f"{node}: applying the settings to the running {resource.name} would {harm}; "
                    "check drbd.disk and drbd.minor against the running resource (drbdsetup show)"
                )
    if live_change:
        unhealthy = [f"{n} {p.state.summary()}" for n, p in probes.items() if not p.state.healthy]
        if unhealthy:
            problems.append(
                f"{resource.name} runs and its configuration would change on {', '.join(live_change)}: "
                f"that is done only while it is Connected and UpToDate on every node ({'; '.join(unhealthy)})"
            )
    return problems


def foreign_config_problems(node: str, probe: NodeProbe, resource: Resource, rendered: str) -> list[str]:
    """A resource file, or a running resource, that this project did not make: never replaced unless
    the settings say so (setup adopts it with ``drbd.adopt_existing``, keeping a copy)."""
    if not probe.config_current and not probe.own_config:
        return [
            f"{node}: {resource.config_path} was not written by ha-storage-flows and differs from what "
            "setup would write; set drbd.adopt_existing = true to replace it (a copy of it is kept):\n"
            + config_difference(node, probe.config_text, rendered, resource.config_path)
        ]
    if probe.state.configured and probe.config_text is None:
        return [
            f"{node}: resource {resource.name} runs without {resource.config_path}; "
            "set drbd.adopt_existing = true to give it setup's file"
        ]
    return []


def _disk_problems(node: str, probe: NodeProbe, disk: str, device: str, allowed: Preconditions) -> list[str]:
    if probe.disk is None:
        return [f"{node}: {disk} is not a block device on this host: check drbd.disk"]
    users = probe.disk.users(besides=device if probe.attached else None)
    if users:
        return [f"{node}: {disk} is in use ({', '.join(users)}): DRBD needs a whole disk nothing else uses"]
    if probe.state.configured or probe.backing.is_drbd_metadata or probe.head_zero:
        return []
    if probe.head_zero is None:
        return [f"{node}: {disk} could not be read: refusing to write DRBD metadata to it"]
    if allowed.force_create_md:
        return []
    found = probe.head if probe.head.type else probe.backing
    what = found.type or "data that is not zeros in its first 65 KiB (drbdmeta refuses it)"
    label = f" (label {found.label})" if found.label else ""
    return [
        f"{node}: {disk} holds {what}{label}; refusing to write DRBD metadata over it. "
        "Set drbd.force_create_md = true to destroy it."
    ]


def plan_bring_up(probes: dict[str, NodeProbe], allowed: Preconditions) -> list[Step]:
    """Per node: tools, config (a foreign file kept first), module, metadata, up; then a running
    resource takes its new config: disconnected on every node first when the connection changes (so
    no node meets a peer with the other secret), adjusted, and connected again."""
    steps: list[Step] = []
    for node, probe in probes.items():  # first on every node: a package that fails changes nothing else
        if missing := probe.missing_tools(allowed.fstype):
            packages = tuple(sorted({TOOL_PACKAGES[t] for t in missing}))
            reason = f"missing {', '.join(missing)}"
            steps.append(Step(kind="install_tools", node=node, reason=reason, packages=packages))
    for node, probe in probes.items():
        if not probe.config_current:
            if probe.config_text is not None and not probe.own_config:
                steps.append(
                    Step(kind="keep_config", node=node, reason="adopting a file setup did not write")
                )
            steps.append(Step(kind="write_config", node=node, reason="resource file missing or different"))
        if not probe.module_loaded:
            steps.append(Step(kind="load_module", node=node, reason="drbd module not loaded"))
        if probe.state.configured:
            continue
        if not probe.backing.is_drbd_metadata:
            blank = bool(probe.head_zero)
            why = (
                "disk is blank" if blank else f"forced over {probe.head.type or probe.backing.type or 'data'}"
            )
            steps.append(Step(kind="create_md", node=node, reason=why, force=not blank))
        steps.append(Step(kind="up", node=node, reason="resource not configured in the kernel"))
    live = {n: p for n, p in probes.items() if p.state.configured and not p.config_current}
    if any(p.adjust is not None and p.adjust.reconnects for p in live.values()):
        for node, probe in live.items():
            endpoints = probe.adjust.disconnect_endpoints if probe.adjust else None
            if endpoints:
                reason = "the connection's settings change"
                steps.append(Step(kind="disconnect", node=node, reason=reason, endpoints=endpoints))
    for node in live:
        steps.append(Step(kind="adjust", node=node, reason="running resource takes the new config"))
    if live:
        first = next(iter(live))
        steps.append(Step(kind="wait_connected", node=first, reason="peers reconnect with the new config"))
        steps.append(Step(kind="wait_synced", node=first, reason="writes made meanwhile resync"))
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
    elif steps and steps[0].kind == "wait_connected":  # a node that returns resyncs what it missed
        steps.append(Step(kind="wait_synced", node=primary, reason="a reconnected peer may resync"))
    return steps


def running_primary(probes: dict[str, NodeProbe]) -> str | None:
    """The node DRBD reports as Primary, if any (single-primary: at most one)."""
    return next((n for n, p in probes.items() if p.state.role == "Primary"), None)


def plan_filesystem(
    probes: dict[str, NodeProbe], primary: str, fstype: str, mountpoint: str, device: str
) -> list[Step]:
    """On the primary: mkfs only on a volume that reads blank where it can be read, mount when not.

    Blank means: the Primary's /dev/drbdN has no signature, and no node's backing disk has one in
    its first MiB (internal metadata keeps a filesystem at the disk's start). A volume that no node
    can read (no Primary: a dry run) counts as blank only when every backing disk's head does.
    """
    steps: list[Step] = []
    probe = probes[primary]
    holders = ", ".join(f"{n}: {p.head.type}" for n, p in probes.items() if p.head.type)
    if probe.volume is None or probe.volume.blank:
        if holders:
            raise Refused(
                f"{device} on {primary} reads blank or cannot be read, but the backing disks hold a "
                f"filesystem at their start ({holders}): refusing mkfs. Nothing was changed."
            )
        if probe.volume is None and any(p.head_zero is None for p in probes.values()):
            raise Refused(f"{device} could not be read on any node: refusing mkfs. Nothing was changed.")
        steps.append(Step(kind="mkfs", node=primary, reason=f"no filesystem on {device}: making {fstype}"))
    if probe.mount is None:
        steps.append(Step(kind="mount", node=primary, reason=f"{device} not mounted at {mountpoint}"))
    elif probe.mount.source != device:
        raise Refused(f"{primary}: {mountpoint} has {probe.mount.source} mounted, not {device}")
    return steps
