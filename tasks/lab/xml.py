"""Pure renderers for the libvirt XML the lab defines: domains, the data disk, the isolated network."""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

METADATA_NS = "https://ha-storage-flows.invalid/lab/1"
SBD_DISK_TARGET = "vdz"  # libvirt's name only: the guest names disks itself, and finds this one by serial
SBD_DISK_SERIAL = "sbd"  # the guest sees it as /dev/disk/by-id/virtio-sbd
# The guest names virtio disks in PCI slot order: the shared SBD disk sits in the last slot of bus 0, so
# the data disks attached after definition (libvirt gives each the next free, lower slot) are vdb, vdc, …
SBD_DISK_PCI_SLOT = "0x1f"


def data_disk_target(index: int) -> str:
    """The ``index``-th data disk's name, in libvirt and (by slot order) in the guest: vdb, vdc, …"""
    return f"vd{chr(ord('b') + index)}"


def data_disk_serial(index: int) -> str:
    """labdata, labdata2, …: the guest's /dev/disk/by-id/virtio-<serial>."""
    return "labdata" if index == 0 else f"labdata{index + 1}"


# What a lab guest skips at boot. Under TCG every module load (its signature checked in emulation) and
# every unit costs CPU time on the one virtual CPU; none of these serve the lab: KVM inside the guest,
# wireless, the floppy, PC speaker, PS/2 mouse and IDE controller QEMU's pc machine brings (no disk is on
# IDE: the SSH identity comes in the initrd), graphics, SCSI generic;
# ha_logd (Pacemaker 2 logs by itself), the daily timers, a console getty on tty1, binfmt, debugfs,
# tracefs, huge pages, POSIX message queues, utmp records and the modules nothing here uses (EFI pstore,
# FUSE, device mapper: a unit each, a second of the one virtual CPU each). Measured on a restarted node:
# SSH up 19.9 s into the boot instead of 22.2 s.
UNUSED_MODULES = (
    "kvm", "kvm_amd", "kvm_intel", "irqbypass", "ccp", "cfg80211", "pcspkr", "floppy", "psmouse",
    "serio_raw", "drm", "i2c_piix4", "sg", "ata_piix", "ata_generic",
)  # fmt: skip
UNUSED_UNITS = (
    "logd.service", "dpkg-db-backup.timer", "systemd-tmpfiles-clean.timer", "getty@tty1.service",
    "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount", "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount", "dev-hugepages.mount", "modprobe@drm.service", "modprobe@efi_pstore.service",
    "modprobe@fuse.service", "modprobe@dm_mod.service", "dev-mqueue.mount", "systemd-update-utmp.service",
    "systemd-update-utmp-runlevel.service",
)  # fmt: skip
# quiet: the kernel's ~500 boot messages to an emulated serial port cost seconds per boot under TCG (warnings
# and errors still reach the console log); measured restart to SSH 29 to 32 s, then 26 to 28 s.
KERNEL_ARGS = " ".join(
    (
        "root=/dev/vda rw console=ttyS0 quiet net.ifnames=0",
        f"modprobe.blacklist={','.join(UNUSED_MODULES)}",
        *(f"systemd.mask={unit}" for unit in UNUSED_UNITS),
    )
)


class DomainSpec(BaseModel):
    """One lab VM as libvirt should run it."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="libvirt domain name (lab-prefixed, unique on the libvirt host).")
    hostname: str = Field(description="The guest's hostname (the node name).")
    domain_type: Literal["kvm", "qemu"] = Field(description="kvm, or qemu for TCG software emulation.")
    memory_mib: int
    vcpus: int
    tb_cache_mib: int = Field(description="TCG translation cache size (ignored under kvm).")
    kernel: Path
    initrd: Path = Field(description="The image's initrd with this VM's SSH identity appended.")
    address: ipaddress.IPv4Interface = Field(description="Guest address with prefix, on eth0.")
    mac: str
    network: str = Field(description="libvirt network the NIC is plugged into.")
    root_disk: Path = Field(description="qcow2 overlay over the shared base image.")
    console_log: Path
    sbd_disk: Path | None = Field(
        None,
        description=(
            "The small raw disk every storage node shares for SBD fencing (None: not a cluster node); "
            "with it comes QEMU's i6300esb watchdog, which resets the guest when sbd stops feeding it."
        ),
    )
    spec_id: str = Field(description="Hash of the lab settings this domain was made from (in metadata).")

    @property
    def cmdline(self) -> str:
        return " ".join(
            (
                KERNEL_ARGS,
                f"systemd.hostname={self.hostname}",
                f"lab.ip={self.address.with_prefixlen}",
            )
        )


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _file_disk(
    parent: ET.Element, source: Path, fmt: str, target: str, bus: str, serial: str | None
) -> ET.Element:
    disk = _sub(parent, "disk", type="file", device="disk")
    _sub(disk, "driver", name="qemu", type=fmt, cache="writeback")
    _sub(disk, "source", file=str(source))
    _sub(disk, "target", dev=target, bus=bus)
    if serial:
        _sub(disk, "serial", serial)
    return disk


def _shared_sbd_disk(parent: ET.Element, source: Path) -> ET.Element:
    """The SBD disk, opened by every node's QEMU at once (``<shareable/>``: share-rw=on, no host cache,
    so one node reads what another wrote; measured as the lab's fencing disk)."""
    disk = _sub(parent, "disk", type="file", device="disk")
    _sub(disk, "driver", name="qemu", type="raw", cache="none", io="threads")
    _sub(disk, "source", file=str(source))
    _sub(disk, "target", dev=SBD_DISK_TARGET, bus="virtio")
    _sub(disk, "serial", SBD_DISK_SERIAL)
    _sub(disk, "shareable")
    _sub(disk, "address", type="pci", domain="0x0000", bus="0x00", slot=SBD_DISK_PCI_SLOT, function="0x0")
    return disk


def render_domain(spec: DomainSpec) -> str:
    """Domain XML: direct kernel boot (the VM's own initrd carries its SSH identity), root on virtio."""
    domain = ET.Element("domain", type=spec.domain_type)
    _sub(domain, "name", spec.name)
    metadata = _sub(domain, "metadata")
    ET.SubElement(metadata, f"{{{METADATA_NS}}}lab", {"spec": spec.spec_id, "node": spec.hostname})
    _sub(domain, "memory", str(spec.memory_mib), unit="MiB")
    _sub(domain, "vcpu", str(spec.vcpus))
    os_el = _sub(domain, "os")
    _sub(os_el, "type", "hvm", arch="x86_64", machine="pc")
    _sub(os_el, "kernel", str(spec.kernel))
    _sub(os_el, "initrd", str(spec.initrd))
    _sub(os_el, "cmdline", spec.cmdline)
    features = _sub(domain, "features")
    _sub(features, "acpi")
    if spec.domain_type == "qemu":
        tcg = _sub(features, "tcg")
        _sub(tcg, "tb-cache", str(spec.tb_cache_mib), unit="MiB")
    else:
        _sub(domain, "cpu", mode="host-passthrough")
    _sub(domain, "on_poweroff", "destroy")
    _sub(domain, "on_reboot", "restart")
    _sub(domain, "on_crash", "destroy")
    devices = _sub(domain, "devices")
    _file_disk(devices, spec.root_disk, "qcow2", "vda", "virtio", None)
    if spec.sbd_disk is not None:
        _shared_sbd_disk(devices, spec.sbd_disk)
    interface = _sub(devices, "interface", type="network")
    _sub(interface, "source", network=spec.network)
    _sub(interface, "mac", address=spec.mac)
    _sub(interface, "model", type="virtio")
    serial = _sub(devices, "serial", type="file")
    _sub(serial, "source", path=str(spec.console_log))
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="file")
    _sub(console, "source", path=str(spec.console_log))
    _sub(console, "target", type="serial", port="0")
    rng = _sub(devices, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")
    if spec.sbd_disk is not None:
        _sub(devices, "watchdog", model="i6300esb", action="reset")
    _sub(devices, "controller", type="usb", model="none")  # QEMU's default USB controller: nothing on it
    _sub(devices, "memballoon", model="none")
    ET.register_namespace("hsf", METADATA_NS)
    return ET.tostring(domain, encoding="unicode")


def render_data_disk(path: Path, index: int = 0) -> str:
    """The ``index``-th extra disk DRBD replicates, attached persistently (``virsh attach-disk
    --persistent``)."""
    holder = ET.Element("devices")
    disk = _file_disk(holder, path, "raw", data_disk_target(index), "virtio", data_disk_serial(index))
    return ET.tostring(disk, encoding="unicode")


def render_network(name: str, bridge: str, address: ipaddress.IPv4Interface) -> str:
    """An isolated network: a bridge with an address, no <forward> (no route out), no DHCP."""
    network = ET.Element("network")
    _sub(network, "name", name)
    _sub(network, "bridge", name=bridge, stp="off", delay="0")
    _sub(network, "ip", address=str(address.ip), netmask=str(address.netmask))
    return ET.tostring(network, encoding="unicode")


def mac_for(address: ipaddress.IPv4Address) -> str:
    """A stable locally-administered MAC (QEMU's 52:54:00 prefix) derived from the guest address."""
    b = address.packed
    return f"52:54:00:{b[1]:02x}:{b[2]:02x}:{b[3]:02x}"


def spec_id_of(xml: str) -> str | None:
    """The lab spec hash stored in a domain's metadata, if it is one of ours."""
    root = ET.fromstring(xml)
    lab = root.find(f"metadata/{{{METADATA_NS}}}lab")
    return lab.get("spec") if lab is not None else None


def disk_sources(xml: str) -> dict[str, str]:
    """Guest target name → source file for every file-backed disk in a domain XML."""
    root = ET.fromstring(xml)
    result: dict[str, str] = {}
    for disk in root.findall("devices/disk"):
        target, source = disk.find("target"), disk.find("source")
        if target is not None and source is not None and source.get("file"):
            result[target.get("dev", "")] = source.get("file", "")
    return result
