"""Build the two-node fault-tolerant volume: ``python -m flows.setup``.

DRBD resource → metadata → up → one initial promotion → sync → mkfs (ext4/xfs) → mount on the
primary, then prove every node recognises the filesystem (the secondary after a controlled role
switch). Probe → plan → execute in three phases; a re-run plans nothing and changes nothing.

With ``cluster.manager = "pacemaker"`` a fourth phase hands the volume to Pacemaker (``tasks.pacemaker``):
corosync, SBD, the units, the CIB; from then on the cluster starts, promotes and mounts DRBD, and setup
only keeps the files current (a running resource's live change included).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime

from prefect import State, flow
from prefect.artifacts import create_markdown_artifact
from prefect.futures import wait
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from flows.lab import lab_up
from tasks.cli import run_cli
from tasks.cluster import (
    PacemakerCluster,
    corosync_authkey,
    drbd_resource,
    node_targets,
    pacemaker_cluster,
    secret_block_name,
    shared_secret,
    stacked_address,
    stacked_resource,
    third_node_target,
)
from tasks.context import DryRunRefused, current_executor, run_context
from tasks.drbd import stacked, steps
from tasks.drbd.model import DrbdResource, Resource, StackedResource, stacked_end
from tasks.drbd.plan import (
    NodeProbe,
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
from tasks.pacemaker import steps as pm_steps
from tasks.pacemaker.commands import COROSYNC_AUTHKEY, COROSYNC_CONF, SBD_DEFAULT
from tasks.pacemaker.model import cib_secrets
from tasks.pacemaker.plan import (
    ClusterProbe,
    ClusterStep,
    WantedCluster,
    cluster_problems,
    plan_cluster,
    serving_node,
)
from tasks.plan import PlannedStep, apply
from tasks.settings import Settings, load_settings
from tasks.step import step


class SetupReport(BaseModel):
    resource: str
    upper: str = Field("", description="topology 'stacked': the upper resource, which holds the filesystem.")
    third_node: str = Field("", description="topology 'stacked': the node holding the third copy.")
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
    cluster: str = Field("", description="The Pacemaker cluster as crm_mon saw it at the end (manager only).")
    seconds: float = 0.0
    volumes: list[SetupReport] = Field(
        default_factory=list, description="drbd.volumes: each further volume's own report (set up at once)."
    )
    all_volumes_s: float | None = Field(None, description="drbd.volumes: setting up every volume, at once.")

    @property
    def changed(self) -> bool:
        return bool(self.steps) or any(volume.changed for volume in self.volumes)

    def render(self) -> str:
        stacked = f" stacked on {self.resource}, third copy on {self.third_node}" if self.upper else ""
        lines = [
            f"DRBD {self.upper or self.resource}{stacked}: {self.device} {self.fstype} on "
            f"{self.primary}:{self.mountpoint}",
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
        if self.cluster:
            lines.append(f"Pacemaker: {self.cluster}")
        lines.append(f"took {self.seconds:.1f} s")
        for volume in self.volumes:
            lines += ["", volume.render()]
        if self.all_volumes_s is not None:
            lines.append(f"\n{len(self.volumes) + 1} volumes set up at once in {self.all_volumes_s:.1f} s")
        return "\n".join(lines)


def verify_every_node(
    targets: Mapping[str, SshTarget], resource: Resource, primary: str, mountpoint: str
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
        if settings.drbd.volumes:
            return _build_volumes(settings)
        return _build(settings)


# drbd.volumes: every volume's setup waits here after its phase 0, so none changes a node before all
# were probed and found sound; one that refused or failed breaks it, and the others change nothing.
_PROBED_ALL: ContextVar[threading.Barrier | None] = ContextVar("hsf_volumes_probed", default=None)


@step(name="volume-setup")
def volume_setup(settings: Settings) -> SetupReport:
    """One volume of several: its own setup, as a subflow, in a task so the volumes are set up at once."""
    try:
        return setup(settings)
    except BaseException:
        if (gate := _PROBED_ALL.get()) is not None:
            gate.abort()  # the volumes still in phase 0, or waiting, stop before any change
        raise


def _every_volume_probed(resource: str) -> None:
    """With several volumes: wait until every volume passed its phase 0; refuse if one did not."""
    gate = _PROBED_ALL.get()
    if gate is None:
        return
    try:
        gate.wait()
    except threading.BrokenBarrierError:
        raise Refused(
            f"nothing was changed on {resource}: another volume was refused or failed before any change"
        ) from None


def _build_volumes(settings: Settings) -> SetupReport:
    """Every volume at once (``drbd.volumes``): each is a resource of its own on its own disk, minor and
    port, so their setups share nothing but the nodes; none changes a node before every volume passed its
    phase 0 (``_PROBED_ALL``). The run waits for all of them and logs every volume that was refused or
    failed, then ends with the first failure as it is (its own exit code), or every refusal in one."""
    started = time.monotonic()
    _lab_ready(settings)  # once, before the volumes' own setups find it up
    volumes = settings.each_volume()
    token = _PROBED_ALL.set(threading.Barrier(len(volumes)))  # the tasks' threads copy this context
    try:
        futures = [volume_setup.submit(volume) for volume in volumes]
    finally:
        _PROBED_ALL.reset(token)
    wait(futures)
    failed = [
        (volume.drbd.resource, future.state)
        for volume, future in zip(volumes, futures, strict=True)
        if not future.state.is_completed()
    ]
    if failed:
        errors = [(name, _exception_of(state)) for name, state in failed]
        for name, error in errors:
            get_run_logger().error("%s: %s", name, error)
        for _, error in errors:  # a failure ends the run as its own kind (exit code), after every refusal
            if not isinstance(error, Refused):
                raise error
        raise Refused("\n".join(f"{name}: {error}" for name, error in errors))
    first, *others = (future.result() for future in futures)
    first.volumes = others
    first.all_volumes_s = round(time.monotonic() - started, 1)
    return first


def _exception_of(state: State) -> BaseException:
    try:
        state.result()
    except BaseException as exc:  # the failed task's own exception
        return exc
    return RuntimeError(f"ended {state.name}")


def _lab_ready(settings: Settings) -> None:
    """The lab's VMs run (brought up if not): in a dry run that must already be so."""
    if settings.target != "lab":
        return
    lab = lab_up(settings)
    if lab.dry_run and lab.actions:
        raise DryRunRefused(
            f"the lab is not up, so a dry run has no nodes to probe; bringing it up takes "
            f"{len(lab.actions)} steps (HSF_DRY_RUN=true python -m flows.lab up lists them). "
            "Nothing was changed."
        )


def _build(settings: Settings) -> SetupReport:
    started = time.monotonic()
    drbd = settings.drbd
    if warning := settings.cluster.stonith_warning:
        get_run_logger().warning("%s", warning)
    _lab_ready(settings)
    targets = node_targets(settings)
    resource = drbd_resource(settings, shared_secret(secret_block_name(settings)))
    current_executor().add_secret(resource.shared_secret.get_secret_value())
    upper: StackedResource | None = None
    if settings.third_node is not None:
        upper_secret = shared_secret(secret_block_name(settings, drbd.upper_resource))
        upper = stacked_resource(settings, resource, upper_secret)
        current_executor().add_secret(upper_secret)
        targets_with_third = {**targets, upper.third.name: third_node_target(settings)}
    allowed = _allowed(settings)

    # Phase 0: every node probed, every precondition checked; one line per problem, nothing changed.
    probes = steps.probe_nodes(targets, resource, drbd.mountpoint, drbd.fstype)
    if any(p.dual_primary_config for p in probes.values()):
        raise Refused(
            f"{resource.name} runs in high-availability mode (dual-primary, OCFS2): the fault-tolerant setup "
            "manages single-primary volumes and changes nothing here"
        )
    stacked_copies = [f"{n}: {u}" for n, p in probes.items() for u in p.stacked_on(resource.node(n).device)]
    if upper is None and stacked_copies:
        raise Refused(
            f"{resource.name} carries a stacked third copy ({', '.join(stacked_copies)}), and drbd.topology "
            "is 'two-node': set drbd.topology = 'stacked' (and drbd.third_node) to manage it. Nothing was "
            "changed."
        )
    for probe in probes.values():
        for secret in probe.file_secrets():
            current_executor().add_secret(secret)
    problems = check_preconditions(probes, resource, allowed)
    if upper is not None:
        lower_primary = running_primary(probes)
        problems += _upper_problems(settings, targets_with_third, upper, lower_primary)
    cluster: Phase4 | None = None
    if settings.cluster.manager == "pacemaker":
        cluster = Phase4.probe(settings, targets)
        problems += cluster_problems(cluster.probes, cluster.wanted, drbd.install_packages)
    else:
        problems += [
            f"{node}: Pacemaker runs here and owns the volume: with cluster.manager = 'none' setup would act "
            "behind its back (set cluster.manager = 'pacemaker', or stop the cluster on every node first)"
            for node, target in targets.items()
            if pm_steps.pacemaker_active(target)
        ]
    if problems:
        raise Refused("nothing was changed:\n" + "\n".join(problems))
    managed = cluster is not None and cluster.pacemaker_running
    primary = running_primary(probes) or settings.primary
    if primary != settings.primary:
        get_run_logger().warning(
            "%s is Primary now, not primary_node %s: it stays the primary (no role change, no mkfs)",
            primary,
            settings.primary,
        )
    device = (upper or resource).node(primary).device
    report = SetupReport(
        resource=resource.name,
        upper=upper.name if upper else "",
        third_node=upper.third.name if upper else "",
        primary=primary,
        device=device,
        fstype=drbd.fstype,
        mountpoint=drbd.mountpoint,
        dry_run=settings.dry_run,
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    handlers = _drbd_handlers(settings, targets, resource, primary, report, stamp)
    _every_volume_probed(resource.name)

    # Phase 1: configuration, module, metadata, attach — per node; a running resource adjusted.
    bring_up = plan_bring_up(probes, allowed)
    if managed and (theirs := [str(s) for s in bring_up if s.kind not in PACEMAKER_LEAVES_TO_SETUP]):
        raise Refused(
            "Pacemaker runs the volume, and these steps are its own (it starts, connects and promotes DRBD; "
            "wait for it, see crm_mon): " + "; ".join(theirs) + ". Nothing was changed."
        )
    report.steps += apply(bring_up, handlers, nothing_to_do=f"{resource.name} is configured on every node")
    if managed:
        assert cluster is not None
        report.steps += cluster.build(settings, targets, resource, probes, report, stamp)
        return _finish(report, started)

    # Phase 2: connect, the one initial promotion, the initial sync.
    if bring_up:
        probes = steps.probe_nodes(targets, resource, drbd.mountpoint, drbd.fstype)
    fresh_metadata = any(s.kind == "create_md" for s in bring_up)
    replicate = plan_replicate(probes, primary, drbd.initial_sync, fresh_metadata)
    report.steps += apply(replicate, handlers, nothing_to_do="connected, one primary, both disks UpToDate")

    if upper is not None:  # Phases 3-5: the upper resource on the lower Primary and the third node
        report.steps += _build_upper(settings, targets_with_third, upper, primary, report, stamp)
        return _finish(report, started)

    # Phase 3: the filesystem on the primary, then proof that every node can read it.
    if replicate:
        probes = steps.probe_nodes(targets, resource, drbd.mountpoint, drbd.fstype)
    filesystem = plan_filesystem(probes, primary, drbd.fstype, drbd.mountpoint, device)
    report.steps += apply(filesystem, handlers, nothing_to_do=f"{drbd.fstype} mounted on {primary}")
    if any(s.kind == "mkfs" for s in filesystem) and not current_executor().dry_run:
        report.filesystem_seen = verify_every_node(targets, resource, primary, drbd.mountpoint)
        report.steps.append("verified the filesystem on every node by a controlled role switch")

    if cluster is not None:  # Phase 4: Pacemaker takes the volume over
        probes = steps.probe_nodes(targets, resource, drbd.mountpoint, drbd.fstype)
        report.steps += cluster.build(settings, targets, resource, probes, report, stamp)
    return _finish(report, started)


def _drbd_handlers(
    settings: Settings,
    targets: Mapping[str, SshTarget],
    resource: Resource,
    primary: str,
    report: SetupReport,
    stamp: str,
    others: Mapping[str, Resource] | None = None,
) -> dict[str, Callable[[PlannedStep], object]]:
    """What each planned DRBD step runs for ``resource`` (a companion file's step names another resource
    of ``others``)."""
    drbd = settings.drbd
    device = resource.node(primary).device
    by_name = {resource.name: resource, **(others or {})}

    def on(step: PlannedStep) -> SshTarget:
        return targets[step.node or primary]

    def named(step: PlannedStep) -> Resource:
        assert isinstance(step, Step)
        return by_name[step.resource or resource.name]

    def wait_synced(step: PlannedStep) -> None:
        report.sync_s = steps.wait_synced(on(step), resource, drbd.sync_timeout_s).seconds

    def keep_config(step: PlannedStep) -> None:
        report.kept_files.append(f"{step.node}:{steps.keep_config(on(step), named(step), stamp)}")

    def disconnect(step: PlannedStep) -> None:
        assert isinstance(step, Step)
        steps.disconnect(on(step), *step.endpoints)

    def install_tools(step: PlannedStep) -> None:
        assert isinstance(step, Step)
        steps.install_tools(on(step), step.packages, drbd.fstype, stacked_end(resource, on(step).name))

    def address(step: PlannedStep, hold: bool) -> None:
        assert isinstance(resource, StackedResource)  # planned for an upper resource only
        interface = stacked_address(settings)
        if hold:
            stacked.hold_address(on(step), interface, str(resource.lower.node(on(step).name).address))
        else:
            stacked.release_address(on(step), interface)

    return {
        "install_tools": install_tools,
        "keep_config": keep_config,
        "write_config": lambda s: steps.write_config(on(s), named(s)),
        "load_module": lambda s: steps.load_module(on(s)),
        "hold_address": lambda s: address(s, hold=True),
        "release_address": lambda s: address(s, hold=False),
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


def _upper_problems(
    settings: Settings, targets: Mapping[str, SshTarget], upper: StackedResource, lower_primary: str | None
) -> list[str]:
    """Phase 0 for the upper resource: the third node (and a running lower Primary's device: what it holds)
    checked with the lower nodes, before anything changes."""
    drbd = settings.drbd
    ends = [upper.third.name, *([lower_primary] if lower_primary else [])]
    probes = steps.probe_nodes({n: targets[n] for n in ends}, upper, drbd.mountpoint, drbd.fstype)
    # Every file setup will write is judged now, not after the lower resource was built.
    companions = [stacked.read_companion(targets[upper.third.name], upper.lower)]
    companions += [
        stacked.read_companion(targets[n.name], upper) for n in upper.lower.nodes if n.name not in ends
    ]
    problems = check_preconditions(probes, upper, _allowed(settings))
    return problems + stacked.companion_problems(companions, drbd.adopt_existing)


def _build_upper(
    settings: Settings,
    targets: Mapping[str, SshTarget],
    upper: StackedResource,
    primary: str,
    report: SetupReport,
    stamp: str,
) -> list[str]:
    """The upper resource on the lower Primary (stacked, at the moving address) and the third node: its
    files on all three nodes, metadata, up, the one initial promotion, the filesystem; then every node
    proves it recognises the filesystem (the third by an upper role switch, the lower Secondary by a
    lower-tier one)."""
    drbd = settings.drbd
    third = upper.third.name
    lower_secondary = upper.lower.peer_of(primary).name
    ends = {primary: targets[primary], third: targets[third]}
    address = stacked_address(settings)
    handlers = _drbd_handlers(
        settings, targets, upper, primary, report, stamp, {upper.lower.name: upper.lower}
    )
    done: list[str] = []

    # Phase 3: the upper files on every node (and the lower one on the third), the address, metadata, up.
    lower_minor = upper.lower.node(primary).minor
    if current_executor().dry_run and not steps.drbd_state(targets[primary], lower_minor).configured:
        # The lower device does not exist until a real run brings r0 up: nothing on it can be probed,
        # so nothing is planned for it (the third node was checked in phase 0).
        line = f"(dry run) {upper.name}: planned once {upper.lower.name} is up on {primary}"
        get_run_logger().info("%s", line)
        return [line]
    probes = steps.probe_nodes(ends, upper, drbd.mountpoint, drbd.fstype)
    companions = [stacked.read_companion(targets[third], upper.lower)]
    companions.append(stacked.read_companion(targets[lower_secondary], upper))
    problems = check_preconditions(probes, upper, _allowed(settings))
    problems += stacked.companion_problems(companions, drbd.adopt_existing)
    if problems:
        raise Refused(f"the upper resource {upper.name}: nothing more was changed:\n" + "\n".join(problems))
    held = {n: str(address.ip) in stacked.address_holders(targets[n]) for n in (primary, lower_secondary)}
    bring_up: list[Step] = []
    if held[lower_secondary]:
        reason = f"{lower_secondary} is Secondary of {upper.lower.name}: the address belongs with the Primary"
        bring_up.append(Step(kind="release_address", node=lower_secondary, reason=reason))
    if not held[primary]:
        bring_up.append(Step(kind="hold_address", node=primary, reason=f"{address} is the stacked end's"))
    bring_up += stacked.plan_companions(companions) + plan_bring_up(probes, _allowed(settings))
    done += apply(bring_up, handlers, nothing_to_do=f"{upper.name} is configured on {primary} and {third}")

    # Phase 4: connect to the third node, the one initial promotion, the initial sync.
    if bring_up:
        probes = steps.probe_nodes(ends, upper, drbd.mountpoint, drbd.fstype)
    fresh = any(s.kind == "create_md" for s in bring_up)  # the upper metadata's own, whatever the lower's
    replicate = plan_replicate(probes, primary, drbd.initial_sync, fresh)
    done += apply(
        replicate, handlers, nothing_to_do=f"{upper.name} connected, Primary on {primary}, UpToDate"
    )

    # Phase 5: the filesystem on the upper device, then proof that all three nodes can read it.
    if replicate:
        probes = steps.probe_nodes(ends, upper, drbd.mountpoint, drbd.fstype)
    device = upper.node(primary).device
    filesystem = plan_filesystem(probes, primary, drbd.fstype, drbd.mountpoint, device)
    done += apply(filesystem, handlers, nothing_to_do=f"{drbd.fstype} mounted on {primary}")
    if any(s.kind == "mkfs" for s in filesystem) and not current_executor().dry_run:
        report.filesystem_seen = verify_every_node(ends, upper, primary, drbd.mountpoint)
        stacked.move_upper(targets, upper, address, drbd.mountpoint, primary, lower_secondary)
        report.filesystem_seen[lower_secondary] = (
            steps.filesystem_type(targets[lower_secondary], device) or "none"
        )
        stacked.move_upper(targets, upper, address, drbd.mountpoint, lower_secondary, primary)
        done.append(
            f"verified the filesystem on every node: {third} by an upper role switch, {lower_secondary} by a "
            "lower-tier switch"
        )
    return done


def _allowed(settings: Settings) -> Preconditions:
    drbd = settings.drbd
    return Preconditions(
        fstype=drbd.fstype,
        install_packages=drbd.install_packages,
        adopt_existing=drbd.adopt_existing,
        force_create_md=drbd.force_create_md,
    )


def _finish(report: SetupReport, started: float) -> SetupReport:
    report.seconds = round(time.monotonic() - started, 1)
    create_markdown_artifact(
        key=f"drbd-setup-{report.resource}", markdown=f"# DRBD setup\n\n```\n{report.render()}\n```"
    )
    return report


# What setup still does to a volume Pacemaker runs: its files, and a live change of a connected resource.
PACEMAKER_LEAVES_TO_SETUP = frozenset(
    ("install_tools", "keep_config", "write_config", "disconnect", "adjust", "wait_connected", "wait_synced")
)


class Phase4:
    """The Pacemaker cluster: probed with the volume in phase 0, built after it (``tasks.pacemaker``)."""

    def __init__(self, model: PacemakerCluster, wanted: WantedCluster, probes: dict[str, ClusterProbe]):
        self.model, self.wanted, self.probes = model, wanted, probes

    @classmethod
    def probe(cls, settings: Settings, targets: dict[str, SshTarget]) -> Phase4:
        model = pacemaker_cluster(settings)
        authkey = corosync_authkey(settings)
        current_executor().add_secret(authkey)
        for secret in cib_secrets(model.cib):
            current_executor().add_secret(secret)
        wanted = WantedCluster.of(model.corosync, model.sbd, model.cib, authkey)
        return cls(model, wanted, pm_steps.probe_nodes(targets, wanted))

    @property
    def pacemaker_running(self) -> bool:
        return any(p.is_active("pacemaker") for p in self.probes.values())

    def build(
        self,
        settings: Settings,
        targets: dict[str, SshTarget],
        resource: DrbdResource,
        drbd_probes: dict[str, NodeProbe],
        report: SetupReport,
        stamp: str,
    ) -> list[str]:
        """Plan and apply the cluster; the report learns where Pacemaker serves the volume."""
        wanted, cib = self.wanted, self.model.cib
        timeout = settings.cluster.start_timeout_s
        first = next(iter(targets))
        authkey = corosync_authkey(settings)

        def on(step: PlannedStep) -> SshTarget:
            return targets[step.node or first]

        def keep(step: PlannedStep) -> None:
            assert isinstance(step, ClusterStep)
            report.kept_files.append(f"{step.node}:{pm_steps.keep_file(on(step), step.path, stamp)}")

        def install(step: PlannedStep) -> None:
            assert isinstance(step, ClusterStep)
            pm_steps.install_tools(on(step), step.packages)

        def create_header(step: PlannedStep) -> None:
            assert wanted.sbd is not None  # planned only with SBD
            pm_steps.create_sbd_header(on(step), wanted.sbd)

        def serving(step: PlannedStep) -> None:
            report.primary = pm_steps.wait_serving(on(step), cib, timeout) or report.primary

        handlers: dict[str, Callable[[PlannedStep], object]] = {
            "install_cluster_tools": install,
            "keep_file": keep,
            "write_corosync_conf": lambda s: pm_steps.write_file(
                on(s), COROSYNC_CONF, wanted.corosync_conf, "644"
            ),
            "write_authkey": lambda s: pm_steps.write_file(on(s), COROSYNC_AUTHKEY, authkey, "400", authkey),
            "write_sbd_default": lambda s: pm_steps.write_file(
                on(s), SBD_DEFAULT, wanted.sbd_default or "", "644"
            ),
            "create_sbd_header": create_header,
            "hand_over_umount": lambda s: steps.umount(on(s), settings.drbd.mountpoint),
            "hand_over_down": lambda s: pm_steps.drbd_down(on(s), resource.name),
            "enable_cluster": lambda s: pm_steps.enable_units(on(s), wanted.units),
            "reload_corosync": lambda s: pm_steps.reload_corosync(on(s)),
            "start_cluster": lambda s: pm_steps.start_cluster(on(s)),
            "wait_members": lambda s: pm_steps.wait_members(on(s), cib.nodes, timeout),
            "load_cib": lambda s: pm_steps.load_cib(targets, s.node or first, cib),
            "wait_serving": serving,
        }
        plan = plan_cluster(self.probes, drbd_probes, wanted, settings.drbd.install_packages)
        done = apply(plan, handlers, nothing_to_do="the Pacemaker cluster runs as specified")
        status = pm_steps.cluster_status(targets[report.primary])
        report.primary = serving_node(status, cib) or report.primary
        report.cluster = status.summary() if status else "pacemaker does not answer"
        return done


def _print_setup(settings: Settings) -> int:
    print(setup(settings).render())
    return 0


def main() -> int:
    return run_cli(_print_setup)


if __name__ == "__main__":
    sys.exit(main())
