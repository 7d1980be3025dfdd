"""flows/split_brain.py: what each side changed while split, and the ruleset that cuts the link."""

from __future__ import annotations

from flows.split_brain import SideChanges, changes_between, cut_ruleset


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
