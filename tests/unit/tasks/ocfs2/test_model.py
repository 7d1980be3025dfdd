"""tasks/ocfs2/model.py: the o2cb cluster model and its two rendered files."""

from __future__ import annotations

import pydantic
import pytest

from tasks.ocfs2.model import O2cbCluster, O2cbNode, render_cluster_conf, render_o2cb_defaults


def _cluster(**overrides: object) -> O2cbCluster:
    nodes = (
        O2cbNode(name="nodea", address="10.77.0.11", number=0),
        O2cbNode(name="nodeb", address="10.77.0.12", number=1),
    )
    return O2cbCluster(**{"name": "hsfcl", "nodes": nodes, **overrides})  # type: ignore[arg-type]


def test_cluster_conf_is_tab_indented_with_consistent_node_count() -> None:
    text = render_cluster_conf(_cluster())
    assert text.splitlines()[:4] == [
        "cluster:",
        "\tnode_count = 2",
        "\theartbeat_mode = local",
        "\tname = hsfcl",
    ]
    assert text.count("node:\n") == 2
    assert "\tip_address = 10.77.0.12\n\tnumber = 1\n\tname = nodeb\n\tcluster = hsfcl" in text
    assert all(line == "" or not line[0].isspace() or line.startswith("\t") for line in text.splitlines())


def test_o2cb_defaults_carry_the_timeouts() -> None:
    text = render_o2cb_defaults(_cluster(heartbeat_threshold=7, idle_timeout_ms=10000))
    assert "O2CB_ENABLED=true\n" in text and "O2CB_BOOTCLUSTER=hsfcl\n" in text
    assert "O2CB_HEARTBEAT_THRESHOLD=7\n" in text and "O2CB_IDLE_TIMEOUT_MS=10000\n" in text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "a-cluster-name-too-long"}, "String should match pattern"),
        (
            {
                "nodes": (
                    O2cbNode(name="n1", address="10.0.0.1", number=0),
                    O2cbNode(name="n2", address="10.0.0.2", number=0),
                )
            },
            "duplicate node numbers",
        ),
        ({"keepalive_delay_ms": 30000, "idle_timeout_ms": 30000}, "keepalive_delay_ms must be smaller"),
    ],
)
def test_bad_clusters_are_rejected(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        _cluster(**overrides)


def test_o2cb_declares_a_silent_node_dead_after_its_heartbeats_or_its_idle_timeout() -> None:
    node = O2cbNode(name="nodea", address="10.0.0.1", number=0)
    cluster = O2cbCluster(name="hsfcl", nodes=(node,), heartbeat_threshold=7, idle_timeout_ms=10000)
    assert cluster.dead_after_s == 24.0
