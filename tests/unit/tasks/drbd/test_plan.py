"""Unit tests for the pure DRBD plans in tasks/drbd/plan.py, on hand-built node probes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from tasks.drbd.model import DrbdNode, DrbdResource, render_resource
from tasks.drbd.plan import (
    NodeProbe,
    Preconditions,
    Refused,
    Step,
    check_preconditions,
    foreign_config_problems,
    plan_bring_up,
    plan_filesystem,
    plan_replicate,
)
from tasks.drbd.probes import AdjustPreview, BlockDevice, BlockSignature, DrbdState, Mount

DISK = "/dev/vdb"
DEVICE = "/dev/drbd0"
MOUNTPOINT = "/mnt/r0"

ADDRESSES = {"nodea": "10.77.0.11", "nodeb": "10.77.0.12"}
SECRET = "qnRRxchDlcni-7eaoRSi2HDGdLl63IF3"
RESOURCE = DrbdResource(
    nodes=tuple(DrbdNode(name=n, address=a) for n, a in ADDRESSES.items()), shared_secret=SecretStr(SECRET)
)
EXT4 = Preconditions(fstype="ext4")
FORCED = Preconditions(fstype="ext4", force_create_md=True)
ATTACHED_DISK = BlockDevice(
    path=DISK, type="disk", size=2**30, children=[BlockDevice(path=DEVICE, type="disk", size=2**30 - 69632)]
)
FREE_DISK = BlockDevice(path=DISK, type="disk", size=2**30)
# What a seed-style hand-made resource file looks like (sha1, a weak secret, port 7788).
HAND_MADE = (
    'resource r0 {\n  net { cram-hmac-alg sha1; shared-secret "secret"; }\n'
    "  on nodea { device /dev/drbd0; disk /dev/vdb; address 10.77.0.11:7788; meta-disk internal; }\n"
    "  on nodeb { device /dev/drbd0; disk /dev/vdb; address 10.77.0.12:7788; meta-disk internal; }\n}\n"
)
RECONNECT = AdjustPreview(
    commands=[
        "drbdsetup-84 disconnect ipv4:10.77.0.11:7788 ipv4:10.77.0.12:7788",
        f"drbdsetup-84 connect r0 ipv4:10.77.0.11:7789 ipv4:10.77.0.12:7789 --shared-secret={SECRET}",
    ]
)
DETACH = AdjustPreview(
    commands=[
        "drbdsetup-84 detach 0",
        "drbdmeta 0 v08 /dev/vdz internal apply-al",
        "drbdsetup-84 attach 0 /dev/vdz /dev/vdz internal",
    ]
)
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
        "hostname": node,
        "tools_found": ["drbdadm", "mkfs.ext4", "mkfs.xfs"],
        "config_text": render_resource(RESOURCE),
        "config_current": True,
        "module_loaded": True,
        "state": state(),
        "running": {"r0": [0]},
        "disk": ATTACHED_DISK,
        "addresses": ["127.0.0.1", ADDRESSES[node]],
        "backing": DRBD_MD,
        "head_zero": False,
    }
    fields.update(overrides)
    return NodeProbe(**fields)


def fresh(node: str, **overrides: Any) -> NodeProbe:
    """A node that has the tools and nothing else: no config, no module, blank disk."""
    fields: dict[str, Any] = {
        "config_text": None,
        "config_current": False,
        "module_loaded": False,
        "state": UNCONFIGURED,
        "running": {},
        "disk": FREE_DISK,
        "backing": BLANK,
        "head_zero": True,
    }
    fields.update(overrides)
    return probe(node, **fields)


def kinds(steps: list[Step]) -> list[tuple[str, str]]:
    return [(s.kind, s.node) for s in steps]


# -- plan_bring_up ----------------------------------------------------------------------------------


def test_bring_up_two_blank_nodes() -> None:
    steps = plan_bring_up({"nodea": fresh("nodea"), "nodeb": fresh("nodeb")}, EXT4)
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
    steps = plan_bring_up({"nodea": fresh("nodea")}, FORCED)
    (create_md,) = [s for s in steps if s.kind == "create_md"]
    assert create_md.force is False


def test_bring_up_already_up_with_current_config_is_a_no_op() -> None:
    probes = {"nodea": probe("nodea"), "nodeb": probe("nodeb")}
    assert plan_bring_up(probes, EXT4) == []


def test_bring_up_config_changed_while_up_adjusts() -> None:
    probes = {"nodea": probe("nodea", config_current=False), "nodeb": probe("nodeb")}
    steps = plan_bring_up(probes, EXT4)
    assert kinds(steps) == [
        ("write_config", "nodea"),
        ("adjust", "nodea"),
        ("wait_connected", "nodea"),
        ("wait_synced", "nodea"),
    ]


def test_bring_up_installs_tools_first() -> None:
    steps = plan_bring_up({"nodea": fresh("nodea", tools_found=[])}, EXT4)
    assert kinds(steps) == [
        ("install_tools", "nodea"),
        ("write_config", "nodea"),
        ("load_module", "nodea"),
        ("create_md", "nodea"),
        ("up", "nodea"),
    ]


def test_bring_up_only_missing_tools_on_a_running_node() -> None:
    steps = plan_bring_up({"nodea": probe("nodea", tools_found=[])}, EXT4)
    assert kinds(steps) == [("install_tools", "nodea")]


def test_preconditions_refuse_to_overwrite_a_filesystem() -> None:
    ext4 = {"backing": EXT4_DATA, "head": EXT4_DATA, "head_zero": False}
    probes = {"nodea": fresh("nodea"), "nodeb": fresh("nodeb", **ext4)}
    (problem,) = check_preconditions(probes, RESOURCE, EXT4)
    assert problem == (
        "nodeb: /dev/vdb holds ext4 (label data); refusing to write DRBD metadata over it. "
        "Set drbd.force_create_md = true to destroy it."
    )
    assert check_preconditions(probes, RESOURCE, FORCED) == []


def test_preconditions_refuse_data_that_blkid_does_not_name() -> None:
    """A wiped filesystem (wipefs -a) leaves blkid blank, but drbdmeta still refuses the non-zero head."""
    probes = {"nodea": fresh("nodea", head_zero=False)}
    (problem,) = check_preconditions(probes, RESOURCE, EXT4)
    assert "data that is not zeros in its first 65 KiB (drbdmeta refuses it)" in problem
    assert "label" not in problem


def test_preconditions_refuse_an_unreadable_disk_even_when_forced() -> None:
    probes = {"nodea": fresh("nodea", head_zero=None)}
    assert check_preconditions(probes, RESOURCE, FORCED) == [
        "nodea: /dev/vdb could not be read: refusing to write DRBD metadata to it"
    ]


def test_bring_up_forced_over_a_filesystem() -> None:
    probes = {"nodea": fresh("nodea"), "nodeb": fresh("nodeb", backing=EXT4_DATA, head_zero=False)}
    steps = plan_bring_up(probes, FORCED)
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
    steps = plan_bring_up(probes, EXT4)
    assert kinds(steps) == [("up", "nodea"), ("load_module", "nodeb"), ("up", "nodeb")]


def test_bring_up_running_resource_over_a_foreign_signature_is_left_alone() -> None:
    """A configured resource is never re-created, whatever blkid says about the backing disk."""
    probes = {"nodea": probe("nodea", backing=EXT4_DATA)}
    assert plan_bring_up(probes, EXT4) == []


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
    assert kinds(steps) == [("wait_connected", "nodeb"), ("promote", "nodeb"), ("wait_synced", "nodeb")]
    assert steps[-1].reason == "a reconnected peer may resync"  # measured: setup ended mid-resync


# -- plan_filesystem --------------------------------------------------------------------------------

EXT4_VOLUME = BlockSignature(type="ext4", label="r0", usage="filesystem")


def nodes(primary: NodeProbe, **peer: Any) -> dict[str, NodeProbe]:
    """The primary under test and a healthy Secondary peer."""
    return {"nodea": primary, "nodeb": probe("nodeb", **peer)}


MOUNTED = Mount(source=DEVICE, target=MOUNTPOINT, fstype="ext4", options="rw,relatime")


@pytest.mark.parametrize("volume", [None, BLANK], ids=["not-probed", "blank"])
def test_filesystem_blank_volume_mkfs_and_mount(volume: BlockSignature | None) -> None:
    primary = probe("nodea", volume=volume, mount=None, head_zero=True)
    steps = plan_filesystem(nodes(primary), "nodea", "xfs", MOUNTPOINT, DEVICE)
    assert kinds(steps) == [("mkfs", "nodea"), ("mount", "nodea")]
    assert steps[0].reason == "no filesystem on /dev/drbd0: making xfs"
    assert steps[1].reason == "/dev/drbd0 not mounted at /mnt/r0"


def test_filesystem_present_and_mounted_is_a_no_op() -> None:
    primary = probe("nodea", volume=EXT4_VOLUME, mount=MOUNTED)
    assert plan_filesystem(nodes(primary), "nodea", "ext4", MOUNTPOINT, DEVICE) == []


def test_filesystem_present_not_mounted_mounts_only() -> None:
    primary = probe("nodea", volume=EXT4_VOLUME, mount=None)
    steps = plan_filesystem(nodes(primary), "nodea", "ext4", MOUNTPOINT, DEVICE)
    assert kinds(steps) == [("mount", "nodea")]


def test_filesystem_present_never_remade_even_if_type_differs() -> None:
    """An existing xfs where ext4 is configured is kept: mkfs only ever runs on a blank volume."""
    primary = probe("nodea", volume=BlockSignature(type="xfs"), mount=None)
    assert kinds(plan_filesystem(nodes(primary), "nodea", "ext4", MOUNTPOINT, DEVICE)) == [("mount", "nodea")]


def test_filesystem_something_else_mounted_refuses() -> None:
    other = Mount(source="/dev/vdc1", target=MOUNTPOINT, fstype="ext4", options="rw")
    primary = probe("nodea", volume=EXT4_VOLUME, mount=other)
    with pytest.raises(Refused, match=r"^nodea: /mnt/r0 has /dev/vdc1 mounted, not /dev/drbd0$"):
        plan_filesystem(nodes(primary), "nodea", "ext4", MOUNTPOINT, DEVICE)


# -- check_preconditions ----------------------------------------------------------------------------

HEALTHY = {"nodea": probe("nodea"), "nodeb": probe("nodeb")}


def test_preconditions_healthy_cluster_and_blank_nodes_pass() -> None:
    assert check_preconditions(HEALTHY, RESOURCE, EXT4) == []
    assert check_preconditions({"nodea": fresh("nodea"), "nodeb": fresh("nodeb")}, RESOURCE, EXT4) == []


@pytest.mark.parametrize(
    ("change", "allowed", "problem"),
    [
        (
            {"hostname": "store7"},
            EXT4,
            "nodea: the host's name is 'store7', and DRBD finds its section by that name: name the inventory "
            "host 'store7' (or rename the host)",
        ),
        (
            {"tools_found": ["drbdadm"]},
            Preconditions(fstype="xfs"),
            "nodea: missing mkfs.xfs (xfsprogs): install the package, or set drbd.install_packages = true",
        ),
        (
            {"tools_found": [], "module_loaded": False, "module_available": False},
            EXT4,
            "nodea: missing drbdadm (drbd-utils), mkfs.ext4 (e2fsprogs): install the package, or set "
            "drbd.install_packages = true",
        ),
        (
            {"addresses": ["127.0.0.1", "192.0.2.5"]},
            EXT4,
            "nodea: replication address 10.77.0.11 is not configured on the host (it has 192.0.2.5): set the "
            "inventory host's replication_address",
        ),
        (
            {"addresses": None},
            EXT4,
            "nodea: could not list the host's addresses (ip address): is iproute2 installed?",
        ),
        (
            {"running": {"data": [0]}},
            EXT4,
            "nodea: /dev/drbd0 belongs to the running resource 'data': choose another drbd.minor",
        ),
        ({"disk": None}, EXT4, "nodea: /dev/vdb is not a block device on this host: check drbd.disk"),
    ],
    ids=["hostname", "one-tool", "tools", "address", "no-ip", "minor-taken", "no-disk"],
)
def test_preconditions_one_line_per_problem(
    change: dict[str, Any], allowed: Preconditions, problem: str
) -> None:
    probes = {**HEALTHY, "nodea": probe("nodea", **change)}
    problems = check_preconditions(probes, RESOURCE, allowed)
    assert problems[0] == problem
    if "module_available" in change:
        assert problems[1:] == [
            "nodea: the running kernel has no drbd module (modinfo drbd): DRBD 8.4 needs it"
        ]
    else:
        assert len(problems) == 1


def test_preconditions_missing_tools_are_installed_when_allowed() -> None:
    probes = {"nodea": fresh("nodea", tools_found=[])}
    allowed = Preconditions(fstype="xfs", install_packages=True)
    assert check_preconditions(probes, RESOURCE, allowed) == []
    (install, *_) = plan_bring_up(probes, allowed)
    assert (install.kind, install.packages) == ("install_tools", ("drbd-utils", "xfsprogs"))


@pytest.mark.parametrize(
    ("disk", "used_by"),
    [
        (BlockDevice(path=DISK, type="disk", size=1, mountpoints=["/srv"]), "/dev/vdb at /srv"),
        (
            BlockDevice(
                path=DISK,
                type="disk",
                size=1,
                children=[BlockDevice(path="/dev/vdb1", type="part", size=1, mountpoints=["[SWAP]"])],
            ),
            "/dev/vdb1, /dev/vdb1 at [SWAP]",
        ),
        (ATTACHED_DISK, "/dev/drbd0"),  # another resource's DRBD device on a node where ours is not up
    ],
    ids=["mounted", "partition-swap", "held-by-drbd"],
)
def test_preconditions_disk_in_use(disk: BlockDevice, used_by: str) -> None:
    problems = check_preconditions({"nodea": fresh("nodea", disk=disk)}, RESOURCE, EXT4)
    assert problems == [f"nodea: /dev/vdb is in use ({used_by}): DRBD needs a whole disk nothing else uses"]


def test_preconditions_refuse_a_foreign_file_showing_the_difference_with_secrets_masked() -> None:
    probes = {n: probe(n, config_text=HAND_MADE, config_current=False, adjust=RECONNECT) for n in ADDRESSES}
    problems = check_preconditions(probes, RESOURCE, EXT4)
    assert len(problems) == 2
    first = problems[0].splitlines()
    assert first[0] == (
        "nodea: /etc/drbd.d/r0.res was not written by ha-storage-flows and differs from what setup would "
        "write; set drbd.adopt_existing = true to replace it (a copy of it is kept):"
    )
    diff = "\n".join(first[1:])
    assert '-  net { cram-hmac-alg sha1; shared-secret "******"; }' in diff
    assert '+    shared-secret "******";' in diff
    assert "10.77.0.11:7788" in diff and "ipv4 10.77.0.11:7789" in diff
    assert SECRET not in "\n".join(problems) and '"secret"' not in "\n".join(problems)


def test_preconditions_adopt_a_healthy_foreign_resource() -> None:
    probes = {n: probe(n, config_text=HAND_MADE, config_current=False, adjust=RECONNECT) for n in ADDRESSES}
    adopt = Preconditions(fstype="ext4", adopt_existing=True)
    assert check_preconditions(probes, RESOURCE, adopt) == []
    assert kinds(plan_bring_up(probes, adopt)) == [
        ("keep_config", "nodea"),
        ("write_config", "nodea"),
        ("keep_config", "nodeb"),
        ("write_config", "nodeb"),
        ("disconnect", "nodea"),
        ("disconnect", "nodeb"),
        ("adjust", "nodea"),
        ("adjust", "nodeb"),
        ("wait_connected", "nodea"),
        ("wait_synced", "nodea"),
    ]


def test_preconditions_live_change_only_when_connected_and_up_to_date() -> None:
    degraded = state(connection="WFConnection", peer_disk="DUnknown")
    probes = {
        "nodea": probe(
            "nodea", config_text=HAND_MADE, config_current=False, adjust=RECONNECT, state=degraded
        ),
        "nodeb": probe("nodeb", config_text=HAND_MADE, config_current=False, adjust=RECONNECT),
    }
    problems = check_preconditions(probes, RESOURCE, Preconditions(fstype="ext4", adopt_existing=True))
    assert problems == [
        "r0 runs and its configuration would change on nodea, nodeb: that is done only while it is Connected "
        "and UpToDate on every node (nodea cs:WFConnection ro:Secondary/Secondary ds:UpToDate/DUnknown)"
    ]


def test_preconditions_a_setting_that_would_detach_a_disk_is_refused_even_when_adopting() -> None:
    probes = {**HEALTHY, "nodeb": probe("nodeb", config_current=False, adjust=DETACH)}
    problems = check_preconditions(probes, RESOURCE, Preconditions(fstype="ext4", adopt_existing=True))
    assert problems == [
        "nodeb: applying the settings to the running r0 would detach its disk (Diskless); check drbd.disk "
        "and drbd.minor against the running resource (drbdsetup show)"
    ]


def test_preconditions_a_running_resource_without_a_file_is_not_ours() -> None:
    probes = {**HEALTHY, "nodeb": probe("nodeb", config_text=None, config_current=False)}
    assert check_preconditions(probes, RESOURCE, EXT4) == [
        "nodeb: resource r0 runs without /etc/drbd.d/r0.res; set drbd.adopt_existing = true to give it "
        "setup's file"
    ]


def test_own_file_is_rewritten_without_adopting() -> None:
    """A settings change (our own header on the file): no copy is kept, the resource is adjusted."""
    own_older = render_resource(RESOURCE).replace("resync-rate 100M", "resync-rate 50M")
    probes = {
        n: probe(n, config_text=own_older, config_current=False, adjust=AdjustPreview()) for n in ADDRESSES
    }
    assert check_preconditions(probes, RESOURCE, EXT4) == []
    assert [k for k, _ in kinds(plan_bring_up(probes, EXT4))] == [
        "write_config",
        "write_config",
        "adjust",
        "adjust",
        "wait_connected",
        "wait_synced",
    ]


# -- the filesystem guard reads where it can read ----------------------------------------------------


def test_filesystem_blank_volume_over_a_disk_holding_a_filesystem_refuses() -> None:
    """A volume that reads blank while a backing disk holds ext4 at its start: never a second mkfs."""
    primary = probe("nodea", volume=BLANK, mount=None)
    with pytest.raises(Refused, match=r"backing disks hold a filesystem at their start \(nodeb: ext4\)"):
        plan_filesystem(nodes(primary, head=EXT4_DATA), "nodea", "ext4", MOUNTPOINT, DEVICE)


def test_filesystem_no_primary_to_read_and_a_disk_unreadable_refuses() -> None:
    primary = probe("nodea", volume=None, mount=None)
    with pytest.raises(Refused, match=r"^/dev/drbd0 could not be read on any node: refusing mkfs"):
        plan_filesystem(nodes(primary, head_zero=None), "nodea", "ext4", MOUNTPOINT, DEVICE)


def test_filesystem_no_primary_but_a_disk_holds_ext4_plans_only_the_mount_refusal() -> None:
    primary = probe("nodea", volume=None, mount=None, head=EXT4_VOLUME)
    with pytest.raises(Refused, match=r"nodea: ext4"):
        plan_filesystem(nodes(primary), "nodea", "ext4", MOUNTPOINT, DEVICE)


def test_preconditions_a_config_drbdadm_rejects_is_one_line() -> None:
    rejected = AdjustPreview(rejected="'r0' not defined in your config (for this host).")
    probes = {**HEALTHY, "nodeb": probe("nodeb", config_current=False, adjust=rejected)}
    assert check_preconditions(probes, RESOURCE, EXT4) == [
        "nodeb: drbdadm cannot apply the new config to the running r0: "
        "'r0' not defined in your config (for this host)."
    ]


def test_foreign_config_problems_are_what_every_flow_refuses_without_adopting() -> None:
    """The one check setup and the HA upgrade share: a hand-made file, or a resource without a file."""
    rendered = render_resource(RESOURCE)
    hand = probe("nodea", config_text=HAND_MADE, config_current=False)
    (line,) = foreign_config_problems("nodea", hand, RESOURCE, rendered)
    assert line.startswith("nodea: /etc/drbd.d/r0.res was not written by ha-storage-flows")
    orphan = probe("nodeb", config_text=None, config_current=False)
    assert foreign_config_problems("nodeb", orphan, RESOURCE, rendered) == [
        "nodeb: resource r0 runs without /etc/drbd.d/r0.res; set drbd.adopt_existing = true to give it "
        "setup's file"
    ]
    own_older = probe("nodea", config_text=rendered.replace("100M", "50M"), config_current=False)
    assert foreign_config_problems("nodea", own_older, RESOURCE, rendered) == []
