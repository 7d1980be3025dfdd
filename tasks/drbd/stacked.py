"""The steps of a stacked (three-node) volume, written once: the moving address, the upper resource started
and stopped on a lower node, and the lower-tier switch (drbd-utils' ``drbdupper`` sequence).

The upper resource runs on whichever lower node is Primary, at an address that moves with that role; the
third node only ever sees that address. Setup, the lower-tier failover and the site-loss drill all move it
with these steps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from ipaddress import IPv4Interface, IPv6Interface
from typing import TypeVar

from pydantic import BaseModel, Field

from tasks.context import current_executor
from tasks.drbd import commands as cmd
from tasks.drbd import steps
from tasks.drbd.model import OWN_FILE_HEADER, Resource, StackedResource, render, secrets_in
from tasks.drbd.plan import Step
from tasks.drbd.probes import DrbdState
from tasks.drbd.roles import switch_primary
from tasks.executor import SshTarget
from tasks.lab.host import wait_until
from tasks.pacemaker.steps import SplitBrain
from tasks.step import step

T = TypeVar("T")

StackedAddress = IPv4Interface | IPv6Interface


def parse_address_holders(text: str) -> dict[str, str]:
    """Every address configured on the host (``ip -json address show``) and the interface holding it."""
    return {
        info["local"]: link["ifname"]
        for link in json.loads(text or "[]")
        for info in link.get("addr_info", [])
    }


def address_holders(target: SshTarget) -> dict[str, str]:
    """The node's addresses and their interfaces, read without changing anything."""
    result = steps.run(target, cmd.ip_addresses_argv(), read_only=True, quiet=True)
    return parse_address_holders(result.stdout)


@step(name="hold-stacked-address", timeout_seconds=60, retry_transport=True)
def hold_address(target: SshTarget, address: StackedAddress, beside: str) -> None:
    """Add the stacked address to the interface that holds ``beside`` (the node's replication address),
    unless the node holds it already."""
    holders = address_holders(target)
    if str(address.ip) in holders:
        return
    interface = holders.get(beside)
    if interface is None:
        raise ValueError(f"{target.name}: no interface holds {beside}, so there is none to add {address} to")
    steps.run(target, cmd.address_add_argv(interface, address.with_prefixlen))
    if address.version == 4:  # IPv6 neighbours learn it by neighbour discovery
        steps.run(target, cmd.announce_address_argv(interface, str(address.ip)))


@step(name="release-stacked-address", timeout_seconds=60, retry_transport=True)
def release_address(target: SshTarget, address: StackedAddress) -> None:
    """Take the stacked address off the node (not held: nothing to do)."""
    interface = address_holders(target).get(str(address.ip))
    if interface is not None:
        steps.run(target, cmd.address_delete_argv(interface, address.with_prefixlen))


def start_upper(target: SshTarget, upper: StackedResource, address: StackedAddress) -> float:
    """On a lower node that is Primary of the lower resource: hold the address, bring the upper resource
    up stacked and promote it (``drbdupper start``); returns the promotion's seconds. The node's copy of the
    upper metadata came with the lower resource, so the third node resyncs only what changed."""
    hold_address(target, address, str(upper.lower.node(target.name).address))
    if not steps.drbd_state(target, upper.minor).configured:
        steps.up(target, upper)
    return steps.promote(target, upper)


def stop_upper(target: SshTarget, upper: StackedResource, address: StackedAddress, mountpoint: str) -> None:
    """Unmount, take the upper resource down and give the address up (``drbdupper stop``); the lower
    resource stays as it is."""
    device = upper.node(target.name).device
    if mountpoint in steps.mounts_of(target, device):
        steps.umount(target, mountpoint)
    if steps.drbd_state(target, upper.minor).configured:
        steps.down(target, upper)
    release_address(target, address)


def move_upper(
    targets: Mapping[str, SshTarget],
    upper: StackedResource,
    address: StackedAddress,
    mountpoint: str,
    old: str,
    new: str,
) -> None:
    """The controlled lower-tier switch: the upper resource and the filesystem on it go from ``old`` to
    ``new`` (both lower nodes, both answering); the third node reconnects to the address on ``new``."""
    lower = upper.lower
    stop_upper(targets[old], upper, address, mountpoint)
    steps.demote(targets[old], lower)
    steps.promote(targets[new], lower)
    start_upper(targets[new], upper, address)
    steps.mount(targets[new], upper.node(new).device, mountpoint)


class CompanionFile(BaseModel):
    """A resource file a node needs though it runs no end of that resource now: the lower file on the third
    node (drbdadm there reads the upper file only beside it), the upper file on the lower Secondary (ready for
    the role to move there)."""

    node: str
    resource: str
    text: str | None = Field(description="The file as it is (None: absent).")
    wanted: str

    @property
    def current(self) -> bool:
        return self.text == self.wanted

    @property
    def own(self) -> bool:
        return self.text is None or self.text.startswith(OWN_FILE_HEADER)


@step(name="read-companion-file", timeout_seconds=60, retry_transport=True)
def read_companion(target: SshTarget, resource: Resource) -> CompanionFile:
    result = steps.run(
        target, cmd.read_file_argv(resource.config_path), read_only=True, ok_codes=(0, 1), quiet=True
    )
    for secret in secrets_in(result.stdout):  # another's file holds another secret
        current_executor().add_secret(secret)
    return CompanionFile(
        node=target.name,
        resource=resource.name,
        text=result.stdout if result.ok else None,
        wanted=render(resource),
    )


def companion_problems(files: list[CompanionFile], adopt_existing: bool) -> list[str]:
    """A companion file someone else wrote is replaced only with ``drbd.adopt_existing``, as any other."""
    if adopt_existing:
        return []
    return [
        f"{f.node}: /etc/drbd.d/{f.resource}.res was not written by ha-storage-flows and differs from what "
        "setup would write; set drbd.adopt_existing = true to replace it (a copy of it is kept)"
        for f in files
        if not f.current and not f.own
    ]


def plan_companions(files: list[CompanionFile]) -> list[Step]:
    """Keep a foreign file, then write each companion file that is missing or different."""
    planned: list[Step] = []
    for companion in files:
        if companion.current:
            continue
        if not companion.own:
            reason = f"adopting {companion.resource}'s file setup did not write"
            planned.append(
                Step(kind="keep_config", node=companion.node, resource=companion.resource, reason=reason)
            )
        reason = f"{companion.resource}'s file missing or different"
        planned.append(
            Step(kind="write_config", node=companion.node, resource=companion.resource, reason=reason)
        )
    return planned


class StackedVolume:
    """The three-node volume as the drills act on it: every node's target, both resources, the moving
    address and the mountpoint."""

    def __init__(
        self,
        targets: Mapping[str, SshTarget],
        upper: StackedResource,
        address: StackedAddress,
        mountpoint: str,
    ) -> None:
        self.targets, self.upper, self.address, self.mountpoint = dict(targets), upper, address, mountpoint
        self.lower = upper.lower
        self.third = upper.third.name

    def other_lower(self, node: str) -> str:
        return self.lower.peer_of(node).name

    def states(self, serving: str) -> tuple[DrbdState, DrbdState]:
        """The lower and the upper resource as the serving node sees them."""
        target = self.targets[serving]
        return steps.drbd_state(target, self.lower.node(serving).minor), steps.drbd_state(
            target, self.upper.minor
        )

    def wait_redundant(self, serving: str, timeout_s: float) -> float:
        """Both resources Connected with both disks UpToDate, seen from the serving node (the third node may
        still be reconnecting to the address that just moved); returns the seconds waited."""
        started = time.monotonic()

        def redundant() -> bool:
            lower, upper = self.states(serving)
            for state in (lower, upper):
                if state.connection == "StandAlone":
                    raise SplitBrain(f"{serving}: DRBD minor {state.minor} is StandAlone: {state.summary()}")
            return lower.healthy and upper.healthy

        wait_until(redundant, timeout_s, f"all three copies of {self.upper.name} in sync", interval_s=0.5)
        return round(time.monotonic() - started, 1)

    def read_everywhere(
        self, serving: str, read: Callable[[SshTarget], T], end_on: str | None = None
    ) -> dict[str, T]:
        """``read`` on each node in turn, the volume mounted there: the serving node, the third node (the
        upper role switched to it and back), the other lower node (a lower-tier switch); the volume ends
        served by ``end_on`` (default: where it started). Each switch is the controlled one an operator
        makes, so every node proves it holds the data, not just that DRBD says so."""
        other = self.other_lower(serving)
        found = {serving: read(self.targets[serving])}
        ends = {serving: self.targets[serving], self.third: self.targets[self.third]}
        switch_primary(ends, self.upper, self.mountpoint, old=serving, new=self.third)
        found[self.third] = read(self.targets[self.third])
        switch_primary(ends, self.upper, self.mountpoint, old=self.third, new=serving)
        move_upper(self.targets, self.upper, self.address, self.mountpoint, serving, other)
        found[other] = read(self.targets[other])
        if (end_on or serving) == serving:
            move_upper(self.targets, self.upper, self.address, self.mountpoint, other, serving)
        return found
