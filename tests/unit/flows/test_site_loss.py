"""The site-loss drill's verdict: the recovery point is reported, never counted against the failback; a loss
beyond it, a file that differs, or any loss with protocol C fails the drill."""

from __future__ import annotations

import pytest

from flows.site_loss import RecoveryPoint, SiteLossReport
from tasks.writes import AckedWrites, WriterCheck


def _point(protocol: str, lost: list[int]) -> RecoveryPoint:
    return RecoveryPoint(
        protocol=protocol,
        acked=40,
        lost_records={"nodea-app": lost} if lost else {},
        lost_bytes=1049 * len(lost),
        files=["/mnt/r0/drills/x/nodea-app.records"] if lost else [],
    )


def _report(point: RecoveryPoint, lost_after: list[int], differs: bool = False) -> SiteLossReport:
    checks = [
        WriterCheck(
            writer="nodea-app",
            node=node,
            acked=40,
            good=40 - len(lost_after),
            lost=lost_after,
            payload_bytes=512,
        )
        for node in ("nodea", "nodeb", "nodec")
    ]
    return SiteLossReport(
        resource="r0-u", lower="r0", third_node="nodec", site=["nodea", "nodeb"], primary="nodea",
        started_at="2026-01-01T00:00:00Z", observed=[], service_s=8.1, recovery_point=point, failback_s=50.0,
        upper_resynced_kib=1024, traffic_mib=256, traffic_under_way=True, traffic_arrived_mib=12.5,
        manifest_files=3,
        manifest_differences={"nodea": [], "nodeb": ["traffic.bin"] if differs else [], "nodec": []},
        commands=[], writes=AckedWrites(checks=checks, outage=None),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("protocol", "rpo", "lost_after", "differs", "failed"),
    [
        ("A", [], [], False, False),
        ("A", [39, 40], [39, 40], False, False),  # the recovery point, reported, not a failure
        ("A", [39, 40], [38, 39, 40], False, True),  # record 38 was on the third node: the failback lost it
        ("A", [], [], True, True),  # a file differs from the third node's after the failback
        ("C", [40], [40], False, True),  # synchronous: nothing acknowledged may be missing
        ("C", [], [], False, False),
    ],
)
def test_the_verdict_tells_the_recovery_point_from_a_loss(
    protocol: str, rpo: list[int], lost_after: list[int], differs: bool, failed: bool
) -> None:
    report = _report(_point(protocol, rpo), lost_after, differs)
    assert report.failed is failed
    assert report.verdict().startswith("FAILED") is failed


def test_the_recovery_point_names_its_bytes_records_and_files() -> None:
    assert _point("A", [39, 40]).describe() == (
        "2,098 bytes: 2 of 40 acknowledged records missing on the third node (protocol A), in "
        "/mnt/r0/drills/x/nodea-app.records"
    )
    assert _point("C", []).describe() == "0 bytes: all 40 acknowledged records on the third node (protocol C)"
    rendered = _report(_point("A", [39, 40]), [39, 40]).render()
    assert "Recovery point: 2,098 bytes" in rendered
    assert "256 MiB started, still writing at the loss; 12.5 MiB of it on the third node" in rendered
