"""The Pacemaker cluster as typed models, and one pure renderer per file the cluster is built from.

- :func:`render_corosync_conf`: ``/etc/corosync/corosync.conf`` (identical on every node);
- :func:`render_sbd_default`: ``/etc/default/sbd`` (every node, with SBD fencing);
- :func:`render_cib`: the cluster configuration in crmsh syntax, for ``crm configure load update`` on
  one node (STONITH, the promotable DRBD clone, the filesystem, an optional service IP, constraints).

The shapes are the ones measured on the TCG lab (pacemaker 2.1.5, corosync 3.1.7 knet, crmsh 4.4.1,
sbd 1.5.2, DRBD 8.4.11; copies in ``tests/fixtures/pacemaker/``): with them a killed primary was fenced
by SBD and the survivor promoted and mounted the volume by itself, 9 times out of 9, nothing lost.
Nothing here runs a command. Fence-agent passwords are ``SecretStr``: they appear only in the text
:func:`render_cib` returns, never in a repr; :func:`cib_secrets` lists them for the executor to mask.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)

from tasks.drbd.model import OWN_FILE_HEADER, Minor, ResourceName
from tasks.fields import AbsolutePath, Hostname, IpAddress

FENCE_AGENT_RE = re.compile(r"^fence_[a-z0-9_]+$")


def check_fence_agent(value: str) -> str:
    """A fence agent's name as fence-agents installs it (``/usr/sbin/fence_ipmilan``): ``fence_…``."""
    if not FENCE_AGENT_RE.match(value):
        raise ValueError(
            f"{value!r} is not a fence agent name such as 'fence_ipmilan' (fence_ and lowercase letters, "
            "digits, '_')"
        )
    return value


# The cluster's own field types; the settings reuse them, so each bound lives here only.
FenceAgentName = Annotated[str, AfterValidator(check_fence_agent)]
CorosyncClusterName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")]
# Corosync's totem token: how long a silent node has before it is declared lost (consensus = 1.2 x).
TokenMs = Annotated[int, Field(ge=1000, le=60000)]
# An XML id in the CIB (crmsh refuses others).
CibId = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]
# A fence agent's parameter name, as the agent's metadata names it (ip, username, lanplus, pcmk_host_map…).
ParamName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]

# Measured under TCG: fence_sbd confirms msgwait + ~3 s after it was asked (the Python agent plus
# `sbd message`); one more second of margin.
FENCE_SBD_OVERHEAD_S = 4
# pacemaker's priority-fencing-delay: in a split the node running the service shoots first (without it a
# full partition measured a DRBD split-brain and a double fencing); it delays fencing the node that ran
# the service, so a fencing of that node may take this much longer.
PRIORITY_FENCING_DELAY_S = 5
# The stonith-timeout the lab ran with (msgwait 10 and 20 s); never less by default.
BASE_STONITH_TIMEOUT_S = 60
SBD_AGENT = "fence_sbd"

# Characters the crm shell's parser cannot carry inside a value (even double-quoted).
_UNSAFE_VALUE = re.compile(r'["\\\x00-\x1f\x7f]')
# Values written without quotes; anything else is double-quoted.
_BARE_VALUE = re.compile(r"^[A-Za-z0-9_./:@%,+-]+$")
# Parameter names that hold secrets: they belong in secret_params (masked), never in params.
SECRET_PARAM_HINTS = ("pass", "secret", "community", "_kg")


def check_param_value(value: str) -> str:
    if not value:
        raise ValueError("an empty value (leave the parameter out instead)")
    if _UNSAFE_VALUE.search(value):
        raise ValueError(
            "the value contains a double quote, a backslash or a control character, which the crm "
            "configuration cannot carry"
        )
    return value


def _secret_is_text(value: object) -> object:
    """A secret of another type is refused without echoing it (pydantic would show the input)."""
    if not isinstance(value, str | SecretStr):
        raise ValueError("a secret must be a string (quote it in TOML)")
    return value


def _check_secret_value(secret: SecretStr) -> SecretStr:
    check_param_value(secret.get_secret_value())  # its message never contains the value
    return secret


ParamValue = Annotated[str, AfterValidator(check_param_value)]
SecretParamValue = Annotated[SecretStr, BeforeValidator(_secret_is_text), AfterValidator(_check_secret_value)]


def _check_service_ip(value: object) -> object:
    if isinstance(value, str) and "/" not in value:
        raise ValueError(
            f"{value!r} has no prefix length: give the network it is served on, e.g. '10.0.0.50/24' "
            "(IPaddr2 brings it up on the interface in that network)"
        )
    return value


def _not_the_network(value: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> object:
    if value.network.num_addresses > 1 and value.ip == value.network.network_address:
        raise ValueError(f"{value} is the network's own address, not a host address in it")
    v4 = isinstance(value, ipaddress.IPv4Interface) and value.network.prefixlen < 31
    if v4 and value.ip == value.network.broadcast_address:
        raise ValueError(f"{value} is the network's broadcast address")
    return value


# An address with its prefix length (10.0.0.50/24), moved with the volume by IPaddr2.
ServiceIp = Annotated[
    ipaddress.IPv4Interface | ipaddress.IPv6Interface,
    BeforeValidator(_check_service_ip),
    AfterValidator(_not_the_network),
]


class FenceParams(BaseModel):
    """A fence agent's parameters: plain ones, and secret ones that are never shown."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    params: dict[ParamName, ParamValue] = Field(
        default_factory=dict,
        description=(
            "Agent parameters as the agent names them (fence_ipmilan: ip, username, lanplus, ...); "
            "shown in logs. Secrets go in secret_params."
        ),
    )
    secret_params: dict[ParamName, SecretParamValue] = Field(
        default_factory=dict,
        description=(
            "Agent parameters that are secrets (fence_ipmilan: password): written only into the cluster "
            "configuration, masked in every log, repr and error. Never defaulted."
        ),
    )

    @model_validator(mode="after")
    def _secrets_apart(self) -> FenceParams:
        looks_secret = sorted(n for n in self.params if any(hint in n for hint in SECRET_PARAM_HINTS))
        if looks_secret:
            raise ValueError(
                f"params {', '.join(looks_secret)} look like secrets: put them in secret_params "
                "(masked everywhere), not params (shown in logs)"
            )
        both = sorted(set(self.params) & set(self.secret_params))
        if both:
            raise ValueError(f"{', '.join(both)} given both in params and in secret_params")
        return self

    def merged(self, other: FenceParams) -> FenceParams:
        """These parameters with ``other``'s on top (a node's own over the shared ones)."""
        params = {k: v for k, v in self.params.items() if k not in other.secret_params}
        secret = {k: v for k, v in self.secret_params.items() if k not in other.params}
        return FenceParams(params={**params, **other.params}, secret_params={**secret, **other.secret_params})


class Sbd(BaseModel):
    """SBD ("storage-based death"): a small disk every node sees, plus each node's hardware watchdog.

    fence_sbd writes a poison pill into the victim's slot and waits ``msgwait``; a node that cannot
    read its slot or reach the cluster stops feeding its watchdog and is reset by it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: AbsolutePath = Field(
        "/dev/disk/by-id/virtio-sbd",
        description=(
            "The shared SBD disk, by a name that is the same on every node (the lab's is a 16 MiB "
            "shareable virtio disk with serial 'sbd'; never its vdX name, which depends on disk order)."
        ),
    )
    watchdog_timeout_s: int = Field(
        5,
        ge=1,
        le=120,
        description=(
            "SBD header: a node whose sbd stops feeding the watchdog is reset after this long. 5 s was "
            "measured on the TCG lab without a false reset, CPU stress and 4.5 s VM freezes included."
        ),
    )
    msgwait_s: int = Field(
        10,
        ge=2,
        le=240,
        description=(
            "SBD header: how long fence_sbd waits after writing the poison pill before it reports the "
            "node fenced (at least twice watchdog_timeout_s). Measured: 10 s mounts the survivor "
            "30-35 s after a kill, 20 s 40-46 s."
        ),
    )
    watchdog_device: AbsolutePath = Field(
        "/dev/watchdog", description="The node's watchdog (the lab's VMs have QEMU's i6300esb)."
    )

    @model_validator(mode="after")
    def _msgwait_covers_the_watchdog(self) -> Sbd:
        if self.msgwait_s < 2 * self.watchdog_timeout_s:
            raise ValueError(
                f"msgwait_s {self.msgwait_s} must be at least twice watchdog_timeout_s "
                f"{self.watchdog_timeout_s} (a fenced node must have reset itself before msgwait ends)"
            )
        return self

    @property
    def fence_duration_s(self) -> int:
        """The longest one fence_sbd fencing takes (measured: msgwait + ~3 s)."""
        return self.msgwait_s + FENCE_SBD_OVERHEAD_S


def min_stonith_timeout_s(
    fence_duration_s: int, priority_fencing_delay_s: int = PRIORITY_FENCING_DELAY_S
) -> int:
    """stonith-timeout must exceed this: the fencing itself, plus the priority delay in front of it."""
    return fence_duration_s + priority_fencing_delay_s


def default_stonith_timeout_s(
    fence_duration_s: int | None, priority_fencing_delay_s: int = PRIORITY_FENCING_DELAY_S
) -> int:
    """The lab's 60 s, or twice the minimum when a device's fencing is known to take longer."""
    if fence_duration_s is None:
        return BASE_STONITH_TIMEOUT_S
    return max(BASE_STONITH_TIMEOUT_S, 2 * min_stonith_timeout_s(fence_duration_s, priority_fencing_delay_s))


def stonith_timeout_problem(
    timeout_s: int, fence_duration_s: int, priority_fencing_delay_s: int = PRIORITY_FENCING_DELAY_S
) -> str | None:
    """Why ``timeout_s`` is too short for a fencing that takes up to ``fence_duration_s``, or None."""
    minimum = min_stonith_timeout_s(fence_duration_s, priority_fencing_delay_s)
    if timeout_s > minimum:
        return None
    return (
        f"stonith_timeout_s {timeout_s} must exceed {minimum} s: a fencing takes up to "
        f"{fence_duration_s} s (fence_sbd: msgwait + {FENCE_SBD_OVERHEAD_S} s) and priority-fencing-delay "
        f"adds {priority_fencing_delay_s} s; a fencing that times out is retried while the survivor waits"
    )


# -- corosync ----------------------------------------------------------------------------------------


class CorosyncNode(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: Hostname = Field(description="The node's hostname: pacemaker knows nodes by it.")
    nodeid: int = Field(ge=1, le=65535, description="Corosync node id, unique in the cluster.")
    address: IpAddress = Field(description="ring0_addr: the address knet talks over (replication network).")


class Corosync(BaseModel):
    """Corosync 3 over knet, encrypted and authenticated with the cluster's authkey."""

    model_config = ConfigDict(frozen=True)

    cluster_name: CorosyncClusterName = Field(description="cluster_name (also pacemaker's cluster-name).")
    nodes: tuple[CorosyncNode, ...] = Field(min_length=2, max_length=32, description="Every cluster node.")
    token_ms: TokenMs = Field(3000, description="Totem token timeout in ms (corosync 3's default).")

    @classmethod
    def of(cls, cluster_name: str, addresses: Mapping[str, str], token_ms: int = 3000) -> Corosync:
        """From the nodes' replication addresses in order (``tasks.cluster.node_addresses``), ids 1…n."""
        nodes = tuple(
            CorosyncNode(name=name, nodeid=number, address=ipaddress.ip_address(address))
            for number, (name, address) in enumerate(addresses.items(), start=1)
        )
        return cls(cluster_name=cluster_name, nodes=nodes, token_ms=token_ms)

    @model_validator(mode="after")
    def _consistent(self) -> Corosync:
        for what, values in (
            ("names", [n.name for n in self.nodes]),
            ("ids", [str(n.nodeid) for n in self.nodes]),
            ("addresses", [str(n.address) for n in self.nodes]),
        ):
            if len(set(values)) != len(values):
                raise ValueError(f"duplicate node {what}: {', '.join(values)}")
        if len({n.address.version for n in self.nodes}) > 1:
            raise ValueError("nodes mix IPv4 and IPv6 addresses: knet links one address family")
        return self

    @property
    def two_node(self) -> bool:
        """votequorum's two_node: with two nodes the survivor keeps quorum (fencing decides who lives)."""
        return len(self.nodes) == 2


def render_corosync_conf(corosync: Corosync) -> str:
    """``/etc/corosync/corosync.conf``, the same on every node. The authkey is a file of its own."""
    lines = [
        OWN_FILE_HEADER,
        "totem {",
        "    version: 2",
        f"    cluster_name: {corosync.cluster_name}",
        "    transport: knet",
        "    crypto_cipher: aes256",
        "    crypto_hash: sha256",
        "    # a node silent for token ms is lost; a new membership forms consensus (1.2 x token) later",
        f"    token: {corosync.token_ms}",
        "}",
        "nodelist {",
    ]
    for node in corosync.nodes:
        lines += [
            "    node {",
            f"        name: {node.name}",
            f"        nodeid: {node.nodeid}",
            f"        ring0_addr: {node.address}",
            "    }",
        ]
    lines += ["}", "quorum {", "    provider: corosync_votequorum"]
    if corosync.two_node:
        lines += [
            "    # two_node implies wait_for_all: both nodes must be seen once before the cluster is quorate",
            "    two_node: 1",
        ]
    lines += [
        "}",
        "logging {",
        "    to_logfile: yes",
        "    logfile: /var/log/corosync/corosync.log",
        "    to_syslog: yes",
        "    timestamp: on",
        "}",
    ]
    return "\n".join(lines) + "\n"


# -- sbd ---------------------------------------------------------------------------------------------


def render_sbd_default(sbd: Sbd) -> str:
    """``/etc/default/sbd``. The watchdog and msgwait timeouts are not here: they live in the disk's SBD
    header (``sbd -d DEVICE -1 WATCHDOG -4 MSGWAIT create``, only while the cluster is stopped on every
    node); SBD_WATCHDOG_TIMEOUT below applies to diskless SBD only and is kept equal for clarity."""
    return "\n".join(
        (
            OWN_FILE_HEADER,
            f"SBD_DEVICE={sbd.device}",
            "SBD_PACEMAKER=yes",
            "# always: a fenced node clears its own slot when it starts and rejoins by itself",
            "SBD_STARTMODE=always",
            "SBD_DELAY_START=no",
            f"SBD_WATCHDOG_DEV={sbd.watchdog_device}",
            f"SBD_WATCHDOG_TIMEOUT={sbd.watchdog_timeout_s}",
            "SBD_TIMEOUT_ACTION=flush,reboot",
            "SBD_MOVE_TO_ROOT_CGROUP=auto",
            "SBD_SYNC_RESOURCE_STARTUP=yes",
            "SBD_OPTS=",
            "",
        )
    )


# -- the cluster configuration (CIB) --------------------------------------------------------------------


class StonithDevice(BaseModel):
    """One fence device: a ``stonith:`` primitive that can fence ``targets``."""

    model_config = ConfigDict(frozen=True)

    name: CibId = Field(description="The primitive's id (st_…).")
    agent: FenceAgentName = Field(description="The fence agent (fence_sbd, fence_ipmilan, …).")
    targets: tuple[Hostname, ...] = Field(min_length=1, description="The nodes this device fences.")
    params: FenceParams = Field(default_factory=FenceParams, description="The agent's parameters.")
    monitor_interval_s: int = Field(
        3600, ge=10, le=86400, description="How often pacemaker checks the device answers."
    )
    fence_duration_s: int | None = Field(
        None,
        ge=1,
        description=(
            "The longest one fencing by this device takes, when known (fence_sbd: msgwait + 4 s); the "
            "cluster's stonith-timeout must exceed it plus priority-fencing-delay."
        ),
    )

    @property
    def host_params(self) -> list[tuple[str, str]]:
        """pcmk_host_list with a static check (else fenced asks the agent for its list before every
        fencing: +3.3 s measured) — unless the user's parameters say how the device maps hosts."""
        own = set(self.params.params) | set(self.params.secret_params)
        if own & {"pcmk_host_list", "pcmk_host_map", "pcmk_host_check"}:
            return []
        return [("pcmk_host_list", " ".join(self.targets)), ("pcmk_host_check", "static-list")]


def stonith_devices(
    agent: str,
    nodes: Sequence[str],
    shared: FenceParams,
    per_node: Mapping[str, FenceParams],
    sbd: Sbd,
) -> tuple[StonithDevice, ...]:
    """The fence devices for ``nodes``: fence_sbd is one device on the shared disk for every node; another
    agent is one device for every node, or — with per-node parameters (each node's BMC) — one device
    per node, kept off the node it fences (:func:`render_cib` adds the location constraint)."""
    short = agent.removeprefix("fence_")
    if agent == SBD_AGENT:
        if per_node:
            raise ValueError(
                "fence_sbd fences every node from the shared disk: it takes no per-node parameters"
            )
        params = FenceParams(params={"devices": sbd.device}).merged(shared)
        return (
            StonithDevice(
                name=f"st_{short}",
                agent=agent,
                targets=tuple(nodes),
                params=params,
                fence_duration_s=sbd.fence_duration_s,
            ),
        )
    if not per_node:
        return (
            StonithDevice(
                name=f"st_{short}", agent=agent, targets=tuple(nodes), params=shared, monitor_interval_s=60
            ),
        )
    unknown = sorted(set(per_node) - set(nodes))
    if unknown:
        raise ValueError(
            f"fence parameters for unknown node(s) {', '.join(unknown)} (known: {', '.join(nodes)})"
        )
    missing = [node for node in nodes if node not in per_node]
    if missing:
        raise ValueError(
            f"no fence parameters for node(s) {', '.join(missing)}: with per-node parameters every node "
            "needs its own"
        )
    return tuple(
        StonithDevice(
            name=f"st_{short}_{node}",
            agent=agent,
            targets=(node,),
            params=shared.merged(per_node[node]),
            monitor_interval_s=60,
        )
        for node in nodes
    )


class Cib(BaseModel):
    """What pacemaker runs: STONITH, DRBD as a promotable clone, the filesystem on the promoted node, an
    optional service IP, and the cluster options measured on the lab."""

    model_config = ConfigDict(frozen=True)

    cluster_name: CorosyncClusterName = Field(
        description="pacemaker's cluster-name (corosync's cluster_name)."
    )
    nodes: tuple[Hostname, ...] = Field(min_length=2, max_length=32, description="Every cluster node.")
    drbd_resource: ResourceName = Field("r0", description="The DRBD resource ocf:linbit:drbd manages.")
    minor: Minor = Field(0, description="The volume is /dev/drbd<minor>.")
    mountpoint: AbsolutePath = Field("/mnt/r0", description="Where the promoted node mounts the volume.")
    fstype: Literal["ext4", "xfs"] = Field("ext4", description="The volume's filesystem.")
    stonith_enabled: bool = Field(True, description="stonith-enabled; false only by an explicit opt-out.")
    stonith_devices: tuple[StonithDevice, ...] = Field((), description="The fence devices.")
    stonith_timeout_s: int = Field(
        BASE_STONITH_TIMEOUT_S, ge=10, le=3600, description="stonith-timeout: how long one fencing may take."
    )
    service_ip: ServiceIp | None = Field(None, description="IPaddr2 address moved with the volume, or None.")
    priority_fencing_delay_s: int = Field(
        PRIORITY_FENCING_DELAY_S,
        ge=0,
        le=60,
        description="In a split the node running the service fences first (3 of 3 partitions clean).",
    )
    dc_deadtime_s: int = Field(
        5, ge=1, le=120, description="dc-deadtime: default 20 s is pure waiting at cluster start."
    )
    load_threshold_pct: int = Field(
        800,
        ge=10,
        le=10000,
        description="load-threshold: 80 % throttles 1-vCPU TCG guests to one action at a time.",
    )
    resource_stickiness: int = Field(100, ge=0, description="The service stays where it runs (no fail-back).")
    fs_priority: int = Field(10, ge=1, description="The filesystem's priority, for priority-fencing-delay.")

    @model_validator(mode="after")
    def _consistent(self) -> Cib:
        if len(set(self.nodes)) != len(self.nodes):
            raise ValueError(f"duplicate node names: {', '.join(self.nodes)}")
        if self.stonith_enabled and not self.stonith_devices:
            raise ValueError("STONITH is enabled but there is no fence device")
        if not self.stonith_enabled and self.stonith_devices:
            raise ValueError("fence devices are configured but STONITH is disabled")
        ids = [d.name for d in self.stonith_devices] + list(self.fixed_ids)
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate CIB ids: {', '.join(duplicates)}")
        fenced = {target for device in self.stonith_devices for target in device.targets}
        unknown = sorted(fenced - set(self.nodes))
        if unknown:
            raise ValueError(f"fence devices name unknown nodes: {', '.join(unknown)}")
        unfenced = [node for node in self.nodes if self.stonith_enabled and node not in fenced]
        if unfenced:
            raise ValueError(f"no fence device fences {', '.join(unfenced)}")
        if self.stonith_enabled:
            for device in self.stonith_devices:
                if device.fence_duration_s is not None:
                    problem = stonith_timeout_problem(
                        self.stonith_timeout_s, device.fence_duration_s, self.priority_fencing_delay_s
                    )
                    if problem:
                        raise ValueError(problem)
        return self

    @property
    def drbd_id(self) -> str:
        return f"p_drbd_{self.drbd_resource}"

    @property
    def clone_id(self) -> str:
        """The promotable clone (crm-fence-peer.sh's constraint: drbd-fence-by-handler-<res>-<this id>)."""
        return f"ms_drbd_{self.drbd_resource}"

    @property
    def fs_id(self) -> str:
        return f"p_fs_{self.drbd_resource}"

    @property
    def ip_id(self) -> str:
        return f"p_ip_{self.drbd_resource}"

    @property
    def fixed_ids(self) -> tuple[str, ...]:
        ids: tuple[str, ...] = (self.drbd_id, self.clone_id, self.fs_id, "c_fs_on_drbd", "o_drbd_before_fs")
        if self.service_ip is not None:
            ids += (self.ip_id, "c_ip_with_fs", "o_fs_before_ip")
        return ids


def _crm_value(value: str) -> str:
    return value if _BARE_VALUE.match(value) else f'"{value}"'


def _crm_params(pairs: Sequence[tuple[str, str]]) -> str:
    return " ".join(f"{name}={_crm_value(value)}" for name, value in pairs)


def _statement(head: str, *parts: str) -> list[str]:
    """One crm statement: the head, then each part on a continuation line (as ``crm configure show``)."""
    lines = [head, *(f"    {part}" for part in parts)]
    return [line + " \\" for line in lines[:-1]] + [lines[-1]]


def _device_lines(device: StonithDevice) -> list[str]:
    params = [
        *device.params.params.items(),
        *((name, secret.get_secret_value()) for name, secret in device.params.secret_params.items()),
        *device.host_params,
    ]
    return _statement(
        f"primitive {device.name} stonith:{device.agent}",
        f"params {_crm_params(params)}",
        f"op monitor interval={device.monitor_interval_s}s timeout=60s",
    )


def render_cib(cib: Cib) -> str:
    """The cluster configuration for ``crm configure load update`` (on one node; stdin, never argv).

    It holds the fence agents' secret parameters: register :func:`cib_secrets` with the executor and
    never log the text. ``load update`` leaves alone what it does not name — crm-fence-peer.sh's
    ``drbd-fence-by-handler-…`` constraint among them, which ``load replace`` would delete.
    """
    lines = [OWN_FILE_HEADER]
    properties = [f"stonith-enabled={'true' if cib.stonith_enabled else 'false'}"]
    if cib.stonith_enabled:
        properties.append(f"stonith-timeout={cib.stonith_timeout_s}s")
    else:
        lines += [
            "# STONITH IS DISABLED (cluster.fencing.stonith = false): a node that is cut off but still",
            "# running can keep its volume while the other is promoted (split-brain, lost writes).",
        ]
    properties += [
        "no-quorum-policy=stop",
        f"cluster-name={cib.cluster_name}",
        f"dc-deadtime={cib.dc_deadtime_s}s",
        f"load-threshold={cib.load_threshold_pct}%",
    ]
    if cib.stonith_enabled:
        properties.append(f"priority-fencing-delay={cib.priority_fencing_delay_s}s")
    lines += _statement("property cib-bootstrap-options:", *properties)
    lines += _statement("rsc_defaults rsc-options:", f"resource-stickiness={cib.resource_stickiness}")
    for device in cib.stonith_devices:
        lines += _device_lines(device)
    lines += _statement(
        f"primitive {cib.drbd_id} ocf:linbit:drbd",
        f"params drbd_resource={cib.drbd_resource}",
        "op start timeout=240s interval=0",
        "op stop timeout=100s interval=0",
        "op promote timeout=90s interval=0",
        "op demote timeout=90s interval=0",
        "op notify timeout=90s interval=0",
        "op monitor interval=29s role=Promoted timeout=20s",
        "op monitor interval=31s role=Unpromoted timeout=20s",
    )
    lines += _statement(
        f"clone {cib.clone_id} {cib.drbd_id}",
        f"meta promotable=true promoted-max=1 promoted-node-max=1 clone-max={len(cib.nodes)} "
        "clone-node-max=1 notify=true",
    )
    fs_params = [("device", f"/dev/drbd{cib.minor}"), ("directory", cib.mountpoint), ("fstype", cib.fstype)]
    lines += _statement(
        f"primitive {cib.fs_id} Filesystem",
        f"params {_crm_params(fs_params)}",
        "op start timeout=60s interval=0",
        "op stop timeout=60s interval=0",
        "op monitor interval=20s timeout=40s",
        f"meta priority={cib.fs_priority}",
    )
    lines += [
        f"colocation c_fs_on_drbd inf: {cib.fs_id} {cib.clone_id}:Promoted",
        f"order o_drbd_before_fs Mandatory: {cib.clone_id}:promote {cib.fs_id}:start",
    ]
    for stonith in cib.stonith_devices:
        if len(stonith.targets) == 1 and len(cib.nodes) > 1:  # a node's own BMC never runs on that node
            (target,) = stonith.targets
            lines.append(f"location l_{stonith.name}_avoid {stonith.name} -inf: {target}")
    if cib.service_ip is not None:
        ip = cib.service_ip
        lines += _statement(
            f"primitive {cib.ip_id} IPaddr2",
            f"params {_crm_params([('ip', str(ip.ip)), ('cidr_netmask', str(ip.network.prefixlen))])}",
            "op monitor interval=10s timeout=20s",
        )
        lines += [
            f"colocation c_ip_with_fs inf: {cib.ip_id} {cib.fs_id}",
            f"order o_fs_before_ip Mandatory: {cib.fs_id}:start {cib.ip_id}:start",
        ]
    return "\n".join(lines) + "\n"


def cib_secrets(cib: Cib) -> list[str]:
    """Every secret :func:`render_cib` writes, to register with the run's executor before the text is
    sent anywhere (``current_executor().add_secret``)."""
    return [
        secret.get_secret_value()
        for device in cib.stonith_devices
        for secret in device.params.secret_params.values()
    ]
