"""The role changes every drill makes on a DRBD resource, written once.

- :func:`switch_primary`: the controlled switch an operator makes (unmount, demote, promote, mount);
- :func:`rejoin`: a node that was lost comes back (power, module, attach) and resyncs as secondary;
- :func:`restore_service`: after a drill failed midway, make sure one node is Primary with the volume
  mounted — or say exactly what an operator must run, and where.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from pydantic import BaseModel, Field

from tasks.context import current_executor
from tasks.drbd import commands as cmd
from tasks.drbd import steps
from tasks.drbd.model import DrbdResource, Resource
from tasks.drbd.probes import DrbdState, Mount, parse_findmnt
from tasks.executor import SshTarget
from tasks.nodes import answers_ssh, restart_node
from tasks.settings import Settings


def switch_primary(
    targets: Mapping[str, SshTarget], resource: Resource, mountpoint: str, old: str, new: str
) -> None:
    """Make ``new`` the primary with the volume mounted, in place of ``old`` (single-primary)."""
    device = resource.node(new).device
    steps.umount(targets[old], mountpoint)
    steps.demote(targets[old], resource)
    steps.promote(targets[new], resource)
    steps.mount(targets[new], device, mountpoint)


class Rejoined(BaseModel):
    returned_s: float
    resync_s: float
    resynced_kib: int = Field(description="What the resync copied, as DRBD announced it on the survivor.")
    resync_curve: list[tuple[float, float]] = Field(
        default_factory=list, description="(seconds since attached, percent synced) as the survivor saw it."
    )


def rejoin(
    settings: Settings,
    targets: Mapping[str, SshTarget],
    resource: DrbdResource,
    node: str,
    returned_s: float | None = None,
) -> Rejoined:
    """Bring ``node`` back after a loss and wait until its disk is UpToDate again (as secondary).
    ``returned_s``: the caller restarted it already (it answers SSH), that many seconds after the start."""
    survivor = targets[resource.peer_of(node).name]
    minor = resource.node(survivor.name).minor
    resyncs_before = len(steps.resyncs(survivor, minor))
    if returned_s is None:
        returned_s = restart_node(settings, targets[node])
    steps.load_module(targets[node])
    steps.up(targets[node], resource)
    steps.wait_connected(survivor, resource, settings.drbd.connect_timeout_s)
    synced = steps.wait_synced(survivor, resource, settings.drbd.sync_timeout_s)
    resynced_kib = sum(steps.resyncs(survivor, minor)[resyncs_before:])
    return Rejoined(
        returned_s=returned_s, resync_s=synced.seconds, resynced_kib=resynced_kib, resync_curve=synced.samples
    )


# -- restoring service after a failed drill ---------------------------------------------------------


class NodeSeen(BaseModel):
    """One node as the recovery found it: does it answer, its DRBD state, what is mounted."""

    node: str
    answers: bool
    state: DrbdState | None = None
    mount: Mount | None = None
    error: str = Field("", description="Why it could not be read (it does not answer, …).")

    @property
    def serving(self) -> bool:
        """Primary with a filesystem mounted at the mountpoint: the service is up here."""
        return self.state is not None and self.state.role == "Primary" and self.mount is not None

    def describe(self) -> str:
        if not self.answers or self.state is None:
            return f"{self.node}: does not answer ({self.error or 'no SSH'})"
        mounted = f"{self.mount.source} mounted at {self.mount.target}" if self.mount else "nothing mounted"
        return f"{self.node}: {self.state.summary()}, {mounted}"


class RecoveryPlan(BaseModel):
    """How one node serves the volume again: nothing to do, mount, or promote and mount."""

    node: str = Field(description="The node that serves, or that the operator's commands are for.")
    automatic: bool = Field(description="This run may do it; False: only an operator can (see reason).")
    up: bool = Field(False, description="The resource must be brought up on the node first.")
    promote: bool = False
    mount: bool = False
    reason: str

    @property
    def nothing_to_do(self) -> bool:
        return self.automatic and not (self.up or self.promote or self.mount)


def plan_recovery(seen: Mapping[str, NodeSeen], mountpoint: str, prefer: str | None = None) -> RecoveryPlan:
    """Pure: from what each node showed, the one safe way back to a served volume.

    A Primary is never joined by a second one: if a node that answers is Primary, the service is
    restored there (mounted if need be); if one is still connected to a Primary peer, that peer runs
    (only this machine cannot reach it) and nothing is done. Otherwise a Secondary whose own disk is
    UpToDate is promoted, ``prefer`` first (a drill's survivor holds the newest data). Anything else —
    no node answers, only Outdated/Inconsistent disks, a resource that is not up — is not done
    automatically: the plan names the node an operator should act on.
    """
    order = sorted(seen, key=lambda n: (n != prefer, n))
    answering = [seen[n] for n in order if seen[n].answers and seen[n].state is not None]
    for node in answering:
        if node.serving:
            assert node.mount is not None
            return RecoveryPlan(
                node=node.node,
                automatic=True,
                reason=f"{node.node} is Primary with {node.mount.source} mounted at {mountpoint}: "
                "service is up",
            )
    for node in answering:
        if node.state is not None and node.state.role == "Primary":
            return RecoveryPlan(
                node=node.node,
                automatic=True,
                mount=True,
                reason=f"{node.node} is Primary but nothing is mounted at {mountpoint}",
            )
    for node in answering:
        if node.state is not None and node.state.connected and node.state.peer_role == "Primary":
            peer = next((n for n in order if n != node.node), node.node)
            return RecoveryPlan(
                node=peer,
                automatic=False,
                reason=f"{node.node} is still connected to {peer}, which is Primary: {peer} runs but does "
                "not answer this machine, and a second Primary would split the data",
            )
    for node in answering:
        state = node.state
        if state is not None and state.configured and state.role == "Secondary" and state.disk == "UpToDate":
            return RecoveryPlan(
                node=node.node,
                automatic=True,
                promote=True,
                mount=True,
                reason=f"no node is Primary; {node.node} has an UpToDate disk ({state.summary()})",
            )
    target = _node_for_operator(seen, order)
    state = seen[target].state
    return RecoveryPlan(
        node=target,
        automatic=False,
        up=state is None or not state.configured,
        promote=True,
        mount=True,
        reason="no node that answers is Primary or has an UpToDate disk to promote: "
        + "; ".join(seen[n].describe() for n in order),
    )


def _node_for_operator(seen: Mapping[str, NodeSeen], order: list[str]) -> str:
    """The first of ``order`` (``prefer`` first) not known to hold a disk that is not UpToDate."""
    for name in order:
        state = seen[name].state
        if not (seen[name].answers and state is not None and state.configured and state.disk != "UpToDate"):
            return name
    return order[0]


def recovery_commands(
    resource: DrbdResource,
    node: str,
    mountpoint: str,
    *,
    up: bool = False,
    promote: bool = True,
    mount: bool = True,
) -> list[str]:
    """The exact commands, as an operator types them on ``node``, that make it serve the volume."""
    device = resource.node(node).device
    argvs = [
        *([cmd.up_argv(resource.name)] if up else []),
        *([cmd.primary_argv(resource.name)] if promote else []),
        *([cmd.mkdir_argv(mountpoint), cmd.mount_argv(device, mountpoint)] if mount else []),
    ]
    return [shlex.join(argv) for argv in argvs]


class Recovery(BaseModel):
    """What :func:`restore_service` saw and did; ``to_run`` when an operator must finish it."""

    seen: list[NodeSeen]
    plan: RecoveryPlan
    done: list[str] = Field(default_factory=list, description="Commands this run ran to restore service.")
    serving: str | None = Field(None, description="The node Primary with the volume mounted afterwards.")
    failed: str = Field("", description="Why the automatic recovery did not finish.")
    to_run: list[str] = Field(default_factory=list, description="What an operator must run on plan.node.")

    @property
    def restored(self) -> bool:
        return self.serving is not None

    def summary(self) -> str:
        """One paragraph: where the service is now, or exactly what to run where."""
        if self.restored and not self.done:
            return f"Service: {self.plan.reason}; nothing was changed."
        if self.restored:
            did = "; ".join(f"`{c}`" for c in self.done)
            return f"Service restored on {self.serving} ({self.plan.reason}): ran {did}."
        if not self.to_run:
            return f"Service not restored: {self.plan.reason}. Check {self.plan.node}; nothing was changed."
        why = self.failed or self.plan.reason
        run = "; ".join(f"`{c}`" for c in self.to_run)
        down = next((s for s in self.seen if s.node == self.plan.node and not s.answers), None)
        first = " once it answers again (power it on)" if down else ""
        return (
            f"Service NOT restored: {why}. To restore it, run on {self.plan.node}{first}: {run}; "
            "then `python -m flows.setup` brings the other node back as secondary."
        )


def look_at(target: SshTarget, resource: DrbdResource, mountpoint: str) -> NodeSeen:
    """Read one node for the recovery (read-only); a node that does not answer is noted, not raised."""
    try:
        if not answers_ssh(target):
            return NodeSeen(node=target.name, answers=False, error="no SSH answer")
        state = steps.drbd_state(target, resource.node(target.name).minor)
        found = current_executor().run(
            cmd.findmnt_argv(mountpoint), target, read_only=True, ok_codes=(0, 1), quiet=True
        )
        return NodeSeen(node=target.name, answers=True, state=state, mount=parse_findmnt(found.stdout))
    except Exception as exc:  # the recovery reports every node, whatever failed
        return NodeSeen(node=target.name, answers=False, error=_one_line(exc))


def restore_service(
    targets: Mapping[str, SshTarget], resource: DrbdResource, mountpoint: str, prefer: str | None = None
) -> Recovery:
    """Make sure one node is Primary with the volume mounted, after a drill failed midway.

    Reads every node (:func:`look_at`), plans with :func:`plan_recovery` and does what it may: mount
    on a Primary without its mount, or promote and mount an UpToDate Secondary (``prefer`` first).
    When that is not possible, or fails, the result holds the exact commands and the node to run them
    on. Never raises: its caller is already handling an error, which must not be hidden.
    """
    seen = {node: look_at(target, resource, mountpoint) for node, target in targets.items()}
    plan = plan_recovery(seen, mountpoint, prefer)
    recovery = Recovery(seen=list(seen.values()), plan=plan)
    if plan.nothing_to_do:
        recovery.serving = plan.node
        return recovery
    if not plan.automatic:
        if plan.promote or plan.mount:
            recovery.to_run = recovery_commands(resource, plan.node, mountpoint, up=plan.up)
        return recovery
    target, device = targets[plan.node], resource.node(plan.node).device
    promote = plan.promote
    try:
        if promote:
            steps.promote(target, resource)
            recovery.done.append(shlex.join(cmd.primary_argv(resource.name)))
            promote = False
        steps.mount(target, device, mountpoint)
        recovery.done += [
            shlex.join(cmd.mkdir_argv(mountpoint)),
            shlex.join(cmd.mount_argv(device, mountpoint)),
        ]
        recovery.serving = plan.node
    except Exception as exc:  # reported with what to run instead
        recovery.failed = f"{'promoting' if promote else 'mounting'} on {plan.node} failed: {_one_line(exc)}"
        recovery.to_run = recovery_commands(resource, plan.node, mountpoint, promote=promote)
    return recovery


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
