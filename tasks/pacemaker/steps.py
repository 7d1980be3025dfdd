"""Prefect tasks, one per cluster step, each a builder from ``commands`` run by the executor.

Probes and waits are read-only (``read_only=True``): the failover drill watches the survivor with them
and its record of state-changing commands stays empty. Waits poll the cluster's own state with a
deadline, never a fixed sleep.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from pydantic import BaseModel, Field

from tasks.cli import CheckFailed
from tasks.context import current_executor
from tasks.drbd import commands as files
from tasks.drbd.probes import parse_blkid_export, parse_found_tools
from tasks.drbd.steps import drbd_state, dry_run_skips, run
from tasks.executor import CommandResult, SshTarget
from tasks.lab.host import wait_until
from tasks.pacemaker import commands as cmd
from tasks.pacemaker.model import Cib, Sbd, cib_secrets, render_cib
from tasks.pacemaker.plan import ClusterProbe, WantedCluster, serving_node, text_sha256
from tasks.pacemaker.probes import (
    NEVER,
    ClusterStatus,
    FenceEvent,
    fence_constraints,
    parse_crm_mon_xml,
    parse_fence_history,
    parse_quorum_members,
    parse_sbd_dump,
    parse_sha256sum,
    parse_unit_states,
    successful,
)
from tasks.step import step


def read(
    target: SshTarget, argv: list[str], ok: tuple[int, ...] = (0,), timeout: float = 60
) -> CommandResult:
    return run(target, argv, read_only=True, ok_codes=ok, quiet=True, timeout=timeout)


def cluster_status(target: SshTarget, timeout: float = 60) -> ClusterStatus | None:
    """crm_mon's view from ``target``; None when pacemaker does not answer there (stopped, starting)."""
    result = read(target, cmd.crm_mon_argv(), ok=tuple(range(256)), timeout=timeout)
    if not result.ok or "<pacemaker-result" not in result.stdout:
        return None
    return parse_crm_mon_xml(result.stdout)


# crm_mon draws "ocf:heartbeat:" as a heart symbol in a UTF-8 locale.
PLAIN_TEXT = {"LC_ALL": "C"}


def cluster_summary(target: SshTarget) -> str:
    """crm_mon's own text, for a report (what an operator would see)."""
    result = run(target, cmd.crm_mon_text_argv(), read_only=True, ok_codes=tuple(range(256)), env=PLAIN_TEXT)
    return result.stdout.strip() or result.stderr.strip()


def fence_constraints_on(target: SshTarget) -> list[str]:
    """crm-fence-peer.sh's constraints in the CIB (none once the peer has resynced)."""
    result = read(target, cmd.constraints_argv(), ok=tuple(range(256)))
    return fence_constraints(result.stdout) if result.ok and result.stdout.strip() else []


def pacemaker_active(target: SshTarget) -> bool:
    """Pacemaker runs on ``target`` (so it owns the volume there)."""
    return read(target, cmd.is_active_argv(["pacemaker"]), (0, 3, 4)).stdout.strip() == "active"


@step(name="probe-cluster-node", retry_transport=True)
def probe_node(target: SshTarget, wanted: WantedCluster) -> ClusterProbe:
    """Everything :func:`tasks.pacemaker.plan.plan_cluster` needs to know about one node."""
    units = wanted.units

    def text(path: str) -> str | None:
        result = read(target, files.read_file_argv(path), (0, 1))
        return result.stdout if result.ok else None

    def sha256(path: str) -> str | None:
        result = read(target, cmd.sha256_argv(path), (0, 1))
        return parse_sha256sum(result.stdout) if result.ok else None

    probe = ClusterProbe(
        node=target.name,
        tools_found=sorted(
            parse_found_tools(read(target, files.which_argv(list(wanted.tools)), (0, 1)).stdout)
        ),
        corosync_conf=text(cmd.COROSYNC_CONF),
        authkey_sha256=sha256(cmd.COROSYNC_AUTHKEY),
        sbd_default=text(cmd.SBD_DEFAULT),
        active=parse_unit_states(units, read(target, cmd.is_active_argv(units), (0, 3, 4)).stdout),
        enabled=parse_unit_states(units, read(target, cmd.is_enabled_argv(units), (0, 1, 4)).stdout),
        cib_sha256=(text(cmd.CIB_LOADED_HASH) or "").strip() or None,
    )
    if wanted.sbd is not None:
        device = wanted.sbd.device
        present = read(target, ["test", "-b", device], (0, 1)).ok
        probe.sbd_device_present = present
        if present:
            dump = read(target, cmd.sbd_dump_argv(device), tuple(range(256)))
            probe.sbd_header = parse_sbd_dump(dump.stdout) if dump.ok else None
            if probe.sbd_header is None:
                blkid = read(target, files.blkid_argv(device), (0, 2))
                probe.sbd_device_type = parse_blkid_export(blkid.stdout).type
                zero = read(target, files.zero_head_argv(device), (0, 1, 2)).exit_code
                probe.sbd_device_blank = {0: True, 1: False}.get(zero)
    if probe.is_active("pacemaker"):
        probe.status = cluster_status(target)
    return probe


def probe_nodes(targets: Mapping[str, SshTarget], wanted: WantedCluster) -> dict[str, ClusterProbe]:
    """Every node probed at once (read-only)."""
    futures = {node: probe_node.submit(target, wanted) for node, target in targets.items()}
    return {node: future.result() for node, future in futures.items()}


@step(name="install-cluster-tools", timeout_seconds=1200, retry_transport=True)
def install_tools(target: SshTarget, packages: tuple[str, ...]) -> None:
    run(target, files.apt_update_argv(), timeout=600)
    run(
        target,
        files.install_packages_argv(list(packages)),
        timeout=900,
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )
    # The packages enable and may start corosync with their sample config: setup starts it when it is ready.
    run(target, cmd.systemctl_argv("stop", ["pacemaker", "corosync"]), ok_codes=(0, 5))


@step(name="keep-file", timeout_seconds=120, retry_transport=True)
def keep_file(target: SshTarget, path: str, stamp: str) -> str:
    """Copy a file setup did not write aside before replacing it; returns the copy's path."""
    copy = f"{path}.hsf-{stamp}"
    run(target, files.copy_file_argv(path, copy))
    return copy


@step(name="write-cluster-file", timeout_seconds=120, retry_transport=True)
def write_file(target: SshTarget, path: str, text: str, mode: str, secret: str | None = None) -> None:
    """Atomically replace ``path`` with ``text`` (sent on stdin; ``secret`` masked everywhere)."""
    temporary = f"{path}.hsf-new"
    run(target, files.write_file_argv(temporary), stdin=text, secrets=[secret] if secret else [])
    run(target, files.chmod_argv(mode, temporary))
    run(target, files.rename_argv(temporary, path))


@step(name="create-sbd-header", timeout_seconds=120, retry_transport=True)
def create_sbd_header(target: SshTarget, sbd: Sbd) -> None:
    run(target, cmd.sbd_create_argv(sbd.device, sbd.watchdog_timeout_s, sbd.msgwait_s))


@step(name="drbd-down", timeout_seconds=120, retry_transport=True)
def drbd_down(target: SshTarget, resource: str) -> None:
    run(target, files.down_argv(resource))


@step(name="enable-cluster", timeout_seconds=120, retry_transport=True)
def enable_units(target: SshTarget, units: tuple[str, ...]) -> None:
    run(target, cmd.systemctl_argv("enable", list(units)))


@step(name="reload-corosync", timeout_seconds=120, retry_transport=True)
def reload_corosync(target: SshTarget) -> None:
    run(target, cmd.corosync_reload_argv())


@step(name="start-cluster", timeout_seconds=300, retry_transport=True)
def start_cluster(target: SshTarget) -> None:
    """corosync (and with it sbd), then pacemaker."""
    run(target, cmd.systemctl_argv("start", ["corosync", "pacemaker"]), timeout=240)


@step(name="stop-cluster", timeout_seconds=900, retry_transport=True)
def stop_cluster(targets: Mapping[str, SshTarget], cib: Cib) -> None:
    """Stop and disable the cluster on every node, the one serving the volume last (so nothing moves):
    Pacemaker unmounts and takes DRBD down as it stops; the volume is then DRBD's alone (manager none)."""
    status = cluster_status(next(iter(targets.values())))
    serving = serving_node(status, cib)
    units = ["pacemaker", "corosync"]
    for target in sorted(targets.values(), key=lambda t: t.name == serving):
        run(target, cmd.systemctl_argv("stop", units), timeout=600)
        run(target, cmd.systemctl_argv("disable", [*units, "sbd"]))


@step(name="load-cib", timeout_seconds=300, retry_transport=True)
def load_cib(targets: Mapping[str, SshTarget], on: str, cib: Cib) -> None:
    """Merge the rendered configuration into the CIB on ``on``, then record its hash on every node."""
    text = render_cib(cib)
    secrets = cib_secrets(cib)
    for secret in secrets:
        current_executor().add_secret(secret)
    run(targets[on], cmd.load_update_argv(), stdin=text, timeout=240)
    for target in targets.values():
        run(target, cmd.mkdir_argv(cmd.CIB_LOADED_HASH.rsplit("/", 1)[0]))
        write_file(target, cmd.CIB_LOADED_HASH, text_sha256(text) + "\n", "600")


@step(name="wait-cluster-members", retry_transport=True)
def wait_members(target: SshTarget, nodes: tuple[str, ...], timeout_s: float) -> ClusterStatus | None:
    """Until every node is an online member and a DC is elected, as ``target`` sees it."""
    if dry_run_skips("the cluster members"):
        return None

    def members() -> ClusterStatus | None:
        status = cluster_status(target)
        ok = status is not None and status.dc is not None and set(nodes) <= set(status.online())
        return status if ok else None

    status: ClusterStatus = wait_until(members, timeout_s, f"{', '.join(nodes)} to be cluster members", 1.0)
    return status


@step(name="wait-serving", retry_transport=True)
def wait_serving(target: SshTarget, cib: Cib, timeout_s: float) -> str | None:
    """Until Pacemaker has the volume promoted and mounted on one node; returns that node."""
    if dry_run_skips("Pacemaker to mount the volume"):
        return None
    node: str = wait_until(
        lambda: serving_node(cluster_status(target), cib),
        timeout_s,
        f"Pacemaker to promote {cib.clone_id} and start {cib.fs_id}",
        1.0,
    )
    return node


# -- watching the cluster act by itself (the failover drill runs nothing else on the survivor) ----------


class Takeover(BaseModel):
    """When the survivor's cluster did each step of a failover, in seconds after the fault."""

    membership_lost_s: float = Field(description="The killed node is no longer an online member.")
    fenced_s: float | None = Field(description="Its fencing succeeded (None: STONITH is disabled).")
    promoted_s: float = Field(description="The survivor's DRBD instance is Promoted.")
    mounted_s: float = Field(description="The filesystem resource is Started on the survivor.")
    fenced_by: str | None = Field(None, description="The node that carried the fencing out.")


def fencings_of(target: SshTarget, node: str) -> list[FenceEvent]:
    """The successful fencings of ``node`` that ``target`` knows of."""
    result = read(target, cmd.fence_history_argv(node), ok=tuple(range(256)))
    return (
        successful(parse_fence_history(result.stdout), node) if "<pacemaker-result" in result.stdout else []
    )


def members_of(target: SshTarget) -> list[str] | None:
    """The corosync membership as ``target`` sees it (None: corosync does not answer there)."""
    result = read(target, cmd.quorum_members_argv(), ok=tuple(range(256)))
    return parse_quorum_members(result.stdout) if result.ok else None


@step(name="watch-takeover", retry_transport=True)
def watch_takeover(
    survivor: SshTarget, killed: str, cib: Cib, killed_at: float, fencings_before: int, timeout_s: float
) -> Takeover:
    """Watch ``survivor`` (read-only) until the cluster has dropped ``killed``, fenced it, promoted the
    survivor and mounted the volume there; each moment is timed from ``killed_at``.

    The survivor's one vCPU is what the takeover runs on, and crm_mon costs it over half a second: the
    watch reads the cheapest source for each step instead — the corosync membership, the node's fencing
    history, then /proc/drbd and /proc/mounts.
    """
    seen: dict[str, float] = {}
    fenced_by: list[str | None] = []
    deadline = killed_at + timeout_s
    minor = cib.minor

    def at() -> float:
        return round(time.monotonic() - killed_at, 2)

    def left() -> float:
        return deadline - time.monotonic()

    def lost() -> bool:
        members = members_of(survivor)
        if members is not None and killed not in members:
            seen["membership"] = at()
        return "membership" in seen

    def fenced() -> bool:
        events = fencings_of(survivor, killed)
        if len(events) > fencings_before:
            seen["fenced"] = at()
            fenced_by.append(max(events, key=lambda e: e.completed or NEVER).delegate)
        return "fenced" in seen

    def mounted() -> bool:
        if drbd_state(survivor, minor).role == "Primary":
            seen.setdefault("promoted", at())
        if "promoted" in seen and mount_of(survivor, cib.mountpoint) == f"/dev/drbd{minor}":
            seen["mounted"] = at()
        return "mounted" in seen

    wait_until(lost, left(), f"the cluster to lose {killed}", interval_s=0.5)
    if cib.stonith_enabled:
        wait_until(fenced, left(), f"the cluster to fence {killed}", interval_s=1.0)
    wait_until(mounted, left(), f"{survivor.name} to be promoted and mounted", interval_s=0.25)
    return Takeover(
        membership_lost_s=seen["membership"],
        fenced_s=seen.get("fenced"),
        promoted_s=seen["promoted"],
        mounted_s=seen["mounted"],
        fenced_by=fenced_by[0] if fenced_by else None,
    )


def mount_of(target: SshTarget, mountpoint: str) -> str | None:
    """The device mounted at ``mountpoint`` on ``target`` (from /proc/mounts), or None."""
    table = read(target, files.read_file_argv("/proc/mounts")).stdout
    return next((line.split()[0] for line in table.splitlines() if line.split()[1:2] == [mountpoint]), None)


class SplitBrain(CheckFailed):
    """DRBD refused to reconnect: both nodes wrote as Primary (it stays StandAlone until resolved)."""


class Rejoin(BaseModel):
    """The killed node's return, as the survivor saw it, in seconds after it answered SSH again."""

    member_s: float = Field(description="Back as an online cluster member.")
    resynced_s: float = Field(description="Its DRBD instance Unpromoted, both disks UpToDate, Connected.")
    unfenced_s: float = Field(description="crm-fence-peer.sh's constraint removed (after the resync).")


@step(name="watch-rejoin", retry_transport=True)
def watch_rejoin(survivor: SshTarget, returned: str, cib: Cib, minor: int, timeout_s: float) -> Rejoin:
    """Poll the survivor (read-only) until ``returned`` has rejoined by itself as secondary, resynced, and
    the fencing constraint is gone; raise :class:`SplitBrain` if DRBD stands alone instead."""
    started = time.monotonic()
    seen: dict[str, float] = {}

    def look() -> bool:
        status = cluster_status(survivor)
        state = drbd_state(survivor, minor)
        at = round(time.monotonic() - started, 2)
        if state.connection == "StandAlone" and "member" in seen:
            raise SplitBrain(
                f"{survivor.name}'s DRBD is StandAlone after {returned} rejoined ({state.summary()}): "
                "a split-brain; resolve it by hand (drbdadm connect --discard-my-data on the victim)"
            )
        if status is not None and returned in status.online():
            seen.setdefault("member", at)
        if (
            "member" in seen
            and status is not None
            and status.role_on(cib.drbd_id, returned) == "Unpromoted"
            and state.healthy
        ):
            seen.setdefault("resynced", at)
        if "resynced" in seen and not fence_constraints_on(survivor):
            seen.setdefault("unfenced", at)
        return {"member", "resynced", "unfenced"} <= set(seen)

    wait_until(look, timeout_s, f"{returned} to rejoin as secondary and resync", interval_s=1.0)
    return Rejoin(member_s=seen["member"], resynced_s=seen["resynced"], unfenced_s=seen["unfenced"])
