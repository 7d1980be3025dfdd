"""The o2cb cluster as a model, rendered to ``/etc/ocfs2/cluster.conf`` and ``/etc/default/o2cb``.

cluster.conf's format is strict: stanza headers at column 0, ``key = value`` lines indented with one
tab, node names equal to the hosts' hostnames and ``node_count`` equal to the number of node stanzas.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tasks.fields import Hostname, Port

# The cluster's own field types; the settings reuse them.
ClusterName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,16}$")]
HeartbeatThreshold = Annotated[int, Field(ge=3, le=600)]
IdleTimeoutMs = Annotated[int, Field(ge=5000, le=120000)]


class O2cbNode(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: Hostname = Field(description="Hostname; o2cb matches it against `uname -n`.")
    address: ipaddress.IPv4Address = Field(description="o2net interconnect address (IPv4 only).")
    number: int = Field(ge=0, le=254, description="Node number, unique in the cluster.")


class O2cbCluster(BaseModel):
    """An o2cb cluster with its timeouts (they decide how long survivors stall when a node dies)."""

    model_config = ConfigDict(frozen=True)

    name: ClusterName = Field(description="Cluster name (at most 16 characters).")
    nodes: tuple[O2cbNode, ...] = Field(min_length=1, max_length=255)
    port: Port = Field(7777, description="o2net TCP port.")
    heartbeat_threshold: HeartbeatThreshold = Field(31, description="Disk heartbeat iterations (2 s each).")
    idle_timeout_ms: IdleTimeoutMs = Field(30000, description="o2net idle timeout.")
    keepalive_delay_ms: int = Field(2000, ge=1000, le=60000, description="o2net keepalive delay.")
    reconnect_delay_ms: int = Field(2000, ge=1000, le=60000, description="o2net reconnect delay.")

    @model_validator(mode="after")
    def _consistent(self) -> O2cbCluster:
        for what, values in (
            ("names", [n.name for n in self.nodes]),
            ("addresses", [str(n.address) for n in self.nodes]),
            ("numbers", [str(n.number) for n in self.nodes]),
        ):
            if len(set(values)) != len(values):
                raise ValueError(f"duplicate node {what}: {', '.join(values)}")
        if self.keepalive_delay_ms >= self.idle_timeout_ms:
            raise ValueError("keepalive_delay_ms must be smaller than idle_timeout_ms")
        return self

    @property
    def dead_after_s(self) -> float:
        """The latest o2cb declares a silent node dead: its disk heartbeat threshold (one beat per 2 s) or
        the network idle timeout. Its journal replay — the long stall — cannot begin before, so a drill
        must write past this (measured: DRBD's own 4 s stall ended first, and a drill that stopped then
        would never have seen o2cb's)."""
        return self.heartbeat_threshold * 2.0 + self.idle_timeout_ms / 1000


def render_cluster_conf(cluster: O2cbCluster) -> str:
    lines = [
        "cluster:",
        f"\tnode_count = {len(cluster.nodes)}",
        "\theartbeat_mode = local",
        f"\tname = {cluster.name}",
        "",
    ]
    for node in cluster.nodes:
        lines += [
            "node:",
            f"\tip_port = {cluster.port}",
            f"\tip_address = {node.address}",
            f"\tnumber = {node.number}",
            f"\tname = {node.name}",
            f"\tcluster = {cluster.name}",
            "",
        ]
    return "\n".join(lines)


def render_o2cb_defaults(cluster: O2cbCluster) -> str:
    """/etc/default/o2cb: start this cluster, with the configured timeouts."""
    return "\n".join(
        (
            "# Written by ha-storage-flows.",
            "O2CB_ENABLED=true",
            f"O2CB_BOOTCLUSTER={cluster.name}",
            f"O2CB_HEARTBEAT_THRESHOLD={cluster.heartbeat_threshold}",
            f"O2CB_IDLE_TIMEOUT_MS={cluster.idle_timeout_ms}",
            f"O2CB_KEEPALIVE_DELAY_MS={cluster.keepalive_delay_ms}",
            f"O2CB_RECONNECT_DELAY_MS={cluster.reconnect_delay_ms}",
            "",
        )
    )
