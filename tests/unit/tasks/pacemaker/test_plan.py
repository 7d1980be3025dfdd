"""Unit tests for the pure cluster plan in tasks/pacemaker/plan.py, as tables of hand-built probes.

A running cluster's view is the real one: ``crm_mon`` output captured on the lab
(tests/fixtures/pacemaker/captured/), parsed by the probe's own parser.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tasks.drbd.plan import NodeProbe
from tasks.drbd.probes import BlockSignature, DrbdState, Mount
from tasks.pacemaker import commands as cmd
from tasks.pacemaker.model import (
    Cib,
    Corosync,
    FenceParams,
    Sbd,
    render_cib,
    render_corosync_conf,
    render_sbd_default,
    stonith_devices,
)
from tasks.pacemaker.plan import (
    ClusterProbe,
    ClusterStep,
    WantedCluster,
    cluster_problems,
    plan_cluster,
    serving_node,
    text_sha256,
)
from tasks.pacemaker.probes import ClusterStatus, ResourceInstance, SbdHeader, parse_crm_mon_xml

CAPTURED = Path(__file__).parents[3] / "fixtures" / "pacemaker" / "captured"
HEALTHY = parse_crm_mon_xml((CAPTURED / "crm_mon-healthy.xml").read_text())  # served from nodeb
PEER_FENCED = parse_crm_mon_xml((CAPTURED / "crm_mon-peer-fenced.xml").read_text())  # served nowhere

NODES = ("nodea", "nodeb")
ADDRESSES = {"nodea": "10.77.0.11", "nodeb": "10.77.0.12"}
AUTHKEY = "Zm9yIHRlc3RzIG9ubHk-bm90LWEtcmVhbC1rZXk"
COROSYNC = Corosync.of("hsf", ADDRESSES)
SBD = Sbd()
SBD_DEVICE = "/dev/disk/by-id/virtio-sbd"
CIB = Cib(
    cluster_name="hsf",
    nodes=NODES,
    stonith_devices=stonith_devices("fence_sbd", NODES, FenceParams(), {}, SBD),
)
WANTED = WantedCluster.of(COROSYNC, SBD, CIB, AUTHKEY)
# Fenced by each node's BMC: no SBD at all.
IPMI_CIB = Cib(
    cluster_name="hsf",
    nodes=NODES,
    stonith_devices=stonith_devices(
        "fence_ipmilan",
        NODES,
        FenceParams(params={"username": "admin", "lanplus": "1"}),
        {n: FenceParams(params={"ip": f"10.0.9.{101 + i}"}) for i, n in enumerate(NODES)},
        SBD,
    ),
)
NO_SBD = WantedCluster.of(COROSYNC, None, IPMI_CIB, AUTHKEY)

LAB_HEADER = SbdHeader(watchdog_s=5, msgwait_s=10)  # what sbd-dump.txt shows: the defaults
OTHER_HEADER = SbdHeader(watchdog_s=10, msgwait_s=20)
# What Debian's corosync package installs: a sample, not this project's file.
PACKAGE_COROSYNC_CONF = (
    "# Please read the corosync.conf.5 manual page\nsystem {\n\tallow_knet_handle_fallback: yes\n}\n"
)
OTHER_TOKEN_CONF = render_corosync_conf(Corosync.of("hsf", ADDRESSES, token_ms=5000))


def running(node: str, wanted: WantedCluster = WANTED, **overrides: Any) -> ClusterProbe:
    """A node of a cluster that runs exactly as ``wanted`` says, serving from nodeb (the captured view)."""
    fields: dict[str, Any] = {
        "node": node,
        "tools_found": list(wanted.tools),
        "corosync_conf": wanted.corosync_conf,
        "authkey_sha256": wanted.authkey_sha256,
        "sbd_default": wanted.sbd_default,
        "active": dict.fromkeys(wanted.units, "active"),
        "enabled": dict.fromkeys(wanted.units, "enabled"),
        "sbd_header": LAB_HEADER if wanted.sbd else None,
        "cib_sha256": wanted.cib_sha256,
        "status": HEALTHY,
    }
    fields.update(overrides)
    return ClusterProbe(**fields)


def fresh(node: str, wanted: WantedCluster = WANTED, **overrides: Any) -> ClusterProbe:
    """A node with the cluster tools installed and nothing else: no files, units stopped and disabled,
    an SBD disk without a header."""
    fields: dict[str, Any] = {
        "corosync_conf": None,
        "authkey_sha256": None,
        "sbd_default": None,
        "active": dict.fromkeys(wanted.units, "inactive"),
        "enabled": dict.fromkeys(wanted.units, "disabled"),
        "sbd_header": None,
        "cib_sha256": None,
        "status": None,
    }
    fields.update(overrides)
    return running(node, wanted, **fields)


def stopped(node: str, wanted: WantedCluster = WANTED, **overrides: Any) -> ClusterProbe:
    """A node set up as ``wanted`` whose cluster is stopped (rebooted after a fencing, stopped by hand)."""
    fields: dict[str, Any] = {"active": dict.fromkeys(wanted.units, "inactive"), "status": None}
    fields.update(overrides)
    return running(node, wanted, **fields)


def pair(make: Callable[..., ClusterProbe], **overrides: Any) -> dict[str, ClusterProbe]:
    return {node: make(node, **overrides) for node in NODES}


MOUNT = Mount(source="/dev/drbd0", target="/mnt/r0", fstype="ext4", options="rw,relatime")


def volume(node: str, role: str = "Secondary", mounted: bool = False, up: bool = True) -> NodeProbe:
    """The DRBD volume on ``node`` as the DRBD phase left it (connected, UpToDate)."""
    peer_role = "Secondary" if role == "Primary" else "Primary"
    state = (
        DrbdState(
            minor=0,
            connection="Connected",
            role=role,
            peer_role=peer_role,
            disk="UpToDate",
            peer_disk="UpToDate",
        )
        if up
        else DrbdState(minor=0, connection="Unconfigured")
    )
    return NodeProbe(
        node=node,
        hostname=node,
        tools_found=["drbdadm", "mkfs.ext4"],
        config_current=True,
        module_loaded=up,
        state=state,
        backing=BlockSignature(type="drbd", usage="raid"),
        mount=MOUNT if mounted else None,
    )


# The DRBD phase's result: nodea Primary with the volume mounted by hand, nodeb Secondary.
BY_HAND = {"nodea": volume("nodea", "Primary", mounted=True), "nodeb": volume("nodeb")}
# What Pacemaker runs: nodeb promoted and mounted (the captured healthy cluster).
BY_PACEMAKER = {"nodea": volume("nodea"), "nodeb": volume("nodeb", "Primary", mounted=True)}
DOWN = {node: volume(node, up=False) for node in NODES}


def kinds(steps: list[ClusterStep]) -> list[tuple[str, str | None]]:
    return [(s.kind, s.node) for s in steps]


def step(steps: list[ClusterStep], kind: str, node: str | None = None) -> ClusterStep:
    (found,) = [s for s in steps if s.kind == kind and s.node == node]
    return found


# -- WantedCluster ----------------------------------------------------------------------------------------


def test_wanted_is_rendered_once_from_the_models() -> None:
    assert WANTED.corosync_conf == render_corosync_conf(COROSYNC)
    assert WANTED.sbd_default == render_sbd_default(SBD)
    assert WANTED.authkey_sha256 == hashlib.sha256(AUTHKEY.encode()).hexdigest()
    assert (
        WANTED.cib_sha256
        == text_sha256(render_cib(CIB))
        == hashlib.sha256(render_cib(CIB).encode()).hexdigest()
    )
    assert AUTHKEY not in WANTED.model_dump_json()  # only its hash is kept
    assert WANTED.units == ("corosync", "pacemaker", "sbd")
    assert WANTED.tools == ("corosync", "pacemakerd", "crm", "crm_mon", "cibadmin", "sbd")
    assert WANTED.packages == ("pacemaker", "corosync", "crmsh", "resource-agents", "fence-agents", "sbd")


def test_without_sbd_no_sbd_unit_tool_package_or_file() -> None:
    assert NO_SBD.sbd is None and NO_SBD.sbd_default is None
    assert NO_SBD.units == ("corosync", "pacemaker")
    assert NO_SBD.tools == cmd.CLUSTER_TOOLS and "sbd" not in NO_SBD.tools
    assert NO_SBD.packages == cmd.CLUSTER_PACKAGES and "sbd" not in NO_SBD.packages
    assert NO_SBD.header_matches(None) and NO_SBD.header_matches(OTHER_HEADER)


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (LAB_HEADER, True),
        (None, False),
        (OTHER_HEADER, False),
        (SbdHeader(watchdog_s=5, msgwait_s=20), False),
        (SbdHeader(watchdog_s=4, msgwait_s=10), False),
    ],
    ids=["same", "no-header", "both-differ", "msgwait-differs", "watchdog-differs"],
)
def test_header_matches_both_timeouts(header: SbdHeader | None, matches: bool) -> None:
    assert WANTED.header_matches(header) is matches


# -- ClusterProbe -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("active", "runs"),
    [
        ({"corosync": "active", "pacemaker": "active"}, True),
        ({"corosync": "active", "pacemaker": "inactive"}, True),
        ({"corosync": "failed", "pacemaker": "active"}, True),
        ({"corosync": "inactive", "pacemaker": "failed", "sbd": "active"}, False),
        ({}, False),
    ],
)
def test_runs_cluster_when_corosync_or_pacemaker_is_active(active: dict[str, str], runs: bool) -> None:
    assert ClusterProbe(node="nodea", active=active).runs_cluster is runs


@pytest.mark.parametrize(
    ("conf", "own"),
    [(WANTED.corosync_conf, True), (OTHER_TOKEN_CONF, True), (PACKAGE_COROSYNC_CONF, False), (None, False)],
    ids=["as-wanted", "own-other-settings", "package-sample", "absent"],
)
def test_own_corosync_conf_by_its_header(conf: str | None, own: bool) -> None:
    assert ClusterProbe(node="nodea", corosync_conf=conf).own_corosync_conf is own


# -- serving_node -----------------------------------------------------------------------------------------


def test_serving_node() -> None:
    assert serving_node(HEALTHY, CIB) == "nodeb"
    assert serving_node(PEER_FENCED, CIB) is None  # nothing promoted, the filesystem stopped
    assert serving_node(None, CIB) is None
    # mounted on one node while the other is promoted: not serving
    split = ClusterStatus(
        resources=[
            ResourceInstance(id="p_fs_r0", role="Started", node="nodea"),
            ResourceInstance(id="p_drbd_r0", clone="ms_drbd_r0", role="Promoted", node="nodeb"),
        ]
    )
    assert serving_node(split, CIB) is None


# -- plan_cluster: the table --------------------------------------------------------------------------------

FRESH_PAIR = [
    ("write_corosync_conf", "nodea"),
    ("write_authkey", "nodea"),
    ("write_sbd_default", "nodea"),
    ("write_corosync_conf", "nodeb"),
    ("write_authkey", "nodeb"),
    ("write_sbd_default", "nodeb"),
    ("create_sbd_header", "nodea"),
    ("hand_over_umount", "nodea"),
    ("hand_over_down", "nodea"),
    ("hand_over_down", "nodeb"),
    ("enable_cluster", "nodea"),
    ("enable_cluster", "nodeb"),
    ("start_cluster", "nodea"),
    ("start_cluster", "nodeb"),
    ("wait_members", None),
    ("load_cib", "nodea"),
    ("wait_serving", None),
]

PLANS: dict[str, tuple[dict[str, ClusterProbe], dict[str, NodeProbe], WantedCluster, bool, list[Any]]] = {
    "fresh-pair": (pair(fresh), BY_HAND, WANTED, False, FRESH_PAIR),
    "runs-as-specified": (pair(running), BY_PACEMAKER, WANTED, False, []),
    "runs-as-specified-without-sbd": (pair(running, wanted=NO_SBD), BY_PACEMAKER, NO_SBD, False, []),
    "peer-fenced-nothing-serves": (
        pair(running, status=PEER_FENCED),
        {"nodea": volume("nodea", up=False), "nodeb": volume("nodeb")},
        WANTED,
        False,
        [("wait_serving", None)],
    ),
    "corosync-conf-changed-while-running": (
        pair(running, corosync_conf=OTHER_TOKEN_CONF),
        BY_PACEMAKER,
        WANTED,
        False,
        [
            ("write_corosync_conf", "nodea"),
            ("write_corosync_conf", "nodeb"),
            ("reload_corosync", "nodea"),
            ("wait_serving", None),
        ],
    ),
    "cib-changed": (
        pair(running, cib_sha256=text_sha256("the crm text an older setup loaded")),
        BY_PACEMAKER,
        WANTED,
        False,
        [("load_cib", "nodea"), ("wait_serving", None)],
    ),
    "cib-hash-missing-on-one-node": (
        {"nodea": running("nodea"), "nodeb": running("nodeb", cib_sha256=None)},
        BY_PACEMAKER,
        WANTED,
        False,
        [("load_cib", "nodea"), ("wait_serving", None)],
    ),
    "cib-without-the-volume": (
        pair(running, status=ClusterStatus(dc="nodea", quorate=True)),
        BY_PACEMAKER,
        WANTED,
        False,
        [("load_cib", "nodea"), ("wait_serving", None)],
    ),
    "foreign-corosync-conf-on-a-stopped-node": (
        {"nodea": fresh("nodea", corosync_conf=PACKAGE_COROSYNC_CONF), "nodeb": fresh("nodeb")},
        BY_HAND,
        WANTED,
        False,
        [("keep_file", "nodea"), *FRESH_PAIR],
    ),
    "tools-missing-installed": (
        pair(fresh, tools_found=["corosync"]),
        BY_HAND,
        WANTED,
        True,
        [("install_cluster_tools", "nodea"), ("install_cluster_tools", "nodeb"), *FRESH_PAIR],
    ),
    "tools-missing-not-installed": (pair(fresh, tools_found=[]), BY_HAND, WANTED, False, FRESH_PAIR),
    "sbd-not-enabled": (
        {
            "nodea": running(
                "nodea", enabled={"corosync": "enabled", "pacemaker": "enabled", "sbd": "disabled"}
            ),
            "nodeb": running("nodeb"),
        },
        BY_PACEMAKER,
        WANTED,
        False,
        [("enable_cluster", "nodea"), ("wait_serving", None)],
    ),
    "fenced-node-back-with-its-cluster-stopped": (
        {"nodea": stopped("nodea"), "nodeb": running("nodeb")},
        {"nodea": volume("nodea", up=False), "nodeb": volume("nodeb", "Primary", mounted=True)},
        WANTED,
        False,
        [("start_cluster", "nodea"), ("wait_members", None), ("wait_serving", None)],
    ),
    "stopped-everywhere-header-differs": (
        pair(stopped, sbd_header=OTHER_HEADER),
        DOWN,
        WANTED,
        False,
        [
            ("create_sbd_header", "nodea"),
            ("start_cluster", "nodea"),
            ("start_cluster", "nodeb"),
            ("wait_members", None),
            ("load_cib", "nodea"),
            ("wait_serving", None),
        ],
    ),
    "running-header-differs-is-not-rewritten": (
        pair(running, sbd_header=OTHER_HEADER),
        BY_PACEMAKER,
        WANTED,
        False,
        [],
    ),
    "fresh-pair-without-sbd": (
        pair(fresh, wanted=NO_SBD),
        BY_HAND,
        NO_SBD,
        False,
        [(kind, node) for kind, node in FRESH_PAIR if kind not in ("write_sbd_default", "create_sbd_header")],
    ),
    "fresh-pair-drbd-not-up": (
        pair(fresh),
        DOWN,
        WANTED,
        False,
        [(kind, node) for kind, node in FRESH_PAIR if not kind.startswith("hand_over")],
    ),
}


@pytest.mark.parametrize(
    ("probes", "drbd", "wanted", "install", "expected"), list(PLANS.values()), ids=list(PLANS)
)
def test_plan(
    probes: dict[str, ClusterProbe],
    drbd: dict[str, NodeProbe],
    wanted: WantedCluster,
    install: bool,
    expected: list[tuple[str, str | None]],
) -> None:
    assert kinds(plan_cluster(probes, drbd, wanted, install)) == expected


# -- plan_cluster: what the steps say -----------------------------------------------------------------------


NOT_ENABLED = "corosync, pacemaker, sbd not enabled: the node would not rejoin after a reboot"


def test_fresh_pair_reasons() -> None:
    steps = plan_cluster(pair(fresh), BY_HAND, WANTED, install_packages=False)
    assert [str(s) for s in steps] == [
        "write_corosync_conf(nodea): corosync.conf absent",
        "write_authkey(nodea): the corosync authkey absent",
        "write_sbd_default(nodea): /etc/default/sbd absent",
        "write_corosync_conf(nodeb): corosync.conf absent",
        "write_authkey(nodeb): the corosync authkey absent",
        "write_sbd_default(nodeb): /etc/default/sbd absent",
        "create_sbd_header(nodea): the SBD disk has no header; the cluster is stopped",
        "hand_over_umount(nodea): /mnt/r0 is mounted by hand; Pacemaker mounts it from now on",
        "hand_over_down(nodea): DRBD runs by hand (cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate); "
        "Pacemaker starts it",
        "hand_over_down(nodeb): DRBD runs by hand (cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate); "
        "Pacemaker starts it",
        f"enable_cluster(nodea): {NOT_ENABLED}",
        f"enable_cluster(nodeb): {NOT_ENABLED}",
        "start_cluster(nodea): corosync or pacemaker not running",
        "start_cluster(nodeb): corosync or pacemaker not running",
        "wait_members: nodea, nodeb started: every node online",
        "load_cib(nodea): the CIB has no volume resources",
        "wait_serving: Pacemaker promotes and mounts the volume on one node",
    ]
    assert not any(s.force for s in steps)
    assert cluster_problems(pair(fresh), WANTED, install_packages=False) == []


def test_changed_files_on_a_stopped_node_say_they_differ() -> None:
    probes = pair(
        stopped,
        corosync_conf=OTHER_TOKEN_CONF,
        authkey_sha256=text_sha256("another key"),
        sbd_default=render_sbd_default(Sbd(watchdog_timeout_s=10, msgwait_s=20)),
    )
    steps = plan_cluster(probes, DOWN, WANTED, install_packages=False)
    assert [str(s) for s in steps if s.node == "nodea" and s.kind.startswith("write_")] == [
        "write_corosync_conf(nodea): corosync.conf differs from the settings",
        "write_authkey(nodea): the corosync authkey is not the Secret block's key",
        "write_sbd_default(nodea): /etc/default/sbd differs from the settings",
    ]
    assert not [s for s in steps if s.kind in ("keep_file", "reload_corosync")]  # own file, corosync stopped


def test_a_foreign_corosync_conf_is_kept_aside_before_it_is_replaced() -> None:
    probes = {"nodea": fresh("nodea", corosync_conf=PACKAGE_COROSYNC_CONF), "nodeb": fresh("nodeb")}
    steps = plan_cluster(probes, BY_HAND, WANTED, install_packages=False)
    keep = step(steps, "keep_file", "nodea")
    assert steps.index(keep) + 1 == steps.index(step(steps, "write_corosync_conf", "nodea"))
    assert keep.path == cmd.COROSYNC_CONF == "/etc/corosync/corosync.conf"
    assert keep.reason == "corosync.conf was not written by this project (the package's sample?)"
    assert step(steps, "write_corosync_conf", "nodea").reason == "corosync.conf differs from the settings"
    assert cluster_problems(probes, WANTED, install_packages=False) == []  # stopped: setup may replace it


def test_a_foreign_sbd_default_and_the_authkey_of_a_foreign_corosync_conf_are_kept_aside() -> None:
    package_sbd = "SBD_DEVICE=/dev/sdz\n"
    probes = {
        "nodea": fresh(
            "nodea",
            corosync_conf=PACKAGE_COROSYNC_CONF,
            authkey_sha256=text_sha256("the old cluster's key"),
            sbd_default=package_sbd,
        ),
        "nodeb": fresh("nodeb", authkey_sha256=text_sha256("a key beside our own corosync.conf")),
    }
    steps = plan_cluster(probes, BY_HAND, WANTED, install_packages=False)
    kept = [s.path for s in steps if s.kind == "keep_file" and s.node == "nodea"]
    assert kept == [cmd.COROSYNC_CONF, cmd.COROSYNC_AUTHKEY, cmd.SBD_DEFAULT]
    for path, write in zip(kept, ("write_corosync_conf", "write_authkey", "write_sbd_default"), strict=True):
        keep = next(s for s in steps if s.kind == "keep_file" and s.path == path)
        assert steps.index(keep) + 1 == steps.index(step(steps, write, "nodea"))  # copied, then replaced
    assert not [s for s in steps if s.kind == "keep_file" and s.node == "nodeb"]


def test_missing_tools_are_installed_first_with_every_package() -> None:
    probes = {
        "nodea": fresh("nodea", tools_found=[]),
        "nodeb": fresh("nodeb", tools_found=list(cmd.CLUSTER_TOOLS)),
    }
    steps = plan_cluster(probes, BY_HAND, WANTED, install_packages=True)
    assert kinds(steps)[:2] == [("install_cluster_tools", "nodea"), ("install_cluster_tools", "nodeb")]
    first, second = steps[:2]
    assert first.packages == second.packages == cmd.CLUSTER_PACKAGES + cmd.SBD_PACKAGES
    assert first.reason == "corosync, pacemakerd, crm, crm_mon, cibadmin, sbd not installed"
    assert second.reason == "sbd not installed"
    assert cluster_problems(probes, WANTED, install_packages=True) == []
    assert "install_cluster_tools" not in {s.kind for s in plan_cluster(probes, BY_HAND, WANTED, False)}


def test_a_changed_corosync_conf_is_reloaded_not_restarted() -> None:
    steps = plan_cluster(pair(running, corosync_conf=OTHER_TOKEN_CONF), BY_PACEMAKER, WANTED, False)
    assert step(steps, "reload_corosync", "nodea").reason == "corosync runs the old config on nodea, nodeb"
    assert [s.kind for s in steps].count("reload_corosync") == 1  # it reloads every member
    assert not {"start_cluster", "wait_members", "hand_over_umount", "hand_over_down"} & {
        s.kind for s in steps
    }
    # every node has the new file before any corosync rereads it
    last_write = max(i for i, s in enumerate(steps) if s.kind == "write_corosync_conf")
    first_reload = min(i for i, s in enumerate(steps) if s.kind == "reload_corosync")
    assert last_write < first_reload
    assert cluster_problems(pair(running, corosync_conf=OTHER_TOKEN_CONF), WANTED, False) == []


def test_a_changed_cib_is_loaded_on_the_first_node() -> None:
    steps = plan_cluster(pair(running, cib_sha256=text_sha256("older")), BY_PACEMAKER, WANTED, False)
    assert str(step(steps, "load_cib", "nodea")) == "load_cib(nodea): the settings changed the CIB"


def test_a_running_cluster_is_not_handed_the_volume_again() -> None:
    """Pacemaker runs on one node: the hand-over (umount, DRBD down) would take the volume from it."""
    probes = {"nodea": stopped("nodea"), "nodeb": running("nodeb")}
    steps = plan_cluster(probes, BY_HAND, WANTED, install_packages=False)
    assert not [s for s in steps if s.kind.startswith("hand_over")]


def test_corosync_alone_does_not_stop_the_hand_over() -> None:
    """Only Pacemaker owns the volume: with corosync up and pacemaker down, the volume is handed over."""
    units = {"corosync": "active", "pacemaker": "inactive", "sbd": "active"}
    probes = pair(running, active=units, status=None)
    steps = plan_cluster(probes, BY_HAND, WANTED, install_packages=False)
    assert kinds(steps) == [
        ("hand_over_umount", "nodea"),
        ("hand_over_down", "nodea"),
        ("hand_over_down", "nodeb"),
        ("start_cluster", "nodea"),
        ("start_cluster", "nodeb"),
        ("wait_members", None),
        ("load_cib", "nodea"),
        ("wait_serving", None),
    ]
    assert str(step(steps, "load_cib", "nodea")) == "load_cib(nodea): the CIB has no volume resources"


def test_the_header_is_written_from_the_first_nodes_view_with_its_reason() -> None:
    steps = plan_cluster(pair(stopped, sbd_header=OTHER_HEADER), DOWN, WANTED, install_packages=False)
    assert str(step(steps, "create_sbd_header", "nodea")) == (
        "create_sbd_header(nodea): the SBD header has watchdog 10 s, msgwait 20 s; the cluster is stopped"
    )
    assert cluster_problems(pair(stopped, sbd_header=OTHER_HEADER), WANTED, False) == []


def test_no_sbd_means_no_sbd_step() -> None:
    probes = pair(fresh, wanted=NO_SBD, sbd_device_present=False)
    steps = plan_cluster(probes, BY_HAND, NO_SBD, install_packages=False)
    assert not {"write_sbd_default", "create_sbd_header"} & {s.kind for s in steps}
    assert step(steps, "enable_cluster", "nodea").reason.startswith("corosync, pacemaker not enabled:")
    assert cluster_problems(probes, NO_SBD, install_packages=False) == []  # no SBD disk wanted
    missing = plan_cluster(pair(fresh, wanted=NO_SBD, tools_found=[]), BY_HAND, NO_SBD, install_packages=True)
    assert missing[0].packages == cmd.CLUSTER_PACKAGES
    assert missing[0].reason == "corosync, pacemakerd, crm, crm_mon, cibadmin not installed"


# -- cluster_problems: the table ----------------------------------------------------------------------------

NOT_INSTALLED = (
    "{node}: {tools} not installed (packages pacemaker corosync crmsh resource-agents fence-agents sbd; "
    "or set drbd.install_packages = true to let setup install them)"
)
FOREIGN = (
    "{node}: corosync runs with a corosync.conf this project did not write: another cluster lives here, "
    "and setup does not join or change it"
)
OTHER_KEY = (
    "{node}: corosync runs with another authkey than the Secret block's: a new key needs the cluster "
    "stopped on every node (systemctl stop pacemaker corosync), then run setup again"
)
NO_DEVICE = f"{{node}}: the SBD disk {SBD_DEVICE} does not exist (cluster.fencing.sbd.device)"
HOLDS_EXT4 = (
    f"{{node}}: the SBD disk {SBD_DEVICE} holds ext4, not an SBD header: setup writes SBD only onto a disk "
    "without a signature (wipefs it if it is unused)"
)
HEADER_WHILE_RUNNING = (
    "the SBD disk has {now}, the settings want watchdog 5 s, msgwait 10 s: the header is rewritten only "
    "while the cluster is stopped on every node (it runs on {running}: "
    "systemctl stop pacemaker corosync there)"
)

PROBLEMS: dict[str, tuple[dict[str, ClusterProbe], WantedCluster, bool, list[str]]] = {
    "as-specified": (pair(running), WANTED, False, []),
    "fresh": (pair(fresh), WANTED, False, []),
    "tools-missing": (
        {
            "nodea": fresh("nodea", tools_found=[]),
            "nodeb": fresh("nodeb", tools_found=list(cmd.CLUSTER_TOOLS)),
        },
        WANTED,
        False,
        [
            NOT_INSTALLED.format(node="nodea", tools="corosync, pacemakerd, crm, crm_mon, cibadmin, sbd"),
            NOT_INSTALLED.format(node="nodeb", tools="sbd"),
        ],
    ),
    "tools-missing-may-install": (pair(fresh, tools_found=[]), WANTED, True, []),
    "foreign-corosync-running": (
        {"nodea": running("nodea", corosync_conf=PACKAGE_COROSYNC_CONF), "nodeb": running("nodeb")},
        WANTED,
        False,
        [FOREIGN.format(node="nodea")],
    ),
    "foreign-corosync-stopped": (
        pair(fresh, corosync_conf=PACKAGE_COROSYNC_CONF),
        WANTED,
        False,
        [],
    ),
    "other-authkey-running": (
        {"nodea": running("nodea"), "nodeb": running("nodeb", authkey_sha256=text_sha256("another key"))},
        WANTED,
        False,
        [OTHER_KEY.format(node="nodeb")],
    ),
    "other-authkey-stopped": (pair(stopped, authkey_sha256=text_sha256("another key")), WANTED, False, []),
    "sbd-device-missing": (
        {"nodea": fresh("nodea", sbd_device_present=False), "nodeb": fresh("nodeb")},
        WANTED,
        False,
        [NO_DEVICE.format(node="nodea")],
    ),
    "sbd-device-holds-ext4": (
        {"nodea": fresh("nodea"), "nodeb": fresh("nodeb", sbd_device_type="ext4", sbd_header=None)},
        WANTED,
        False,
        [HOLDS_EXT4.format(node="nodeb")],
    ),
    "sbd-device-holds-unknown-data": (
        {"nodea": fresh("nodea", sbd_header=None, sbd_device_blank=False), "nodeb": fresh("nodeb")},
        WANTED,
        False,
        [
            "nodea: the SBD disk /dev/disk/by-id/virtio-sbd holds data (its first 65 KiB are not zeros), not "
            "an SBD header: setup writes SBD only onto a disk without a signature (wipefs it if it is unused)"
        ],
    ),
    "sbd-device-blank": (
        {"nodea": fresh("nodea", sbd_header=None, sbd_device_blank=True), "nodeb": fresh("nodeb")},
        WANTED,
        False,
        [],
    ),
    "sbd-header-differs-running": (
        pair(running, sbd_header=OTHER_HEADER),
        WANTED,
        False,
        [HEADER_WHILE_RUNNING.format(now="watchdog 10 s, msgwait 20 s", running="nodea, nodeb")],
    ),
    "sbd-no-header-running-on-one": (
        {"nodea": stopped("nodea", sbd_header=None), "nodeb": running("nodeb", sbd_header=None)},
        WANTED,
        False,
        [HEADER_WHILE_RUNNING.format(now="no header", running="nodeb")],
    ),
    "sbd-header-differs-stopped": (pair(stopped, sbd_header=OTHER_HEADER), WANTED, False, []),
    "no-sbd-wanted": (
        pair(fresh, wanted=NO_SBD, sbd_device_present=False, sbd_device_type="ext4"),
        NO_SBD,
        False,
        [],
    ),
    "everything-at-once": (
        {
            "nodea": running("nodea", corosync_conf=PACKAGE_COROSYNC_CONF, authkey_sha256=None),
            "nodeb": running("nodeb", sbd_device_present=False, tools_found=["corosync"]),
        },
        WANTED,
        False,
        [
            FOREIGN.format(node="nodea"),
            OTHER_KEY.format(node="nodea"),
            NOT_INSTALLED.format(node="nodeb", tools="pacemakerd, crm, crm_mon, cibadmin, sbd"),
            NO_DEVICE.format(node="nodeb"),
        ],
    ),
}


@pytest.mark.parametrize(
    ("probes", "wanted", "install", "expected"), list(PROBLEMS.values()), ids=list(PROBLEMS)
)
def test_problems(
    probes: dict[str, ClusterProbe], wanted: WantedCluster, install: bool, expected: list[str]
) -> None:
    assert cluster_problems(probes, wanted, install) == expected


def test_a_header_with_other_timeouts_is_one_line_naming_both() -> None:
    (line,) = cluster_problems(pair(running, sbd_header=OTHER_HEADER), WANTED, install_packages=False)
    assert "watchdog 10 s, msgwait 20 s" in line and "watchdog 5 s, msgwait 10 s" in line
