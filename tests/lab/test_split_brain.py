"""Split-brain on the fault-tolerant volume: detected by DRBD, victim's files saved, nodes agree."""

from __future__ import annotations

import pytest

from flows.lab import LabStatus
from flows.split_brain import split_brain_drill
from tasks.context import current_executor
from tasks.executor import SshTarget
from tasks.settings import Settings

pytestmark = pytest.mark.lab


def test_split_brain_is_detected_saved_and_resolved(
    lab: LabStatus, settings: Settings, targets: dict[str, SshTarget]
) -> None:
    report = split_brain_drill(settings)
    print(f"\n{report.render()}")
    assert (report.survivor, report.victim) == ("nodea", "nodeb")
    assert any("cs:StandAlone" in state for state in report.detection.values())
    assert any("Split-Brain detected" in line for line in report.kernel_log)
    assert report.changes["nodea"].added == ["split/only-on-nodea.bin"]
    assert report.changes["nodeb"].added == ["split/only-on-nodeb.bin"]
    assert report.changes["nodeb"].deleted == ["split/doomed.txt"]
    assert "split/shared.txt" in report.changes["nodea"].modified
    # the victim's diverged files were saved (same content) before DRBD discarded them
    assert sorted(report.rescued) == report.changes["nodeb"].diverged
    saved = current_executor().run(["cat", f"{report.rescue_dir}/split/shared.txt"], targets["nodeb"]).stdout
    assert saved == "written by nodeb during the split\n"
    assert report.nodes_agree
    run = current_executor().run
    assert (
        "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate"
        in run(["cat", "/proc/drbd"], targets["nodea"]).stdout
    )
