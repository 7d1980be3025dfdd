"""Probe → plan for the lab: what exists (typed), what should exist, and the steps between them.

``probe_lab`` reads real state (namespace, daemons, libvirt objects, files). ``plan_up`` and
``plan_down`` are pure: they turn a probe into an ordered list of :class:`Action` with a reason each, so
a second ``up`` on a running lab plans nothing and says why.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from tasks import netns
from tasks.executor import SshTarget
from tasks.lab import host
from tasks.lab.image import GuestImage
from tasks.lab.xml import KERNEL_ARGS, DomainSpec, data_disk_target, disk_sources, mac_for, spec_id_of
from tasks.plan import PlannedStep
from tasks.settings import LabSettings


class LabLayout:
    """Names and paths of everything one lab creates; all derived from its settings."""

    def __init__(self, lab: LabSettings) -> None:
        self.lab = lab
        self.netns = f"{lab.name}-lab"
        self.network = f"{lab.name}-net"
        self.bridge = f"{lab.name}br0"
        self.root = lab.state_dir
        self.ssh_dir = self.root / "ssh"
        self.client_key = self.ssh_dir / "id_ed25519"
        self.known_hosts = self.ssh_dir / "known_hosts"

    def domain(self, node: str) -> str:
        return f"{self.lab.name}-{node}"

    def vm_dir(self, node: str) -> Path:
        return self.root / "vms" / node

    def overlay(self, node: str) -> Path:
        return self.vm_dir(node) / "root.qcow2"

    def data_disks(self, node: str) -> tuple[Path, ...]:
        """The VM's data disks in the guest's order: data.img (vdb), data2.img (vdc), …"""
        return tuple(
            self.vm_dir(node) / ("data.img" if index == 0 else f"data{index + 1}.img")
            for index in range(self.lab.data_disks)
        )

    @property
    def sbd_disk(self) -> Path:
        """The SBD fencing disk all storage nodes share (one file, made once)."""
        return self.root / "sbd.img"

    def initrd(self, node: str) -> Path:
        """The image's initrd with the VM's SSH identity appended (tasks/lab/seed.py)."""
        return self.vm_dir(node) / "initrd.img"

    def host_key(self, node: str) -> Path:
        return self.vm_dir(node) / "ssh_host_ed25519_key"

    def console(self, node: str) -> Path:
        return self.vm_dir(node) / "console.log"

    def vm_files(self, node: str) -> tuple[Path, ...]:
        shared = (self.sbd_disk,) if node in self.lab.nodes else ()
        data = self.data_disks(node)
        return (self.overlay(node), *data, self.initrd(node), self.host_key(node), *shared)

    def address(self, node: str) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{self.lab.address_of(node)}/{self.lab.subnet.prefixlen}")

    def bridge_interface(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{self.lab.bridge_address}/{self.lab.subnet.prefixlen}")

    def target(self, node: str, in_netns: bool) -> SshTarget:
        """How flows reach ``node``: over SSH, from inside the lab namespace when the lab runs there."""
        return SshTarget(
            name=node,
            address=str(self.lab.address_of(node)),
            key_file=self.client_key,
            known_hosts=self.known_hosts,
            netns=self.netns if in_netns else None,
        )

    def domain_spec(self, node: str, image: GuestImage, domain_type: Literal["kvm", "qemu"]) -> DomainSpec:
        address = self.address(node)
        identity = {
            "image": image.digest,
            "type": domain_type,
            "memory": self.lab.memory_mib,
            "vcpus": self.lab.vcpus,
            "tb": self.lab.tcg_tb_cache_mib,
            "address": address.with_prefixlen,
            "data_gib": self.lab.data_disk_gib,
            "data_disks": self.lab.data_disks,
            "sbd": node in self.lab.nodes,
            "kernel_args": KERNEL_ARGS,
        }
        spec_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        return DomainSpec(
            name=self.domain(node),
            hostname=node,
            domain_type=domain_type,
            memory_mib=self.lab.memory_mib,
            vcpus=self.lab.vcpus,
            tb_cache_mib=self.lab.tcg_tb_cache_mib,
            kernel=image.kernel,
            initrd=self.initrd(node),
            address=address,
            mac=mac_for(address.ip),
            network=self.network,
            root_disk=self.overlay(node),
            console_log=self.console(node),
            sbd_disk=self.sbd_disk if node in self.lab.nodes else None,
            spec_id=spec_id,
        )


def in_netns(lab: LabSettings) -> bool:
    """The lab runs inside its namespace when the libvirtd serving it is the lab's own."""
    return lab.embedded and host.daemon_in_netns("libvirtd", LabLayout(lab).netns) is not None


def lab_targets(lab: LabSettings) -> dict[str, SshTarget]:
    """SSH targets of the lab's VMs, for other flows."""
    layout = LabLayout(lab)
    inside = in_netns(lab)
    return {node: layout.target(node, inside) for node in lab.machines}


class VmProbe(BaseModel):
    node: str
    domain: str
    defined: bool = False
    active: bool = False
    spec_id: str | None = Field(None, description="Spec hash in the defined domain's metadata.")
    data_disks_attached: int = Field(
        0, description="How many of the data disks, in order, are in the persistent definition."
    )
    files_present: bool = False


class LabProbe(BaseModel):
    """The lab as it is now."""

    netns_exists: bool
    own_daemons: dict[str, int] = Field(default_factory=dict, description="Our daemons in our namespace.")
    libvirt_reachable: bool
    network_defined: bool = False
    network_active: bool = False
    vms: dict[str, VmProbe] = Field(default_factory=dict)
    stray_domains: list[str] = Field(
        default_factory=list, description="Domains of this lab for nodes no longer in the settings."
    )
    state_dir_exists: bool = False


def _lab_domains(conn: Any, layout: LabLayout) -> dict[str, Any]:
    """This lab's domains by name: lab-prefixed names carrying our metadata."""
    prefix = f"{layout.lab.name}-"
    found = {}
    for dom in conn.listAllDomains():
        if dom.name().startswith(prefix) and spec_id_of(dom.XMLDesc(0)) is not None:
            found[dom.name()] = dom
    return found


def probe_lab(layout: LabLayout, uri: str) -> LabProbe:
    """Read the lab's real state; never changes anything."""
    own = {name: pid for name in host.PIDFILES if (pid := host.daemon_in_netns(name, layout.netns))}
    conn = host.try_libvirt(uri)
    probe = LabProbe(
        netns_exists=netns.exists(layout.netns),
        own_daemons=own,
        libvirt_reachable=conn is not None,
        state_dir_exists=layout.root.exists(),
    )
    probe.vms = {
        node: VmProbe(
            node=node,
            domain=layout.domain(node),
            files_present=all(p.exists() for p in layout.vm_files(node)),
        )
        for node in layout.lab.machines
    }
    if conn is None:
        return probe
    import libvirt

    try:
        try:
            net = conn.networkLookupByName(layout.network)
            probe.network_defined, probe.network_active = True, bool(net.isActive())
        except libvirt.libvirtError:
            pass
        domains = _lab_domains(conn, layout)
        for vm in probe.vms.values():
            dom = domains.pop(vm.domain, None)
            if dom is None:
                continue
            inactive_xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            vm.defined, vm.active = True, bool(dom.isActive())
            vm.spec_id = spec_id_of(inactive_xml)
            sources = disk_sources(inactive_xml)
            for index, path in enumerate(layout.data_disks(vm.node)):
                if sources.get(data_disk_target(index)) != str(path):
                    break
                vm.data_disks_attached = index + 1
        probe.stray_domains = sorted(domains)
    finally:
        conn.close()
    return probe


ActionKind = Literal[
    "create_netns",
    "start_daemons",
    "define_network",
    "start_network",
    "remove_vm",
    "prepare_vm_files",
    "define_vm",
    "attach_data_disk",
    "start_vm",
    "destroy_vm",
    "undefine_vm",
    "remove_network",
    "stop_daemons",
    "delete_netns",
    "remove_state_dir",
]


class Action(PlannedStep):
    kind: ActionKind
    disk: int | None = Field(None, description="attach_data_disk: which data disk (0 is vdb).")


def plan_up(layout: LabLayout, probe: LabProbe, specs: dict[str, DomainSpec], embedded: bool) -> list[Action]:
    """Steps from ``probe`` to a running lab with ``specs``; empty when the lab already runs as specified."""
    actions: list[Action] = []
    if embedded and not probe.libvirt_reachable:
        if not probe.netns_exists:
            actions.append(Action(kind="create_netns", reason=f"namespace {layout.netns} does not exist"))
        actions.append(Action(kind="start_daemons", reason="no libvirtd answers; starting the lab's own"))
    if not probe.network_defined:
        actions.append(Action(kind="define_network", reason=f"network {layout.network} is not defined"))
    if not probe.network_active:
        actions.append(Action(kind="start_network", reason=f"network {layout.network} is not active"))
    for stray in probe.stray_domains:
        actions.append(
            Action(kind="remove_vm", node=stray, reason="domain of a node no longer in the settings")
        )
    for node, spec in specs.items():
        vm = probe.vms[node]
        defined = vm.defined
        files = vm.files_present
        if vm.defined and (vm.spec_id != spec.spec_id or not vm.files_present):
            why = "settings or image changed" if vm.spec_id != spec.spec_id else "its disks are missing"
            actions.append(Action(kind="remove_vm", node=node, reason=f"stale VM: {why}"))
            defined = files = False
        if not files:
            actions.append(
                Action(
                    kind="prepare_vm_files", node=node, reason="overlay, data disk, initrd or SBD disk gone"
                )
            )
        if not defined:
            actions.append(Action(kind="define_vm", node=node, reason="domain not defined"))
        attached = vm.data_disks_attached if defined else 0
        for index in range(attached, layout.lab.data_disks):
            actions.append(
                Action(
                    kind="attach_data_disk",
                    node=node,
                    disk=index,
                    reason=f"data disk {data_disk_target(index)} not in the persistent config",
                )
            )
        if not (defined and vm.active):
            actions.append(Action(kind="start_vm", node=node, reason="domain not running"))
    return actions


def plan_down(layout: LabLayout, probe: LabProbe, embedded: bool) -> list[Action]:
    """Steps that remove everything ``up`` created, and nothing else."""
    actions: list[Action] = []
    vms = [vm for vm in probe.vms.values() if vm.defined]
    for vm in vms:
        if vm.active:
            actions.append(Action(kind="destroy_vm", node=vm.node, reason="running"))
        actions.append(Action(kind="undefine_vm", node=vm.node, reason="defined"))
    for stray in probe.stray_domains:
        actions.append(Action(kind="remove_vm", node=stray, reason="domain of this lab for an unlisted node"))
    if probe.network_defined or probe.network_active:
        actions.append(Action(kind="remove_network", reason=f"network {layout.network} exists"))
    if embedded and probe.own_daemons:
        names = ", ".join(f"{n} ({p})" for n, p in sorted(probe.own_daemons.items()))
        actions.append(Action(kind="stop_daemons", reason=f"started by the lab: {names}"))
    if embedded and probe.netns_exists:
        actions.append(Action(kind="delete_netns", reason=f"namespace {layout.netns} exists"))
    if probe.state_dir_exists:
        actions.append(Action(kind="remove_state_dir", reason=f"{layout.root} exists"))
    return actions
