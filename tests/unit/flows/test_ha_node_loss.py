"""flows/ha_node_loss.py: the report is intact only when every node has every file."""

from __future__ import annotations

from flows.ha_node_loss import NodeLossReport


def test_node_loss_report_is_intact_only_when_every_node_has_every_file() -> None:
    fields = dict(
        killed="nodeb", survivor="nodea", heartbeat_threshold=7, idle_timeout_ms=10000, baseline_write_s=0.1,
        stall_s=20.0, writes_after_kill=5, returned_s=25.0, resync_s=1.0, files_checked=3,
    )  # fmt: skip
    assert NodeLossReport(**fields, files_verified_on={"nodea": 3, "nodeb": 3}).intact
    assert not NodeLossReport(**fields, files_verified_on={"nodea": 3, "nodeb": 2}).intact
