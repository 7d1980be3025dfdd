"""Unit tests for tasks/pacemaker/probes.py: parsers fed real output captured from the lab's two-node
cluster (pacemaker 2.1.5, corosync 3.1.7, sbd 1.5.2; tests/fixtures/pacemaker/captured/), and small
hand-written samples in the same formats for what the captures do not show (failures, an unclean node,
crm-fence-peer.sh's constraint)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tasks.pacemaker.model import Cib, FenceParams, Sbd, stonith_devices
from tasks.pacemaker.probes import (
    ClusterNode,
    ClusterStatus,
    FenceEvent,
    ResourceInstance,
    SbdHeader,
    fence_constraints,
    parse_crm_mon_xml,
    parse_fence_history,
    parse_quorum_members,
    parse_sbd_dump,
    parse_sha256sum,
    parse_unit_states,
    successful,
)

CAPTURED = Path(__file__).parents[3] / "fixtures" / "pacemaker" / "captured"


def captured(name: str) -> str:
    return (CAPTURED / name).read_text()


# The lab's CIB model (fence_sbd, resource r0), as setup renders it for the captured cluster.
LAB_CIB = Cib(
    cluster_name="pmlab",
    nodes=("nodea", "nodeb"),
    stonith_devices=stonith_devices("fence_sbd", ("nodea", "nodeb"), FenceParams(), {}, Sbd()),
)


def at(text: str) -> datetime:
    """A UTC time as crm_mon prints it ("2026-11-26 13:22:29Z")."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- crm_mon --output-as=xml: the healthy cluster ----------------------------------------------------------


@pytest.fixture(scope="module")
def healthy() -> ClusterStatus:
    return parse_crm_mon_xml(captured("crm_mon-healthy.xml"))


@pytest.fixture(scope="module")
def peer_fenced() -> ClusterStatus:
    return parse_crm_mon_xml(captured("crm_mon-peer-fenced.xml"))


def test_healthy_summary_dc_and_quorum(healthy: ClusterStatus) -> None:
    assert (healthy.dc, healthy.quorate) == ("nodea", True)


def test_healthy_nodes(healthy: ClusterStatus) -> None:
    assert healthy.nodes == {
        "nodea": ClusterNode(name="nodea", online=True, is_dc=True),
        "nodeb": ClusterNode(name="nodeb", online=True, is_dc=False),
    }
    assert healthy.online() == ["nodea", "nodeb"]


def test_healthy_resources_and_clone_instances(healthy: ClusterStatus) -> None:
    assert healthy.resources == [
        ResourceInstance(id="p_fs_r0", clone=None, role="Started", node="nodeb"),
        ResourceInstance(id="st_sbd", clone=None, role="Started", node="nodea"),
        ResourceInstance(id="p_drbd_r0", clone="ms_drbd_r0", role="Promoted", node="nodeb"),
        ResourceInstance(id="p_drbd_r0", clone="ms_drbd_r0", role="Unpromoted", node="nodea"),
    ]
    assert (healthy.failures, healthy.fencing) == ([], [])


def test_healthy_where_things_run(healthy: ClusterStatus) -> None:
    # a clone is found by its own id and by its child's
    assert healthy.promoted_on("ms_drbd_r0") == "nodeb"
    assert healthy.promoted_on("p_drbd_r0") == "nodeb"
    assert healthy.started_on("p_fs_r0") == "nodeb"
    assert healthy.started_on("st_sbd") == "nodea"
    assert healthy.started_on("ms_drbd_r0") is None  # promoted and unpromoted, never "Started"
    assert [r.node for r in healthy.instances("ms_drbd_r0")] == ["nodeb", "nodea"]
    assert healthy.instances("p_ip_r0") == []
    assert healthy.role_on("p_drbd_r0", "nodea") == "Unpromoted"
    assert healthy.role_on("ms_drbd_r0", "nodeb") == "Promoted"
    assert healthy.role_on("p_fs_r0", "nodea") == "Stopped"  # absent there
    assert healthy.fenced("nodea") is None and healthy.fenced("nodeb") is None


def test_healthy_one_line_summary(healthy: ClusterStatus) -> None:
    assert healthy.summary() == (
        "nodea online (DC), nodeb online; quorate; p_fs_r0 Started on nodeb, st_sbd Started on nodea, "
        "p_drbd_r0 Promoted on nodeb, p_drbd_r0 Unpromoted on nodea"
    )


def test_the_text_form_captured_alongside_says_the_same(healthy: ClusterStatus) -> None:
    """crm_mon's own text (what an operator reads, captured a few seconds later) agrees with the XML."""
    text = captured("crm_mon-healthy.txt")
    dc = re.search(r"Current DC: (\S+) .* - partition (with|WITHOUT) quorum", text)
    online = re.search(r"Online: \[ (.*) \]", text)
    assert dc is not None and online is not None
    assert (dc[1], dc[2] == "with") == (healthy.dc, healthy.quorate)
    assert online[1].split() == healthy.online()
    started = dict(re.findall(r"\* (\S+)\t\(\S+\):\t Started (\S+)", text))
    assert started == {"p_fs_r0": "nodeb", "st_sbd": "nodea"}
    assert started == {r: healthy.started_on(r) for r in ("p_fs_r0", "st_sbd")}
    roles = dict(re.findall(r"\* (Promoted|Unpromoted): \[ (\S+) \]", text))
    assert roles == {"Promoted": "nodeb", "Unpromoted": "nodea"}
    assert {healthy.role_on("p_drbd_r0", node): node for node in ("nodea", "nodeb")} == roles


# -- crm_mon --output-as=xml: nodea fenced, nodeb survives --------------------------------------------------


def test_peer_fenced_nodes(peer_fenced: ClusterStatus) -> None:
    assert (peer_fenced.dc, peer_fenced.quorate) == ("nodeb", True)  # two_node: the survivor keeps quorum
    assert peer_fenced.nodes == {
        "nodea": ClusterNode(name="nodea", online=False),  # fenced, so not unclean
        "nodeb": ClusterNode(name="nodeb", online=True, is_dc=True),
    }
    assert peer_fenced.online() == ["nodeb"]


def test_peer_fenced_resources(peer_fenced: ClusterStatus) -> None:
    assert peer_fenced.resources == [
        ResourceInstance(id="p_fs_r0", clone=None, role="Stopped", node=None),
        ResourceInstance(id="st_sbd", clone=None, role="Started", node="nodeb"),
        ResourceInstance(id="p_drbd_r0", clone="ms_drbd_r0", role="Unpromoted", node="nodeb"),
        ResourceInstance(id="p_drbd_r0", clone="ms_drbd_r0", role="Stopped", node=None),
    ]
    assert peer_fenced.promoted_on("ms_drbd_r0") is None
    assert peer_fenced.started_on("p_fs_r0") is None
    assert peer_fenced.started_on("st_sbd") == "nodeb"
    assert peer_fenced.role_on("p_drbd_r0", "nodeb") == "Unpromoted"
    assert peer_fenced.role_on("p_drbd_r0", "nodea") == "Stopped"
    assert peer_fenced.failures == []


def test_peer_fenced_history(peer_fenced: ClusterStatus) -> None:
    assert [(e.target, e.action, e.status, e.delegate, e.completed) for e in peer_fenced.fencing] == [
        ("nodea", "reboot", "success", "nodeb", at("2026-11-26 13:22:29")),
        ("nodeb", "reboot", "success", "nodea", at("2026-11-26 13:13:39")),
        ("nodea", "reboot", "success", "nodeb", at("2026-11-26 13:10:02")),
        ("nodeb", "reboot", "success", "nodea", at("2026-11-26 13:06:46")),
    ]
    assert [e.completed for e in successful(peer_fenced.fencing, "nodea")] == [
        at("2026-11-26 13:22:29"),
        at("2026-11-26 13:10:02"),
    ]
    latest = peer_fenced.fenced("nodea")
    assert latest is not None
    assert (latest.delegate, latest.completed) == ("nodeb", at("2026-11-26 13:22:29"))
    latest_b = peer_fenced.fenced("nodeb")
    assert latest_b is not None
    assert (latest_b.delegate, latest_b.completed) == ("nodea", at("2026-11-26 13:13:39"))
    assert peer_fenced.fenced("nodec") is None


def test_peer_fenced_one_line_summary(peer_fenced: ClusterStatus) -> None:
    assert peer_fenced.summary() == (
        "nodea offline, nodeb online (DC); quorate; st_sbd Started on nodeb, p_drbd_r0 Unpromoted on nodeb"
    )


def test_the_captured_ids_are_the_ones_the_cib_model_names(healthy: ClusterStatus) -> None:
    """The plan looks resources up by the model's ids: the lab's CIB (same model) used exactly these."""
    assert healthy.started_on(LAB_CIB.fs_id) == "nodeb"
    assert healthy.promoted_on(LAB_CIB.clone_id) == "nodeb"
    assert {r.id for r in healthy.instances(LAB_CIB.clone_id)} == {LAB_CIB.drbd_id}


# -- crm_mon --output-as=xml: hand-written states --------------------------------------------------------

# The captures' shape, with what they do not show: an unclean, a standby and a pending node, no quorum,
# a group, failed actions, and fencings pending, failed and timed in ISO form.
TROUBLED = """<pacemaker-result api-version="2.25" request="crm_mon --one-shot --inactive --output-as=xml">
  <summary>
    <current_dc present="true" name="nodeb" id="2" with_quorum="false"/>
  </summary>
  <nodes>
    <node name="nodea" id="1" online="false" standby="false" pending="false" unclean="true" is_dc="false"/>
    <node name="nodeb" id="2" online="true" standby="true" pending="false" unclean="false" is_dc="true"/>
    <node name="nodec" id="3" online="false" standby="false" pending="true" unclean="false" is_dc="false"/>
  </nodes>
  <resources>
    <resource id="p_fs_r0" role="Stopped" active="false" failed="true" nodes_running_on="0"/>
    <group id="g_svc" number_resources="1">
      <resource id="p_ip_r0" role="Started" active="true" failed="false" nodes_running_on="1">
        <node name="nodeb" id="2" cached="true"/>
      </resource>
    </group>
  </resources>
  <failures>
    <failure op_key="p_fs_r0_start_0" node="nodeb" exitstatus="error" exitreason="Couldn't mount device"
      exitcode="1" call="21" status="complete" interval="0" task="start"/>
    <failure task="monitor" node="nodea" exitstatus="not running" status="complete"/>
  </failures>
  <fence_history>
    <fence_event action="reboot" target="nodea" origin="nodeb" status="pending"/>
    <fence_event action="off" target="nodea" origin="nodeb" status="failed" delegate="nodeb"
      completed="not a time"/>
    <fence_event action="reboot" target="nodea" origin="nodeb" status="success" delegate="nodeb"
      completed="2026-11-26T13:01:02.345678+00:00"/>
  </fence_history>
</pacemaker-result>"""


def test_an_unclean_node_is_not_online_and_failures_are_described() -> None:
    status = parse_crm_mon_xml(TROUBLED)
    assert (status.dc, status.quorate) == ("nodeb", False)
    assert status.nodes["nodea"] == ClusterNode(name="nodea", online=False, unclean=True)
    assert status.nodes["nodeb"].standby and status.nodes["nodec"].pending
    assert status.online() == ["nodeb"]
    assert status.resources == [
        ResourceInstance(id="p_fs_r0", role="Stopped", node=None, failed=True),
        ResourceInstance(id="p_ip_r0", clone="g_svc", role="Started", node="nodeb"),
    ]
    assert [f.describe() for f in status.failures] == [
        "p_fs_r0_start_0 on nodeb: Couldn't mount device",
        "monitor on nodea: not running",  # no op_key: the task; no exitreason: the exit status
    ]
    assert status.summary() == (
        "nodea UNCLEAN, nodeb online (DC), nodec offline; NO QUORUM; p_ip_r0 Started on nodeb; "
        "failures: p_fs_r0_start_0 on nodeb: Couldn't mount device, monitor on nodea: not running"
    )


def test_fence_times_in_either_form_and_unreadable_ones_are_none() -> None:
    events = parse_crm_mon_xml(TROUBLED).fencing
    assert [(e.status, e.delegate, e.completed) for e in events] == [
        ("pending", None, None),
        ("failed", "nodeb", None),
        ("success", "nodeb", datetime(2026, 11, 26, 13, 1, 2, 345678, tzinfo=UTC)),
    ]
    assert successful(events, "nodea") == [events[2]]


def test_no_dc_while_electing_and_nothing_configured() -> None:
    status = parse_crm_mon_xml(
        '<pacemaker-result><summary><current_dc present="false"/></summary>'
        "<nodes/><resources/></pacemaker-result>"
    )
    assert status == ClusterStatus()
    assert (status.dc, status.quorate, status.online()) == (None, False, [])
    assert status.summary() == "; NO QUORUM; nothing runs"


def test_a_success_without_a_time_ranks_below_the_timed_ones() -> None:
    timed = FenceEvent(target="nodea", action="reboot", status="success", completed=at("2026-11-26 13:22:29"))
    untimed = FenceEvent(target="nodea", action="reboot", status="success")
    assert ClusterStatus(fencing=[untimed, timed]).fenced("nodea") == timed


# -- stonith_admin --history NODE --verbose --output-as=xml ----------------------------------------------


def test_fence_history_of_one_node() -> None:
    events = parse_fence_history(captured("fence-history-nodeb.xml"))
    assert events == [
        FenceEvent(
            target="nodeb",
            action="reboot",
            status="success",
            delegate="nodea",
            completed=at("2026-11-26 13:13:39"),
        ),
        FenceEvent(
            target="nodeb",
            action="reboot",
            status="success",
            delegate="nodea",
            completed=at("2026-11-26 13:06:46"),
        ),
    ]
    assert successful(events, "nodeb") == events
    assert successful(events, "nodea") == []
    # the same two fencings as the survivor's crm_mon listed
    fenced = parse_crm_mon_xml(captured("crm_mon-peer-fenced.xml")).fencing
    assert successful(fenced, "nodeb") == events


def test_fence_history_empty() -> None:
    empty = '<pacemaker-result><list name="fencing history" count="0"/><status code="0"/></pacemaker-result>'
    assert parse_fence_history(empty) == []


# -- corosync-quorumtool -l -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "members"),
    [("quorum-members.txt", ["nodea", "nodeb"]), ("quorum-members-lost.txt", ["nodeb"])],
    ids=["both", "peer-lost"],
)
def test_quorum_members(name: str, members: list[str]) -> None:
    assert parse_quorum_members(captured(name)) == members


@pytest.mark.parametrize("text", ["", "Cannot initialize QUORUM service\n"])
def test_quorum_members_without_a_table(text: str) -> None:
    assert parse_quorum_members(text) == []


# -- sbd -d DEV dump --------------------------------------------------------------------------------------


def test_sbd_dump_reads_the_header_timeouts() -> None:
    assert parse_sbd_dump(captured("sbd-dump.txt")) == SbdHeader(watchdog_s=5, msgwait_s=10)


@pytest.mark.parametrize(
    "text",
    [
        "==Dumping header on disk /dev/vdb\n",  # what sbd prints for a disk without a header
        "",
        "Timeout (watchdog) : 5\nTimeout (allocate) : 2\n",  # one of the two: not a header
    ],
    ids=["no-header", "empty", "watchdog-only"],
)
def test_sbd_dump_without_a_header_is_none(text: str) -> None:
    assert parse_sbd_dump(text) is None


# -- systemctl is-active / is-enabled, sha256sum ---------------------------------------------------------

UNITS = ("corosync", "pacemaker", "sbd")


@pytest.mark.parametrize(
    ("text", "states"),
    [
        ("active\nactive\nactive\n", {"corosync": "active", "pacemaker": "active", "sbd": "active"}),
        ("enabled\ndisabled\nstatic\n", {"corosync": "enabled", "pacemaker": "disabled", "sbd": "static"}),
        ("active\ninactive\n", {"corosync": "active", "pacemaker": "inactive", "sbd": "unknown"}),
        ("", {"corosync": "unknown", "pacemaker": "unknown", "sbd": "unknown"}),
    ],
    ids=["all-active", "mixed", "fewer-words-than-units", "nothing"],
)
def test_unit_states_one_per_unit_in_order(text: str, states: dict[str, str]) -> None:
    assert parse_unit_states(UNITS, text) == states


def test_sha256sum() -> None:
    digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    assert parse_sha256sum(f"{digest}  /etc/corosync/authkey\n") == digest
    assert parse_sha256sum(f"{digest}\n") == digest


@pytest.mark.parametrize("text", ["", "\n", "   "])
def test_sha256sum_of_nothing_is_none(text: str) -> None:
    assert parse_sha256sum(text) is None


# -- cibadmin --query --scope constraints -----------------------------------------------------------------

# The shape crm-fence-peer.sh writes (DRBD 8.4 on pacemaker 2.1: role="Master"), for r0 with nodeb alone
# allowed to be promoted.
FENCE_ID = "drbd-fence-by-handler-r0-ms_drbd_r0"
HANDLER_CONSTRAINT = (
    '<rsc_location rsc="ms_drbd_r0" id="drbd-fence-by-handler-r0-ms_drbd_r0">'
    '<rule role="Master" score="-INFINITY" id="drbd-fence-by-handler-r0-rule-ms_drbd_r0">'
    '<expression attribute="#uname" operation="ne" value="nodeb" '
    'id="drbd-fence-by-handler-r0-expr-ms_drbd_r0"/>'
    "</rule></rsc_location>"
)
FENCED_CONSTRAINTS = f"<constraints>{HANDLER_CONSTRAINT}</constraints>"


@pytest.mark.parametrize("name", ["constraints-healthy.xml", "constraints-peer-fenced.xml"])
def test_no_fence_constraint_in_the_captured_cibs(name: str) -> None:
    text = captured(name)
    assert "c_fs_on_drbd" in text  # the CIB's own constraints are there …
    assert fence_constraints(text) == []  # … and none is the handler's


def test_the_handlers_constraint_is_found() -> None:
    found = fence_constraints(FENCED_CONSTRAINTS)
    assert found and found[0] == FENCE_ID
    assert all(i.startswith("drbd-fence-by-handler-") for i in found)
    # beside the CIB's own constraints too
    healthy = captured("constraints-healthy.xml").replace(
        "</constraints>", f"{HANDLER_CONSTRAINT}</constraints>"
    )
    assert fence_constraints(healthy)[0] == FENCE_ID
    # the id crm-fence-peer.sh forms is drbd-fence-by-handler-<resource>-<the model's clone id>
    assert f"drbd-fence-by-handler-{LAB_CIB.drbd_resource}-{LAB_CIB.clone_id}" == FENCE_ID


def test_each_fence_constraint_is_listed_once() -> None:
    assert fence_constraints(FENCED_CONSTRAINTS) == [FENCE_ID]
