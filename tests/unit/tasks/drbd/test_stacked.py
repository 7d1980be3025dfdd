"""The stacked (three-node) volume's pure parts: its preconditions through the two-node plans, the companion
files, and the address holders parsed from captured ``ip -json address``."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from tasks.drbd.model import OWN_FILE_HEADER, DrbdNode, DrbdResource, StackedResource, render
from tasks.drbd.plan import NodeProbe, Preconditions, check_preconditions, plan_bring_up
from tasks.drbd.probes import BlockDevice, BlockSignature, DrbdState, parse_lsblk
from tasks.drbd.stacked import CompanionFile, companion_problems, parse_address_holders, plan_companions

FIXTURES = Path(__file__).parents[3] / "fixtures" / "drbd"
SECRET = "qnRRxchDlcni-7eaoRSi2HDGdLl63IF3"
LOWER = DrbdResource(
    nodes=(DrbdNode(name="nodea", address="10.77.0.11"), DrbdNode(name="nodeb", address="10.77.0.12")),
    shared_secret=SecretStr(SECRET),
)
UPPER = StackedResource(
    name="r0-u",
    lower=LOWER,
    address="10.77.0.10",
    third=DrbdNode(name="nodec", address="10.77.0.14", port=7790, minor=10),
    shared_secret=SecretStr(SECRET),
)
EXT4 = Preconditions(fstype="ext4")
UNCONFIGURED = DrbdState(minor=10, connection="Unconfigured")


def end(node: str, disk: BlockDevice, addresses: list[str], **overrides: object) -> NodeProbe:
    """One end of the upper resource before setup: the tools and module, nothing of the upper resource."""
    fields: dict[str, object] = {
        "node": node,
        "hostname": node,
        "tools_found": ["drbdadm", "mkfs.ext4", "mkfs.xfs"],
        "config_text": None,
        "config_current": False,
        "module_loaded": True,
        "state": UNCONFIGURED,
        "disk": disk,
        "addresses": ["127.0.0.1", *addresses],
        "backing": BlockSignature(),
        "head_zero": True,
    }
    fields.update(overrides)
    return NodeProbe(**fields)


LOWER_DEVICE = BlockDevice(path="/dev/drbd0", type="disk", size=2**30 - 69632)
THIRD_DISK = BlockDevice(path="/dev/vdb", type="disk", size=2**30)


def test_a_blank_lower_device_and_a_blank_third_disk_are_brought_up_stacked() -> None:
    """The stacked end's address is not on the node yet (setup adds it): that is no problem there, while the
    third node's own address must be."""
    probes = {
        "nodea": end("nodea", LOWER_DEVICE, ["10.77.0.11"]),
        "nodec": end("nodec", THIRD_DISK, ["10.77.0.14"]),
    }
    assert check_preconditions(probes, UPPER, EXT4) == []
    steps = plan_bring_up(probes, EXT4)
    assert [(s.kind, s.node, s.force) for s in steps] == [
        ("write_config", "nodea", False),
        ("create_md", "nodea", False),
        ("up", "nodea", False),
        ("write_config", "nodec", False),
        ("create_md", "nodec", False),
        ("up", "nodec", False),
    ]
    wrong = {"nodec": end("nodec", THIRD_DISK, ["10.77.0.15"])}
    assert check_preconditions(wrong, UPPER, EXT4) == [
        "nodec: replication address 10.77.0.14 is not configured on the host (it has 10.77.0.15): "
        "set the inventory host's replication_address"
    ]


def test_a_lower_device_that_holds_a_filesystem_is_never_given_upper_metadata() -> None:
    """A two-node volume made stacked later: its ext4 would lose its end to the upper metadata."""
    ext4 = BlockSignature(type="ext4", label="r0", usage="filesystem")
    probes = {"nodea": end("nodea", LOWER_DEVICE, ["10.77.0.11"], head=ext4, backing=ext4, head_zero=False)}
    assert check_preconditions(probes, UPPER, EXT4) == [
        "nodea: /dev/drbd0 holds ext4 (label r0); refusing to write DRBD metadata over it. "
        "Set drbd.force_create_md = true to destroy it."
    ]


def test_a_mounted_lower_device_is_in_use() -> None:
    mounted = LOWER_DEVICE.model_copy(update={"mountpoints": ["/mnt/r0"]})
    probes = {"nodea": end("nodea", mounted, ["10.77.0.11"])}
    assert check_preconditions(probes, UPPER, EXT4) == [
        "nodea: /dev/drbd0 is in use (/dev/drbd0 at /mnt/r0): DRBD needs a whole disk nothing else uses"
    ]


def test_the_upper_device_is_found_stacked_on_the_lower_one() -> None:
    """Captured on the lab's lower Primary (vdb → drbd0 → drbd10): what the HA upgrade and a two-node setup
    refuse to touch."""
    disk = parse_lsblk((FIXTURES / "lsblk_backing_stacked_mounted.json").read_text())
    assert disk is not None
    assert end("nodea", disk, []).stacked_on("/dev/drbd0") == ["/dev/drbd10"]
    plain = parse_lsblk((FIXTURES / "lsblk_backing_attached_mounted.json").read_text())
    assert plain is not None
    assert end("nodea", plain, []).stacked_on("/dev/drbd0") == []


def _companion(node: str, resource: str, text: str | None) -> CompanionFile:
    wanted = render(LOWER if resource == "r0" else UPPER)
    return CompanionFile(
        node=node, resource=resource, text=wanted if text == "wanted" else text, wanted=wanted
    )


@pytest.mark.parametrize(
    ("text", "adopt", "planned", "problem"),
    [
        ("wanted", False, [], False),
        (None, False, [("write_config", "nodec", "r0")], False),
        (OWN_FILE_HEADER + "\nold", False, [("write_config", "nodec", "r0")], False),
        ("resource r0 { }", False, [("keep_config", "nodec", "r0"), ("write_config", "nodec", "r0")], True),
        ("resource r0 { }", True, [("keep_config", "nodec", "r0"), ("write_config", "nodec", "r0")], False),
    ],
    ids=["current", "missing", "ours-but-old", "foreign", "foreign-adopted"],
)
def test_companion_files_are_written_as_any_resource_file(
    text: str | None, adopt: bool, planned: list[tuple[str, str, str]], problem: bool
) -> None:
    """The lower file on the third node: written when missing or ours, kept aside and replaced only when
    adopting, refused otherwise with one line."""
    files = [_companion("nodec", "r0", text)]
    assert [(s.kind, s.node, s.resource) for s in plan_companions(files)] == planned
    problems = companion_problems(files, adopt)
    assert bool(problems) is problem
    if problem:
        assert problems == [
            "nodec: /etc/drbd.d/r0.res was not written by ha-storage-flows and differs from what setup would "
            "write; set drbd.adopt_existing = true to replace it (a copy of it is kept)"
        ]


def test_address_holders_from_captured_ip_output() -> None:
    """Captured on the lab's lower Primary holding the stacked address beside its own."""
    holders = parse_address_holders((FIXTURES / "ip_address_nodea_stacked.json").read_text())
    assert holders == {"127.0.0.1": "lo", "::1": "lo", "10.77.0.11": "eth0", "10.77.0.10": "eth0"}
    assert parse_address_holders("") == {}
