"""Prefect tasks for the lab, one per step. Each opens its own libvirt connection (never passed around).

No task here is cached by Prefect: each checks real state itself (the image cache is keyed by recipe
hash on disk), and retries are used only where waiting can help (SSH coming up).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Literal

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.logging import get_run_logger

from tasks import netns
from tasks.context import current_executor
from tasks.executor import CommandError, TransportError
from tasks.lab import host
from tasks.lab.image import (
    GuestImage,
    ImageRecipe,
    build_image,
    cached_image,
    planned_image,
    qemu_img_overlay_argv,
    qemu_img_raw_argv,
)
from tasks.lab.seed import build_seed_initrd, ensure_key, known_hosts_line
from tasks.lab.state import LabLayout, LabProbe, probe_lab
from tasks.lab.xml import DomainSpec, render_data_disk, render_domain, render_network
from tasks.settings import LabSettings
from tasks.step import step

SYSTEM_URI = host.SYSTEM_URI


def libvirt_uri(lab: LabSettings) -> str:
    return SYSTEM_URI if lab.embedded else lab.libvirt_uri


@step(name="build-guest-image", timeout_seconds=3600)
def build_guest_image(lab: LabSettings) -> GuestImage:
    """The cached guest image for the current recipe, building it (with progress) when absent."""
    log = get_run_logger()
    recipe = ImageRecipe()
    image = cached_image(lab.image_cache_dir, recipe)
    if image is not None:
        log.info("guest image %s is cached in %s: nothing to build", image.digest, image.directory)
        return image
    if current_executor().dry_run:
        image = planned_image(lab.image_cache_dir, recipe)
        log.info("(dry run; not building) guest image %s would be built in %s", image.digest, image.directory)
        return image
    artifact = create_progress_artifact(progress=0.0, description="Building the lab's guest image")

    def on_progress(percent: float, text: str) -> None:
        log.info("image build %3.0f%%: %s", percent, text)
        update_progress_artifact(artifact_id=artifact, progress=percent)  # type: ignore[arg-type]

    return build_image(recipe, lab.image_cache_dir, current_executor(), on_progress=on_progress)


@step(name="choose-accelerator", timeout_seconds=120)
def choose_accelerator(lab: LabSettings, image: GuestImage) -> Literal["kvm", "qemu"]:
    choice = host.choose_accel(lab.accel, image.kernel, image.initrd, lab.image_cache_dir, current_executor())
    get_run_logger().info("domain type %s (%s)", choice.domain_type, choice.reason)
    return choice.domain_type


@step(name="probe-lab", timeout_seconds=60)
def probe(lab: LabSettings) -> LabProbe:
    return probe_lab(LabLayout(lab), libvirt_uri(lab))


@step(name="create-namespace", timeout_seconds=60)
def create_namespace(lab: LabSettings) -> None:
    layout = LabLayout(lab)
    executor = current_executor()
    executor.run(netns.add_argv(layout.netns), timeout=30)
    executor.run(netns.link_up_argv(layout.netns, "lo"), timeout=30)


@step(name="start-libvirt", timeout_seconds=120)
def start_libvirt(lab: LabSettings, mask_kvm: bool) -> dict[str, int]:
    """The lab's own virtlogd + libvirtd inside its namespace; waits until libvirt answers."""
    layout = LabLayout(lab)
    if not netns.exists(layout.netns):
        create_namespace.fn(lab)
    pids = host.start_daemons(
        layout.netns, current_executor(), mask_kvm=mask_kvm, config_dir=layout.root / "libvirt"
    )
    conn = host.wait_until(lambda: host.try_libvirt(SYSTEM_URI), 60, "libvirtd to answer")
    conn.close()
    get_run_logger().info(
        "libvirtd %s and virtlogd %s run in namespace %s%s",
        pids["libvirtd"],
        pids["virtlogd"],
        layout.netns,
        " (/dev/kvm masked: TCG)" if mask_kvm else "",
    )
    return pids


@step(name="ensure-network", timeout_seconds=120)
def ensure_network(lab: LabSettings) -> None:
    layout = LabLayout(lab)
    import libvirt

    with host.libvirt_connection(libvirt_uri(lab)) as conn:
        try:
            net = conn.networkLookupByName(layout.network)
        except libvirt.libvirtError:
            xml = render_network(layout.network, layout.bridge, layout.bridge_interface())
            net = conn.networkDefineXML(xml)
        if not net.isActive():
            net.create()


# SBD needs a few KiB per node slot; the measured lab used 16 MiB.
SBD_DISK_SIZE = "16M"


@step(name="prepare-vm-files", timeout_seconds=300)
def prepare_vm_files(lab: LabSettings, node: str, image: GuestImage) -> None:
    """Overlay over the base image, blank data disk, the VM's own host key and its initrd carrying it."""
    layout = LabLayout(lab)
    executor = current_executor()
    vm_dir = layout.vm_dir(node)
    vm_dir.mkdir(parents=True, exist_ok=True)
    for directory in (layout.root, layout.root / "vms", vm_dir):
        directory.chmod(0o755)  # qemu (libvirt-qemu) opens the disks below
    ensure_key(layout.client_key, f"hsf-lab-{lab.name}", executor)
    overlay = layout.overlay(node)
    overlay.unlink(missing_ok=True)
    executor.run(qemu_img_overlay_argv(image.base, overlay), timeout=60)
    for data in layout.data_disks(node):
        data.unlink(missing_ok=True)
        executor.run(qemu_img_raw_argv(data, f"{lab.data_disk_gib}G"), timeout=60)
    if node in lab.nodes and not layout.sbd_disk.exists():  # shared: another node may be using it
        executor.run(qemu_img_raw_argv(layout.sbd_disk, SBD_DISK_SIZE), timeout=60)
    host_key = layout.host_key(node)
    for stale in (host_key, host_key.with_name(host_key.name + ".pub")):
        stale.unlink(missing_ok=True)
    ensure_key(host_key, f"{node}-host", executor)
    client_pub_key = layout.client_key.with_suffix(".pub")
    build_seed_initrd(layout.initrd(node), image.initrd, host_key, client_pub_key, executor)
    write_known_hosts(lab)


def write_known_hosts(lab: LabSettings) -> Path:
    """known_hosts with exactly the lab VMs' own host keys (rewritten whenever a VM is made)."""
    layout = LabLayout(lab)
    lines = []
    for node in lab.machines:
        pub = layout.host_key(node).with_name("ssh_host_ed25519_key.pub")
        if pub.exists():
            lines.append(known_hosts_line(str(lab.address_of(node)), 22, pub.read_text()))
    layout.known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    layout.known_hosts.write_text("".join(f"{line}\n" for line in lines))
    return layout.known_hosts


@step(name="define-vm", timeout_seconds=60)
def define_vm(lab: LabSettings, spec: DomainSpec) -> None:
    with host.libvirt_connection(libvirt_uri(lab)) as conn:
        conn.defineXML(render_domain(spec))


@step(name="attach-data-disk", timeout_seconds=60)
def attach_data_disk(lab: LabSettings, node: str, index: int) -> None:
    """``virsh attach-disk --persistent``: into the persistent definition, and live if running. In order:
    each takes the next free PCI slot, so the guest names them vdb, vdc, … as they are attached."""
    import libvirt

    layout = LabLayout(lab)
    with host.libvirt_connection(libvirt_uri(lab)) as conn:
        dom = conn.lookupByName(layout.domain(node))
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
        dom.attachDeviceFlags(render_data_disk(layout.data_disks(node)[index], index), flags)


@step(name="start-vm", timeout_seconds=120)
def start_vm(lab: LabSettings, node: str) -> None:
    layout = LabLayout(lab)
    layout.console(node).unlink(missing_ok=True)
    with host.libvirt_connection(libvirt_uri(lab)) as conn:
        dom = conn.lookupByName(layout.domain(node))
        if not dom.isActive():
            dom.create()


@step(name="power-off-vm", timeout_seconds=60)
def power_off_vm(lab: LabSettings, node: str) -> None:
    """Pull the plug: libvirt destroy kills qemu at once (no shutdown, no flush in the guest)."""
    layout = LabLayout(lab)
    with host.libvirt_connection(libvirt_uri(lab)) as conn:
        dom = conn.lookupByName(layout.domain(node))
        if dom.isActive():
            dom.destroy()


@step(name="wait-for-ssh")
def wait_for_ssh(lab: LabSettings, node: str, in_netns: bool) -> float:
    """Poll until the VM answers a command over SSH with its pinned host key; returns seconds waited."""
    layout = LabLayout(lab)
    target = layout.target(node, in_netns)
    executor = current_executor()
    started = time.monotonic()
    last_error = ""

    def answers() -> bool:
        nonlocal last_error
        try:
            executor.run(["true"], target, timeout=15, read_only=True, quiet=True)
            return True
        except TransportError as exc:
            last_error = exc.stderr_tail
            return False

    try:
        host.wait_until(answers, lab.boot_timeout_s, f"SSH on {node}", interval_s=1.0)
    except TimeoutError as exc:
        console_tail = _tail_file(layout.console(node))
        raise TimeoutError(f"{exc} (last error: {last_error}); console:\n{console_tail}") from None
    waited = time.monotonic() - started
    get_run_logger().info("%s answers SSH at %s after %.1f s", node, target.address, waited)
    return waited


def _tail_file(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no console log)"


def _destroy_and_undefine(dom: Any) -> None:
    if dom.isActive():
        dom.destroy()
    dom.undefine()


@step(name="remove-vm", timeout_seconds=120)
def remove_vm(lab: LabSettings, domain: str) -> None:
    """Destroy and undefine one of the lab's domains and delete its files."""
    import libvirt

    layout = LabLayout(lab)
    with host.libvirt_connection(libvirt_uri(lab)) as conn:
        try:
            _destroy_and_undefine(conn.lookupByName(domain))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
    node = domain.removeprefix(f"{lab.name}-")
    shutil.rmtree(layout.vm_dir(node), ignore_errors=True)


@step(name="remove-network", timeout_seconds=60)
def remove_network(lab: LabSettings) -> None:
    import libvirt

    layout = LabLayout(lab)
    with host.libvirt_connection(libvirt_uri(lab)) as conn:
        try:
            net = conn.networkLookupByName(layout.network)
            if net.isActive():
                net.destroy()
            net.undefine()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
                raise


@step(name="stop-libvirt", timeout_seconds=120)
def stop_libvirt(lab: LabSettings) -> list[str]:
    """Stop the lab's own daemons, then anything else still running in its namespace."""
    layout = LabLayout(lab)
    stopped = []
    for name in ("libvirtd", "virtlogd"):
        pid = host.daemon_in_netns(name, layout.netns)
        if pid is not None:
            host.stop_process(pid)
            stopped.append(f"{name} ({pid})")
    if netns.exists(layout.netns):
        leftover = current_executor().run(netns.pids_argv(layout.netns), read_only=True).stdout.split()
        for leftover_pid in map(int, leftover):
            comm = _comm(leftover_pid)
            host.stop_process(leftover_pid, timeout_s=10)
            stopped.append(f"{comm} ({leftover_pid})")
    return stopped


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


@step(name="delete-namespace", timeout_seconds=60)
def delete_namespace(lab: LabSettings) -> None:
    layout = LabLayout(lab)
    try:
        current_executor().run(netns.delete_argv(layout.netns), timeout=30)
    except CommandError:
        if netns.exists(layout.netns):
            raise


@step(name="remove-state-dir", timeout_seconds=60)
def remove_state_dir(lab: LabSettings) -> None:
    shutil.rmtree(LabLayout(lab).root)
