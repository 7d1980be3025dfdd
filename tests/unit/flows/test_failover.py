"""Unit tests for flows/failover.py's FailoverReport: the two answers and the rendered report."""

from __future__ import annotations

from typing import Any

from flows.failover import FailoverReport, Verification

MIB = 1024 * 1024
DATASET_BYTES = 8 * 64 * MIB  # 536,870,912
SURVIVOR_COMMANDS = ["drbdadm primary r0", "mount /dev/drbd0 /mnt/r0"]


def verified(node: str, lost_files: list[str] | None = None, file_bytes: int = 64 * MIB) -> Verification:
    lost = lost_files or []
    return Verification(
        node=node,
        files_ok=8 - len(lost),
        bytes_ok=(8 - len(lost)) * file_bytes,
        bytes_lost=len(lost) * file_bytes,
        lost_files=lost,
    )


def report(**overrides: Any) -> FailoverReport:
    fields: dict[str, Any] = {
        "resource": "r0",
        "killed": "nodea",
        "survivor": "nodeb",
        "fault": "destroy",
        "dataset_files": 8,
        "dataset_bytes": DATASET_BYTES,
        "detection_s": 3.456,
        "promote_s": 0.42,
        "mount_s": 1.07,
        "rto_s": 12.34,
        "after_failover": verified("nodeb"),
        "survivor_commands": SURVIVOR_COMMANDS,
        "returned_s": 21.9,
        "resync_s": 4.0,
        "after_rejoin": [verified("nodea"), verified("nodeb")],
        "started_at": "2024-05-01T10:00:00Z",
    }
    fields.update(overrides)
    return FailoverReport(**fields)


def test_nothing_lost() -> None:
    r = report()
    assert r.bytes_lost == 0
    lost, _ = r.answers()
    assert lost.startswith("No.")
    assert "536,870,912 bytes (8 files)" in lost
    assert "on nodeb after nodea was destroyed" in lost
    assert "both nodes" in lost


def test_bytes_lost_on_failover() -> None:
    lost_files = ["/mnt/r0/drill-x/f0007.bin", "/mnt/r0/drill-x/f0008.bin"]
    r = report(after_failover=verified("nodeb", lost_files))
    assert r.bytes_lost == 2 * 64 * MIB
    lost, _ = r.answers()
    assert lost.startswith("YES")
    assert lost == (
        "YES: 134,217,728 of 536,870,912 bytes lost (/mnt/r0/drill-x/f0007.bin, /mnt/r0/drill-x/f0008.bin)."
    )


def test_bytes_lost_only_after_rejoin() -> None:
    r = report(after_rejoin=[verified("nodea", ["/mnt/r0/drill-x/f0001.bin"]), verified("nodeb")])
    assert r.bytes_lost == 64 * MIB
    lost, _ = r.answers()
    assert lost == "YES: 67,108,864 of 536,870,912 bytes lost (after rejoin)."


def test_bytes_lost_is_the_max_not_the_sum() -> None:
    """The same dataset is checked several times: the worst check counts, never their total."""
    r = report(
        after_failover=verified("nodeb", ["f1"]),
        after_rejoin=[verified("nodea", ["f1", "f2", "f3"]), verified("nodeb", ["f1", "f2"])],
    )
    assert r.bytes_lost == 3 * 64 * MIB
    r = report(
        after_failover=verified("nodeb", ["f1", "f2", "f3", "f4"]),
        after_rejoin=[verified("nodea", ["f1"])],
    )
    assert r.bytes_lost == 4 * 64 * MIB
    assert report(after_rejoin=[]).bytes_lost == 0


def test_manual_steps_answer_lists_survivor_commands() -> None:
    _, manual = report().answers()
    assert manual.startswith("Yes.")
    assert "on nodeb it took `drbdadm primary r0`; `mount /dev/drbd0 /mnt/r0`" in manual


def test_manual_steps_answer_when_nothing_ran_on_the_survivor() -> None:
    _, manual = report(survivor_commands=[]).answers()
    assert manual.startswith("No:")
    assert "`" not in manual


def test_render_contains_the_figures_and_the_answers() -> None:
    r = report()
    text = r.render()
    lines = text.splitlines()
    assert lines[0] == "Failover drill, DRBD r0: nodea → nodeb"
    assert "RTO" in text
    row = next(line for line in lines if "RTO" in line)
    assert row.rstrip().endswith("12.3 s")
    assert "destroy on nodea at 2024-05-01T10:00:00Z" in text
    assert "3.5 s" in text  # detection, one decimal
    assert "0.4 s" in text  # promote
    assert "1.1 s" in text  # mount
    assert "21.9 s" in text  # back on SSH
    assert "4.0 s" in text  # resync
    assert "0 of 536,870,912" in text
    lost, manual = r.answers()
    assert lines[-2] == f"Have you lost data after destroying one node?  {lost}"
    assert lines[-1] == f"Was it necessary to do something on the other node to get the data?  {manual}"


def test_render_rows_are_aligned() -> None:
    rows = [line for line in report().render().splitlines() if line.startswith("  ")]
    assert len(rows) == 8
    value_columns = {len(line) - len(line.lstrip()) for line in rows}  # every row starts with 2 spaces
    assert value_columns == {2}
    # the values start in the same column: after the longest label plus two spaces
    label_width = max(len(line[2:].split("  ")[0]) for line in rows)
    assert all(line[2 + label_width : 2 + label_width + 2] == "  " for line in rows)
    assert all(line[2 + label_width + 2] != " " for line in rows)


def test_render_reports_lost_bytes() -> None:
    text = report(after_failover=verified("nodeb", ["f1"])).render()
    assert "67,108,864 of 536,870,912" in text
    assert "YES: 67,108,864" in text
