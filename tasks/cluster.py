"""The cluster the flows act on: the embedded lab's VMs, or the user's inventory of SSH hosts."""

from __future__ import annotations

import secrets
from ipaddress import IPv4Interface, IPv6Interface, ip_address
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from tasks.context import current_executor
from tasks.drbd.model import DrbdNode, DrbdResource, StackedResource
from tasks.drbd.stacked import StackedVolume
from tasks.executor import SshTarget
from tasks.lab.state import lab_targets
from tasks.ocfs2.model import O2cbCluster, O2cbNode
from tasks.pacemaker.model import SBD_AGENT, Cib, Corosync, Sbd
from tasks.settings import Settings

if TYPE_CHECKING:
    from prefect.blocks.system import Secret


def node_targets(settings: Settings) -> dict[str, SshTarget]:
    """How to reach every storage node, by node name."""
    hosts = host_targets(settings)
    return {name: hosts[name] for name in settings.node_names}


def host_targets(settings: Settings) -> dict[str, SshTarget]:
    """How to reach every host of the cluster, by name: storage nodes and (lab) the backup server."""
    if settings.target == "lab":
        return lab_targets(settings.lab)
    return {host.name: SshTarget.of(host) for host in settings.inventory}


def node_addresses(settings: Settings) -> dict[str, str]:
    """Replication IP address of every node: the lab's isolated network, or each inventory host's
    replication address (its SSH address unless set), resolved when the settings loaded."""
    if settings.target == "lab":
        return {node: str(settings.lab.address_of(node)) for node in settings.lab.nodes}
    return {h.name: str(h.replication_ip) for h in settings.inventory if h.name in settings.node_names}


def node_ports(settings: Settings) -> dict[str, int]:
    """DRBD replication port of every node: an inventory host's own replication_port, else drbd.port."""
    if settings.target == "lab":
        return dict.fromkeys(settings.lab.nodes, settings.drbd.port)
    return {
        h.name: h.replication_port or settings.drbd.port
        for h in settings.inventory
        if h.name in settings.node_names
    }


def secret_block_name(settings: Settings, resource: str | None = None) -> str:
    """Name of the Prefect ``Secret`` block holding a DRBD resource's shared secret (the volume's own
    resource unless ``resource`` names another, e.g. the stacked upper resource)."""
    return f"{settings.cluster_name}-drbd-{resource or settings.drbd.resource}".replace("_", "-").lower()


def borg_passphrase_block_name(settings: Settings) -> str:
    """Name of the Prefect ``Secret`` block holding the Borg repository's passphrase."""
    return settings.backup.passphrase_block or f"{settings.cluster_name}-borg-passphrase"


def secret_block(block_name: str, random_bytes: int = 24) -> Secret[str]:
    """The saved ``Secret`` block ``block_name``; a random secret (``random_bytes`` of entropy, as
    URL-safe text) is generated and saved only if absent."""
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(block_name)
    except ValueError:  # no such block yet: never overwrite an existing one
        block = Secret(value=secrets.token_urlsafe(random_bytes))
        block.save(block_name, overwrite=False)
    assert isinstance(block, Secret)  # sync context: never a coroutine
    return block


def stored_secret(block_name: str) -> str | None:
    """The value of the ``Secret`` block ``block_name``, or None when there is no such block."""
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(block_name)
    except ValueError:
        return None
    assert isinstance(block, Secret)  # sync context: never a coroutine
    return str(block.get())


def store_secret(block_name: str, value: str, *, replace: bool = False) -> None:
    """Save ``value`` as the Secret block ``block_name``; over a different one only if ``replace``."""
    from prefect.blocks.system import Secret

    current = stored_secret(block_name)
    if current == value:
        return
    if current is not None and not replace:
        raise FileExistsError(f"Secret block {block_name!r} already holds a different value")
    Secret(value=value).save(block_name, overwrite=current is not None)


def delete_secret(block_name: str) -> None:
    """Remove the ``Secret`` block ``block_name`` (a missing one is not an error)."""
    from prefect.blocks.system import Secret

    if stored_secret(block_name) is not None:
        Secret.delete(block_name)


def shared_secret(block_name: str, random_bytes: int = 24) -> str:
    """The value of the ``Secret`` block ``block_name`` (generated once if absent)."""
    return str(secret_block(block_name, random_bytes).get())


def authkey_block_name(settings: Settings) -> str:
    """Name of the Prefect ``Secret`` block holding corosync's authkey (the file's whole content)."""
    return f"{settings.cluster_name}-corosync-authkey".replace("_", "-").lower()


# corosync-keygen writes 256 random bytes; the key is kept as text (URL-safe base64 of as many) so the
# Secret block and the executor's masking hold it as it is: corosync reads the file's bytes, any bytes.
AUTHKEY_RANDOM_BYTES = 256


def corosync_authkey(settings: Settings) -> str:
    """The cluster's corosync authkey (generated once, kept in its Secret block)."""
    return shared_secret(authkey_block_name(settings), AUTHKEY_RANDOM_BYTES)


class PacemakerCluster(BaseModel):
    """Everything setup builds for ``cluster.manager = "pacemaker"``, from the settings."""

    model_config = ConfigDict(frozen=True)

    corosync: Corosync
    sbd: Sbd | None = Field(description="SBD fencing (fence_sbd), or None with another agent or none.")
    cib: Cib


def pacemaker_cluster(settings: Settings) -> PacemakerCluster:
    """The corosync membership over the replication addresses, SBD when it fences, and the CIB."""
    cluster = settings.cluster
    fencing = cluster.fencing
    nodes = tuple(settings.node_names)
    corosync = Corosync.of(settings.cluster_name, node_addresses(settings), cluster.token_ms)
    sbd = fencing.sbd if fencing.stonith and fencing.effective_agent == SBD_AGENT else None
    cib = Cib(
        cluster_name=corosync.cluster_name,
        nodes=nodes,
        drbd_resource=settings.drbd.resource,
        minor=settings.drbd.minor,
        mountpoint=settings.drbd.mountpoint,
        fstype=settings.drbd.fstype,
        stonith_enabled=fencing.stonith,
        stonith_devices=fencing.devices(nodes),
        stonith_timeout_s=fencing.timeout_s,
        service_ip=cluster.service_ip,
    )
    return PacemakerCluster(corosync=corosync, sbd=sbd, cib=cib)


def drbd_resource(settings: Settings, secret: str, dual_primary: bool = False) -> DrbdResource:
    """The DRBD resource described by the settings, across the cluster's two nodes.

    ``dual_primary`` gives the high-availability flavour: allow-two-primaries and the split-brain
    auto-recovery policies from ``settings.ha``; protocol C is enforced (async replication under a
    cluster filesystem would corrupt it).
    """
    ports = node_ports(settings)
    drbd = settings.drbd
    nodes = [
        DrbdNode(name=name, address=address, port=ports[name], disk=drbd.disk, minor=drbd.minor)
        for name, address in node_addresses(settings).items()
    ]
    ha = {}
    if dual_primary:
        ha = {
            "dual_primary": True,
            "after_sb_0pri": settings.ha.after_sb_0pri,
            "after_sb_1pri": settings.ha.after_sb_1pri,
            "after_sb_2pri": settings.ha.after_sb_2pri,
        }
    tuning = {**drbd.tuning(), **({"protocol": "C"} if dual_primary else {})}
    fencing = None if dual_primary else settings.cluster.drbd_fencing  # Pacemaker owns single-primary only
    return DrbdResource(
        name=drbd.resource,
        nodes=tuple(nodes),
        shared_secret=SecretStr(secret),
        fencing=fencing,
        **tuning,
        **ha,
    )


def third_node_target(settings: Settings) -> SshTarget:
    """How to reach the stacked volume's third node."""
    third = settings.third_node
    if third is None:
        raise ValueError("drbd.topology is 'two-node': there is no third node")
    return host_targets(settings)[third]


def stacked_address(settings: Settings) -> IPv4Interface | IPv6Interface:
    """The address the lower Primary holds for the upper resource: the setting, or in the lab the subnet's
    .10 (the lab's VMs start at .11, the bridge is .1)."""
    if settings.drbd.stacked_address is not None:
        return settings.drbd.stacked_address
    subnet = settings.lab.subnet
    return IPv4Interface(f"{subnet.network_address + 10}/{subnet.prefixlen}")


def stacked_resource(settings: Settings, lower: DrbdResource, secret: str) -> StackedResource:
    """The upper resource of a stacked volume: on the lower Primary at :func:`stacked_address`, and on the
    third node with a disk of its own (``drbd.disk``; its address as the lab or the inventory has it)."""
    drbd = settings.drbd
    third = settings.third_node
    if third is None:
        raise ValueError("drbd.topology is 'two-node': there is no upper resource")
    if settings.target == "lab":
        third_address: str = str(settings.lab.address_of(third))
    else:
        third_address = next(str(h.replication_ip) for h in settings.inventory if h.name == third)
    return StackedResource(
        name=drbd.upper_resource,
        lower=lower,
        address=stacked_address(settings).ip,
        port=drbd.stacked_port,
        minor=drbd.upper_minor,
        third=DrbdNode(
            name=third, address=third_address, port=drbd.stacked_port, disk=drbd.disk, minor=drbd.upper_minor
        ),
        shared_secret=SecretStr(secret),
        **{**drbd.tuning(), "protocol": drbd.upper_protocol},
    )


def stacked_volume(settings: Settings) -> StackedVolume:
    """The three-node volume of the settings, its secrets from their blocks (masked from here on)."""
    lower = drbd_resource(settings, shared_secret(secret_block_name(settings)))
    upper = stacked_resource(
        settings, lower, shared_secret(secret_block_name(settings, settings.drbd.upper_resource))
    )
    for resource in (lower, upper):
        current_executor().add_secret(resource.shared_secret.get_secret_value())
    targets = {**node_targets(settings), upper.third.name: third_node_target(settings)}
    return StackedVolume(targets, upper, stacked_address(settings), settings.drbd.mountpoint)


def o2cb_cluster(settings: Settings) -> O2cbCluster:
    """The o2cb cluster over the same nodes (node names = hostnames, numbered in order)."""
    addresses = node_addresses(settings)
    ipv6 = [f"{name} {address}" for name, address in addresses.items() if ip_address(address).version == 6]
    if ipv6:
        raise ValueError(
            f"o2cb interconnects over IPv4 only, and these replication addresses are IPv6: "
            f"{', '.join(ipv6)} (set replication_address to an IPv4 address for OCFS2)"
        )
    return O2cbCluster(
        name=settings.ha.cluster_name,
        nodes=tuple(
            O2cbNode(name=name, address=address, number=number)
            for number, (name, address) in enumerate(addresses.items())
        ),
        port=settings.ha.o2cb_port,
        heartbeat_threshold=settings.ha.heartbeat_threshold,
        idle_timeout_ms=settings.ha.idle_timeout_ms,
    )
