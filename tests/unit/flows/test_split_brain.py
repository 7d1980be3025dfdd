"""flows/split_brain.py: what each side changed while split (the cut itself is tasks/network.py's)."""

from __future__ import annotations

from flows.split_brain import SideChanges, changes_between


def test_changes_between_sides() -> None:
    baseline = {"keep": "1", "edit": "2", "gone": "3"}
    now = {"keep": "1", "edit": "X", "new": "4"}
    changes = changes_between(baseline, now)
    assert changes == SideChanges(added=["new"], modified=["edit"], deleted=["gone"])
    assert changes.diverged == ["edit", "new"]
