"""tasks/cluster.py: the o2cb cluster and the (dual-primary) DRBD resource from the settings."""

from __future__ import annotations

import pytest

from tasks.cluster import drbd_resource, o2cb_cluster
from tasks.settings import load_settings

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
