"""Unit tests for tasks/drbd/probes.py: parsers fed real outputs captured from the lab's DRBD 8.4 VMs,
and hand-written samples in the same formats for states the lab rarely shows (resync, peer loss, …)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tasks.drbd.probes import (
    DrbdState,
    parse_blkid_export,
    parse_events2,
    parse_findmnt,
    parse_proc_drbd,
    state_from_events2,
    state_from_status_json,
)

FIXTURES = Path(__file__).parents[3] / "fixtures" / "drbd"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


HEADER = "version: 8.4.11 (api:1/proto:86-101)\nsrcversion: F73C670A7EC572DB9CF3E5B \n"

PROC_SYNC_SOURCE = HEADER + (
    " 0: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----\n"
    "    ns:151968 nr:0 dw:0 dr:153016 al:8 bm:0 lo:0 pe:1 ua:0 ap:0 ep:1 wo:f oos:896540\n"
    "\t[==>.................] sync'ed: 14.5% (896540/1048508)K\n"
    "\tfinish: 0:00:18 speed: 48,540 (48,540) K/sec\n"
)

PROC_PEER_LOST = HEADER + (
    " 0: cs:WFConnection ro:Secondary/Unknown ds:UpToDate/DUnknown C r-----\n"
    "    ns:0 nr:1049136 dw:2130552 dr:2153 al:9 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n"
)

PROC_UNCONFIGURED = HEADER + " 0: cs:Unconfigured\n"

PROC_BRAND_NEW = HEADER + (
    " 0: cs:Connected ro:Secondary/Secondary ds:Inconsistent/Inconsistent C r-----\n"
    "    ns:0 nr:0 dw:0 dr:0 al:8 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:1048508\n"
)

PROC_TWO_MINORS = HEADER + (
    " 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n"
    "    ns:1049136 nr:8 dw:1082044 dr:1054986 al:14 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n"
    " 1: cs:SyncTarget ro:Secondary/Primary ds:Inconsistent/UpToDate C r-----\n"
    "    ns:0 nr:524288 dw:524288 dr:0 al:8 bm:0 lo:1 pe:3 ua:1 ap:0 ep:1 wo:f oos:524220\n"
    "\t[=========>..........] sync'ed: 50.1% (524220/1048508)K\n"
    "\tfinish: 0:00:11 speed: 46,000 (44,120) want: 102,400 K/sec\n"
)

PROC_NO_DEVICES = HEADER


# -- /proc/drbd: captured ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "role", "peer_role"),
    [
        ("proc_drbd_connected_primary.txt", "Primary", "Secondary"),
        ("proc_drbd_connected_secondary.txt", "Secondary", "Primary"),
    ],
)
def test_proc_drbd_captured(name: str, role: str, peer_role: str) -> None:
    devices = parse_proc_drbd(fixture(name))
    assert list(devices) == [0]
    state = devices[0]
    assert state.minor == 0
    assert state.connection == "Connected"
    assert (state.role, state.peer_role) == (role, peer_role)
    assert (state.disk, state.peer_disk) == ("UpToDate", "UpToDate")
    assert state.configured
    assert state.connected
    assert state.healthy
    assert not state.brand_new
    assert not state.syncing
    assert state.out_of_sync_kib == 0
    assert state.sync_percent is None
    assert state.finish is None
    assert state.summary() == f"cs:Connected ro:{role}/{peer_role} ds:UpToDate/UpToDate"


# -- /proc/drbd: hand-written samples ---------------------------------------------------------------


def test_proc_drbd_sync_source_progress() -> None:
    state = parse_proc_drbd(PROC_SYNC_SOURCE)[0]
    assert state.connection == "SyncSource"
    assert (state.role, state.peer_role) == ("Primary", "Secondary")
    assert (state.disk, state.peer_disk) == ("UpToDate", "Inconsistent")
    assert state.sync_percent == 14.5
    assert state.out_of_sync_kib == 896540
    assert state.finish == "0:00:18"
    assert state.syncing
    assert state.connected
    assert not state.healthy
    assert not state.brand_new


def test_proc_drbd_survivor_after_peer_loss() -> None:
    state = parse_proc_drbd(PROC_PEER_LOST)[0]
    assert state.connection == "WFConnection"
    assert state.configured
    assert not state.connected
    assert not state.syncing
    assert not state.healthy
    assert (state.role, state.peer_role) == ("Secondary", "Unknown")
    assert (state.disk, state.peer_disk) == ("UpToDate", "DUnknown")
    assert state.out_of_sync_kib == 0


def test_proc_drbd_unconfigured() -> None:
    state = parse_proc_drbd(PROC_UNCONFIGURED)[0]
    assert state.connection == "Unconfigured"
    assert not state.configured
    assert not state.connected
    # no ro:/ds: on the line: the defaults apply
    assert (state.role, state.peer_role, state.disk, state.peer_disk) == (
        "Unknown",
        "Unknown",
        "DUnknown",
        "DUnknown",
    )
    assert state.out_of_sync_kib is None


def test_proc_drbd_brand_new() -> None:
    state = parse_proc_drbd(PROC_BRAND_NEW)[0]
    assert state.brand_new
    assert state.connected
    assert not state.healthy
    assert not state.syncing
    assert (state.role, state.peer_role) == ("Secondary", "Secondary")
    assert state.out_of_sync_kib == 1048508


def test_proc_drbd_two_minors_keep_their_own_details() -> None:
    devices = parse_proc_drbd(PROC_TWO_MINORS)
    assert sorted(devices) == [0, 1]
    first, second = devices[0], devices[1]
    assert first.healthy
    assert first.sync_percent is None
    assert first.finish is None
    assert first.out_of_sync_kib == 0
    assert second.connection == "SyncTarget"
    assert second.minor == 1
    assert (second.role, second.disk, second.peer_disk) == ("Secondary", "Inconsistent", "UpToDate")
    assert second.syncing
    assert second.sync_percent == 50.1
    assert second.out_of_sync_kib == 524220
    assert second.finish == "0:00:11"


@pytest.mark.parametrize("text", [PROC_NO_DEVICES, "", "version: 8.4.11 (api:1/proto:86-101)\n"])
def test_proc_drbd_without_devices(text: str) -> None:
    assert parse_proc_drbd(text) == {}


# -- events2 ----------------------------------------------------------------------------------------


def test_parse_events2_captured() -> None:
    events = parse_events2(fixture("events2_now_primary.txt"))
    assert [e["object"] for e in events] == ["resource", "connection", "device", "peer-device"]
    assert all(e["event"] == "exists" for e in events)
    assert events[0] == {
        "event": "exists",
        "object": "resource",
        "name": "r0",
        "role": "Primary",
        "suspended": "no",
    }
    assert events[1]["connection"] == "Connected"
    assert events[1]["conn-name"] == "peer"
    assert events[2]["minor"] == "0"
    assert events[3]["replication"] == "Established"
    assert events[3]["peer-disk"] == "UpToDate"


def test_state_from_events2_captured() -> None:
    state = state_from_events2(fixture("events2_now_primary.txt"), minor=0)
    assert state.minor == 0
    assert state.role == "Primary"
    assert state.connection == "Connected"
    assert state.peer_role == "Secondary"
    assert state.disk == "UpToDate"
    assert state.peer_disk == "UpToDate"
    assert state.healthy


def test_state_from_events2_other_minor_has_unknown_disk() -> None:
    state = state_from_events2(fixture("events2_now_primary.txt"), minor=1)
    assert state.minor == 1
    assert state.disk == "DUnknown"


@pytest.mark.parametrize("text", ["exists -\n", ""])
def test_state_from_events2_empty_snapshot(text: str) -> None:
    assert parse_events2(text) == []
    state = state_from_events2(text, minor=0)
    assert state.connection == "Unconfigured"
    assert not state.configured
    assert (state.role, state.disk) == ("Unknown", "DUnknown")


def test_state_from_events2_resync() -> None:
    text = (
        "exists resource name:r0 role:Primary suspended:no\n"
        "exists connection name:r0 peer-node-id:0 conn-name:peer connection:Connected role:Secondary\n"
        "exists device name:r0 volume:0 minor:0 disk:UpToDate\n"
        "exists peer-device name:r0 peer-node-id:0 conn-name:peer volume:0 replication:SyncSource "
        "peer-disk:Inconsistent resync-suspended:no\n"
        "exists -\n"
    )
    state = state_from_events2(text, minor=0)
    assert state.connection == "SyncSource"
    assert state.syncing
    assert state.peer_disk == "Inconsistent"


def test_state_from_events2_resource_without_connection_is_standalone() -> None:
    text = (
        "exists resource name:r0 role:Secondary suspended:no\n"
        "exists device name:r0 volume:0 minor:0 disk:UpToDate\n"
        "exists -\n"
    )
    state = state_from_events2(text, minor=0)
    assert state.connection == "StandAlone"
    assert state.configured
    assert not state.connected
    assert state.role == "Secondary"
    assert state.peer_disk == "DUnknown"


# -- DRBD 9 status --json ---------------------------------------------------------------------------

STATUS_JSON = """[
{
  "name": "r0",
  "node-id": 1,
  "role": "Primary",
  "suspended": false,
  "suspended-user": false,
  "suspended-no-data": false,
  "suspended-fencing": false,
  "suspended-quorum": false,
  "force-io-failures": false,
  "write-ordering": "flush",
  "devices": [
    {
      "volume": 0,
      "minor": 2,
      "disk-state": "UpToDate",
      "client": false,
      "quorum": true,
      "size": 1048508,
      "read": 2153,
      "written": 1082044,
      "al-writes": 14,
      "bm-writes": 0,
      "upper-pending": 0,
      "lower-pending": 0
    } ],
  "connections": [
    {
      "peer-node-id": 0,
      "name": "nodeb",
      "connection-state": "Connected",
      "congested": false,
      "peer-role": "Secondary",
      "ap-in-flight": 0,
      "rs-in-flight": 0,
      "peer_devices": [
        {
          "volume": 0,
          "replication-state": "Established",
          "peer-disk-state": "UpToDate",
          "peer-client": false,
          "resync-suspended": "no",
          "received": 0,
          "sent": 1049136,
          "out-of-sync": 0,
          "pending": 0,
          "unacked": 0,
          "has-sync-details": false,
          "has-online-verify-details": false,
          "percent-in-sync": 100.00
        } ]
    } ]
}
]
"""


def _status(mutate: Any = None) -> str:
    doc = json.loads(STATUS_JSON)
    if mutate:
        mutate(doc[0])
    return json.dumps(doc)


def test_status_json_connected_pair() -> None:
    state = state_from_status_json(STATUS_JSON, "r0")
    assert state == DrbdState(
        minor=2,
        connection="Connected",
        role="Primary",
        peer_role="Secondary",
        disk="UpToDate",
        peer_disk="UpToDate",
        out_of_sync_kib=0,
    )
    assert state.healthy
    assert state.sync_percent is None  # 100 % in sync is not reported as a resync


def test_status_json_sync_source() -> None:
    def syncing(res: dict[str, Any]) -> None:
        peer = res["connections"][0]["peer_devices"][0]
        peer.update(
            {
                "replication-state": "SyncSource",
                "peer-disk-state": "Inconsistent",
                "out-of-sync": 603028,
                "percent-in-sync": 42.5,
                "has-sync-details": True,
            }
        )

    state = state_from_status_json(_status(syncing), "r0")
    assert state.connection == "SyncSource"
    assert state.sync_percent == 42.5
    assert state.out_of_sync_kib == 603028
    assert state.syncing
    assert state.connected
    assert state.peer_disk == "Inconsistent"
    assert not state.healthy


def test_status_json_without_connections_is_standalone() -> None:
    def alone(res: dict[str, Any]) -> None:
        res["role"] = "Secondary"
        res["connections"] = []

    state = state_from_status_json(_status(alone), "r0")
    assert state.connection == "StandAlone"
    assert state.configured
    assert not state.connected
    assert state.role == "Secondary"
    assert state.disk == "UpToDate"
    assert (state.peer_role, state.peer_disk) == ("Unknown", "DUnknown")


def test_status_json_picks_the_named_resource() -> None:
    doc = json.loads(STATUS_JSON)
    other = copy.deepcopy(doc[0])
    other.update({"name": "r1", "role": "Secondary"})
    other["devices"][0]["minor"] = 7
    state = state_from_status_json(json.dumps([doc[0], other]), "r1")
    assert (state.minor, state.role) == (7, "Secondary")


@pytest.mark.parametrize("text", [STATUS_JSON, "[]"])
def test_status_json_missing_resource_is_unconfigured(text: str) -> None:
    state = state_from_status_json(text, "nosuch")
    assert state.connection == "Unconfigured"
    assert not state.configured


# -- blkid ------------------------------------------------------------------------------------------


def test_blkid_drbd_metadata() -> None:
    sig = parse_blkid_export(fixture("blkid_backing_drbd.txt"))
    assert sig.type == "drbd"
    assert sig.is_drbd_metadata
    assert not sig.blank
    assert sig.usage == "raid"
    assert sig.uuid == "fd0a2d97dc561710"
    assert sig.label is None


def test_blkid_ext4_volume() -> None:
    sig = parse_blkid_export(fixture("blkid_volume_ext4.txt"))
    assert (sig.type, sig.label, sig.usage) == ("ext4", "r0", "filesystem")
    assert sig.uuid == "65d343ad-a443-4e9c-af43-dc693771ff78"
    assert not sig.is_drbd_metadata
    assert not sig.blank


def test_blkid_seed_ext4() -> None:
    sig = parse_blkid_export(fixture("blkid_seed_ext4.txt"))
    assert (sig.type, sig.label) == ("ext4", "labseed")


def test_blkid_value_with_equals_sign_is_kept_whole() -> None:
    sig = parse_blkid_export("LABEL=a=b\nTYPE=xfs\n")
    assert (sig.type, sig.label) == ("xfs", "a=b")


@pytest.mark.parametrize("text", ["", "\n"])
def test_blkid_empty_is_blank(text: str) -> None:
    sig = parse_blkid_export(text)
    assert sig.blank
    assert not sig.is_drbd_metadata
    assert (sig.type, sig.label, sig.uuid, sig.usage) == (None, None, None, None)


# -- findmnt ----------------------------------------------------------------------------------------


def test_findmnt_mounted() -> None:
    mount = parse_findmnt(fixture("findmnt_mounted.txt"))
    assert mount is not None
    assert mount.source == "/dev/drbd0"
    assert mount.target == "/mnt/r0"
    assert mount.fstype == "ext4"
    assert mount.options == "rw,relatime"


@pytest.mark.parametrize("text", [fixture("findmnt_not_mounted.txt"), '{"filesystems": []}', "  \n"])
def test_findmnt_nothing_mounted(text: str) -> None:
    assert parse_findmnt(text) is None
