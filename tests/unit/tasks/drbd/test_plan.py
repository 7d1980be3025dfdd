"""Unit tests for the pure DRBD plans in tasks/drbd/plan.py, on hand-built node probes."""

from __future__ import annotations

from typing import Any

import pytest

from tasks.drbd.plan import NodeProbe, Refused, Step, plan_bring_up, plan_filesystem, plan_replicate
from tasks.drbd.probes import BlockSignature, DrbdState, Mount

DISK = "/dev/vdb"
DEVICE = "/dev/drbd0"
MOUNTPOINT = "/mnt/r0"

UNCONFIGURED = DrbdState(minor=0, connection="Unconfigured")
BLANK = BlockSignature()
DRBD_MD = BlockSignature(type="drbd", usage="raid", uuid="fd0a2d97dc561710")
EXT4_DATA = BlockSignature(type="ext4", label="data", usage="filesystem")


def state(
    connection: str = "Connected",
    role: str = "Secondary",
    peer_role: str = "Secondary",
    disk: str = "UpToDate",
    peer_disk: str = "UpToDate",
) -> DrbdState:
    return DrbdState(
        minor=0, connection=connection, role=role, peer_role=peer_role, disk=disk, peer_disk=peer_disk
    )


def probe(node: str, **overrides: Any) -> NodeProbe:
    """A node that is fully set up and healthy as Secondary unless told otherwise."""
    fields: dict[str, Any] = {
        "node": node,
        "tools": True,
        "config_current": True,
        "module_loaded": True,
        "state": state(),
        "backing": DRBD_MD,
    }
    fields.update(overrides)
    return NodeProbe(**fields)


def fresh(node: str, **overrides: Any) -> NodeProbe:
    """A node that has the tools and nothing else: no config, no module, blank disk."""
    fields: dict[str, Any] = {
        "config_current": False,
        "module_loaded": False,
        "state": UNCONFIGURED,
        "backing": BLANK,
    }
    fields.update(overrides)
    return probe(node, **fields)


def kinds(steps: list[Step]) -> list[tuple[str, str]]:
    return [(s.kind, s.node) for s in steps]


# -- plan_bring_up ----------------------------------------------------------------------------------


def test_bring_up_two_blank_nodes() -> None:
    steps = plan_bring_up({"nodea": fresh("nodea"), "nodeb": fresh("nodeb")}, DISK, force_create_md=False)
    assert kinds(steps) == [
        ("write_config", "nodea"),
        ("load_module", "nodea"),
        ("create_md", "nodea"),
        ("up", "nodea"),
        ("write_config", "nodeb"),
        ("load_module", "nodeb"),
        ("create_md", "nodeb"),
        ("up", "nodeb"),
    ]
    create_md = [s for s in steps if s.kind == "create_md"]
    assert all(s.force is False for s in create_md)
    assert all(s.reason == "disk is blank" for s in create_md)
    assert not any(s.force for s in steps)


def test_bring_up_blank_disk_is_not_forced_even_when_force_is_allowed() -> None:
    steps = plan_bring_up({"nodea": fresh("nodea")}, DISK, force_create_md=True)
    (create_md,) = [s for s in steps if s.kind == "create_md"]
    assert create_md.force is False


def test_bring_up_already_up_with_current_config_is_a_no_op() -> None:
    probes = {"nodea": probe("nodea"), "nodeb": probe("nodeb")}
    assert plan_bring_up(probes, DISK, force_create_md=False) == []


def test_bring_up_config_changed_while_up_adjusts() -> None:
    probes = {"nodea": probe("nodea", config_current=False), "nodeb": probe("nodeb")}
    steps = plan_bring_up(probes, DISK, force_create_md=False)
    assert kinds(steps) == [("write_config", "nodea"), ("adjust", "nodea")]


def test_bring_up_installs_tools_first() -> None:
    steps = plan_bring_up({"nodea": fresh("nodea", tools=False)}, DISK, force_create_md=False)
    assert kinds(steps) == [
        ("install_tools", "nodea"),
        ("write_config", "nodea"),
        ("load_module", "nodea"),
        ("create_md", "nodea"),
        ("up", "nodea"),
    ]


def test_bring_up_only_missing_tools_on_a_running_node() -> None:
    steps = plan_bring_up({"nodea": probe("nodea", tools=False)}, DISK, force_create_md=False)
    assert kinds(steps) == [("install_tools", "nodea")]


def test_bring_up_refuses_to_overwrite_a_filesystem() -> None:
    probes = {"nodea": fresh("nodea"), "nodeb": fresh("nodeb", backing=EXT4_DATA)}
    with pytest.raises(Refused) as info:
        plan_bring_up(probes, DISK, force_create_md=False)
    message = str(info.value)
    assert message.startswith("nodeb: /dev/vdb already holds ext4 (label data)")
    assert "Nothing was changed" in message
    assert "drbd.force_create_md" in message
    assert "nodea" not in message


def test_bring_up_refusal_without_label() -> None:
    probes = {"nodea": fresh("nodea", backing=BlockSignature(type="xfs"))}
    with pytest.raises(Refused, match=r"^nodea: /dev/vdb already holds xfs; refusing") as info:
        plan_bring_up(probes, DISK, force_create_md=False)
    assert "label" not in str(info.value)


def test_bring_up_forced_over_a_filesystem() -> None:
    probes = {"nodea": fresh("nodea"), "nodeb": fresh("nodeb", backing=EXT4_DATA)}
    steps = plan_bring_up(probes, DISK, force_create_md=True)
    create_md = {s.node: s for s in steps if s.kind == "create_md"}
    assert create_md["nodeb"].force is True
    assert create_md["nodeb"].reason == "forced over ext4"
    assert create_md["nodea"].force is False
    assert str(create_md["nodeb"]) == "create_md(nodeb, force): forced over ext4"
    assert kinds(steps)[-1] == ("up", "nodeb")


def test_bring_up_existing_metadata_is_kept() -> None:
    probes = {
        "nodea": probe("nodea", state=UNCONFIGURED, backing=DRBD_MD),
        "nodeb": probe("nodeb", state=UNCONFIGURED, backing=DRBD_MD, module_loaded=False),
    }
    steps = plan_bring_up(probes, DISK, force_create_md=False)
    assert kinds(steps) == [("up", "nodea"), ("load_module", "nodeb"), ("up", "nodeb")]


def test_bring_up_running_resource_over_a_foreign_signature_is_left_alone() -> None:
    """A configured resource is never re-created, whatever blkid says about the backing disk."""
    probes = {"nodea": probe("nodea", backing=EXT4_DATA)}
    assert plan_bring_up(probes, DISK, force_create_md=False) == []


# -- plan_replicate ---------------------------------------------------------------------------------

BRAND_NEW = state(disk="Inconsistent", peer_disk="Inconsistent")
# Right after `drbdadm up` on fresh metadata: waiting for the peer, nothing known about it yet.
JUST_UP = state(connection="WFConnection", peer_role="Unknown", disk="Inconsistent", peer_disk="DUnknown")


def test_replicate_fresh_metadata_full_sync() -> None:
    probes = {"nodea": probe("nodea", state=JUST_UP), "nodeb": probe("nodeb", state=JUST_UP)}
    steps = plan_replicate(probes, "nodea", initial_sync="full", fresh_metadata=True)
    assert kinds(steps) == [
        ("wait_connected", "nodea"),
        ("initial_promote", "nodea"),
        ("wait_synced", "nodea"),
    ]
    assert [s.force for s in steps] == [False, True, False]


def test_replicate_fresh_metadata_skip_sync() -> None:
    probes = {"nodea": probe("nodea", state=JUST_UP), "nodeb": probe("nodeb", state=JUST_UP)}
    steps = plan_replicate(probes, "nodea", initial_sync="skip", fresh_metadata=True)
    assert kinds(steps) == [
        ("wait_connected", "nodea"),
        ("skip_initial_sync", "nodea"),
        ("promote", "nodea"),
        ("wait_synced", "nodea"),
    ]
    assert not any(s.force for s in steps)


def test_replicate_brand_new_connected_resource_found_without_fresh_metadata() -> None:
    """Metadata written by an earlier, interrupted run: /proc/drbd's Inconsistent/Inconsistent says so."""
    probes = {"nodea": probe("nodea", state=BRAND_NEW), "nodeb": probe("nodeb", state=BRAND_NEW)}
    steps = plan_replicate(probes, "nodeb", initial_sync="full", fresh_metadata=False)
    assert kinds(steps) == [("initial_promote", "nodeb"), ("wait_synced", "nodeb")]
    assert steps[0].force is True


def test_replicate_healthy_with_a_primary_is_a_no_op() -> None:
    probes = {
        "nodea": probe("nodea", state=state(role="Primary", peer_role="Secondary")),
        "nodeb": probe("nodeb", state=state(role="Secondary", peer_role="Primary")),
    }
    assert plan_replicate(probes, "nodea", initial_sync="full", fresh_metadata=False) == []


def test_replicate_primary_is_the_other_node_is_a_no_op() -> None:
    """After a failover the survivor is Primary: the plan does not promote the configured primary too."""
    probes = {
        "nodea": probe("nodea", state=state(role="Secondary", peer_role="Primary")),
        "nodeb": probe("nodeb", state=state(role="Primary", peer_role="Secondary")),
    }
    assert plan_replicate(probes, "nodea", initial_sync="full", fresh_metadata=False) == []


def test_replicate_both_secondary_up_to_date_promotes_without_force() -> None:
    probes = {"nodea": probe("nodea"), "nodeb": probe("nodeb")}
    steps = plan_replicate(probes, "nodea", initial_sync="full", fresh_metadata=False)
    assert kinds(steps) == [("promote", "nodea")]
    assert steps[0].force is False


def test_replicate_resync_running_waits() -> None:
    probes = {
        "nodea": probe(
            "nodea",
            state=state(connection="SyncSource", role="Primary", disk="UpToDate", peer_disk="Inconsistent"),
        ),
        "nodeb": probe(
            "nodeb",
            state=state(
                connection="SyncTarget", peer_role="Primary", disk="Inconsistent", peer_disk="UpToDate"
            ),
        ),
    }
    steps = plan_replicate(probes, "nodea", initial_sync="full", fresh_metadata=False)
    assert kinds(steps) == [("wait_synced", "nodea")]


def test_replicate_peer_not_connected_waits_then_promotes() -> None:
    probes = {
        "nodea": probe(
            "nodea", state=state(connection="WFConnection", peer_role="Unknown", peer_disk="DUnknown")
        ),
        "nodeb": probe(
            "nodeb", state=state(connection="WFConnection", peer_role="Unknown", peer_disk="DUnknown")
        ),
    }
    steps = plan_replicate(probes, "nodeb", initial_sync="full", fresh_metadata=False)
    assert kinds(steps) == [("wait_connected", "nodeb"), ("promote", "nodeb")]


# -- plan_filesystem --------------------------------------------------------------------------------

EXT4_VOLUME = BlockSignature(type="ext4", label="r0", usage="filesystem")
MOUNTED = Mount(source=DEVICE, target=MOUNTPOINT, fstype="ext4", options="rw,relatime")


@pytest.mark.parametrize("volume", [None, BLANK], ids=["not-probed", "blank"])
def test_filesystem_blank_volume_mkfs_and_mount(volume: BlockSignature | None) -> None:
    primary = probe("nodea", volume=volume, mount=None)
    steps = plan_filesystem(primary, "xfs", MOUNTPOINT, DEVICE)
    assert kinds(steps) == [("mkfs", "nodea"), ("mount", "nodea")]
    assert steps[0].reason == "no filesystem on /dev/drbd0: making xfs"
    assert steps[1].reason == "/dev/drbd0 not mounted at /mnt/r0"


def test_filesystem_present_and_mounted_is_a_no_op() -> None:
    primary = probe("nodea", volume=EXT4_VOLUME, mount=MOUNTED)
    assert plan_filesystem(primary, "ext4", MOUNTPOINT, DEVICE) == []


def test_filesystem_present_not_mounted_mounts_only() -> None:
    primary = probe("nodea", volume=EXT4_VOLUME, mount=None)
    steps = plan_filesystem(primary, "ext4", MOUNTPOINT, DEVICE)
    assert kinds(steps) == [("mount", "nodea")]


def test_filesystem_present_never_remade_even_if_type_differs() -> None:
    """An existing xfs where ext4 is configured is kept: mkfs only ever runs on a blank volume."""
    primary = probe("nodea", volume=BlockSignature(type="xfs"), mount=None)
    assert kinds(plan_filesystem(primary, "ext4", MOUNTPOINT, DEVICE)) == [("mount", "nodea")]


def test_filesystem_something_else_mounted_refuses() -> None:
    other = Mount(source="/dev/vdc1", target=MOUNTPOINT, fstype="ext4", options="rw")
    primary = probe("nodea", volume=EXT4_VOLUME, mount=other)
    with pytest.raises(Refused, match=r"^nodea: /mnt/r0 has /dev/vdc1 mounted, not /dev/drbd0$"):
        plan_filesystem(primary, "ext4", MOUNTPOINT, DEVICE)
