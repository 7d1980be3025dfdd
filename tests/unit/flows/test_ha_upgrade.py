"""flows/ha_upgrade.py: the report answers from the cross-node proof."""

from __future__ import annotations

from flows.ha_upgrade import CrossNodeCheck, HaUpgradeReport


def test_upgrade_report_answers_from_the_proof() -> None:
    check = CrossNodeCheck(
        writer="nodea", reader="nodeb", path="/p", sha256_written="x", sha256_read="x", commands_between=[]
    )
    report = HaUpgradeReport(resource="r0", cluster="hsfcl", cross_node=[check])
    assert report.answer().startswith("No: each node read intact")
    touched = check.model_copy(update={"commands_between": ["drbdadm primary r0"]})
    assert HaUpgradeReport(resource="r0", cluster="hsfcl", cross_node=[touched]).answer().startswith("Yes:")
