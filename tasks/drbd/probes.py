"""Parsers that turn DRBD's and the system's own output into typed state. Pure: text in, model out."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, Field

# " 0: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----"
_PROC_DEVICE = re.compile(
    r"^\s*(?P<minor>\d+):\s+cs:(?P<cs>\S+)"
    r"(?:\s+ro:(?P<role>\S+)/(?P<peer_role>\S+)\s+ds:(?P<disk>\S+)/(?P<peer_disk>\S+))?"
)
_PROC_SYNCED = re.compile(r"sync'ed:\s*(?P<percent>[\d.]+)%")
_PROC_OOS = re.compile(r"\boos:(?P<oos>\d+)")
_PROC_FINISH = re.compile(r"finish:\s*(?P<finish>\d+:\d+:\d+)")

SYNCING_STATES = frozenset(
    {
        "SyncSource",
        "SyncTarget",
        "PausedSyncS",
        "PausedSyncT",
        "StartingSyncS",
        "StartingSyncT",
        "WFBitMapS",
        "WFBitMapT",
        "WFSyncUUID",
    }
)


class DrbdState(BaseModel):
    """One DRBD device as its node sees it. Names follow DRBD 8.4 (cs/ro/ds)."""

    minor: int
    connection: str = Field(description="cs: Connected, WFConnection, StandAlone, SyncSource, Unconfigured…")
    role: str = Field("Unknown", description="This node's role: Primary / Secondary.")
    peer_role: str = Field("Unknown", description="The peer's role as this node last knew it.")
    disk: str = Field("DUnknown", description="This node's disk state: UpToDate, Inconsistent, Diskless…")
    peer_disk: str = Field("DUnknown", description="The peer's disk state as this node knows it.")
    sync_percent: float | None = Field(None, description="Resync progress while syncing.")
    out_of_sync_kib: int | None = Field(None, description="Data still to resync (oos), KiB.")
    finish: str | None = Field(None, description="DRBD's own estimate of the resync's remaining time.")

    @property
    def configured(self) -> bool:
        return self.connection != "Unconfigured"

    @property
    def connected(self) -> bool:
        return self.connection == "Connected" or self.connection in SYNCING_STATES

    @property
    def syncing(self) -> bool:
        return self.connection in SYNCING_STATES

    @property
    def healthy(self) -> bool:
        """Connected with both disks UpToDate: fully redundant."""
        return self.connection == "Connected" and self.disk == "UpToDate" and self.peer_disk == "UpToDate"

    @property
    def brand_new(self) -> bool:
        """Both sides Inconsistent: no node ever held the good copy (initial promotion needs --force)."""
        return self.disk == "Inconsistent" and self.peer_disk == "Inconsistent"

    def summary(self) -> str:
        return f"cs:{self.connection} ro:{self.role}/{self.peer_role} ds:{self.disk}/{self.peer_disk}"


def parse_proc_drbd(text: str) -> dict[int, DrbdState]:
    """``/proc/drbd`` of DRBD 8.4, by minor."""
    devices: dict[int, DrbdState] = {}
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        match = _PROC_DEVICE.match(line)
        if match:
            if current is not None:
                devices[current["minor"]] = DrbdState(**current)
            groups = {k: v for k, v in match.groupdict().items() if v is not None}
            current = {
                "minor": int(groups.pop("minor")),
                "connection": groups.pop("cs"),
                **groups,
            }
            continue
        if current is None:
            continue
        if synced := _PROC_SYNCED.search(line):
            current["sync_percent"] = float(synced["percent"])
        if oos := _PROC_OOS.search(line):
            current["out_of_sync_kib"] = int(oos["oos"])
        if finish := _PROC_FINISH.search(line):
            current["finish"] = finish["finish"]
    if current is not None:
        devices[current["minor"]] = DrbdState(**current)
    return devices


class BlockSignature(BaseModel):
    """What ``blkid -p`` finds on a device."""

    type: str | None = Field(None, description="ext4, xfs, drbd, … or None when the device looks blank.")
    label: str | None = None
    uuid: str | None = None
    usage: str | None = Field(None, description="filesystem, raid, …")

    @property
    def blank(self) -> bool:
        return self.type is None

    @property
    def is_drbd_metadata(self) -> bool:
        return self.type == "drbd"


def parse_blkid_export(text: str) -> BlockSignature:
    """``blkid -p -o export`` output (KEY=value lines); empty output means no signature."""
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return BlockSignature(
        type=fields.get("TYPE"), label=fields.get("LABEL"), uuid=fields.get("UUID"), usage=fields.get("USAGE")
    )


class Mount(BaseModel):
    source: str
    target: str
    fstype: str
    options: str


def parse_findmnt(text: str) -> Mount | None:
    """``findmnt --json`` output for one mountpoint (None when nothing is mounted there)."""
    if not text.strip():
        return None
    filesystems = json.loads(text).get("filesystems") or []
    if not filesystems:
        return None
    fs = filesystems[0]
    return Mount(source=fs["source"], target=fs["target"], fstype=fs["fstype"], options=fs["options"])
