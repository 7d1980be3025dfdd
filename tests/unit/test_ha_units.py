"""Pure parts of the HA and split-brain flows: o2cb renderers, argv builders, manifests, reports."""

from __future__ import annotations

import pydantic
import pytest

from flows.ha_node_loss import NodeLossReport
from flows.ha_upgrade import CrossNodeCheck, HaUpgradeReport
from flows.split_brain import SideChanges, changes_between, cut_ruleset
from tasks.cluster import drbd_resource, o2cb_cluster
from tasks.ocfs2.model import O2cbCluster, O2cbNode, render_cluster_conf, render_o2cb_defaults
from tasks.ocfs2.steps import mkfs_ocfs2_argv, sync_tree_argv
from tasks.settings import load_settings

SECRET = "A" * 32


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


@pytest.mark.parametrize(
    ("overwrite", "expected"),
    [
        (
            False,
            [
                "mkfs.ocfs2",
                "-q",
                "-N",
                "2",
                "-L",
                "r0",
                "--cluster-stack=o2cb",
                "--cluster-name=hsfcl",
                "/dev/drbd0",
            ],
        ),
        (
            True,
            [
                "mkfs.ocfs2",
                "-q",
                "-F",
                "-N",
                "2",
                "-L",
                "r0",
                "--cluster-stack=o2cb",
                "--cluster-name=hsfcl",
                "/dev/drbd0",
            ],
        ),
    ],
)
def test_mkfs_ocfs2_argv(overwrite: bool, expected: list[str]) -> None:
    assert mkfs_ocfs2_argv("/dev/drbd0", _cluster(), "r0", overwrite) == expected


def test_sync_tree_argv_keeps_everything_but_lost_found() -> None:
    assert sync_tree_argv("/mnt/r0", "/stage", delete=True) == [
        "rsync", "-aHAX", "--exclude=/lost+found", "--delete", "/mnt/r0/", "/stage/",
    ]  # fmt: skip


def test_changes_between_sides() -> None:
    baseline = {"keep": "1", "edit": "2", "gone": "3"}
    now = {"keep": "1", "edit": "X", "new": "4"}
    changes = changes_between(baseline, now)
    assert changes == SideChanges(added=["new"], modified=["edit"], deleted=["gone"])
    assert changes.diverged == ["edit", "new"]


def test_cut_ruleset_drops_the_drbd_port_both_ways() -> None:
    rules = cut_ruleset(7789)
    assert rules.startswith("table inet hsf_split_brain {")
    assert rules.count("tcp dport 7789 drop; tcp sport 7789 drop;") == 2
    assert "hook input" in rules and "hook output" in rules


def test_upgrade_report_answers_from_the_proof() -> None:
    check = CrossNodeCheck(
        writer="nodea", reader="nodeb", path="/p", sha256_written="x", sha256_read="x", commands_between=[]
    )
    report = HaUpgradeReport(resource="r0", cluster="hsfcl", cross_node=[check])
    assert report.answer().startswith("No: each node read intact")
    touched = check.model_copy(update={"commands_between": ["drbdadm primary r0"]})
    assert HaUpgradeReport(resource="r0", cluster="hsfcl", cross_node=[touched]).answer().startswith("Yes:")


def test_node_loss_report_is_intact_only_when_every_node_has_every_file() -> None:
    fields = dict(
        killed="nodeb", survivor="nodea", heartbeat_threshold=7, idle_timeout_ms=10000, baseline_write_s=0.1,
        stall_s=20.0, writes_after_kill=5, returned_s=25.0, resync_s=1.0, files_checked=3,
    )  # fmt: skip
    assert NodeLossReport(**fields, files_verified_on={"nodea": 3, "nodeb": 3}).intact
    assert not NodeLossReport(**fields, files_verified_on={"nodea": 3, "nodeb": 2}).intact
