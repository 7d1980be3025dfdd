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
_RESYNC_BEGAN = re.compile(
    r"block drbd(?P<minor>\d+): Began resync as Sync(?:Source|Target) \(will sync (?P<kib>\d+) KB"
)

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


def parse_resyncs(kernel_log: str, minor: int) -> list[int]:
    """KiB each resync of ``minor`` copied, oldest first, from the kernel log (``dmesg``): DRBD says
    "Began resync as SyncSource (will sync 2368 KB [592 bits set])" on both nodes when one starts."""
    return [int(match["kib"]) for match in _RESYNC_BEGAN.finditer(kernel_log) if int(match["minor"]) == minor]


_SPLIT_BRAIN = re.compile(r"Split-Brain detected but unresolved")
_LEAVES_STANDALONE = re.compile(r"\bconn\( StandAlone -> ")


def split_brain_unresolved(kernel_log: str, resource: str) -> bool:
    """Whether DRBD's last word on ``resource`` in the kernel log (``dmesg``) is a split-brain it dropped
    the connection for ("drbd r0: Split-Brain detected but unresolved, dropping connection!") and nobody
    has reconnected it since ("drbd r0: conn( StandAlone -> Unconnected )": the resolution's connect). A
    split-brain the after-sb policies solved by themselves is not one."""
    prefix = f"drbd {resource}: "
    unresolved = False
    for line in kernel_log.splitlines():
        message = line.partition(prefix)[2] if prefix in line else None
        if message is None:
            continue
        if _SPLIT_BRAIN.search(message):
            unresolved = True
        elif _LEAVES_STANDALONE.search(message):
            unresolved = False
    return unresolved


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


class BlockDevice(BaseModel):
    """A block device as lsblk sees it, with what sits on it (partitions, DRBD, device-mapper)."""

    path: str
    type: str
    size: int
    mountpoints: list[str] = Field(default_factory=list, description="Where it is mounted ([SWAP]: swap).")
    children: list[BlockDevice] = Field(default_factory=list)

    def users(self, besides: str | None = None) -> list[str]:
        """Every device stacked on this one and every mountpoint on it or them, e.g. '/dev/drbd0',
        '/dev/vdb1 at /srv' — except the device ``besides`` and all that is on it (DRBD's own: its
        device, an upper resource stacked on it, the volume's mount)."""
        found = [f"{self.path} at {m}" for m in self.mountpoints]
        for child in self.children:
            if child.path == besides:
                continue
            found.append(child.path)
            found.extend(u for u in child.users() if u != child.path)
        return found


def parse_lsblk(text: str) -> BlockDevice | None:
    """``lsblk --json --bytes --paths -o NAME,TYPE,SIZE,MOUNTPOINTS DEV``; None when DEV is not a block
    device (lsblk exits 32 with an empty list)."""
    if not text.strip():
        return None
    devices = json.loads(text).get("blockdevices") or []
    if not devices:
        return None

    def device(raw: dict[str, Any]) -> BlockDevice:
        return BlockDevice(
            path=raw["name"],
            type=raw["type"],
            size=int(raw["size"]),
            mountpoints=[m for m in raw.get("mountpoints") or [] if m],
            children=[device(c) for c in raw.get("children") or []],
        )

    return device(devices[0])


def parse_ip_addresses(text: str) -> list[str]:
    """Every address configured on the host (``ip -json address show``), without prefix lengths."""
    return [info["local"] for link in json.loads(text or "[]") for info in link.get("addr_info", [])]


def parse_found_tools(text: str) -> set[str]:
    """Names of the tools ``command -v`` printed a path for."""
    return {line.rsplit("/", 1)[-1] for line in text.split() if line.startswith("/")}


_SHOW_RESOURCE = re.compile(r"^resource\s+(?P<name>\S+)\s*\{", re.MULTILINE)
_SHOW_MINOR = re.compile(r"device\s+minor\s+(?P<minor>\d+);")


def parse_drbdsetup_show(text: str) -> dict[str, list[int]]:
    """Resources configured in the kernel (``drbdsetup show`` of DRBD 8.4) and their device minors."""
    starts = list(_SHOW_RESOURCE.finditer(text))
    resources: dict[str, list[int]] = {}
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
        body = text[match.end() : end]
        resources[match["name"]] = [int(m["minor"]) for m in _SHOW_MINOR.finditer(body)]
    return resources


# What `drbdadm -d adjust` may print that leaves a node without its disk or its peer.
_LOSES_REDUNDANCY = {"detach": "detach its disk (Diskless)", "down": "take the resource down"}


class AdjustPreview(BaseModel):
    """What ``drbdadm -d adjust`` would run for a new config, judged: does the change keep the disk?"""

    commands: list[str] = Field(default_factory=list, description="drbdsetup/drbdmeta lines (secrets in).")
    rejected: str | None = Field(None, description="drbdadm's error when it cannot apply the config at all.")

    @property
    def reconnects(self) -> bool:
        """The connection is re-made (address, port, secret, algorithm changed)."""
        return self.disconnect_endpoints is not None

    @property
    def disconnect_endpoints(self) -> tuple[str, str] | None:
        """The running connection's two endpoints as the kernel knows them (``ipv4:10.0.0.1:7789``),
        from the ``disconnect`` adjust would run: the resource file may already name new ones."""
        for command in self.commands:
            words = command.split()
            if _verb(command) == "disconnect" and len(words) == 4:
                return words[2], words[3]
        return None

    @property
    def harms(self) -> list[str]:
        """Why applying it would leave a node degraded, one reason per command."""
        return [_LOSES_REDUNDANCY[v] for c in self.commands if (v := _verb(c)) in _LOSES_REDUNDANCY]


def _verb(command: str) -> str:
    words = command.split()
    return words[1] if len(words) > 1 and words[0].startswith("drbdsetup") else ""


def parse_adjust_dry_run(text: str) -> AdjustPreview:
    """``drbdadm -d adjust RES`` output: one command per line (empty when nothing would change)."""
    return AdjustPreview(commands=[line.strip() for line in text.splitlines() if line.strip()])
