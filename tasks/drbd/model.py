"""The DRBD resource as a typed model, and its rendering to ``/etc/drbd.d/<name>.res``.

The renderer's output is checked by the real ``drbdadm`` parser in the unit tests. DRBD 8.4 (the
module in Debian's kernel) replicates between exactly two nodes per resource.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from blocks.settings import Hostname, check_resync_rate

RESOURCE_NAME_RE = r"^[a-z][a-z0-9_-]{0,31}$"


class DrbdNode(BaseModel):
    """One node of a resource: where it replicates and what it stores on."""

    model_config = ConfigDict(frozen=True)

    name: Hostname = Field(description="The node's hostname: DRBD matches 'on <name>' against `uname -n`.")
    address: ipaddress.IPv4Address | ipaddress.IPv6Address = Field(description="Replication address.")
    port: int = Field(7789, ge=1, le=65535, description="Replication TCP port.")
    disk: str = Field("/dev/vdb", pattern=r"^/dev/\S+$", description="Backing block device.")
    minor: int = Field(
        0, ge=0, le=1048575, description="Device minor: the resource appears as /dev/drbd<minor>."
    )

    @property
    def device(self) -> str:
        return f"/dev/drbd{self.minor}"

    @property
    def endpoint(self) -> str:
        """``ipv4 10.0.0.1:7789`` / ``ipv6 [fd00::1]:7789``, as drbd.conf writes an address."""
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"ipv{self.address.version} {host}:{self.port}"


AfterSb0 = Literal[
    "disconnect",
    "discard-younger-primary",
    "discard-older-primary",
    "discard-zero-changes",
    "discard-least-changes",
]
AfterSb1 = Literal["disconnect", "consensus", "violently-as0p", "discard-secondary", "call-pri-lost-after-sb"]
AfterSb2 = Literal["disconnect", "violently-as0p", "call-pri-lost-after-sb"]


class DrbdResource(BaseModel):
    """A replicated block device between two nodes."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(
        "r0", pattern=RESOURCE_NAME_RE, description="Resource name (file /etc/drbd.d/<name>.res)."
    )
    protocol: Literal["A", "B", "C"] = Field(
        "C", description="C: a write completes when both disks have it (no loss on failover); A/B: async."
    )
    nodes: tuple[DrbdNode, ...] = Field(
        min_length=2, max_length=2, description="Exactly two nodes (DRBD 8.4)."
    )
    meta_disk: Literal["internal"] = Field("internal", description="Metadata at the end of the backing disk.")
    shared_secret: SecretStr = Field(description="Peer authentication secret (cram-hmac-alg sha256).")
    cram_hmac_alg: Literal["sha1", "sha256"] = Field("sha256", description="Peer authentication HMAC.")
    ping_int_s: int = Field(
        3, ge=1, le=120, description="Keep-alive interval; lower = faster peer-loss detection."
    )
    ping_timeout_ds: int = Field(
        10, ge=1, le=300, description="Keep-alive answer timeout in tenths of a second."
    )
    resync_rate: str = Field(
        "100M", description="Fixed resync rate (bytes/s, K/M/G suffix; 1K to 8G as drbdadm accepts)."
    )
    c_plan_ahead: int = Field(
        0, ge=0, le=300, description="0 = fixed resync rate instead of the dynamic controller."
    )
    dual_primary: bool = Field(False, description="allow-two-primaries (needs a cluster filesystem on top).")
    after_sb_0pri: AfterSb0 = Field("disconnect", description="Split-brain policy with no primary.")
    after_sb_1pri: AfterSb1 = Field("disconnect", description="Split-brain policy with one primary.")
    after_sb_2pri: AfterSb2 = Field("disconnect", description="Split-brain policy with two primaries.")

    @field_validator("resync_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        return check_resync_rate(value)

    @field_validator("shared_secret")
    @classmethod
    def _secret_is_safe(cls, secret: SecretStr) -> SecretStr:
        value = secret.get_secret_value()
        if not re.fullmatch(r"[A-Za-z0-9_.+/=-]{16,64}", value):
            raise ValueError("shared secret must be 16-64 characters of [A-Za-z0-9_.+/=-]")
        return secret

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


def render_resource(resource: DrbdResource) -> str:
    """The resource file. The secret is in it: write it with mode 0600 and never log it."""
    lines = [
        "# Written by ha-storage-flows; changes here are overwritten by the next run.",
        f"resource {resource.name} {{",
        f"  protocol {resource.protocol};",
        "  net {",
        f"    cram-hmac-alg {resource.cram_hmac_alg};",
        f'    shared-secret "{resource.shared_secret.get_secret_value()}";',
        f"    ping-int {resource.ping_int_s};",
        f"    ping-timeout {resource.ping_timeout_ds};",
    ]
    if resource.dual_primary:
        lines.append("    allow-two-primaries yes;")
    lines += [
        f"    after-sb-0pri {resource.after_sb_0pri};",
        f"    after-sb-1pri {resource.after_sb_1pri};",
        f"    after-sb-2pri {resource.after_sb_2pri};",
        "  }",
        "  disk {",
        f"    c-plan-ahead {resource.c_plan_ahead};",
        f"    resync-rate {resource.resync_rate};",
        "  }",
    ]
    if resource.dual_primary:
        lines.append("  startup { become-primary-on both; }")
    for node in resource.nodes:
        lines += [
            f"  on {node.name} {{",
            f"    device {node.device};",
            f"    disk {node.disk};",
            f"    meta-disk {resource.meta_disk};",
            f"    address {node.endpoint};",
            "  }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"
