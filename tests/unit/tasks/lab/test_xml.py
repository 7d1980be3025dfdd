"""Unit tests for tasks/lab/xml.py: rendered libvirt XML, checked by structure and by libvirt's schemas."""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Literal

import pytest

from tasks.executor import CommandError, Executor
from tasks.lab.image import GuestImage
from tasks.lab.state import LabLayout
from tasks.lab.xml import (
    SBD_DISK_PCI_SLOT,
    SBD_DISK_TARGET,
    DomainSpec,
    data_disk_target,
    disk_sources,
    mac_for,
    render_data_disk,
    render_domain,
    render_network,
    spec_id_of,
)
from tasks.settings import LabSettings

DomainType = Literal["kvm", "qemu"]


@pytest.fixture
def layout(tmp_path: Path) -> LabLayout:
    return LabLayout(LabSettings(state_dir=tmp_path / "state", memory_mib=768, vcpus=2, tcg_tb_cache_mib=96))


@pytest.fixture
def image(tmp_path: Path) -> GuestImage:
    directory = tmp_path / "images" / "0123456789abcdef"
    return GuestImage(
        directory=directory,
        base=directory / "base.qcow2",
        kernel=directory / "vmlinuz",
        initrd=directory / "initrd.img",
        digest="0123456789abcdef",
    )


def _spec(layout: LabLayout, image: GuestImage, domain_type: DomainType, node: str = "nodeb") -> DomainSpec:
    return layout.domain_spec(node, image, domain_type)


def _validate(tmp_path: Path, xml: str, kind: str) -> None:
    """libvirt's own RelaxNG validation; Executor.run raises CommandError if the document is invalid."""
    path = tmp_path / f"{kind}.xml"
    path.write_text(xml)
    result = Executor().run(["virt-xml-validate", str(path), kind], timeout=60)
    assert result.ok
    assert "validates" in result.stdout + result.stderr


def _found(parent: ET.Element, path: str) -> ET.Element:
    element = parent.find(path)
    assert element is not None, f"no {path} element"
    return element


def _attr(parent: ET.Element, path: str, name: str) -> str | None:
    return _found(parent, path).get(name)


def _disk(root: ET.Element, dev: str) -> ET.Element:
    disks = [d for d in root.findall("devices/disk") if _attr(d, "target", "dev") == dev]
    assert len(disks) == 1, f"expected one disk {dev}"
    return disks[0]


@pytest.mark.parametrize("domain_type", ["qemu", "kvm"])
def test_render_domain(layout: LabLayout, image: GuestImage, domain_type: DomainType) -> None:
    spec = _spec(layout, image, domain_type)
    root = ET.fromstring(render_domain(spec))

    assert root.tag == "domain"
    assert root.get("type") == domain_type
    assert root.findtext("name") == "hsf-nodeb"
    memory = root.find("memory")
    assert memory is not None
    assert (memory.text, memory.get("unit")) == ("768", "MiB")
    assert root.findtext("vcpu") == "2"
    assert root.findtext("os/kernel") == str(image.kernel)
    assert root.findtext("os/initrd") == str(layout.initrd("nodeb"))  # the image's, with the VM's keys
    cmdline = (root.findtext("os/cmdline") or "").split()
    assert "systemd.hostname=nodeb" in cmdline
    assert "lab.ip=10.77.0.12/24" in cmdline
    assert "root=/dev/vda" in cmdline


@pytest.mark.parametrize(("domain_type", "has_tb_cache"), [("qemu", True), ("kvm", False)])
def test_render_domain_tcg_tb_cache_only_for_qemu(
    layout: LabLayout, image: GuestImage, domain_type: DomainType, has_tb_cache: bool
) -> None:
    root = ET.fromstring(render_domain(_spec(layout, image, domain_type)))
    tb_cache = root.find("features/tcg/tb-cache")
    assert (tb_cache is not None) == has_tb_cache
    if tb_cache is not None:
        assert (tb_cache.text, tb_cache.get("unit")) == ("96", "MiB")
    assert (root.find("cpu[@mode='host-passthrough']") is not None) == (not has_tb_cache)


@pytest.mark.parametrize("domain_type", ["qemu", "kvm"])
def test_render_domain_devices(layout: LabLayout, image: GuestImage, domain_type: DomainType) -> None:
    spec = _spec(layout, image, domain_type)
    root = ET.fromstring(render_domain(spec))

    root_disk = _disk(root, "vda")
    assert _attr(root_disk, "target", "bus") == "virtio"
    assert _attr(root_disk, "driver", "type") == "qcow2"
    assert _attr(root_disk, "source", "file") == str(layout.overlay("nodeb"))

    # nothing on IDE (the VM's keys come in its initrd): the kernel need not probe that controller
    assert {_attr(disk, "target", "bus") for disk in root.findall("devices/disk")} == {"virtio"}

    interfaces = root.findall("devices/interface")
    assert len(interfaces) == 1
    assert interfaces[0].get("type") == "network"
    assert _attr(interfaces[0], "source", "network") == "hsf-net"
    assert _attr(interfaces[0], "mac", "address") == spec.mac == "52:54:00:4d:00:0c"


def test_storage_nodes_share_the_sbd_disk_and_have_a_watchdog(layout: LabLayout, image: GuestImage) -> None:
    for node in layout.lab.nodes:
        root = ET.fromstring(render_domain(_spec(layout, image, "qemu", node)))
        sbd = _disk(root, SBD_DISK_TARGET)
        assert _attr(sbd, "source", "file") == str(layout.sbd_disk)  # one file for every node
        assert sbd.find("shareable") is not None
        assert (_attr(sbd, "driver", "type"), _attr(sbd, "driver", "cache")) == ("raw", "none")
        assert sbd.findtext("serial") == "sbd"  # /dev/disk/by-id/virtio-sbd in the guest
        # the last PCI slot: the data disk attached later gets a lower one and stays vdb
        assert _attr(sbd, "address", "slot") == SBD_DISK_PCI_SLOT == "0x1f"
        assert _attr(root, "devices/watchdog", "model") == "i6300esb"
        assert _attr(root, "devices/watchdog", "action") == "reset"


def test_backup_server_has_no_sbd_disk_nor_watchdog(layout: LabLayout, image: GuestImage) -> None:
    server = layout.lab.backup_server
    assert server is not None
    root = ET.fromstring(render_domain(_spec(layout, image, "qemu", server)))
    assert SBD_DISK_TARGET not in disk_sources(render_domain(_spec(layout, image, "qemu", server)))
    assert root.find("devices/watchdog") is None


@pytest.mark.parametrize("domain_type", ["qemu", "kvm"])
def test_spec_id_round_trips(layout: LabLayout, image: GuestImage, domain_type: DomainType) -> None:
    spec = _spec(layout, image, domain_type)
    assert spec_id_of(render_domain(spec)) == spec.spec_id


def test_spec_id_of_foreign_domain_is_none() -> None:
    assert spec_id_of("<domain type='kvm'><name>someone-else</name><metadata/></domain>") is None


@pytest.mark.parametrize("domain_type", ["qemu", "kvm"])
def test_rendered_domain_passes_libvirt_schema(
    tmp_path: Path, layout: LabLayout, image: GuestImage, domain_type: DomainType
) -> None:
    _validate(tmp_path, render_domain(_spec(layout, image, domain_type)), "domain")


def test_rendered_network_passes_libvirt_schema(tmp_path: Path, layout: LabLayout) -> None:
    _validate(tmp_path, render_network(layout.network, layout.bridge, layout.bridge_interface()), "network")


def test_schema_validation_rejects_a_broken_domain(tmp_path: Path) -> None:
    """The schema check above is a real check: an invalid document makes Executor.run raise."""
    with pytest.raises(CommandError):
        _validate(tmp_path, "<domain type='qemu'><bogus/></domain>", "domain")


@pytest.mark.parametrize(("index", "target", "serial"), [(0, "vdb", "labdata"), (1, "vdc", "labdata2")])
def test_render_data_disk(tmp_path: Path, index: int, target: str, serial: str) -> None:
    path = tmp_path / "vms" / "nodea" / "data.img"
    disk = ET.fromstring(render_data_disk(path, index))

    assert disk.tag == "disk"
    assert (disk.get("type"), disk.get("device")) == ("file", "disk")
    assert _found(disk, "target").attrib == {"dev": target, "bus": "virtio"}
    assert _attr(disk, "driver", "type") == "raw"
    assert _attr(disk, "source", "file") == str(path)
    assert disk.findtext("serial") == serial


def _with_data_disk(domain_xml: str, data_disk_xml: str) -> str:
    root = ET.fromstring(domain_xml)
    devices = root.find("devices")
    assert devices is not None
    devices.append(ET.fromstring(data_disk_xml))
    return ET.tostring(root, encoding="unicode")


def _domain_with_data_disk(layout: LabLayout, image: GuestImage, domain_type: DomainType) -> str:
    domain = render_domain(_spec(layout, image, domain_type))
    for index, path in enumerate(layout.data_disks("nodeb")):  # in order, as the lab attaches them
        domain = _with_data_disk(domain, render_data_disk(path, index))
    return domain


@pytest.mark.parametrize("domain_type", ["qemu", "kvm"])
def test_domain_with_data_disk_passes_libvirt_schema(
    tmp_path: Path, layout: LabLayout, image: GuestImage, domain_type: DomainType
) -> None:
    xml = _domain_with_data_disk(layout, image, domain_type)
    _validate(tmp_path, xml, "domain")


def test_disk_sources(layout: LabLayout, image: GuestImage) -> None:
    xml = _domain_with_data_disk(layout, image, "kvm")
    assert disk_sources(xml) == {
        "vda": str(layout.overlay("nodeb")),
        "vdb": str(layout.vm_dir("nodeb") / "data.img"),
        "vdc": str(layout.vm_dir("nodeb") / "data2.img"),
        SBD_DISK_TARGET: str(layout.sbd_disk),
    }
    assert (
        [data_disk_target(i) for i in range(2)]
        == ["vdb", "vdc"]
        == [d.removeprefix("/dev/") for d in layout.lab.data_disk_devices]
    )


def test_disk_sources_skips_disks_without_a_file() -> None:
    xml = (
        "<domain><devices>"
        "<disk type='block'><source dev='/dev/sdz'/><target dev='vdc'/></disk>"
        "<disk type='file' device='cdrom'><target dev='hdc'/></disk>"
        "<disk type='file'><source file='/x/root.qcow2'/><target dev='vda'/></disk>"
        "</devices></domain>"
    )
    assert disk_sources(xml) == {"vda": "/x/root.qcow2"}


def test_render_network_is_isolated() -> None:
    address = ipaddress.IPv4Interface("10.77.0.1/24")
    root = ET.fromstring(render_network("hsf-net", "hsfbr0", address))

    assert root.findtext("name") == "hsf-net"
    assert _attr(root, "bridge", "name") == "hsfbr0"
    ip = root.find("ip")
    assert ip is not None
    assert (ip.get("address"), ip.get("netmask")) == ("10.77.0.1", "255.255.255.0")
    assert root.find(".//forward") is None
    assert root.find(".//dhcp") is None


@pytest.mark.parametrize(
    ("address", "mac"),
    [
        ("10.77.0.11", "52:54:00:4d:00:0b"),
        ("10.77.0.12", "52:54:00:4d:00:0c"),
        ("192.168.200.254", "52:54:00:a8:c8:fe"),
        ("172.16.1.2", "52:54:00:10:01:02"),
    ],
)
def test_mac_for(address: str, mac: str) -> None:
    assert mac_for(ipaddress.IPv4Address(address)) == mac


def test_mac_for_distinct_addresses_gives_distinct_macs() -> None:
    subnet = ipaddress.IPv4Network("10.77.0.0/22")
    macs = {mac_for(address) for address in subnet}
    assert len(macs) == subnet.num_addresses
