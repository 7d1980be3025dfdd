"""tasks/cluster.py: the o2cb cluster and the (dual-primary) DRBD resource from the settings."""

from __future__ import annotations

import pytest

from tasks.cluster import (
    drbd_resource,
    node_addresses,
    node_ports,
    o2cb_cluster,
    secret_block_name,
    stacked_address,
    stacked_resource,
)
from tasks.drbd.model import render_resource
from tasks.settings import Settings, load_settings

SECRET = "A" * 32


def test_cluster_and_dual_primary_resource_from_settings() -> None:
    settings = load_settings()
    cluster = o2cb_cluster(settings)
    assert [(n.name, str(n.address), n.number) for n in cluster.nodes] == [
        ("nodea", "10.77.0.11", 0),
        ("nodeb", "10.77.0.12", 1),
    ]
    assert (cluster.heartbeat_threshold, cluster.idle_timeout_ms) == (7, 10000)
    resource = drbd_resource(settings, SECRET, dual_primary=True)
    assert resource.dual_primary and resource.protocol == "C"
    assert (resource.after_sb_0pri, resource.after_sb_1pri, resource.after_sb_2pri) == (
        "discard-zero-changes",
        "discard-secondary",
        "disconnect",
    )
    assert not drbd_resource(settings, SECRET).dual_primary


def test_dual_primary_forces_protocol_c(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HSF_DRBD__PROTOCOL", "A")
    settings = load_settings()
    assert drbd_resource(settings, SECRET).protocol == "A"
    assert drbd_resource(settings, SECRET, dual_primary=True).protocol == "C"


def test_the_activity_log_setting_reaches_the_resource_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The least log by default (a crashed Primary resyncs at most 268 MiB); set, both flavours carry it."""
    assert "    al-extents 67;\n" in render_resource(drbd_resource(load_settings(), SECRET))
    monkeypatch.setenv("HSF_DRBD__AL_EXTENTS", "127")
    settings = load_settings()
    for dual_primary in (False, True):
        assert "    al-extents 127;\n" in render_resource(drbd_resource(settings, SECRET, dual_primary))


def _inventory(monkeypatch: pytest.MonkeyPatch, *hosts: dict[str, object]) -> Settings:
    def no_lookup(*args: object, **kwargs: object) -> object:
        raise AssertionError(f"looked up {args}: these tests use IP literals only")

    monkeypatch.setattr("socket.getaddrinfo", no_lookup)
    return load_settings(target="inventory", inventory=list(hosts))


def test_inventory_replicates_over_its_replication_addresses_and_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _inventory(
        monkeypatch,
        {"name": "store1", "address": "192.0.2.10", "replication_address": "10.0.9.1"},
        {
            "name": "store2",
            "address": "192.0.2.11",
            "replication_address": "10.0.9.2",
            "replication_port": 7790,
        },
    )
    assert node_addresses(settings) == {"store1": "10.0.9.1", "store2": "10.0.9.2"}
    assert node_ports(settings) == {"store1": 7789, "store2": 7790}
    resource = drbd_resource(settings, SECRET)
    assert [(n.name, n.endpoint) for n in resource.nodes] == [
        ("store1", "ipv4 10.0.9.1:7789"),
        ("store2", "ipv4 10.0.9.2:7790"),
    ]
    rendered = render_resource(resource)
    assert "    address ipv4 10.0.9.1:7789;\n" in rendered
    assert "    address ipv4 10.0.9.2:7790;\n" in rendered
    assert "192.0.2." not in rendered  # the SSH addresses never replicate
    assert [(n.name, str(n.address)) for n in o2cb_cluster(settings).nodes] == [
        ("store1", "10.0.9.1"),
        ("store2", "10.0.9.2"),
    ]


def test_without_replication_settings_the_ssh_address_and_drbd_port_replicate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HSF_DRBD__PORT", "7800")
    settings = _inventory(
        monkeypatch, {"name": "store1", "address": "192.0.2.10"}, {"name": "store2", "address": "192.0.2.11"}
    )
    rendered = render_resource(drbd_resource(settings, SECRET))
    assert "address ipv4 192.0.2.10:7800;" in rendered and "address ipv4 192.0.2.11:7800;" in rendered


def test_ipv6_replication_renders_bracketed_and_o2cb_refuses_it_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _inventory(
        monkeypatch,
        {"name": "store1", "address": "192.0.2.10", "replication_address": "fd00::1"},
        {
            "name": "store2",
            "address": "192.0.2.11",
            "replication_address": "fd00::2",
            "replication_port": 7790,
        },
    )
    rendered = render_resource(drbd_resource(settings, SECRET))
    assert "address ipv6 [fd00::1]:7789;" in rendered and "address ipv6 [fd00::2]:7790;" in rendered
    with pytest.raises(
        ValueError, match=r"o2cb interconnects over IPv4 only.*store1 fd00::1, store2 fd00::2"
    ):
        o2cb_cluster(settings)


def test_the_lab_keeps_its_own_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HSF_DRBD__PORT", "7800")
    settings = load_settings()
    assert node_ports(settings) == {"nodea": 7800, "nodeb": 7800}
    assert [n.endpoint for n in drbd_resource(settings, SECRET).nodes] == [
        "ipv4 10.77.0.11:7800",
        "ipv4 10.77.0.12:7800",
    ]


def test_a_stacked_volume_from_the_lab_settings() -> None:
    """The upper resource: its own name, the lab's .10 held by the lower Primary, the third VM's address, and
    the upper tier's own protocol over the volume's tuning."""
    settings = load_settings(drbd={"topology": "stacked", "upper_protocol": "C", "resync_rate": "40M"})
    upper = stacked_resource(settings, drbd_resource(settings, SECRET), SECRET)
    assert (upper.name, upper.lower.name, upper.protocol, upper.resync_rate) == ("r0-u", "r0", "C", "40M")
    assert str(stacked_address(settings)) == "10.77.0.10/24"
    assert (upper.node("nodeb").endpoint, upper.node("nodeb").disk) == ("ipv4 10.77.0.10:7790", "/dev/drbd0")
    assert (upper.third.name, upper.third.endpoint, upper.third.disk) == (
        "nodec",
        "ipv4 10.77.0.14:7790",
        "/dev/vdb",
    )
    assert secret_block_name(settings, upper.name) == "hsf-drbd-r0-u"


def test_a_stacked_volume_on_real_hosts_uses_the_inventory_and_the_set_address() -> None:
    hosts = [
        {"name": "store1", "address": "192.0.2.1"},
        {"name": "store2", "address": "192.0.2.2"},
        {"name": "far", "address": "198.51.100.7", "replication_address": "192.0.2.30"},
    ]
    settings = load_settings(
        target="inventory",
        inventory=hosts,
        drbd={
            "topology": "stacked",
            "third_node": "far",
            "stacked_address": "192.0.2.10/24",
            "stacked_port": 7800,
        },
    )
    upper = stacked_resource(settings, drbd_resource(settings, SECRET), SECRET)
    assert [n.name for n in upper.lower.nodes] == ["store1", "store2"]
    assert (upper.node("store1").endpoint, upper.third.endpoint) == (
        "ipv4 192.0.2.10:7800",
        "ipv4 192.0.2.30:7800",
    )
    with pytest.raises(ValueError, match="there is no upper resource"):
        stacked_resource(load_settings(), drbd_resource(load_settings(), SECRET), SECRET)
