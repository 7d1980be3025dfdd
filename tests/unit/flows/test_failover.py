"""Unit tests for flows/failover.py: the report's two answers and its rendering, the partial report of
a drill that failed midway, and the recovery it runs (tasks/drbd/roles.py's plan, as a table)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from flows.failover import FailoverProgress, FailoverReport, Verification, VolumeOutcome
from tasks.drbd.model import DrbdNode, DrbdResource
from tasks.drbd.probes import DrbdState, Mount, parse_proc_drbd
from tasks.drbd.roles import NodeSeen, Recovery, RecoveryPlan, plan_recovery, recovery_commands
from tasks.writes import AckedWrites, WriteOutage, WriterCheck

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


@pytest.mark.parametrize(
    ("fault", "wording"),
    [
        ("destroy", "after nodea was destroyed,"),
        ("sysrq-poweroff", "after nodea was powered off,"),
        ("sysrq-crash", "after nodea was crashed,"),
        ("command", "after nodea was cut by power_off_command,"),
    ],
)
def test_the_answer_names_the_fault_that_was_used(fault: str, wording: str) -> None:
    lost, _ = report(fault=fault).answers()
    assert wording in lost
    assert fault == "destroy" or "destroyed" not in lost


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


def test_a_real_host_s_confirmation_time_is_a_row_of_its_own() -> None:
    """On real hosts the drill waits until the killed node stops answering before it promotes: that
    time is in the RTO, so the report shows it (the lab's destroy needs no wait and shows no row)."""
    text = report(fault="sysrq-poweroff", down_s=4.26).render()
    rows = [line for line in text.splitlines() if line.startswith("  ")]
    assert len(rows) == 9
    assert any(row.startswith("  killed node confirmed off SSH") and row.endswith("+4.3 s") for row in rows)
    assert "confirmed off SSH" not in report().render()


def test_the_resync_after_rejoin_is_shown_against_what_changed_meanwhile() -> None:
    """The activity log bounds what a crashed primary resyncs: the report puts the copy beside the
    writes the old primary missed, and the volume's size for scale."""
    text = report(
        resynced_bytes=268 * MIB, written_away_bytes=3 * MIB + 512, volume_bytes=1024 * MIB
    ).render()
    rows = [line for line in text.splitlines() if line.startswith("  ")]
    assert any(r.startswith("  … copied") and r.endswith("274,432 KiB (26% of the volume)") for r in rows)
    assert any(r.startswith("  … written while nodea was away") and r.endswith("3,072 KiB") for r in rows)
    assert "… copied" not in report().render()  # an older report without the figures


def volume(name: str = "r1", lost_files: list[str] | None = None) -> VolumeOutcome:
    return VolumeOutcome(
        resource=name,
        mountpoint=f"/mnt/{name}",
        dataset_files=8,
        dataset_bytes=DATASET_BYTES,
        promote_s=0.51,
        mount_s=0.93,
        verified_s=13.2,
        verified=[verified("nodeb"), verified("nodeb", lost_files), verified("nodea")],
        resync_s=3.96,
        resynced_bytes=4 * MIB,
    )


def test_each_further_volume_is_a_row_and_part_of_the_answer() -> None:
    text = report(volumes=[volume("r1"), volume("r2")]).render()
    row = next(line for line in text.splitlines() if line.startswith("  volume r1 (/mnt/r1)"))
    assert row.endswith(
        "verified 13.2 s after the kill (promote 0.5 s, mount 0.9 s), 0 of 536,870,912 bytes lost "
        "(3 checks: nodeb, nodeb, nodea); resync 4.0 s, 4,096 KiB copied"
    )
    assert "  volume r2 (/mnt/r2)" in text
    lost, _ = report(volumes=[volume("r1"), volume("r2")]).answers()
    assert (
        lost.startswith("No.") and "The other volumes (r1, r2) failed over with it: all 1,073,741,824" in lost
    )


def test_bytes_a_further_volume_lost_are_the_drills_loss() -> None:
    r = report(volumes=[volume("r1"), volume("r2", lost_files=["f0003.bin"])])
    assert r.bytes_lost == 64 * MIB
    lost, _ = r.answers()
    assert lost.startswith("YES: 67,108,864 of") and "Volumes that lost bytes: r2." in lost


def test_the_phases_lay_the_drill_on_one_time_axis_from_the_kill() -> None:
    """Detection, the wait for the node to be off (real hosts), promotion, mount and verification end at
    the RTO; the old primary's boot and resync start when its restart did."""
    phases = report(fault="sysrq-poweroff", down_s=4.0, rejoin_at_s=20.0).phases()
    assert [(label, round(start, 2), round(end, 2)) for label, start, end in phases] == [
        ("survivor sees the peer lost", 0.0, 3.46),
        ("killed node confirmed off SSH", 3.46, 7.46),
        ("promote survivor", 7.46, 7.88),
        ("mount (journal replay)", 7.88, 8.95),
        ("every byte verified (RTO)", 8.95, 12.34),
        ("nodea boots", 20.0, 41.9),
        ("nodea attaches and resyncs", 41.9, 45.9),
    ]
    assert [label for label, _, _ in report().phases()][-1] == "every byte verified (RTO)"  # no rejoin time


# -- a drill that failed midway: the partial report and the recovery -------------------------------

PROC_DRBD = "version: 8.4.11 (api:1/proto:86-101)\n 0: cs:{cs} ro:{ro} ds:{ds} C r-----\n"
MOUNTED = Mount(source="/dev/drbd0", target="/mnt/r0", fstype="ext4", options="rw,relatime")


def seen(node: str, cs: str = "", ro: str = "", ds: str = "", mounted: bool = False) -> NodeSeen:
    """A node as the recovery reads it: /proc/drbd as DRBD 8.4 prints it; no cs = does not answer."""
    if not cs:
        return NodeSeen(node=node, answers=False, error="no SSH answer")
    text = PROC_DRBD.format(cs=cs, ro=ro, ds=ds) if cs != "Unconfigured" else "version: 8.4.11\n"
    state = parse_proc_drbd(text).get(0, DrbdState(minor=0, connection="Unconfigured"))  # as drbd_state
    return NodeSeen(node=node, answers=True, state=state, mount=MOUNTED if mounted else None)


def plan(*nodes: NodeSeen, prefer: str | None = "nodeb") -> RecoveryPlan:
    return plan_recovery({n.node: n for n in nodes}, "/mnt/r0", prefer)


def test_a_serving_primary_is_left_alone() -> None:
    p = plan(
        seen("nodea", "Connected", "Primary/Secondary", "UpToDate/UpToDate", mounted=True), seen("nodeb")
    )
    assert (p.node, p.automatic, p.nothing_to_do) == ("nodea", True, True)
    assert p.reason == "nodea is Primary with /dev/drbd0 mounted at /mnt/r0: service is up"


def test_a_primary_without_its_mount_is_mounted_not_joined_by_another_primary() -> None:
    """The survivor was promoted, then its mount failed: mount there; never promote the other node."""
    p = plan(
        seen("nodea", "WFConnection", "Secondary/Unknown", "UpToDate/DUnknown"),
        seen("nodeb", "WFConnection", "Primary/Unknown", "UpToDate/DUnknown"),
        prefer="nodea",
    )
    assert (p.node, p.automatic, p.promote, p.mount) == ("nodeb", True, False, True)


def test_an_up_to_date_secondary_is_promoted_the_preferred_one_first() -> None:
    """Killed primary gone, survivor Secondary with an UpToDate disk: promote and mount the survivor."""
    p = plan(seen("nodea"), seen("nodeb", "WFConnection", "Secondary/Unknown", "UpToDate/DUnknown"))
    assert (p.node, p.automatic, p.promote, p.mount, p.up) == ("nodeb", True, True, True, False)
    both = [
        seen("nodea", "Connected", "Secondary/Secondary", "UpToDate/UpToDate"),
        seen("nodeb", "Connected", "Secondary/Secondary", "UpToDate/UpToDate"),
    ]
    assert plan(*both, prefer="nodeb").node == "nodeb"
    assert plan(*both, prefer="nodea").node == "nodea"
    assert plan(*both, prefer=None).node == "nodea"


def test_a_secondary_still_connected_to_a_primary_is_never_promoted() -> None:
    """The peer is Primary and DRBD still reaches it (only this machine does not): a second Primary
    would split the data, so nothing is done and the peer is the node to check."""
    p = plan(seen("nodea"), seen("nodeb", "Connected", "Secondary/Primary", "UpToDate/UpToDate"))
    assert (p.node, p.automatic, p.up, p.promote, p.mount) == ("nodea", False, False, False, False)
    assert p.reason.startswith("nodeb is still connected to nodea, which is Primary: nodea runs but")


@pytest.mark.parametrize("disk", ["Outdated", "Inconsistent", "Consistent", "Diskless"])
def test_a_disk_that_is_not_up_to_date_is_never_promoted(disk: str) -> None:
    p = plan(seen("nodea"), seen("nodeb", "WFConnection", "Secondary/Unknown", f"{disk}/DUnknown"))
    assert not p.automatic
    assert p.node == "nodea", "the commands are for the node that holds the good data"
    assert (p.up, p.promote, p.mount) == (True, True, True)
    assert p.reason == (
        "no node that answers is Primary or has an UpToDate disk to promote: "
        f"nodeb: cs:WFConnection ro:Secondary/Unknown ds:{disk}/DUnknown, nothing mounted; "
        "nodea: does not answer (no SSH answer)"
    )


def test_when_no_node_answers_the_commands_are_for_the_preferred_node() -> None:
    p = plan(seen("nodea"), seen("nodeb"))
    assert (p.node, p.automatic, p.up) == ("nodeb", False, True)


def test_an_unconfigured_resource_needs_up_first() -> None:
    p = plan(seen("nodea"), seen("nodeb", "Unconfigured"))
    assert (p.node, p.automatic, p.up) == ("nodeb", False, True)


RESOURCE = DrbdResource(
    nodes=(DrbdNode(name="nodea", address="10.0.0.11"), DrbdNode(name="nodeb", address="10.0.0.12", minor=3)),
    shared_secret=SecretStr("s" * 24),
)


def test_recovery_commands_are_exactly_what_an_operator_types() -> None:
    assert recovery_commands(RESOURCE, "nodea", "/mnt/r0") == [
        "drbdadm primary r0",
        "mkdir -p /mnt/r0",
        "mount /dev/drbd0 /mnt/r0",
    ]
    assert recovery_commands(RESOURCE, "nodeb", "/srv/my data", up=True) == [
        "drbdadm up r0",
        "drbdadm primary r0",
        "mkdir -p '/srv/my data'",
        "mount /dev/drbd3 '/srv/my data'",
    ]
    assert recovery_commands(RESOURCE, "nodea", "/mnt/r0", promote=False) == [
        "mkdir -p /mnt/r0",
        "mount /dev/drbd0 /mnt/r0",
    ]


def test_the_recovery_summary_says_where_the_service_is_or_what_to_run_where() -> None:
    up = seen("nodea", "Connected", "Primary/Secondary", "UpToDate/UpToDate", mounted=True)
    untouched = Recovery(seen=[up], plan=plan(up), serving="nodea")
    assert untouched.summary() == (
        "Service: nodea is Primary with /dev/drbd0 mounted at /mnt/r0: service is up; nothing was changed."
    )
    survivor = seen("nodeb", "WFConnection", "Secondary/Unknown", "UpToDate/DUnknown")
    restored = Recovery(
        seen=[seen("nodea"), survivor],
        plan=plan(seen("nodea"), survivor),
        done=recovery_commands(RESOURCE, "nodeb", "/mnt/r0"),
        serving="nodeb",
    )
    assert restored.restored
    assert restored.summary().startswith(
        "Service restored on nodeb (no node is Primary; nodeb has an UpToDate"
    )
    assert restored.summary().endswith(
        "ran `drbdadm primary r0`; `mkdir -p /mnt/r0`; `mount /dev/drbd3 /mnt/r0`."
    )
    stuck = Recovery(
        seen=[seen("nodea"), seen("nodeb")],
        plan=plan(seen("nodea"), seen("nodeb")),
        to_run=recovery_commands(RESOURCE, "nodeb", "/mnt/r0", up=True),
    )
    assert not stuck.restored
    assert stuck.summary() == (
        "Service NOT restored: no node that answers is Primary or has an UpToDate disk to promote: "
        "nodeb: does not answer (no SSH answer); nodea: does not answer (no SSH answer). To restore it, run "
        "on nodeb once it answers again (power it on): `drbdadm up r0`; `drbdadm primary r0`; "
        "`mkdir -p /mnt/r0`; `mount /dev/drbd3 /mnt/r0`; then `python -m flows.setup` brings the other "
        "node back as secondary."
    )
    failed = stuck.model_copy(update={"failed": "mounting on nodeb failed: bad superblock"})
    assert failed.summary().startswith("Service NOT restored: mounting on nodeb failed: bad superblock. ")


def progress(**overrides: Any) -> FailoverProgress:
    fields: dict[str, Any] = {
        "resource": "r0",
        "killed": "nodea",
        "survivor": "nodeb",
        "fault": "sysrq-poweroff",
        "started_at": "2026-01-01T00:00:00Z",
    }
    fields.update(overrides)
    return FailoverProgress(**fields)


def test_a_drill_that_failed_before_the_fault_says_nothing_was_touched() -> None:
    up = seen("nodea", "Connected", "Primary/Secondary", "UpToDate/UpToDate", mounted=True)
    text = progress(
        error="CommandError: [nodea] `dd if=/dev/urandom of=/mnt/r0/x/f0001.bin` exited 1\ndd: No space left",
        recovery=Recovery(seen=[up], plan=plan(up), serving="nodea"),
    ).render()
    lines = text.splitlines()
    assert lines[0] == "Failover drill FAILED, DRBD r0: nodea → nodeb (started 2026-01-01T00:00:00Z)"
    assert lines[1].split(None, 2)[2] == "writing the dataset and its sha256 manifest on the primary"
    assert lines[2].endswith("CommandError: [nodea] `dd if=/dev/urandom of=/mnt/r0/x/f0001.bin` exited 1")
    assert lines[3].strip() == "dd: No space left", "the error's stderr tail follows, indented"
    assert lines[4].endswith("not fired: nodea was not touched")
    assert lines[5].startswith("Service: nodea is Primary with /dev/drbd0 mounted")
    assert (
        lines[6]
        == "  nodea: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate, /dev/drbd0 mounted at /mnt/r0"
    )


def test_a_drill_that_failed_after_the_fault_reports_what_it_measured_and_did() -> None:
    survivor = seen("nodeb", "WFConnection", "Primary/Unknown", "UpToDate/DUnknown")
    text = progress(
        phase="failover",
        fired=True,
        dataset_files=5,
        dataset_bytes=100 * MIB,
        figures={"detection_s": 5.72, "down_s": 3.1, "promote_s": 0.7},
        survivor_commands=["drbdadm primary r0", "mkdir -p /mnt/r0", "mount /dev/drbd0 /mnt/r0"],
        error="CommandError: [nodeb] `mount /dev/drbd0 /mnt/r0` exited 32",
        recovery=Recovery(
            seen=[seen("nodea"), survivor],
            plan=plan(seen("nodea"), survivor),
            done=["mkdir -p /mnt/r0", "mount /dev/drbd0 /mnt/r0"],
            serving="nodeb",
        ),
    ).render()
    assert "promoting, mounting and verifying every byte on the survivor" in text
    assert "5 files, 104,857,600 bytes" in text
    assert "sysrq-poweroff fired at nodea" in text
    labelled = [line.strip().split("  ", 1) for line in text.splitlines()[1:] if "  " in line.strip()]
    rows = {label: value for label, value in labelled}
    assert rows["detection (kill → survivor sees peer lost)"].strip() == "5.7 s"
    assert rows["killed node confirmed off SSH"].strip() == "3.1 s"
    assert rows["promote survivor"].strip() == "0.7 s"
    assert "mount (journal replay)" not in rows, "only what was measured"
    assert (
        rows["ran on nodeb"].strip() == "`drbdadm primary r0`; `mkdir -p /mnt/r0`; `mount /dev/drbd0 /mnt/r0`"
    )
    assert "Service restored on nodeb (nodeb is Primary but nothing is mounted at /mnt/r0): ran " in text
    assert "  nodea: does not answer (no SSH answer)" in text.splitlines()


def test_a_failed_drill_over_several_volumes_says_what_the_recovery_did_for_each() -> None:
    survivor = seen("nodeb", "WFConnection", "Primary/Unknown", "UpToDate/DUnknown", mounted=True)
    r1 = seen("nodeb", "WFConnection", "Secondary/Unknown", "UpToDate/DUnknown")
    text = progress(
        phase="rejoin",
        fired=True,
        error="TimeoutError: x",
        recovery=Recovery(
            seen=[seen("nodea"), survivor], plan=plan(seen("nodea"), survivor), serving="nodeb"
        ),
        volume_recoveries={
            "r1": Recovery(
                seen=[seen("nodea"), r1],
                plan=plan(seen("nodea"), r1),
                done=["drbdadm primary r1", "mount /dev/drbd1 /mnt/r1"],
                serving="nodeb",
            )
        },
    ).render()
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("r1: "))
    assert lines[at].startswith("r1: Service restored on nodeb") and "ran `drbdadm primary r1`" in lines[at]
    assert lines[at + 1 :] == ["  nodea: does not answer (no SSH answer)", f"  {r1.describe()}"]


def test_a_partial_report_without_a_recovery_says_to_check_by_hand() -> None:
    text = progress(phase="rejoin", fired=True, error="TimeoutError: x").render()
    assert text.splitlines()[-1].startswith("Service: not checked")


def pacemaker_report(**overrides: Any) -> FailoverReport:
    fields: dict[str, Any] = {
        "manager": "pacemaker",
        "survivor_commands": [],
        "detection_s": 8.6,
        "fenced_s": 32.2,
        "fenced_by": "nodeb",
        "promote_s": 46.0,
        "mount_s": 58.4,
        "rto_s": 63.7,
        "member_s": 2.0,
        "resync_s": 31.2,
        "unfenced_s": 31.2,
        "after_rejoin": [verified("nodeb")],
        "cluster_before": "nodea online (DC), nodeb online; quorate; p_fs_r0 Started on nodea",
        "cluster_after": "nodea online, nodeb online (DC); quorate; p_fs_r0 Started on nodeb",
        **overrides,
    }
    return report(**fields)


def test_under_pacemaker_nothing_had_to_be_done_on_the_survivor() -> None:
    lost, manual = pacemaker_report().answers()
    assert lost.endswith(
        "verified by sha256 on nodeb after nodea was destroyed, and again after nodea had "
        "rejoined and resynced."
    )
    assert manual == (
        "No: Pacemaker fenced nodea and promoted nodeb by itself; the flow only watched (no state-changing "
        "command ran on nodeb between the kill and the verified data)."
    )


def test_under_pacemaker_a_command_from_the_flow_on_the_survivor_is_named() -> None:
    _, manual = pacemaker_report(survivor_commands=["drbdadm primary r0"]).answers()
    assert manual == "Yes: the flow ran `drbdadm primary r0` on nodeb (this drill should only watch)."


def test_under_pacemaker_without_stonith_the_answer_says_nothing_was_fenced() -> None:
    _, manual = pacemaker_report(fenced_s=None, fenced_by=None).answers()
    assert manual.startswith("No: Pacemaker (STONITH disabled) promoted nodeb by itself")


def test_the_pacemaker_report_shows_each_stage_and_the_cluster_before_and_after() -> None:
    text = pacemaker_report().render()
    assert text.startswith("Failover drill (Pacemaker), DRBD r0: nodea → nodeb\n")
    for row in (
        "detection (kill → membership lost)  8.6 s",
        "fenced (by nodeb)                   32.2 s",
        "promoted by Pacemaker               46.0 s",
        "mounted by Pacemaker                58.4 s",
        "RTO (kill → every byte verified)    63.7 s",
        "… resynced as secondary             +31.2 s",
    ):
        assert f"  {row}\n" in text
    assert "Cluster before: nodea online (DC), nodeb online; quorate; p_fs_r0 Started on nodea\n" in text
    assert "Cluster after:  nodea online, nodeb online (DC); quorate; p_fs_r0 Started on nodeb\n" in text


def test_a_failed_drill_under_pacemaker_shows_the_cluster_and_acts_on_nothing() -> None:
    progress = FailoverProgress(
        resource="r0",
        killed="nodea",
        survivor="nodeb",
        fault="destroy",
        started_at="2026-11-26T13:12:57Z",
        phase="watch",
        fired=True,
        error="TimeoutError: timed out after 300 s waiting for the cluster to fence nodea",
        cluster="Node List:\n  * Online: [ nodeb ]\n  * OFFLINE: [ nodea ]",
    )
    text = progress.render()
    assert "failed while  watching Pacemaker fence, promote and mount on the survivor" in text
    assert text.endswith(
        "Service: left to Pacemaker (the flow does not act behind it); crm_mon:\n"
        "Node List:\n  * Online: [ nodeb ]\n  * OFFLINE: [ nodea ]"
    )


def writes(lost: list[int]) -> AckedWrites:
    checks = [
        WriterCheck(writer="nodea-1", node=node, acked=20, good=20 - len(lost), lost=lost, payload_bytes=512)
        for node in ("nodeb", "nodea")
    ]
    return AckedWrites(
        checks=checks,
        outage=WriteOutage(gap_s=8.2, from_s=-0.03, to_s=8.17, usual_s=0.07),
        timeline={"nodea-1": [-1.0 + 0.05 * n for n in range(20)], "nodeb-2": [8.17, 8.24]},
    )


def test_the_answer_and_the_rows_carry_the_acknowledged_writes_and_the_write_outage() -> None:
    r = report(writes=writes([]))
    lost, _ = r.answers()
    assert lost.endswith(
        "None of the 22 writes acknowledged to the application (after fsync, 2 writers) vanished: every one "
        "read back intact on nodea and nodeb. The application could not write for 8.2 s."
    )
    rows = dict(r.rows())
    assert rows["write outage (last ack → first ack)"] == "8.2 s"
    assert rows["acknowledged writes lost"] == "0 of 22"
    assert "  nodea-1 on nodeb: 20/20 acknowledged intact, 0 lost" in r.render().splitlines()


def test_an_acknowledged_write_lost_is_data_lost_even_when_every_byte_at_rest_is_intact() -> None:
    r = report(writes=writes([19, 20]))
    assert r.bytes_lost == 0 and r.acked_lost == 2  # two records, read back lost on both nodes: counted once
    lost, _ = r.answers()
    assert lost.startswith("No. All 536,870,912 bytes") and "ACKNOWLEDGED WRITES LOST: 2" in lost
    assert "nodea-1 on nodea: 18/20 acknowledged intact, 2 LOST (#19-20)" in r.render()


def test_a_partial_report_counts_the_acknowledged_writes_it_could_not_check() -> None:
    text = progress(phase="watch", fired=True, error="TimeoutError: x", acked={"nodea-1": 20}).render()
    assert "acknowledged writes (not checked)  nodea-1 20" in text


def test_under_pacemaker_the_phases_are_the_cluster_s_own_moments_after_the_kill() -> None:
    phases = pacemaker_report(rejoin_at_s=70.0).phases()
    assert phases == [
        ("membership lost", 0.0, 8.6),
        ("fenced by nodeb", 8.6, 32.2),
        ("promoted by Pacemaker", 32.2, 46.0),
        ("mounted by Pacemaker", 46.0, 58.4),
        ("every byte verified (RTO)", 58.4, 63.7),
        ("nodea boots", 70.0, 91.9),
        ("nodea rejoins and resyncs", 91.9, 123.1),
    ]
    assert ("promoted by Pacemaker", 8.6, 46.0) in pacemaker_report(fenced_s=None).phases()  # STONITH off
