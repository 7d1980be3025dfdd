"""tasks/faults.py: the catalogue's promises are checked, not printed — each broken promise is one line,
the faults that do not apply to the volume's mode are said so, and the matrix and its exit code follow
the outcomes."""

from __future__ import annotations

from typing import Any

import pytest

from tasks import cli
from tasks.drbd.plan import NodeProbe
from tasks.drbd.probes import BlockSignature, DrbdState, Mount
from tasks.faults import (
    BACKUP_FAULTS,
    CATALOGUE,
    KEBAB,
    MODES,
    ORCHESTRATION_FAULTS,
    Expectation,
    FaultOutcome,
    FaultSpec,
    Mode,
    acked_loss,
    exit_code,
    failed_outcome,
    judge,
    matrix_rows,
    mode_of,
    render_matrix,
    select,
)
from tasks.writes import AckedWrites, WriterCheck, record_size


def outcome(**overrides: Any) -> FaultOutcome:
    fields: dict[str, Any] = {
        "fault": "primary-killed",
        "run": 1,
        "mode": "pacemaker",
        "outage_s": 53.1,
        "redundant_s": 71.7,
        "bytes_lost": 0,
        "summary": "nodea destroyed; Pacemaker fenced it and promoted nodeb by itself",
    }
    fields.update(overrides)
    return FaultOutcome(**fields)


STRICT = Expectation(promise="nothing lost, nobody acts", manual_commands="none", max_outage_s=60)
LENIENT = Expectation(promise="a human acts", manual_commands="allowed", single_primary=False)
RESYNC = Expectation(promise="resync what changed", manual_commands="none", resync_follows_writes=True)
RESUMES = Expectation(promise="resume", manual_commands="allowed", resumes=True)


@pytest.mark.parametrize(
    ("expectation", "overrides", "problems"),
    [
        (STRICT, {}, []),
        (STRICT, {"outage_s": None}, []),
        (STRICT, {"outage_s": 60.0}, []),
        (STRICT, {"bytes_lost": 4096}, ["lost 4,096 bytes (the design promises none)"]),
        (
            STRICT,
            {"bytes_lost": 1090, "acked_lost": 1},
            ["lost 1,090 bytes, 1 acknowledged write among them (the design promises none)"],
        ),
        (
            STRICT,
            {"bytes_lost": 2180, "acked_lost": 2},
            ["lost 2,180 bytes, 2 acknowledged writes among them (the design promises none)"],
        ),
        (
            STRICT,
            {"copies_intact": False},
            ["the nodes' files are missing or differ afterwards (the design promises identical copies)"],
        ),
        (
            STRICT,
            {"manual_commands": ["drbdadm primary r0"]},
            ["needed `drbdadm primary r0` by hand (the design promises none)"],
        ),
        (
            STRICT,
            {"manual_commands": ["drbdadm primary r0", "mount /dev/drbd0 /mnt/r0"]},
            ["needed `drbdadm primary r0`, `mount /dev/drbd0 /mnt/r0` by hand (the design promises none)"],
        ),
        (STRICT, {"outage_s": 70.24}, ["write outage 70.2 s > 60 s"]),
        (STRICT, {"two_primaries": True}, ["two Primaries at once (the design promises never)"]),
        (
            STRICT,
            {"bytes_lost": 4096, "manual_commands": ["drbdadm primary r0"], "outage_s": 61.0},
            [
                "lost 4,096 bytes (the design promises none)",
                "needed `drbdadm primary r0` by hand (the design promises none)",
                "write outage 61.0 s > 60 s",
            ],
        ),
        (LENIENT, {"manual_commands": ["drbdadm primary r0"], "two_primaries": True, "outage_s": 999.0}, []),
        (LENIENT, {"bytes_lost": 4096}, ["lost 4,096 bytes (the design promises none)"]),
        (
            Expectation(promise="may lose", zero_loss=False, manual_commands="allowed"),
            {"bytes_lost": 4096, "copies_intact": False},
            [],
        ),
        # the resync: at most twice what was written plus 32 MiB (the journal, the bitmap's 4 KiB blocks,
        # a crashed node's activity log)
        (RESYNC, {"resynced_bytes": 76_516 << 10, "written_bytes": 66_398 << 10}, []),
        (RESYNC, {"resynced_bytes": (2 * 1024 + 32 << 20), "written_bytes": 1 << 30 >> 10 << 10}, []),
        (
            RESYNC,
            {"resynced_bytes": 1 << 30, "written_bytes": 300 << 10},
            [
                "the resync copied 1,048,576 KiB for 300 KiB written (more than 33,368 KiB: the design "
                "promises about what changed)"
            ],
        ),
        (
            RESYNC,
            {"resynced_bytes": None, "written_bytes": 300 << 10},
            ["the resync was not measured (the design promises it follows what was written)"],
        ),
        (STRICT, {"resynced_bytes": 1 << 30, "written_bytes": 0}, []),
        # a killed flow run again: what must happen once, once
        (RESUMES, {"manual_commands": ["python -m flows.setup"]}, []),
        (
            RESUMES,
            {
                "repeated": [
                    "nodea: metadata created again (`drbdadm create-md hsf-fault`)",
                    "nodeb: mounted 2 times",
                ]
            },
            [
                "the re-run repeated: nodea: metadata created again (`drbdadm create-md hsf-fault`); nodeb: "
                "mounted 2 times (the design promises once)"
            ],
        ),
        (STRICT, {"repeated": ["nodeb: mounted 2 times"]}, []),  # a promise only where a flow is re-run
    ],
)
def test_each_broken_promise_is_one_line(
    expectation: Expectation, overrides: dict[str, Any], problems: list[str]
) -> None:
    assert expectation.problems(outcome(**overrides)) == problems


def test_judging_keeps_the_problems_an_outcome_had_and_uses_its_mode() -> None:
    [spec] = [s for s in CATALOGUE if s.name == "primary-killed"]
    by_hand = ["drbdadm primary r0"]
    assert spec.judge(outcome(mode="fault-tolerant", manual_commands=by_hand)).problems == []
    judged = spec.judge(outcome(manual_commands=by_hand, problems=["earlier"]))
    assert judged.problems == ["earlier", "needed `drbdadm primary r0` by hand (the design promises none)"]


def test_a_drill_run_on_its_own_is_judged_by_its_fault_and_mode() -> None:
    by_hand = outcome(manual_commands=["drbdadm primary r0"])
    assert judge(by_hand).problems == ["needed `drbdadm primary r0` by hand (the design promises none)"]
    assert judge(by_hand.model_copy(update={"mode": "fault-tolerant"})).problems == []
    with pytest.raises(KeyError):  # a mode the fault does not apply to
        judge(by_hand.model_copy(update={"mode": "ha"}))


def test_the_catalogue_names_are_unique_kebab_case_and_state_a_promise_per_mode() -> None:
    names = [spec.name for spec in CATALOGUE]
    assert len(names) == len(set(names))
    assert all(KEBAB.fullmatch(name) for name in names)
    assert {spec.name: spec.modes for spec in CATALOGUE} == {
        "primary-killed": ("fault-tolerant", "pacemaker"),
        "secondary-killed": ("fault-tolerant",),
        "long-outage": ("fault-tolerant",),
        "link-cut": ("fault-tolerant", "pacemaker"),
        "disk-failure": ("fault-tolerant",),
        "power-cycle": ("fault-tolerant",),
        "split-brain": ("fault-tolerant", "ha"),
        "ha-node-loss": ("ha",),
        **dict.fromkeys(BACKUP_FAULTS, MODES),
        "setup-killed": ("fault-tolerant",),
        "drill-killed": ("fault-tolerant",),
    }
    assert all(e.promise for spec in CATALOGUE for e in spec.expect.values())
    with pytest.raises(ValueError, match="String should match pattern"):
        FaultSpec(name="Primary_Killed", layer="storage", description="x", expect={"ha": STRICT})


def test_the_promises_of_the_existing_faults() -> None:
    expect = {(spec.name, mode): e for spec in CATALOGUE for mode, e in spec.expect.items()}
    # DRBD alone does not promote; under Pacemaker nobody may act; the resolution of a split-brain is
    # a human's and the fault itself is two Primaries.
    assert {key: e.manual_commands for key, e in expect.items()} == {
        ("primary-killed", "fault-tolerant"): "allowed",
        ("primary-killed", "pacemaker"): "none",
        ("secondary-killed", "fault-tolerant"): "none",
        ("long-outage", "fault-tolerant"): "none",
        ("link-cut", "fault-tolerant"): "none",
        ("link-cut", "pacemaker"): "none",
        ("disk-failure", "fault-tolerant"): "none",
        ("power-cycle", "fault-tolerant"): "allowed",
        ("split-brain", "fault-tolerant"): "allowed",
        ("split-brain", "ha"): "allowed",  # without fencing DRBD never resolves two Primaries by itself
        ("ha-node-loss", "ha"): "none",
        **{(name, mode): "none" for name in BACKUP_FAULTS for mode in MODES},
        ("setup-killed", "fault-tolerant"): "allowed",  # a human runs the killed flow again
        ("drill-killed", "fault-tolerant"): "allowed",
    }
    # Where the peer falls behind and comes back, the resync must follow what was written.
    assert [key for key, e in expect.items() if e.resync_follows_writes] == [
        ("secondary-killed", "fault-tolerant"),
        ("long-outage", "fault-tolerant"),
        ("link-cut", "fault-tolerant"),
    ]
    assert all(e.zero_loss for e in expect.values())
    assert [key for key, e in expect.items() if not e.single_primary] == [
        ("split-brain", "fault-tolerant"),
        ("split-brain", "ha"),  # dual-primary is the mode
    ]
    # Backup faults strike the repository: the same promise whatever the volume's mode.
    backups = [spec for spec in CATALOGUE if spec.layer == "backup"]
    assert [spec.name for spec in backups] == list(BACKUP_FAULTS)
    assert all(len({e.promise for e in spec.expect.values()}) == 1 for spec in backups)
    # A killed flow run again resumes: what must happen once never happens twice.
    assert [key for key, e in expect.items() if e.resumes] == [
        ("setup-killed", "fault-tolerant"),
        ("drill-killed", "fault-tolerant"),
    ]


PACEMAKER_SKIPS = (
    [
        f"{name}: needs fault-tolerant; the volume runs pacemaker"
        for name in ("secondary-killed", "long-outage", "disk-failure", "power-cycle")
    ]
    + ["split-brain: needs fault-tolerant or ha; the volume runs pacemaker"]
    + ["ha-node-loss: needs ha; the volume runs pacemaker"]
    + [f"{name}: needs fault-tolerant; the volume runs pacemaker" for name in ORCHESTRATION_FAULTS]
)


@pytest.mark.parametrize(
    ("mode", "only", "run", "skipped"),
    [
        (
            "fault-tolerant",
            None,
            [
                "primary-killed",
                "secondary-killed",
                "long-outage",
                "link-cut",
                "disk-failure",
                "power-cycle",
                "split-brain",
                *BACKUP_FAULTS,
                *ORCHESTRATION_FAULTS,
            ],
            ["ha-node-loss: needs ha; the volume runs fault-tolerant"],
        ),
        ("pacemaker", None, ["primary-killed", "link-cut", *BACKUP_FAULTS], PACEMAKER_SKIPS),
        (
            "ha",
            ["primary-killed", "ha-node-loss"],
            ["ha-node-loss"],
            ["primary-killed: needs fault-tolerant or pacemaker; the volume runs ha"],
        ),
        ("ha", ["link-cut"], [], ["link-cut: needs fault-tolerant or pacemaker; the volume runs ha"]),
        (
            "ha",
            ["split-brain", "ha-node-loss", "disk-failure"],
            ["split-brain", "ha-node-loss"],  # catalogue order
            ["disk-failure: needs fault-tolerant; the volume runs ha"],
        ),
        ("pacemaker", ["link-cut", "primary-killed", "link-cut"], ["primary-killed", "link-cut"], []),
        ("pacemaker", [], ["primary-killed", "link-cut", *BACKUP_FAULTS], PACEMAKER_SKIPS),
        ("ha", ["wrong-passphrase"], ["wrong-passphrase"], []),
    ],
)
def test_select_runs_what_applies_and_says_what_it_skips(
    mode: Mode, only: list[str] | None, run: list[str], skipped: list[str]
) -> None:
    specs, lines = select(CATALOGUE, mode, only)
    assert [spec.name for spec in specs] == run
    assert lines == skipped


def test_select_refuses_an_unknown_name_in_one_line() -> None:
    known = (
        "the catalogue has: primary-killed, secondary-killed, long-outage, link-cut, disk-failure, "
        "power-cycle, split-brain, ha-node-loss, backup-server-down, restore-disk-full, segment-corrupted, "
        "wrong-passphrase, setup-killed, drill-killed"
    )
    with pytest.raises(ValueError, match=r"^unknown fault 'primary-kiled'; " + known + "$"):
        select(CATALOGUE, "pacemaker", ["link-cut", "primary-kiled"])
    with pytest.raises(ValueError, match=r"^unknown faults 'a', 'b'; the catalogue has: "):
        select(CATALOGUE, "pacemaker", ["a", "b", "a"])


def probe(node: str, role: str, fstype: str | None) -> NodeProbe:
    mount = Mount(source="/dev/drbd0", target="/mnt/r0", fstype=fstype, options="rw") if fstype else None
    return NodeProbe(
        node=node, hostname=node, config_current=True, module_loaded=True,
        state=DrbdState(minor=0, connection="Connected", role=role, disk="UpToDate", peer_disk="UpToDate"),
        backing=BlockSignature(), mount=mount,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("manager", "nodes", "mode"),
    [
        ("pacemaker", {}, "pacemaker"),
        ("pacemaker", {"a": ("Primary", "ocfs2"), "b": ("Primary", "ocfs2")}, "pacemaker"),
        ("none", {"a": ("Primary", "ocfs2"), "b": ("Primary", "ocfs2")}, "ha"),
        ("none", {"a": ("Primary", "ocfs2"), "b": ("Secondary", None)}, "fault-tolerant"),
        ("none", {"a": ("Primary", "ext4"), "b": ("Secondary", None)}, "fault-tolerant"),
        ("none", {"a": ("Primary", "ext4"), "b": ("Primary", "ext4")}, "fault-tolerant"),
        ("none", {}, "fault-tolerant"),
    ],
)
def test_the_mode_of_the_volume(manager: str, nodes: dict[str, tuple[str, str | None]], mode: Mode) -> None:
    probes = {node: probe(node, role, fstype) for node, (role, fstype) in nodes.items()}
    assert mode_of(manager, probes) == mode


def test_acknowledged_loss_counts_each_record_once_whatever_the_nodes() -> None:
    checks = [
        WriterCheck(writer="nodea-1", node=node, acked=20, good=18, lost=[19, 20], payload_bytes=512)
        for node in ("nodea", "nodeb")
    ] + [WriterCheck(writer="nodeb-2", node="nodeb", acked=9, good=8, lost=[3], payload_bytes=64)]
    writes = AckedWrites(checks=checks, outage=None)
    expected = (
        record_size("nodea-1", 19, 512) + record_size("nodea-1", 20, 512) + record_size("nodeb-2", 3, 64)
    )
    assert acked_loss(writes) == (3, expected)
    assert acked_loss(None) == (0, 0)
    intact = checks[0].model_copy(update={"good": 20, "lost": []})
    assert acked_loss(AckedWrites(checks=[intact], outage=None)) == (0, 0)


def test_a_failed_drill_is_an_outcome_whose_problem_is_its_error() -> None:
    failed = failed_outcome("link-cut", 2, "pacemaker", TimeoutError("DRBD on nodeb to fence nodea\nmore"))
    assert failed.problems == ["the drill failed: TimeoutError: DRBD on nodeb to fence nodea"]
    assert (failed.verdict, failed.data_lost, failed.outage_s) == ("unexpected", False, None)
    assert failed_outcome("link-cut", 1, "pacemaker", KeyError()).problems == ["the drill failed: KeyError"]


BY_HAND = ["drbdadm primary r0", "mount /dev/drbd0 /mnt/r0"]
OUTCOMES = [
    outcome(mode="fault-tolerant", outage_s=8.2, redundant_s=60.5, manual_commands=BY_HAND),
    outcome(mode="fault-tolerant", run=2, outage_s=9.4, redundant_s=40.1, manual_commands=BY_HAND[:1]),
    outcome(mode="fault-tolerant", run=3, outage_s=7.0, redundant_s=33.3, manual_commands=BY_HAND[:1]),
    outcome(
        fault="split-brain", mode="fault-tolerant", outage_s=None, redundant_s=1.2,
        manual_commands=["drbdadm connect --discard-my-data r0"],
    ),
]  # fmt: skip


def test_the_matrix_summarises_each_fault_over_its_runs_and_lists_the_commands_run_by_hand() -> None:
    assert render_matrix(OUTCOMES, 3).splitlines() == [
        "Fault matrix: 2 faults, 3 runs each",
        "fault           mode            runs  write outage median / max  redundant (median)  bytes lost  "
        "by hand     verdict",
        "primary-killed  fault-tolerant  3/3   8.2 s / 9.4 s              40.1 s              0           "
        "2 commands  as expected",
        "split-brain     fault-tolerant  1/3   not measured               1.2 s               0           "
        "1 command   as expected",
        "primary-killed (fault-tolerant), run by hand:",
        "  drbdadm primary r0",
        "  mount /dev/drbd0 /mnt/r0",
        "split-brain (fault-tolerant), run by hand:",
        "  drbdadm connect --discard-my-data r0",
    ]


def test_the_matrix_names_every_broken_promise_and_the_worst_verdict() -> None:
    outcomes = [
        outcome(problems=["write outage 70.2 s > 60 s"], outage_s=70.2),
        outcome(run=2, outage_s=55.0),
        outcome(run=3, outage_s=None, bytes_lost=4096,
                problems=["lost 4,096 bytes (the design promises none)"]),
        outcome(fault="link-cut", outage_s=10.6, redundant_s=None, manual_commands=["crm resource cleanup"],
                problems=["needed `crm resource cleanup` by hand (the design promises none)"]),
    ]  # fmt: skip
    lines = render_matrix(outcomes, 3).splitlines()
    assert lines[0] == "Fault matrix: 2 faults, 3 runs each"
    assert lines[2].startswith("primary-killed  pacemaker  3/3   62.6 s / 70.2 s ")  # runs 1-2: measured
    assert lines[2].endswith(
        "  DATA LOST: run 1: write outage 70.2 s > 60 s; run 3: lost 4,096 bytes (the design promises none)"
    )
    assert " 4,096 " in lines[2]
    assert lines[3].startswith("link-cut        pacemaker  1/3   10.6 s / 10.6 s  ")
    assert lines[3].endswith(
        "1 command  UNEXPECTED: needed `crm resource cleanup` by hand (the design promises none)"
    )
    assert lines[4:] == ["link-cut (pacemaker), run by hand:", "  crm resource cleanup"]
    assert render_matrix([], 1) == "Fault matrix: no fault ran."


def test_matrix_rows_are_one_per_outcome() -> None:
    rows = matrix_rows([OUTCOMES[0], outcome(problems=["a", "b"], manual_commands=[])])
    assert rows[0]["by hand"] == "drbdadm primary r0; mount /dev/drbd0 /mnt/r0"
    assert rows[0]["verdict"] == "as expected"
    assert (rows[1]["by hand"], rows[1]["verdict"], rows[1]["write outage (s)"]) == ("none", "a; b", 53.1)
    assert rows[0]["drill took (s)"] is None  # an outcome the matrix did not time


@pytest.mark.parametrize(
    ("outcomes", "code"),
    [
        ([], cli.EXIT_OK),
        (OUTCOMES, cli.EXIT_OK),
        ([*OUTCOMES, outcome(problems=["write outage 70.2 s > 60 s"])], cli.EXIT_COMMAND_FAILED),
        ([*OUTCOMES, outcome(problems=["x"]), outcome(acked_lost=1, bytes_lost=1090)], cli.EXIT_DATA_LOST),
        ([outcome(copies_intact=False)], cli.EXIT_DATA_LOST),
    ],
)
def test_exit_code(outcomes: list[FaultOutcome], code: int) -> None:
    assert exit_code(outcomes) == code
