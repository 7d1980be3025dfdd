"""Parsers of what Pacemaker, Corosync and SBD print, into typed models (checked on captured output)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from pydantic import BaseModel, Field

# Before any fencing that crm_mon printed a time for (its times are UTC).
NEVER = datetime.min.replace(tzinfo=UTC)


class ClusterNode(BaseModel):
    """One node as the cluster sees it (``crm_mon``'s ``<node>``)."""

    name: str
    online: bool
    unclean: bool = Field(False, description="Lost and not yet fenced: nothing may run where it was.")
    pending: bool = False
    standby: bool = False
    is_dc: bool = False


class ResourceInstance(BaseModel):
    """One resource (or one clone instance) and where it runs."""

    id: str
    clone: str | None = Field(None, description="The clone this is an instance of.")
    role: str = Field(description="Started, Stopped, Promoted, Unpromoted, Starting, …")
    node: str | None = Field(None, description="Where it is active (None: nowhere).")
    failed: bool = False


class FenceEvent(BaseModel):
    """One fencing in the cluster's history."""

    target: str
    action: str
    status: str = Field(description="success, failed, pending.")
    delegate: str | None = Field(None, description="The node that carried it out.")
    completed: datetime | None = None


class Failure(BaseModel):
    """A failed resource action (``crm_mon``'s failures section)."""

    node: str
    operation: str
    reason: str

    def describe(self) -> str:
        return f"{self.operation} on {self.node}: {self.reason}"


class ClusterStatus(BaseModel):
    """The cluster's state as one node sees it (``crm_mon --output-as=xml``)."""

    dc: str | None = Field(None, description="The designated controller (None: being elected).")
    quorate: bool = False
    nodes: dict[str, ClusterNode] = Field(default_factory=dict)
    resources: list[ResourceInstance] = Field(default_factory=list)
    failures: list[Failure] = Field(default_factory=list)
    fencing: list[FenceEvent] = Field(default_factory=list)

    def online(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.online and not n.unclean]

    def instances(self, resource: str) -> list[ResourceInstance]:
        """The instances of a resource or clone id."""
        return [r for r in self.resources if resource in (r.id, r.clone)]

    def promoted_on(self, clone: str) -> str | None:
        return next((r.node for r in self.instances(clone) if r.role == "Promoted" and r.node), None)

    def started_on(self, resource: str) -> str | None:
        return next((r.node for r in self.instances(resource) if r.role == "Started" and r.node), None)

    def role_on(self, resource: str, node: str) -> str:
        """The role of ``resource`` (or of the clone's instance) on ``node``; Stopped where absent."""
        return next((r.role for r in self.instances(resource) if r.node == node), "Stopped")

    def fenced(self, node: str) -> FenceEvent | None:
        """The latest successful fencing of ``node``."""
        done = successful(self.fencing, node)
        return max(done, key=lambda e: e.completed or NEVER) if done else None

    def summary(self) -> str:
        """One line: nodes, the DC, where each resource runs, failures."""
        nodes = ", ".join(
            f"{n.name} {'UNCLEAN' if n.unclean else 'online' if n.online else 'offline'}"
            + (" (DC)" if n.is_dc else "")
            for n in self.nodes.values()
        )
        running = ", ".join(f"{r.id} {r.role} on {r.node}" for r in self.resources if r.node)
        failed = f"; failures: {', '.join(f.describe() for f in self.failures)}" if self.failures else ""
        return f"{nodes}; {'quorate' if self.quorate else 'NO QUORUM'}; {running or 'nothing runs'}{failed}"


def _flag(element: ET.Element, name: str) -> bool:
    return element.get(name) == "true"


def _instance(element: ET.Element, clone: str | None) -> ResourceInstance:
    node = element.find("node")
    return ResourceInstance(
        id=element.get("id", ""),
        clone=clone,
        role=element.get("role", "Stopped"),
        node=node.get("name") if node is not None and _flag(element, "active") else None,
        failed=_flag(element, "failed"),
    )


def _completed(value: str | None) -> datetime | None:
    """crm_mon's ``completed`` ("2026-11-26 13:01:02.345678Z" or ISO) as a datetime, if any."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_crm_mon_xml(text: str) -> ClusterStatus:
    """``crm_mon --one-shot --output-as=xml``: nodes, resources (clone instances with their roles),
    failed actions and the fencing history."""
    root = ET.fromstring(text)
    status = ClusterStatus()
    dc = root.find("summary/current_dc")
    if dc is not None and _flag(dc, "present"):
        status.dc = dc.get("name")
        status.quorate = _flag(dc, "with_quorum")
    for node in root.findall("nodes/node"):
        name = node.get("name", "")
        status.nodes[name] = ClusterNode(
            name=name,
            online=_flag(node, "online"),
            unclean=_flag(node, "unclean"),
            pending=_flag(node, "pending"),
            standby=_flag(node, "standby"),
            is_dc=_flag(node, "is_dc"),
        )
    resources = root.find("resources")
    for element in resources if resources is not None else []:
        if element.tag == "resource":
            status.resources.append(_instance(element, None))
        elif element.tag in ("clone", "group"):
            status.resources += [_instance(r, element.get("id")) for r in element.findall("resource")]
    for failure in root.findall("failures/failure"):
        status.failures.append(
            Failure(
                node=failure.get("node", ""),
                operation=failure.get("op_key", failure.get("task", "")),
                reason=failure.get("exitreason") or failure.get("exitstatus") or failure.get("status", ""),
            )
        )
    status.fencing = [_fence_event(event) for event in root.findall("fence_history/fence_event")]
    return status


def _fence_event(event: ET.Element) -> FenceEvent:
    return FenceEvent(
        target=event.get("target", ""),
        action=event.get("action", ""),
        status=event.get("status", ""),
        delegate=event.get("delegate"),
        completed=_completed(event.get("completed")),
    )


def parse_fence_history(text: str) -> list[FenceEvent]:
    """``stonith_admin --history NODE --output-as=xml``: the node's fencings."""
    return [_fence_event(event) for event in ET.fromstring(text).iter("fence_event")]


def successful(events: list[FenceEvent], node: str) -> list[FenceEvent]:
    return [e for e in events if e.target == node and e.status == "success"]


def parse_quorum_members(text: str) -> list[str]:
    """``corosync-quorumtool -l``: the names of the current members (the table after its header)."""
    members = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0].isdigit() and fields[1].isdigit():
            members.append(fields[-2] if fields[-1] == "(local)" else fields[-1])
    return members


class SbdHeader(BaseModel):
    """The timeouts written into an SBD disk's header (they are not in /etc/default/sbd)."""

    watchdog_s: int
    msgwait_s: int


_SBD_TIMEOUT = re.compile(r"^Timeout \((?P<name>watchdog|msgwait)\)\s*:\s*(?P<value>\d+)", re.MULTILINE)


def parse_sbd_dump(text: str) -> SbdHeader | None:
    """``sbd -d DEV dump``; None when it shows no header."""
    found = {m["name"]: int(m["value"]) for m in _SBD_TIMEOUT.finditer(text)}
    if {"watchdog", "msgwait"} - set(found):
        return None
    return SbdHeader(watchdog_s=found["watchdog"], msgwait_s=found["msgwait"])


def parse_unit_states(units: tuple[str, ...], text: str) -> dict[str, str]:
    """``systemctl is-active|is-enabled U…``: one state per unit, in order (missing: unknown)."""
    states = text.split()
    return {unit: states[i] if i < len(states) else "unknown" for i, unit in enumerate(units)}


def parse_sha256sum(text: str) -> str | None:
    first = text.split()
    return first[0] if first else None


def fence_constraints(constraints_xml: str) -> list[str]:
    """The constraints crm-fence-peer.sh placed (``drbd-fence-by-handler-<res>-<clone>``): while one
    stands, the outdated peer may not be promoted; crm-unfence-peer.sh removes it after the resync."""
    root = ET.fromstring(constraints_xml)  # <constraints>, or the CIB around it
    section = root if root.tag == "constraints" else root.find(".//constraints")
    return [
        element.get("id", "")
        for element in (section if section is not None else [])
        if element.get("id", "").startswith("drbd-fence-by-handler-")
    ]
