"""The DRBD resource as a typed model, and its rendering to ``/etc/drbd.d/<name>.res``.

The renderer's output is checked by the real ``drbdadm`` parser in the unit tests. DRBD 8.4 (the
module in Debian's kernel) replicates between exactly two nodes per resource.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from tasks.fields import Hostname, Port

RESYNC_RATE_RE = re.compile(r"^(\d+)([KMG]?)$")
RESYNC_RATE_MAX_KIB = 8 * 1024 * 1024  # drbdadm's own limit (measured: 8G passes, 8388609 fails)


def check_resync_rate(value: str) -> str:
    """A DRBD rate (KiB/s, or with K/M/G suffix) within what drbdadm accepts: 1 KiB/s to 8 GiB/s."""
    match = RESYNC_RATE_RE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a rate like 100M (digits, optional K/M/G)")
    kib = int(match[1]) * {"": 1, "K": 1, "M": 1024, "G": 1024**2}[match[2]]
    if not 1 <= kib <= RESYNC_RATE_MAX_KIB:
        raise ValueError(f"{value!r} is outside DRBD's range of 1K to 8G (bytes/s)")
    return value


# The resource's own field types; the settings reuse them, so each bound lives here only.
ResourceName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
Protocol = Literal["A", "B", "C"]
BackingDisk = Annotated[str, Field(pattern=r"^/dev/\S+$")]
Minor = Annotated[int, Field(ge=0, le=1048575)]
PingIntervalS = Annotated[int, Field(ge=1, le=120)]
PingTimeoutDs = Annotated[int, Field(ge=1, le=300)]
ResyncRate = Annotated[str, AfterValidator(check_resync_rate)]
# The kernel's bounds (include/linux/drbd_limits.h): DRBD_AL_EXTENTS_MIN 67, _MAX 0xfffe, default 1237.
AlExtents = Annotated[int, Field(ge=67, le=65534)]


def endpoint_text(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> str:
    """``ipv4 10.0.0.1:7789`` / ``ipv6 [fd00::1]:7789``, as drbd.conf writes an address."""
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"ipv{address.version} {host}:{port}"


class DrbdNode(BaseModel):
    """One node of a resource: where it replicates and what it stores on."""

    model_config = ConfigDict(frozen=True)

    name: Hostname = Field(description="The node's hostname: DRBD matches 'on <name>' against `uname -n`.")
    address: ipaddress.IPv4Address | ipaddress.IPv6Address = Field(description="Replication address.")
    port: Port = Field(7789, description="Replication TCP port.")
    disk: BackingDisk = Field("/dev/vdb", description="Backing block device.")
    minor: Minor = Field(0, description="Device minor: the resource appears as /dev/drbd<minor>.")

    @property
    def device(self) -> str:
        return f"/dev/drbd{self.minor}"

    @property
    def endpoint(self) -> str:
        return endpoint_text(self.address, self.port)


AfterSb0 = Literal[
    "disconnect",
    "discard-younger-primary",
    "discard-older-primary",
    "discard-zero-changes",
    "discard-least-changes",
]
AfterSb1 = Literal["disconnect", "consensus", "violently-as0p", "discard-secondary", "call-pri-lost-after-sb"]
AfterSb2 = Literal["disconnect", "violently-as0p", "call-pri-lost-after-sb"]

# Fencing when a cluster manager (Pacemaker) owns the resource. resource-and-stonith freezes a Primary's
# I/O on connection loss until the fence-peer handler returns; resource-only does not, and a full partition
# measured a split-brain with it (the Primary that was shot had written on alone for ~7 s).
DrbdFencing = Literal["resource-only", "resource-and-stonith"]
# drbd-utils' handlers for DRBD 8.4 (the .9.sh ones are for DRBD 9): fence-peer places a location
# constraint keeping the Promoted role off the outdated peer, after-resync-target removes it.
CRM_FENCE_PEER = "/usr/lib/drbd/crm-fence-peer.sh"
CRM_UNFENCE_PEER = "/usr/lib/drbd/crm-unfence-peer.sh"


class DrbdTuning(BaseModel):
    """How a resource replicates: the options the settings expose as they are (``[drbd]``)."""

    model_config = ConfigDict(frozen=True)

    protocol: Protocol = Field(
        "C", description="C: a write completes when both disks have it (no loss on failover); A/B: async."
    )
    ping_int_s: PingIntervalS = Field(3, description="Keep-alive interval; lower = faster loss detection.")
    ping_timeout_ds: PingTimeoutDs = Field(10, description="Keep-alive answer timeout in tenths of a second.")
    resync_rate: ResyncRate = Field(
        "100M", description="Fixed resync rate (bytes/s, K/M/G suffix; 1K to 8G as drbdadm accepts)."
    )
    al_extents: AlExtents = Field(
        67,
        description=(
            "Activity-log extents (4 MiB each, 67 to 65534). A Primary that crashes resyncs every extent its "
            "log held, so this bounds that resync: 67 (the least), 268 MiB. More extents mean fewer "
            "metadata writes when the writes scatter over more than that; DRBD's own default, 1237, holds "
            "4.8 GiB, the whole of a smaller disk."
        ),
    )

    def tuning(self) -> dict[str, object]:
        """Just the replication options (a settings object carries more fields)."""
        return {name: getattr(self, name) for name in DrbdTuning.model_fields}


class Replication(DrbdTuning):
    """What both ends of one DRBD connection agree on: the tuning, the peers' secret, the resync and the
    split-brain policies (a two-node resource and a stacked one alike)."""

    meta_disk: Literal["internal"] = Field("internal", description="Metadata at the end of the backing disk.")
    shared_secret: SecretStr = Field(description="Peer authentication secret (cram-hmac-alg sha256).")
    cram_hmac_alg: Literal["sha1", "sha256"] = Field("sha256", description="Peer authentication HMAC.")
    c_plan_ahead: int = Field(
        0, ge=0, le=300, description="0 = fixed resync rate instead of the dynamic controller."
    )
    after_sb_0pri: AfterSb0 = Field("disconnect", description="Split-brain policy with no primary.")
    after_sb_1pri: AfterSb1 = Field("disconnect", description="Split-brain policy with one primary.")
    after_sb_2pri: AfterSb2 = Field("disconnect", description="Split-brain policy with two primaries.")

    @field_validator("shared_secret")
    @classmethod
    def _secret_is_safe(cls, secret: SecretStr) -> SecretStr:
        value = secret.get_secret_value()
        if not re.fullmatch(r"[A-Za-z0-9_.+/=-]{16,64}", value):
            raise ValueError("shared secret must be 16-64 characters of [A-Za-z0-9_.+/=-]")
        return secret


class DrbdResource(Replication):
    """A replicated block device between two nodes."""

    name: ResourceName = Field("r0", description="Resource name (file /etc/drbd.d/<name>.res).")
    nodes: tuple[DrbdNode, ...] = Field(
        min_length=2, max_length=2, description="Exactly two nodes (DRBD 8.4)."
    )
    dual_primary: bool = Field(False, description="allow-two-primaries (needs a cluster filesystem on top).")
    fencing: DrbdFencing | None = Field(
        None,
        description=(
            "When Pacemaker owns the resource: the disk section's fencing policy and the crm-fence-peer / "
            "crm-unfence-peer handlers; None: no fencing (DRBD alone, promoted by the flows)."
        ),
    )

    @model_validator(mode="after")
    def _distinct_nodes(self) -> DrbdResource:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate node names: {', '.join(names)}")
        endpoints = [n.endpoint for n in self.nodes]
        if len(set(endpoints)) != len(endpoints):
            raise ValueError(f"duplicate replication addresses: {', '.join(endpoints)}")
        if len({n.address.version for n in self.nodes}) > 1:
            raise ValueError("nodes mix IPv4 and IPv6 addresses: DRBD replicates within one address family")
        addresses = [n.address for n in self.nodes]
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"both nodes have address {addresses[0]}: each node needs its own")
        return self

    def node(self, name: str) -> DrbdNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise ValueError(f"unknown node {name!r} (known: {', '.join(n.name for n in self.nodes)})")

    def peer_of(self, name: str) -> DrbdNode:
        self.node(name)
        return next(n for n in self.nodes if n.name != name)

    @property
    def config_path(self) -> str:
        return f"/etc/drbd.d/{self.name}.res"


UpperProtocol = Literal["A", "C"]
UPPER_SUFFIX = "-u"


def upper_name(lower: str) -> str:
    """The upper resource's name: the lower one's with ``-u`` (the user's guide writes r0-U; names are
    lowercase here)."""
    return f"{lower}{UPPER_SUFFIX}"


class StackedResource(Replication):
    """A third copy of a two-node resource (DRBD 8.4's three-node setup): an upper resource whose one end
    is stacked on the lower resource's device on whichever lower node is Primary, reached at an address
    that moves with that role, and whose other end is a third node with a disk of its own.

    The upper device exists on one lower node at a time, so it never runs under two Primaries: a
    dual-primary (OCFS2) lower resource and a stacked copy exclude each other.
    """

    name: ResourceName = Field(description="The upper resource's name (file /etc/drbd.d/<name>.res).")
    lower: DrbdResource = Field(description="The two-node resource the upper one is stacked on.")
    address: ipaddress.IPv4Address | ipaddress.IPv6Address = Field(
        description="The stacked end's address: held by the lower Primary, moved with that role."
    )
    port: Port = Field(7790, description="Replication TCP port of the stacked end.")
    minor: Minor = Field(
        10, description="The upper device /dev/drbd<minor> (on the stacked end and the third)."
    )
    third: DrbdNode = Field(
        description="The third node: the upper resource's other end, on a disk of its own."
    )
    protocol: UpperProtocol = Field(  # narrower than a two-node resource's
        "A", description="A: the lower Primary does not wait for the third node (a distant site); C: it does."
    )

    @model_validator(mode="after")
    def _a_third_node_apart(self) -> StackedResource:
        lower_names = [n.name for n in self.lower.nodes]
        if self.third.name in lower_names:
            raise ValueError(
                f"the third node {self.third.name} is a node of {self.lower.name} already: the stacked copy "
                f"needs a node of its own beside {' and '.join(lower_names)}"
            )
        if self.lower.dual_primary:
            raise ValueError(
                f"{self.lower.name} is dual-primary (OCFS2): a stacked copy runs on the one lower Primary, "
                "so the two exclude each other on one volume"
            )
        if self.name == self.lower.name:
            raise ValueError(f"the upper resource needs a name of its own, not {self.lower.name}")
        if self.third.minor != self.minor:
            raise ValueError(
                f"the third node's device is /dev/drbd{self.third.minor}, not the upper device's"
            )
        if self.minor in {n.minor for n in self.lower.nodes}:
            raise ValueError(
                f"/dev/drbd{self.minor} is the lower device: the upper device needs another minor"
            )
        taken = {n.address: n.name for n in (*self.lower.nodes, self.third)}
        if self.address in taken:
            raise ValueError(
                f"the stacked address {self.address} is {taken[self.address]}'s own: it must be an address "
                "no node has, moved to whichever lower node is Primary"
            )
        if {self.address.version, self.third.address.version} != {self.lower.nodes[0].address.version}:
            raise ValueError("the stacked address, the third node and the lower nodes mix IPv4 and IPv6")
        return self

    def stacked_on(self, name: str) -> bool:
        """``name`` is a lower node: there the upper resource runs stacked (``drbdadm --stacked``)."""
        return any(n.name == name for n in self.lower.nodes)

    def node(self, name: str) -> DrbdNode:
        """One end of the upper resource: the third node, or a lower node as the stacked end (the stacked
        address, the lower device as its disk) — the same on either lower node, as the role moves."""
        if name == self.third.name:
            return self.third
        lower = self.lower.node(name)  # an unknown name is an error here
        return DrbdNode(name=name, address=self.address, port=self.port, disk=lower.device, minor=self.minor)

    @property
    def config_path(self) -> str:
        return f"/etc/drbd.d/{self.name}.res"


# The first line of every resource file this project writes: a file without it was written by someone
# else, and is replaced only when the settings say so (``drbd.adopt_existing``).
OWN_FILE_HEADER = "# Written by ha-storage-flows; changes here are overwritten by the next run."
_SECRET_IN_CONFIG = re.compile(r"(shared-secret\s+\"?|--shared-secret=)[^\"\s;]+")


def mask_secrets(text: str) -> str:
    """A resource file (or drbdsetup command) with its shared secret replaced, for showing to people."""
    return _SECRET_IN_CONFIG.sub(r"\1******", text)


def secrets_in(text: str) -> list[str]:
    """The shared secrets a resource file (or drbdsetup command) holds, to mask wherever they appear."""
    return [match.group(0)[len(match.group(1)) :] for match in _SECRET_IN_CONFIG.finditer(text)]


def _agreement_lines(options: Replication, net_extra: list[str], disk_extra: list[str]) -> list[str]:
    """The protocol, net and disk sections: what both ends of a connection must hold alike."""
    return [
        f"  protocol {options.protocol};",
        "  net {",
        f"    cram-hmac-alg {options.cram_hmac_alg};",
        f'    shared-secret "{options.shared_secret.get_secret_value()}";',
        f"    ping-int {options.ping_int_s};",
        f"    ping-timeout {options.ping_timeout_ds};",
        *net_extra,
        f"    after-sb-0pri {options.after_sb_0pri};",
        f"    after-sb-1pri {options.after_sb_1pri};",
        f"    after-sb-2pri {options.after_sb_2pri};",
        "  }",
        "  disk {",
        f"    c-plan-ahead {options.c_plan_ahead};",
        f"    resync-rate {options.resync_rate};",
        f"    al-extents {options.al_extents};",
        *disk_extra,
        "  }",
    ]


def _on_lines(node: DrbdNode, meta_disk: str) -> list[str]:
    return [
        f"  on {node.name} {{",
        f"    device {node.device};",
        f"    disk {node.disk};",
        f"    meta-disk {meta_disk};",
        f"    address {node.endpoint};",
        "  }",
    ]


def render_resource(resource: DrbdResource) -> str:
    """The resource file. The secret is in it: write it with mode 0600 and never log it."""
    lines = [OWN_FILE_HEADER, f"resource {resource.name} {{"]
    lines += _agreement_lines(
        resource,
        net_extra=["    allow-two-primaries yes;"] if resource.dual_primary else [],
        # DRBD 8.4 syntax: fencing in the disk section (DRBD 9 moved it to net)
        disk_extra=[f"    fencing {resource.fencing};"] if resource.fencing is not None else [],
    )
    if resource.fencing is not None:
        lines += [
            "  handlers {",
            f'    fence-peer "{CRM_FENCE_PEER}";',
            f'    after-resync-target "{CRM_UNFENCE_PEER}";',
            "  }",
        ]
    if resource.dual_primary:
        lines.append("  startup { become-primary-on both; }")
    for node in resource.nodes:
        lines += _on_lines(node, resource.meta_disk)
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_stacked_resource(upper: StackedResource) -> str:
    """The upper resource's file, the same on all three nodes (drbdadm reads the lower one beside it). The
    secret is in it: write it with mode 0600 and never log it."""
    lines = [OWN_FILE_HEADER, f"resource {upper.name} {{"]
    lines += _agreement_lines(upper, net_extra=[], disk_extra=[])
    lines += [
        f"  stacked-on-top-of {upper.lower.name} {{",
        f"    device {upper.third.device};",  # the validator holds both ends to one minor
        f"    address {endpoint_text(upper.address, upper.port)};",
        "  }",
        *_on_lines(upper.third, upper.meta_disk),
        "}",
    ]
    return "\n".join(lines) + "\n"


Resource = DrbdResource | StackedResource


def render(resource: Resource) -> str:
    """The resource's own file."""
    if isinstance(resource, StackedResource):
        return render_stacked_resource(resource)
    return render_resource(resource)


def drbdadm_view(resource: Resource) -> str:
    """What drbdadm reads to understand ``resource`` from one file: an upper resource names its lower one."""
    if isinstance(resource, StackedResource):
        return render_resource(resource.lower) + render_stacked_resource(resource)
    return render_resource(resource)


def stacked_end(resource: Resource, node: str) -> bool:
    """``node`` runs ``resource`` stacked on a lower device (drbdadm needs ``--stacked`` there)."""
    return isinstance(resource, StackedResource) and resource.stacked_on(node)
