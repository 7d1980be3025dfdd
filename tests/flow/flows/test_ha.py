"""The HA flows and the drills on replayed nodes: they refuse before changing anything."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flows import ha_node_loss as node_loss
from flows.failover import failover_drill
from flows.ha_node_loss import NodeLossReport, ha_node_loss
from flows.ha_upgrade import ha_upgrade
from flows.split_brain import split_brain_drill
from tasks.context import DryRunRefused
from tasks.drbd.plan import Refused
from tasks.writes import AckedWrites, WriteOutage, WriterCheck
from tests.flow.conftest import Replay
from tests.replay import Ran, ReplayExecutor


def test_upgrade_refuses_a_degraded_volume_naming_the_node(replay: Callable[..., Replay]) -> None:
    nodes = replay("secondary-down")
    with pytest.raises(Refused, match=r"nodea: r0 is not healthy \(cs:WFConnection .*Nothing was changed"):
        ha_upgrade()
    assert nodes.changed == []


def test_node_loss_refuses_a_volume_that_is_not_in_ha_mode(replay: Callable[..., Replay]) -> None:
    nodes = replay("fault-tolerant")
    with pytest.raises(Refused, match=r"not in HA mode .*run flows\.ha_upgrade first"):
        ha_node_loss()
    assert nodes.changed == []


def node_loss_report(lost: tuple[int, ...] = (), files_on_nodeb: int = 9) -> NodeLossReport:
    """nodeb destroyed while nodea wrote: both writers read on nodea, then on both nodes; ``lost``: records
    of nodeb's writer missing on nodea after the rejoin."""

    def check(writer: str, node: str, acked: int, lost: tuple[int, ...] = ()) -> WriterCheck:
        in_flight = [acked + 1] if writer == "nodeb-ha" else []
        return WriterCheck(
            writer=writer, node=node, acked=acked, good=acked - len(lost), lost=list(lost),
            in_flight=in_flight, payload_bytes=512,
        )  # fmt: skip

    checks = [
        check("nodea-ha", "nodea", 900),
        check("nodeb-ha", "nodea", 40),
        check("nodea-ha", "nodea", 900),
        check("nodeb-ha", "nodea", 40, lost),
        check("nodea-ha", "nodeb", 900),
        check("nodeb-ha", "nodeb", 40),
    ]
    writes = AckedWrites(
        checks=checks, outage=WriteOutage(gap_s=22.7, from_s=-0.02, to_s=22.68, usual_s=0.07), timeline={}
    )
    return NodeLossReport(
        killed="nodeb", survivor="nodea", heartbeat_threshold=7, idle_timeout_ms=10000, baseline_write_s=0.01,
        stall_s=22.7, writes_after_kill=860, returned_s=25.0, resync_s=1.0, files_checked=9,
        files_verified_on={"nodea": 9, "nodeb": files_on_nodeb}, writes=writes, checked_before_rejoin=2,
        picture="/var/lib/ha-storage-flows/reports/ha-node-loss-2026-01-01T00:00:00Z.png",
    )  # fmt: skip


def test_node_loss_report_shows_the_write_outage_and_every_check() -> None:
    report = node_loss_report()
    text = report.render()
    assert report.intact
    assert (
        "  survivor's write outage         22.7 s without an acknowledged write (-0.0 s → +22.7 s around the "
        "fault; normally ≤ 0.07 s)"
    ) in text
    before, after = text.split("  acknowledged records after the rejoin:\n")
    assert before.endswith(
        "  acknowledged records on the survivor before the rejoin:\n"
        "    nodea-ha on nodea: 900/900 acknowledged intact, 0 lost\n"
        "    nodeb-ha on nodea: 40/40 acknowledged intact, 0 lost; 1 in flight\n"
    )
    assert after.splitlines()[:4] == [
        "    nodea-ha on nodea: 900/900 acknowledged intact, 0 lost",
        "    nodeb-ha on nodea: 40/40 acknowledged intact, 0 lost; 1 in flight",
        "    nodea-ha on nodeb: 900/900 acknowledged intact, 0 lost",
        "    nodeb-ha on nodeb: 40/40 acknowledged intact, 0 lost; 1 in flight",
    ]
    assert "  picture: /var/lib/ha-storage-flows/reports/ha-node-loss-2026-01-01T00:00:00Z.png" in text
    assert text.endswith("Verdict: every acknowledged record and every file intact on every node")


@pytest.mark.parametrize(
    ("report", "verdict"),
    [
        (node_loss_report(), "every acknowledged record and every file intact on every node"),
        (node_loss_report(lost=(39, 40)), "2 ACKNOWLEDGED RECORD(S) LOST"),
        (node_loss_report(files_on_nodeb=7), "FILES DIFFER after the rejoin"),
        (node_loss_report((40,), 8), "1 ACKNOWLEDGED RECORD(S) LOST; FILES DIFFER after the rejoin"),
    ],
)
def test_node_loss_exits_1_when_an_acknowledged_record_or_a_file_was_lost(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], report: NodeLossReport, verdict: str
) -> None:
    monkeypatch.setattr(node_loss, "ha_node_loss", lambda settings: report)
    assert node_loss._print_drill(None) == (0 if verdict.startswith("every") else 1)  # type: ignore[arg-type]
    assert report.verdict() == verdict and f"Verdict: {verdict}" in capsys.readouterr().out


def test_the_survivor_writes_on_until_after_s_past_the_stall() -> None:
    """Fired at 100: one acknowledgement still on its way, a 20 s stall, then writes every 0.1 s."""
    before = [99.0 + 0.1 * n for n in range(10)]
    back = [120.1 + 0.1 * n for n in range(52)]  # 120.1 … 125.2

    def again(times: list[float], cover_s: float = 20.0) -> bool:
        return node_loss._writing_again(times, fired_at=100.0, for_s=5.0, cover_s=cover_s)

    assert not again(before)
    assert not again([*before, 100.01])  # the stall has not ended
    assert not again([*before, 100.01, *back[:50]])  # 4.9 s of writes since
    assert again([*before, 100.01, *back])
    # DRBD's short stall ended long ago, but o2cb may not have declared the node dead yet: write on
    assert not again([*before, 100.01, *back], cover_s=30.0)


def test_split_brain_drill_refuses_an_ha_volume_that_is_not_healthy(replay: Callable[..., Replay]) -> None:
    """Both nodes Primary with OCFS2 mounted is the HA mode; the drill splits it only when both are
    Connected and UpToDate (a split already under way is not a drill's to make worse)."""
    cut_off = (
        "version: 8.4.11 (api:1/proto:86-101)\n"
        " 0: cs:StandAlone ro:Primary/Unknown ds:UpToDate/DUnknown r-----\n"
    )

    def nodeb_cut_off(executor: ReplayExecutor, ran: Ran) -> None:
        executor._answers[("nodeb", "cat /proc/drbd")] = (0, cut_off, "")

    nodes = replay("ha", before_command=nodeb_cut_off)
    with pytest.raises(
        Refused,
        match=r"^the HA volume is not healthy "
        r"\(nodeb: cs:StandAlone ro:Primary/Unknown ds:UpToDate/DUnknown\); nothing was cut$",
    ):
        split_brain_drill()
    assert nodes.changed == []


@pytest.mark.parametrize(
    ("drill", "says"),
    [
        (failover_drill, "the failover drill does not dry-run: its proof is a real kill of the primary"),
        (ha_upgrade, "the HA upgrade does not dry-run"),
        (ha_node_loss, "the HA node-loss drill does not dry-run"),
        (split_brain_drill, "the split-brain drill does not dry-run"),
    ],
)
def test_drills_refuse_a_dry_run_in_one_line_without_touching_a_node(
    replay: Callable[..., Replay], drill: Callable[[], object], says: str
) -> None:
    nodes = replay("fault-tolerant", dry_run=True)
    with pytest.raises(DryRunRefused, match=says) as refused:
        drill()
    assert "\n" not in str(refused.value) and str(refused.value).endswith("Nothing was changed.")
    assert nodes.executors == [], "the refused drill opened a run on the nodes"
