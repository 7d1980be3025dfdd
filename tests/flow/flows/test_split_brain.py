"""flows/split_brain.py's verdict on the acknowledged writes: the resolution discards the victim's
acknowledged records by design and the report says so plainly; data is lost (DATA_LOST, exit 1) only when
the survivor lost a record of its own or a discarded one is missing from the rescue copy. The drill itself
runs in the lab tier (tests/lab/test_split_brain.py)."""

from __future__ import annotations

import pytest

from flows import split_brain
from flows.split_brain import SideChanges, SplitBrainReport, acked_fate, changes_table, verdict_events
from tasks.events import DATA_LOST, SPLIT_BRAIN_RESOLVED
from tasks.writes import WriterCheck
from tests.flow.flows.test_drill_reports import ha_split_brain_report

RESCUE = "/var/lib/hsf/split-brain/20260101T000000Z"


def check(writer: str, node: str, acked: int, lost: tuple[int, ...] | range) -> WriterCheck:
    return WriterCheck(
        writer=writer, node=node, acked=acked, good=acked - len(lost), lost=list(lost), payload_bytes=512
    )


def volume_checks(survivor_lost: tuple[int, ...] = ()) -> list[WriterCheck]:
    """Both writers read on both nodes after the resolution: nodeb's (the victim's) 61 records are gone."""
    return [
        *(check("nodea-split", node, 57, survivor_lost) for node in ("nodea", "nodeb")),
        *(check("nodeb-split", node, 61, range(1, 62)) for node in ("nodea", "nodeb")),
    ]


def report(
    survivor_lost: tuple[int, ...] = (),
    rescue_lost: tuple[int, ...] = (),
    nodes_agree: bool = True,
) -> SplitBrainReport:
    checks = volume_checks(survivor_lost)
    rescue = check("nodeb-split", "nodeb", 61, rescue_lost)
    discarded, rescued, lost = acked_fate(checks, rescue, "nodea", "nodeb")
    return SplitBrainReport(
        survivor="nodea", victim="nodeb", detection={"nodea": "cs:StandAlone", "nodeb": "cs:StandAlone"},
        kernel_log=["drbd r0: Split-Brain detected but unresolved, dropping connection!"],
        changes={
            "nodea": SideChanges(added=["split/acked/nodea-split.records", "split/only-on-nodea.bin"]),
            "nodeb": SideChanges(added=["split/acked/nodeb-split.records", "split/only-on-nodeb.bin"]),
        },
        rescued={"split/acked/nodeb-split.records": "aa", "split/only-on-nodeb.bin": "bb"},
        rescue_dir=RESCUE, resync_s=1.2, nodes_agree=nodes_agree, files_after=5,
        acked={"nodea": 57, "nodeb": 61}, checks=checks, rescue_check=rescue, discarded_acked=discarded,
        rescued_acked=rescued, survivor_acked_lost=lost, picture="/reports/split-brain-r0-x.png",
    )  # fmt: skip


def test_the_report_says_plainly_that_the_resolution_discarded_acknowledged_writes() -> None:
    sb = report()
    assert (sb.discarded_acked, sb.rescued_acked, sb.survivor_acked_lost, sb.acked_gone) == (61, 61, 0, 0)
    text = sb.render().splitlines()
    assert text[-2:] == [
        "The resolution discarded 61 acknowledged writes made on nodeb during the split (that is what "
        f"split-brain resolution does); all 61 are saved in nodeb:{RESCUE}/split/acked.",
        "None of the 57 acknowledged writes made on nodea (the side kept) was lost.",
    ]
    assert "  acknowledged writes while split (each after fsync): nodea 57, nodeb 61" in text
    volume = "  on the volume after the resolution: "
    assert f"{volume}nodeb-split on nodea: 0/61 acknowledged intact, 61 LOST (#1-61)" in text
    assert f"{volume}nodea-split on nodeb: 57/57 acknowledged intact, 0 lost" in text
    assert "  in the rescue copy: nodeb-split on nodeb: 61/61 acknowledged intact, 0 lost" in text
    assert "  picture: /reports/split-brain-r0-x.png" in text
    assert not sb.data_lost and verdict_events(sb) == [SPLIT_BRAIN_RESOLVED]


def test_a_discarded_record_missing_from_the_rescue_copy_is_data_lost() -> None:
    sb = report(rescue_lost=(60, 61))
    assert (sb.discarded_acked, sb.rescued_acked, sb.acked_gone) == (61, 59, 2)
    assert sb.render().splitlines()[-2] == (
        "The resolution discarded 61 acknowledged writes made on nodeb during the split (that is what "
        f"split-brain resolution does); only 59 of them are saved in nodeb:{RESCUE}/split/acked: "
        "2 acknowledged writes are GONE."
    )
    assert sb.nodes_agree and verdict_events(sb) == [SPLIT_BRAIN_RESOLVED, DATA_LOST]


def test_the_survivor_losing_an_acknowledged_record_is_data_lost() -> None:
    sb = report(survivor_lost=(31,))
    assert (sb.survivor_acked_lost, sb.acked_gone) == (1, 1)  # read on both nodes, counted once
    assert sb.render().splitlines()[-1] == "nodea (the side kept) LOST 1 of its 57 acknowledged writes."
    assert verdict_events(sb) == [SPLIT_BRAIN_RESOLVED, DATA_LOST]


def test_nodes_that_disagree_are_data_lost_and_not_resolved() -> None:
    sb = report(nodes_agree=False)
    assert sb.acked_gone == 0 and sb.data_lost and verdict_events(sb) == [DATA_LOST]


def test_discarded_records_are_counted_once_and_a_record_on_the_volume_is_not_discarded() -> None:
    checks = [check("nodeb-split", "nodea", 10, (1, 2, 3)), check("nodeb-split", "nodeb", 10, (2, 3, 4))]
    assert acked_fate(checks, check("nodeb-split", "nodeb", 10, (4, 9)), "nodea", "nodeb") == (4, 3, 0)


def test_the_table_gives_each_side_its_acknowledged_writes() -> None:
    rows = {row["node"]: row for row in changes_table(report(rescue_lost=(61,)))}
    assert {k: v for k, v in rows["nodeb"].items() if "acknowledged" in k} == {
        "acknowledged writes": 61,
        "acknowledged, gone from the volume": 61,
        "acknowledged, saved aside": 60,
    }
    assert rows["nodea"]["acknowledged, gone from the volume"] == 0


@pytest.mark.parametrize(
    ("sb", "code"), [(report(), 0), (report(rescue_lost=(1,)), 1), (report(nodes_agree=False), 1)]
)
def test_the_command_exits_1_when_data_is_lost(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], sb: SplitBrainReport, code: int
) -> None:
    monkeypatch.setattr(split_brain, "split_brain_drill", lambda settings: sb)
    assert split_brain._print_drill(None) == code  # type: ignore[arg-type]
    assert "acknowledged writes made on nodeb during the split" in capsys.readouterr().out


def test_the_report_of_the_ha_volume_says_how_each_side_went_on_alone() -> None:
    sb = ha_split_brain_report()
    text = sb.render().splitlines()
    assert text[:6] == [
        "Split-brain drill (HA: dual-primary OCFS2, DRBD's link cut): survivor nodea, victim nodeb",
        "  writes paused after the cut on nodea: 4.2 s",
        "  writes paused after the cut on nodeb: 7.2 s",
        "  ocfs2: nodea: [  255.283130] o2net: No longer connected to node nodeb (num 1) at 10.77.0.12:7777",
        "  ocfs2: nodea: [  255.285672] o2cb: o2dlm has evicted node 1 from domain 628CC59C1985",
        "  ocfs2: nodeb: [  256.436296] o2cb: o2dlm has evicted node 0 from domain 628CC59C1985",
    ]
    # the writers ran before the cut as well: the count is not "while split"
    assert (
        "  acknowledged writes from before the cut to the heal (each after fsync): nodea 488, nodeb 401"
        in text
    )
    assert text[-2].startswith(
        "The resolution discarded 336 acknowledged writes made on nodeb during the split"
    )
    assert not sb.data_lost and verdict_events(sb) == [SPLIT_BRAIN_RESOLVED]
