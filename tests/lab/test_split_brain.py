"""Split-brain on the fault-tolerant volume: detected by DRBD, victim's files saved, nodes agree; each
side's acknowledged writes: the survivor's all kept, the victim's all discarded and all saved aside."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.faults import split_brain_outcome
from flows.lab import LabStatus
from flows.split_brain import split_brain_drill
from tasks.context import current_executor
from tasks.executor import SshTarget
from tasks.faults import judge
from tasks.settings import Settings

pytestmark = pytest.mark.lab


def test_split_brain_is_detected_saved_and_resolved(
    lab: LabStatus, settings: Settings, targets: dict[str, SshTarget]
) -> None:
    report = split_brain_drill(settings)
    print(f"\n{report.render()}")
    outcome = judge(split_brain_outcome(report, 1))
    assert (outcome.verdict, outcome.problems) == ("as expected", [])
    assert (report.survivor, report.victim) == ("nodea", "nodeb")
    assert any("cs:StandAlone" in state for state in report.detection.values())
    assert any("Split-Brain detected" in line for line in report.kernel_log)
    assert report.changes["nodea"].added == ["split/acked/nodea-split.records", "split/only-on-nodea.bin"]
    assert report.changes["nodeb"].added == ["split/acked/nodeb-split.records", "split/only-on-nodeb.bin"]
    assert report.changes["nodeb"].deleted == ["split/doomed.txt"]
    assert "split/shared.txt" in report.changes["nodea"].modified
    # the victim's diverged files were saved (same content) before DRBD discarded them
    assert sorted(report.rescued) == report.changes["nodeb"].diverged
    saved = current_executor().run(["cat", f"{report.rescue_dir}/split/shared.txt"], targets["nodeb"]).stdout
    assert saved == "written by nodeb during the split\n"
    assert report.nodes_agree
    assert "nodeb: drbdadm connect --discard-my-data r0" in report.resolution_commands
    # acknowledged writes: the survivor's all on the volume on both nodes, the victim's all discarded by
    # the resolution and all intact in the rescue copy
    assert sorted(report.acked) == ["nodea", "nodeb"]
    assert min(report.acked.values()) >= settings.writes.first_acks
    kept = [c for c in report.checks if c.writer == "nodea-split"]
    assert sorted(c.node for c in kept) == ["nodea", "nodeb"]
    assert all(c.lost == [] and c.good == report.acked["nodea"] for c in kept)
    assert report.survivor_acked_lost == 0
    assert report.discarded_acked == report.acked["nodeb"] > 0
    assert report.rescued_acked == report.discarded_acked
    assert report.rescue_check.good == report.acked["nodeb"] and report.rescue_check.lost == []
    assert not report.data_lost
    discarded = f"discarded {report.discarded_acked} acknowledged writes made on nodeb during the split"
    assert discarded in report.render()
    assert Path(report.picture).read_bytes().startswith(b"\x89PNG")
    run = current_executor().run
    assert (
        "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate"
        in run(["cat", "/proc/drbd"], targets["nodea"]).stdout
    )
