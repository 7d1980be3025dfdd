"""Prefect tasks, one per DRBD / filesystem step, each a builder from ``commands`` run by the executor.

Tasks take node targets and models (never a connection) and act on live state (``tasks.step``). Only
SSH transport errors are retried; waits poll DRBD's own state with a deadline.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping
from typing import Any

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from tasks.context import current_executor
from tasks.drbd import commands as cmd
from tasks.drbd.model import Resource, drbdadm_view, render, stacked_end
from tasks.drbd.plan import NodeProbe, Refused, tools_needed
from tasks.drbd.probes import (
    BlockSignature,
    DrbdState,
    parse_adjust_dry_run,
    parse_blkid_export,
    parse_drbdsetup_show,
    parse_findmnt,
    parse_found_tools,
    parse_ip_addresses,
    parse_lsblk,
    parse_proc_drbd,
    parse_resyncs,
)
from tasks.executor import CommandError, CommandResult, SshTarget
from tasks.lab.host import wait_until
from tasks.step import step


def run(target: SshTarget, argv: list[str], **kwargs: Any) -> CommandResult:
    return current_executor().run(argv, target, **kwargs)


def dry_run_skips(what: str) -> bool:
    """In a dry run nothing changed, so there is no state transition to wait for."""
    if current_executor().dry_run:
        get_run_logger().info("(dry run; not waiting for %s)", what)
        return True
    return False


def drbd_states(target: SshTarget, timeout: float = 120.0) -> dict[int, DrbdState]:
    """Every device /proc/drbd shows, by minor (none when the module is not loaded)."""
    result = run(target, cmd.proc_drbd_argv(), read_only=True, ok_codes=(0, 1), quiet=True, timeout=timeout)
    return parse_proc_drbd(result.stdout)


def drbd_state(target: SshTarget, minor: int) -> DrbdState:
    """The device's state from /proc/drbd (Unconfigured when the module or the device is absent)."""
    return drbd_states(target).get(minor, DrbdState(minor=minor, connection="Unconfigured"))


class SyncProgress(BaseModel):
    """A sync watched to its end: how long it took, and /proc/drbd's percentage as it went."""

    seconds: float
    samples: list[tuple[float, float]] = Field(
        default_factory=list, description="(seconds since the watch began, percent synced); empty: none seen."
    )


@step(name="probe-drbd-node", retry_transport=True)  # submitted: the executor's own timeouts apply
def probe_node(target: SshTarget, resource: Resource, mountpoint: str, fstype: str = "ext4") -> NodeProbe:
    """Everything the plans need to know about one node, read without changing it.

    The backing disk is read below the page cache (``blockdev --flushbufs`` first): DRBD writes to it
    with bios, so a cached read can show what the disk held before.
    """
    node = resource.node(target.name)
    rendered = render(resource)
    stacked = stacked_end(resource, target.name)

    def read(argv: list[str], ok: tuple[int, ...] = (0,)) -> CommandResult:
        return run(target, argv, read_only=True, ok_codes=ok, quiet=True)

    config = read(cmd.read_file_argv(resource.config_path), (0, 1))
    config_text = config.stdout if config.ok else None
    modules = read(["cat", "/proc/modules"]).stdout
    module_loaded = any(line.split()[:1] == ["drbd"] for line in modules.splitlines())
    state = drbd_state(target, node.minor)
    show = read(cmd.drbdsetup_show_argv(), (0, 10, 20, 127))
    disk = parse_lsblk(read(cmd.lsblk_argv(node.disk), (0, 32, 64)).stdout)
    head_zero = None
    backing = head = BlockSignature()
    if disk is not None:
        read(cmd.flush_buffers_argv(node.disk), (0, 1))
        backing = parse_blkid_export(read(cmd.blkid_argv(node.disk), (0, 2, 8)).stdout)
        head = parse_blkid_export(read(cmd.blkid_head_argv(node.disk), (0, 2, 8)).stdout)
        zero = read(cmd.zero_head_argv(node.disk), (0, 1, 2)).exit_code
        head_zero = {0: True, 1: False}.get(zero)
    addresses = read(cmd.ip_addresses_argv(), (0, 127))
    wanted_tools = tools_needed(fstype, announces=stacked)
    tools_found = parse_found_tools(read(cmd.which_argv(wanted_tools), (0, 1, 127)).stdout)
    hostname = read(cmd.hostname_argv()).stdout.strip()
    adjust = None
    # What adjust would do, judged before anything is written (drbdadm finds this host's section by its
    # name: with another hostname there is nothing to judge, and the precondition says so).
    if state.configured and config_text != rendered and "drbdadm" in tools_found and hostname == target.name:
        preview = run(
            target,
            cmd.adjust_dry_run_argv(resource.name, stacked),
            stdin=drbdadm_view(resource),
            read_only=True,
            quiet=True,
            ok_codes=range(256),
            secrets=[resource.shared_secret.get_secret_value()],
        )
        adjust = parse_adjust_dry_run(preview.stdout)
        if not preview.ok:
            adjust.rejected = (preview.stderr.strip().splitlines() or [f"exit {preview.exit_code}"])[0]
    volume = None
    if state.role == "Primary":
        volume = parse_blkid_export(read(cmd.blkid_argv(node.device), (0, 2)).stdout)
    mount = parse_findmnt(read(cmd.findmnt_argv(mountpoint), (0, 1)).stdout)
    return NodeProbe(
        node=target.name,
        hostname=hostname,
        tools_found=sorted(tools_found),
        announces=stacked,
        module_available=module_loaded or read(cmd.modinfo_argv(), (0, 1)).ok,
        config_text=config_text,
        config_current=config_text == rendered,
        module_loaded=module_loaded,
        state=state,
        running=parse_drbdsetup_show(show.stdout) if show.ok else {},
        disk=disk,
        addresses=parse_ip_addresses(addresses.stdout) if addresses.ok else None,
        backing=backing,
        head=head,
        head_zero=head_zero,
        adjust=adjust,
        volume=volume,
        mount=mount,
    )


def probe_nodes(
    targets: Mapping[str, SshTarget], resource: Resource, mountpoint: str, fstype: str = "ext4"
) -> dict[str, NodeProbe]:
    """Every node probed at once (read-only)."""
    futures = {
        node: probe_node.submit(target, resource, mountpoint, fstype) for node, target in targets.items()
    }
    return {node: future.result() for node, future in futures.items()}


@step(name="install-drbd-tools", timeout_seconds=900, retry_transport=True)
def install_tools(target: SshTarget, packages: tuple[str, ...], fstype: str, announces: bool = False) -> None:
    """apt-get update (any failure to fetch is an error, not a warning), install, then check the tools."""
    run(target, cmd.apt_update_argv(), timeout=600)
    run(
        target,
        cmd.install_packages_argv(list(packages)),
        timeout=600,
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )
    if current_executor().dry_run:
        return
    wanted = tools_needed(fstype, announces)
    found = parse_found_tools(run(target, cmd.which_argv(wanted), read_only=True, ok_codes=(0, 1)).stdout)
    if missing := [t for t in wanted if t not in found]:
        raise CommandError(
            shlex.join(cmd.install_packages_argv(list(packages))),
            0,
            f"installed, but still missing: {', '.join(missing)}",
            target.name,
        )


@step(name="keep-drbd-config", timeout_seconds=120, retry_transport=True)
def keep_config(target: SshTarget, resource: Resource, stamp: str) -> str:
    """Copy a resource file setup did not write aside before replacing it; returns the copy's path."""
    copy = f"{resource.config_path}.hsf-{stamp}"  # not *.res: drbdadm never reads it
    run(target, cmd.copy_file_argv(resource.config_path, copy))
    return copy


@step(name="drbd-disconnect", timeout_seconds=120, retry_transport=True)
def disconnect(target: SshTarget, local: str, peer: str) -> None:
    """Drop the running connection (exit 10 "unknown connection": already gone) before it changes."""
    run(target, cmd.disconnect_endpoints_argv(local, peer), ok_codes=(0, 10))


@step(name="write-drbd-config", timeout_seconds=120, retry_transport=True)
def write_config(target: SshTarget, resource: Resource) -> None:
    """Atomically replace the resource file (mode 0600: it holds the shared secret)."""
    temporary = f"{resource.config_path}.hsf-new"
    secret = resource.shared_secret.get_secret_value()
    run(target, cmd.write_file_argv(temporary), stdin=render(resource), secrets=[secret])
    run(target, cmd.chmod_argv("600", temporary))
    run(target, cmd.rename_argv(temporary, resource.config_path))


@step(name="load-drbd-module", timeout_seconds=120, retry_transport=True)
def load_module(target: SshTarget) -> None:
    run(target, cmd.modprobe_argv("drbd"))


@step(name="create-md", timeout_seconds=300, retry_transport=True)
def create_md(target: SshTarget, resource: Resource, force: bool) -> None:
    stacked = stacked_end(resource, target.name)
    run(target, cmd.create_md_argv(resource.name, force=force, stacked=stacked), timeout=240)


@step(name="drbd-up", timeout_seconds=120, retry_transport=True)
def up(target: SshTarget, resource: Resource) -> None:
    run(target, cmd.up_argv(resource.name, stacked_end(resource, target.name)))


@step(name="drbd-down", timeout_seconds=120, retry_transport=True)
def down(target: SshTarget, resource: Resource) -> None:
    """Demote, disconnect and detach (refused while the device is mounted)."""
    run(target, cmd.down_argv(resource.name, stacked_end(resource, target.name)))


@step(name="drbd-attach", timeout_seconds=120, retry_transport=True)
def attach(target: SshTarget, resource: Resource) -> None:
    run(target, cmd.attach_argv(resource.name, stacked_end(resource, target.name)))


@step(name="drbd-adjust", timeout_seconds=120, retry_transport=True)
def adjust(target: SshTarget, resource: Resource) -> None:
    run(target, cmd.adjust_argv(resource.name, stacked_end(resource, target.name)))


@step(name="wait-connected", retry_transport=True)
def wait_connected(target: SshTarget, resource: Resource, timeout_s: float) -> DrbdState:
    minor = resource.node(target.name).minor
    if dry_run_skips("the peers to connect"):
        return drbd_state(target, minor)
    return wait_until(
        lambda: (s := drbd_state(target, minor)).connected and s, timeout_s, "DRBD peers to connect"
    )


def device_size(target: SshTarget, device: str) -> int:
    """``device``'s size in bytes."""
    return int(run(target, cmd.device_size_argv(device), read_only=True).stdout.strip())


@step(name="wipe-disk", timeout_seconds=300, retry_transport=True)
def wipe_disk(target: SshTarget, disk: str) -> None:
    """DESTROYS ``disk``: zeros at its head and its tail (where internal metadata lives, and a stacked
    resource's just before it) and no signature left, so setup finds it blank. No flow calls it: it is for
    the tests and benchmarks that start a volume over, on disks they made."""
    mib = device_size(target, disk) >> 20
    for seek in sorted({0, max(mib - cmd.WIPE_MIB, 0)}):
        run(target, cmd.zero_range_argv(disk, seek), timeout=240)
    run(target, cmd.wipefs_argv(disk))


def resyncs(target: SshTarget, minor: int) -> list[int]:
    """KiB each resync of ``minor`` copied since the node booted, oldest first (its kernel log)."""
    return parse_resyncs(run(target, cmd.kernel_log_argv(), read_only=True).stdout, minor)


@step(name="wait-peer-lost")
def wait_peer_lost(target: SshTarget, resource: Resource, timeout_s: float) -> DrbdState:
    """Poll this node's own DRBD state until it reports the connection to its peer gone."""
    minor = resource.node(target.name).minor
    return wait_until(
        lambda: (s := drbd_state(target, minor)).connection != "Connected" and s,
        timeout_s,
        f"{target.name} to notice its peer is gone",
        interval_s=0.2,
    )


@step(name="skip-initial-sync", timeout_seconds=120, retry_transport=True)
def skip_initial_sync(target: SshTarget, resource: Resource) -> None:
    """Declare blank disks identical instead of copying them (only planned for fresh metadata)."""
    run(target, cmd.new_current_uuid_clear_bitmap_argv(resource.name, stacked_end(resource, target.name)))


@step(name="promote", timeout_seconds=180, retry_transport=True)
def promote(target: SshTarget, resource: Resource, force: bool = False) -> float:
    """``drbdadm primary`` and wait until this node reports Primary; returns seconds taken."""
    started = time.monotonic()
    stacked = stacked_end(resource, target.name)
    run(target, cmd.primary_argv(resource.name, force=force, stacked=stacked), timeout=120)
    minor = resource.node(target.name).minor
    if dry_run_skips(f"{target.name} to become Primary"):
        return 0.0
    wait_until(lambda: drbd_state(target, minor).role == "Primary", 60, f"{target.name} to become Primary")
    return time.monotonic() - started


@step(name="demote", timeout_seconds=180, retry_transport=True)
def demote(target: SshTarget, resource: Resource) -> None:
    run(target, cmd.secondary_argv(resource.name, stacked_end(resource, target.name)), timeout=120)


@step(name="wait-synced", retry_transport=True)
def wait_synced(target: SshTarget, resource: Resource, timeout_s: float) -> SyncProgress:
    """Poll /proc/drbd until both disks are UpToDate, publishing the resync progress; returns how long
    it took and the progress it saw (a curve for the drills' pictures)."""
    log = get_run_logger()
    minor = resource.node(target.name).minor
    started = time.monotonic()
    if dry_run_skips("the sync"):
        return SyncProgress(seconds=0.0)
    artifact = create_progress_artifact(progress=0.0, description=f"DRBD {resource.name} sync")
    last_logged = -10.0
    samples: list[tuple[float, float]] = []

    def synced() -> bool:
        nonlocal last_logged
        state = drbd_state(target, minor)
        if state.sync_percent is not None:
            samples.append((round(time.monotonic() - started, 2), state.sync_percent))
            update_progress_artifact(artifact_id=artifact, progress=state.sync_percent)  # type: ignore[arg-type]
            if state.sync_percent - last_logged >= 10:
                log.info("%s sync %.1f%% (finish in %s)", resource.name, state.sync_percent, state.finish)
                last_logged = state.sync_percent
        return state.disk == "UpToDate" and state.peer_disk == "UpToDate" and state.connection == "Connected"

    wait_until(synced, timeout_s, f"DRBD {resource.name} to finish syncing", interval_s=1.0)
    update_progress_artifact(artifact_id=artifact, progress=100.0)  # type: ignore[arg-type]
    seconds = time.monotonic() - started
    return SyncProgress(seconds=seconds, samples=[*samples, (round(seconds, 2), 100.0)] if samples else [])


@step(name="mkfs", timeout_seconds=600, retry_transport=True)
def mkfs(target: SshTarget, device: str, fstype: cmd.FsType, label: str) -> None:
    """Make a filesystem — refusing, by a fresh probe, if the device already holds anything."""
    found = parse_blkid_export(run(target, cmd.blkid_argv(device), read_only=True, ok_codes=(0, 2)).stdout)
    if not found.blank:
        raise Refused(f"{target.name}: {device} already holds {found.type}; refusing to mkfs over it")
    run(target, cmd.mkfs_argv(fstype, device, label), timeout=540)


@step(name="mount", timeout_seconds=300, retry_transport=True)
def mount(target: SshTarget, device: str, mountpoint: str) -> float:
    started = time.monotonic()
    run(target, cmd.mkdir_argv(mountpoint))
    run(target, cmd.mount_argv(device, mountpoint), timeout=240)
    return time.monotonic() - started


@step(name="umount", timeout_seconds=300, retry_transport=True)
def umount(target: SshTarget, mountpoint: str) -> None:
    run(target, cmd.umount_argv(mountpoint), timeout=240)


@step(name="mounts-of", timeout_seconds=60, retry_transport=True)
def mounts_of(target: SshTarget, device: str) -> list[str]:
    """Every mountpoint of ``device`` on ``target`` (a node that mounted it twice lists two)."""
    return run(target, cmd.mounts_of_argv(device), read_only=True, ok_codes=(0, 1)).stdout.split()


@step(name="remove-resource", timeout_seconds=300, retry_transport=True)
def remove_resource(target: SshTarget, resource: Resource, mountpoint: str) -> None:
    """Take a resource off a node for good: unmounted, ``drbdadm down``, its file removed. The backing
    disk keeps its data and metadata. Gone already: nothing to do."""
    device = resource.node(target.name).device
    if mountpoint in mounts_of.fn(target, device):
        run(target, cmd.umount_argv(mountpoint), timeout=240)
    if drbd_state(target, resource.node(target.name).minor).configured:
        run(target, cmd.down_argv(resource.name, stacked_end(resource, target.name)))
    run(target, cmd.remove_file_argv(resource.config_path))


@step(name="filesystem-type", timeout_seconds=60, retry_transport=True)
def filesystem_type(target: SshTarget, device: str) -> str | None:
    return parse_blkid_export(
        run(target, cmd.blkid_argv(device), read_only=True, ok_codes=(0, 2)).stdout
    ).type
