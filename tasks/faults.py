"""The fault matrix's catalogue: every fault the project can inject, and what the design promises.

Each fault is named, says where it strikes (storage, backup, orchestration) and in which modes of the
volume it applies, and states its expected outcome as an :class:`Expectation` that is *checked*
against what a drill measured (a :class:`FaultOutcome`): bytes lost, commands someone had to run by
hand, the write outage the application saw, two Primaries. Everything here is pure — the flow
(``flows/faults.py``) runs the drills, this module judges them and draws the table — so the promises
are tested as tables.

The modes: ``fault-tolerant`` (single-primary DRBD, no cluster manager: a human promotes),
``pacemaker`` (single-primary under Pacemaker: the cluster fences and promotes), ``ha`` (dual-primary
DRBD with OCFS2 mounted on both nodes).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, get_args

from pydantic import BaseModel, Field

from tasks.cli import EXIT_COMMAND_FAILED, EXIT_DATA_LOST, EXIT_OK
from tasks.drbd.plan import NodeProbe
from tasks.writes import AckedWrites

Mode = Literal["fault-tolerant", "pacemaker", "ha"]
MODES: tuple[Mode, ...] = get_args(Mode)
Layer = Literal["storage", "backup", "orchestration"]
# The faults flows.storage_faults injects into the fault-tolerant volume.
StorageFault = Literal["secondary-killed", "long-outage", "link-cut", "disk-failure", "power-cycle"]
STORAGE_FAULTS: tuple[StorageFault, ...] = get_args(StorageFault)
# The faults flows.backup_faults injects into the Borg repository.
BackupFault = Literal["backup-server-down", "restore-disk-full", "segment-corrupted", "wrong-passphrase"]
BACKUP_FAULTS: tuple[BackupFault, ...] = get_args(BackupFault)
# These strike what only the lab may lose — a disk pulled from under DRBD, the backup server's VM, the
# bytes of its repository — never a host of the user's.
LAB_ONLY_BACKUP_FAULTS: tuple[BackupFault, ...] = ("backup-server-down", "segment-corrupted")
# A storage fault that strikes beyond what a drill may do to a user's cluster, with what it does.
LAB_ONLY_STORAGE_FAULTS: dict[StorageFault, str] = {
    "disk-failure": "unplugs the primary's disk",
    "power-cycle": "powers both nodes off at once (the service is down until they are back)",
}
# The faults flows.orchestration_faults injects: the flow's own process killed midway, then run again.
OrchestrationFault = Literal["setup-killed", "drill-killed"]
ORCHESTRATION_FAULTS: tuple[OrchestrationFault, ...] = get_args(OrchestrationFault)
# Both kill a flow while it changes the nodes; on the lab, whose state the flows own.
LAB_ONLY_ORCHESTRATION_FAULTS: dict[OrchestrationFault, str] = {
    "setup-killed": "builds a throwaway resource on loop devices of the nodes and kills its setup",
    "drill-killed": "kills the failover drill while the volume has no Primary",
}
Verdict = Literal["as expected", "unexpected", "data lost"]
VERDICTS: tuple[Verdict, ...] = ("data lost", "unexpected", "as expected")  # worst first

KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

# What a resync may copy on top of what the application wrote: ext4's journal and metadata, DRBD's
# 4 KiB bitmap granularity, and the activity log of a node that crashed (every extent it held is
# resynced). Measured on the lab: 5.3 MiB for 0.3 MiB of records (link cut), 9.3 MiB for 1 MiB
# (secondary killed), 76.5 MiB for 66.4 MiB (long outage).
RESYNC_FACTOR = 2
RESYNC_SLACK_BYTES = 32 << 20


class FaultOutcome(BaseModel):
    """What one run of one fault did, in the same terms for every fault (a drill's report, adapted)."""

    fault: str
    run: int = Field(ge=1, description="1-based: the run of this fault in the matrix.")
    mode: Mode
    outage_s: float | None = Field(
        description="The write outage the application saw, from its acknowledged writes (None: not measured)."
    )
    redundant_s: float | None = Field(
        description="The fault's end (the lost node restarted, the link healed, the split resolved) → fully "
        "redundant again (both disks UpToDate). The drills choose how long a fault lasts, so timing from the "
        "fault itself would measure the drill. None: not measured."
    )
    bytes_lost: int = Field(ge=0, description="Bytes lost for good: at rest, and of acknowledged writes.")
    acked_lost: int = Field(0, ge=0, description="Acknowledged writes lost for good (records).")
    copies_intact: bool = Field(
        True,
        description="Every node holds the same, intact files at the end (False where a drill counts files, "
        "not bytes: a file lost, or nodes that disagree). Data lost like a byte.",
    )
    two_primaries: bool = Field(
        False, description="Both nodes were Primary at once on a single-primary volume."
    )
    resynced_bytes: int | None = Field(
        None, ge=0, description="What the resyncs after the fault copied (None: not measured)."
    )
    written_bytes: int | None = Field(
        None,
        ge=0,
        description="What the application wrote while the peer was out of date (None: not measured).",
    )
    manual_commands: list[str] = Field(
        default_factory=list,
        description="State-changing commands a human (or the flow, standing in for one) had to run to get "
        "the data served or the nodes agreeing again; a repair of the lost node is not counted.",
    )
    repeated: list[str] = Field(
        default_factory=list,
        description="What must happen once but happened again after a flow was killed and re-run: metadata "
        "created over the resource's, a second forced promotion, a device mounted twice on a node.",
    )
    summary: str = Field(description="One line: what happened.")
    took_s: float | None = Field(
        None, ge=0, description="The drill's wall time, fault and recovery and checks (None: not timed)."
    )
    problems: list[str] = Field(
        default_factory=list, description="Every promise broken (filled by the check); empty: as expected."
    )

    @property
    def data_lost(self) -> bool:
        return bool(self.bytes_lost or self.acked_lost or not self.copies_intact)

    @property
    def verdict(self) -> Verdict:
        if self.data_lost:
            return "data lost"
        return "unexpected" if self.problems else "as expected"


class Expectation(BaseModel):
    """What the design promises when this fault strikes in one mode; :meth:`problems` checks it."""

    promise: str = Field(description="The promise, in one sentence (shown with the matrix).")
    zero_loss: bool = Field(True, description="No byte lost: at rest, acknowledged, or a copy that differs.")
    manual_commands: Literal["none", "allowed"] = Field(
        description="'none': the system recovers by itself; 'allowed': a human runs commands by design."
    )
    max_outage_s: float | None = Field(
        None, gt=0, description="The longest write outage allowed (None: any)."
    )
    single_primary: bool = Field(True, description="Never two Primaries (False: the fault itself makes two).")
    resync_follows_writes: bool = Field(
        False,
        description="The resync copies about what was written meanwhile (DRBD's bitmap), not the whole disk: "
        f"at most {RESYNC_FACTOR} times what was written + {RESYNC_SLACK_BYTES >> 20} MiB.",
    )
    resumes: bool = Field(
        False,
        description="A flow run again after its process was killed resumes from the real state: nothing that "
        "must happen once happens twice.",
    )

    def problems(self, outcome: FaultOutcome) -> list[str]:
        """One line per broken promise (empty: the outcome is what the design promises)."""
        found = []
        if self.zero_loss and (outcome.bytes_lost or outcome.acked_lost):
            acked = (
                f", {_plural(outcome.acked_lost, 'acknowledged write')} among them"
                if outcome.acked_lost
                else ""
            )
            found.append(f"lost {outcome.bytes_lost:,} bytes{acked} (the design promises none)")
        if self.zero_loss and not outcome.copies_intact:
            found.append(
                "the nodes' files are missing or differ afterwards (the design promises identical copies)"
            )
        if self.manual_commands == "none" and outcome.manual_commands:
            commands = ", ".join(f"`{c}`" for c in outcome.manual_commands)
            found.append(f"needed {commands} by hand (the design promises none)")
        if (
            self.max_outage_s is not None
            and outcome.outage_s is not None
            and outcome.outage_s > self.max_outage_s
        ):
            found.append(f"write outage {outcome.outage_s:.1f} s > {self.max_outage_s:g} s")
        if self.single_primary and outcome.two_primaries:
            found.append("two Primaries at once (the design promises never)")
        if self.resync_follows_writes:
            found.extend(_resync_problems(outcome))
        if self.resumes and outcome.repeated:
            found.append(f"the re-run repeated: {'; '.join(outcome.repeated)} (the design promises once)")
        return found


def _resync_problems(outcome: FaultOutcome) -> list[str]:
    if outcome.resynced_bytes is None or outcome.written_bytes is None:
        return ["the resync was not measured (the design promises it follows what was written)"]
    allowed = RESYNC_FACTOR * outcome.written_bytes + RESYNC_SLACK_BYTES
    if outcome.resynced_bytes > allowed:
        return [
            f"the resync copied {outcome.resynced_bytes >> 10:,} KiB for {outcome.written_bytes >> 10:,} KiB "
            f"written (more than {allowed >> 10:,} KiB: the design promises about what changed)"
        ]
    return []


class FaultSpec(BaseModel):
    """One fault of the catalogue, with its promise in each mode it applies to."""

    name: str = Field(pattern=KEBAB.pattern, description="kebab-case; what --only takes.")
    layer: Layer
    description: str
    expect: dict[Mode, Expectation] = Field(
        min_length=1, description="The modes the fault applies to, each with what the design promises there."
    )

    @property
    def modes(self) -> tuple[Mode, ...]:
        return tuple(self.expect)

    def judge(self, outcome: FaultOutcome) -> FaultOutcome:
        """The outcome with the promises of its mode checked (problems it already had are kept first)."""
        problems = [*outcome.problems, *self.expect[outcome.mode].problems(outcome)]
        return outcome.model_copy(update={"problems": problems})


CATALOGUE: tuple[FaultSpec, ...] = (
    FaultSpec(
        name="primary-killed",
        layer="storage",
        description="The primary is killed (failover.fault) while the application writes; it is brought "
        "back afterwards and resyncs as secondary (flows.failover).",
        expect={
            "fault-tolerant": Expectation(
                promise="Nothing acknowledged is lost (protocol C); DRBD alone does not promote, so a human "
                "promotes and mounts the survivor (the flow stands in for one).",
                manual_commands="allowed",
            ),
            "pacemaker": Expectation(
                promise="Pacemaker fences the killed node and promotes and mounts the survivor by itself; "
                "nothing acknowledged is lost and nobody runs a command.",
                manual_commands="none",
                # The lab (SBD, TCG) measured 53 s: membership, a 5 s priority delay, msgwait 10 s and the
                # promotion on a busy vCPU (README); this bounds a cluster that stalls, not a slow lab.
                max_outage_s=90.0,
            ),
        },
    ),
    FaultSpec(
        name="secondary-killed",
        layer="storage",
        description="The secondary is killed (failover.fault) while the primary writes; it is brought back "
        "and brought up as a repair (flows.storage_faults).",
        expect={
            "fault-tolerant": Expectation(
                promise="The primary writes on once DRBD has declared its peer lost, nobody runs a command "
                "for service and nothing acknowledged is lost; the secondary, back, resyncs what changed.",
                manual_commands="none",
                # Writes wait for the dead peer until DRBD's ping timeout (measured 4.1 s on the lab).
                max_outage_s=15.0,
                resync_follows_writes=True,
            ),
        },
    ),
    FaultSpec(
        name="long-outage",
        layer="storage",
        description="The secondary is killed and the primary writes faults.away_mib MiB more before it comes "
        "back (flows.storage_faults).",
        expect={
            "fault-tolerant": Expectation(
                promise="As for secondary-killed, and the resync copies what DRBD's bitmap marked while the "
                "peer was away — about what was written, not the whole disk.",
                manual_commands="none",
                max_outage_s=15.0,
                resync_follows_writes=True,
            ),
        },
    ),
    FaultSpec(
        name="link-cut",
        layer="storage",
        description="DRBD's replication link is cut inside the secondary while the primary writes, held, "
        "then healed (flows.link_cut under Pacemaker, flows.storage_faults without).",
        expect={
            "fault-tolerant": Expectation(
                promise="The primary writes on after DRBD's ping timeout and nothing promotes the cut-off "
                "secondary: one Primary, nothing lost; after the heal DRBD reconnects by itself and resyncs "
                "only what was written.",
                manual_commands="none",
                max_outage_s=15.0,
                resync_follows_writes=True,
            ),
            "pacemaker": Expectation(
                promise="DRBD fences the cut-off secondary (resource-and-stonith) and the primary writes on; "
                "never two Primaries, nothing lost, and the cluster returns to clean by itself.",
                manual_commands="none",
                # I/O freezes until crm-fence-peer.sh returns: 10.6 s measured (README).
                max_outage_s=30.0,
            ),
        },
    ),
    FaultSpec(
        name="disk-failure",
        layer="storage",
        description="The primary's backing disk vanishes under DRBD (a virtio disk unplugged) while it "
        "writes; the disk is put back and attached (flows.storage_faults).",
        expect={
            "fault-tolerant": Expectation(
                promise="DRBD detaches the failed disk (on-io-error detach) and the primary serves from its "
                "peer's disk without a pause: no command for service, nothing lost. Putting the disk back "
                "and attaching it is a repair.",
                manual_commands="none",
                # The writer acknowledges every 0.05 s; the only gap measured was 0.7 s, during the attach.
                max_outage_s=5.0,
            ),
        },
    ),
    FaultSpec(
        name="power-cycle",
        layer="storage",
        description="Both nodes lose power at once while the primary writes; both come back "
        "(flows.storage_faults).",
        expect={
            "fault-tolerant": Expectation(
                promise="Nothing acknowledged is lost and the volume comes back consistent (the journal "
                "replays); without a cluster manager a human brings it back with `python -m flows.setup`.",
                manual_commands="allowed",
            ),
        },
    ),
    FaultSpec(
        name="split-brain",
        layer="storage",
        description="The link is cut and the secondary promoted by an operator (HA: DRBD's link is cut under "
        "two Primaries); both sides write; the link comes back and DRBD detects the split-brain; it is "
        "resolved by hand (flows.split_brain).",
        expect={
            "fault-tolerant": Expectation(
                promise="Resolving a split-brain discards the victim's writes, acknowledged ones included, "
                "by design: every one of them is saved aside first, the survivor loses none, and both nodes "
                "agree afterwards. The resolution is a human's.",
                manual_commands="allowed",
                single_primary=False,  # the operator's promotion is the fault
            ),
            "ha": Expectation(
                promise="Without fencing both Primaries write on alone once OCFS2 has declared its peer "
                "dead; DRBD never resolves a split of two Primaries by itself (after-sb-2pri disconnect), so "
                "a human picks the survivor: every acknowledged write of the victim is saved aside before "
                "the discard, the survivor loses none, and both nodes agree afterwards.",
                manual_commands="allowed",
                single_primary=False,  # dual-primary is the mode
            ),
        },
    ),
    FaultSpec(
        name="ha-node-loss",
        layer="storage",
        description="One of the two OCFS2 nodes is killed while both write; it rejoins afterwards "
        "(flows.ha_node_loss).",
        expect={
            "ha": Expectation(
                promise="The survivor writes on once o2cb has declared its peer dead and replayed its "
                "journal; nothing acknowledged is lost on either node and nobody runs a command for service "
                "(the rejoin is a repair).",
                manual_commands="none",
                # o2cb declares the peer dead after heartbeat_threshold * 2 s + the idle timeout (24 s with
                # the lab's 7 and 10 s), then replays its journal slot.
                max_outage_s=60.0,
            ),
        },
    ),
)


def _everywhere(expectation: Expectation) -> dict[Mode, Expectation]:
    """A backup fault strikes the repository, whatever the volume's mode."""
    return dict.fromkeys(MODES, expectation)


CATALOGUE += (
    FaultSpec(
        name="backup-server-down",
        layer="backup",
        description="The backup server (the lab's VM) is destroyed while borg create runs; it comes back "
        "and the next backup runs (flows.backup_faults).",
        expect=_everywhere(
            Expectation(
                promise="The interrupted backup fails in one line within a minute (ssh keepalives), every "
                "archive stored is kept, and the next backup works with no break-lock or other command.",
                manual_commands="none",
            )
        ),
    ),
    FaultSpec(
        name="restore-disk-full",
        layer="backup",
        description="The restore drill extracts onto a filesystem too small for the archive "
        "(flows.backup_faults).",
        expect=_everywhere(
            Expectation(
                promise="The restore fails in one line (no space left), leaves nothing behind in its scratch "
                "directory, and neither the sources nor any archive is touched.",
                manual_commands="none",
            )
        ),
    ),
    FaultSpec(
        name="segment-corrupted",
        layer="backup",
        description="Bytes flipped in the repository segment holding the newest archive's own data "
        "(flows.backup_faults).",
        expect=_everywhere(
            Expectation(
                promise="Verify fails in one line naming the segment; a repair (tried on a copy) says what "
                "it would drop; older archives still restore; with the bytes back the repository verifies.",
                manual_commands="none",
            )
        ),
    ),
    FaultSpec(
        name="wrong-passphrase",
        layer="backup",
        description="A backup runs with a passphrase that is not the repository's (flows.backup_faults).",
        expect=_everywhere(
            Expectation(
                promise="Refused in one line naming the passphrase; nothing is written: the repository lists "
                "exactly the archives it had.",
                manual_commands="none",
            )
        ),
    ),
)


CATALOGUE += (
    FaultSpec(
        name="setup-killed",
        layer="orchestration",
        description="The setup flow's process is killed (SIGKILL) during the initial sync of a brand-new "
        "resource, then setup runs again (flows.orchestration_faults).",
        expect={
            "fault-tolerant": Expectation(
                promise="The re-run resumes from what the nodes say: it never creates metadata again, never "
                "forces a promotion again, makes the filesystem once and mounts it once; a human only runs "
                "setup again.",
                manual_commands="allowed",
                resumes=True,
            ),
        },
    ),
    FaultSpec(
        name="drill-killed",
        layer="orchestration",
        description="The failover drill's process is killed (SIGKILL) right after it killed the primary, "
        "leaving no Primary, then the drill runs again (flows.orchestration_faults).",
        expect={
            "fault-tolerant": Expectation(
                promise="The re-run brings the volume back from what the nodes say (no new metadata, no "
                "forced promotion, one mount) and its own drill loses nothing; a human only runs the drill "
                "again.",
                manual_commands="allowed",
                resumes=True,
            ),
        },
    ),
)


def judge(outcome: FaultOutcome) -> FaultOutcome:
    """``outcome`` checked against the catalogue's promise for its fault and mode (a drill run on its own
    is judged as the matrix would judge it)."""
    [spec] = [spec for spec in CATALOGUE if spec.name == outcome.fault]
    return spec.judge(outcome)


def mode_of(manager: str, probes: Mapping[str, NodeProbe]) -> Mode:
    """The volume's mode: Pacemaker's when it manages it; HA when every node is Primary with OCFS2
    mounted; otherwise fault-tolerant (single-primary without a cluster manager)."""
    if manager == "pacemaker":
        return "pacemaker"
    if probes and all(
        p.state.role == "Primary" and p.mount is not None and p.mount.fstype == "ocfs2"
        for p in probes.values()
    ):
        return "ha"
    return "fault-tolerant"


def check_names(catalogue: Sequence[FaultSpec], only: Iterable[str]) -> None:
    """Raise ValueError, in one line naming the known faults, for a name the catalogue does not have."""
    known = list(dict.fromkeys(spec.name for spec in catalogue))
    unknown = [name for name in dict.fromkeys(only) if name not in known]
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise ValueError(
            f"unknown fault{'s' if len(unknown) > 1 else ''} {names}; the catalogue has: {', '.join(known)}"
        )


def select(
    catalogue: Sequence[FaultSpec], mode: Mode, only: Iterable[str] | None = None
) -> tuple[list[FaultSpec], list[str]]:
    """The faults to run in ``mode`` (catalogue order; ``only``: just these names), and one line per
    requested fault that does not apply to it. An unknown name raises ValueError."""
    wanted = list(only or [])
    check_names(catalogue, wanted)
    run, skipped = [], []
    for spec in catalogue:
        if wanted and spec.name not in wanted:
            continue
        if mode in spec.expect:
            run.append(spec)
        else:
            skipped.append(f"{spec.name}: needs {' or '.join(spec.modes)}; the volume runs {mode}")
    return run, skipped


def failed_outcome(fault: str, run: int, mode: Mode, exc: BaseException) -> FaultOutcome:
    """The run of a drill that raised: nothing measured, the error as its problem (the matrix stops)."""
    first = (str(exc).strip().splitlines() or [""])[0]
    error = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return FaultOutcome(
        fault=fault,
        run=run,
        mode=mode,
        outage_s=None,
        redundant_s=None,
        bytes_lost=0,
        summary=f"the drill failed ({error}); the matrix stopped here",
        problems=[f"the drill failed: {error}"],
    )


def acked_loss(writes: AckedWrites | None) -> tuple[int, int]:
    """(records, bytes) of the acknowledged writes lost on some node checked, each record counted once
    however many nodes miss it."""
    return (writes.lost, writes.lost_bytes) if writes is not None else (0, 0)


class FaultSummary(BaseModel):
    """All runs of one fault, as one row of the matrix."""

    fault: str
    mode: Mode
    runs: int
    outage_median_s: float | None
    outage_max_s: float | None
    redundant_median_s: float | None
    bytes_lost: int
    acked_lost: int
    manual_commands: list[str] = Field(description="Distinct, in the order first seen.")
    problems: list[str] = Field(
        description="Every run's problems (prefixed by the run when there are several)."
    )
    verdict: Verdict

    def verdict_text(self) -> str:
        """The verdict as the matrix shows it: in capitals with every problem unless as expected."""
        if self.verdict == "as expected":
            return self.verdict
        return self.verdict.upper() + (": " + "; ".join(self.problems) if self.problems else "")


def summarise(outcomes: Sequence[FaultOutcome]) -> list[FaultSummary]:
    """One summary per fault (and mode), in the order the faults first ran."""
    groups: dict[tuple[str, Mode], list[FaultOutcome]] = {}
    for outcome in outcomes:
        groups.setdefault((outcome.fault, outcome.mode), []).append(outcome)
    summaries = []
    for (fault, mode), group in groups.items():
        outages = [o.outage_s for o in group if o.outage_s is not None]
        redundant = [o.redundant_s for o in group if o.redundant_s is not None]
        several = len(group) > 1
        summaries.append(
            FaultSummary(
                fault=fault,
                mode=mode,
                runs=len(group),
                outage_median_s=statistics.median(outages) if outages else None,
                outage_max_s=max(outages) if outages else None,
                redundant_median_s=statistics.median(redundant) if redundant else None,
                bytes_lost=sum(o.bytes_lost for o in group),
                acked_lost=sum(o.acked_lost for o in group),
                manual_commands=list(dict.fromkeys(c for o in group for c in o.manual_commands)),
                problems=[f"run {o.run}: {p}" if several else p for o in group for p in o.problems],
                verdict=min((o.verdict for o in group), key=VERDICTS.index),
            )
        )
    return summaries


def matrix_rows(outcomes: Sequence[FaultOutcome]) -> list[dict[str, object]]:
    """One row per outcome, for a table artifact."""
    return [
        {
            "fault": o.fault,
            "run": o.run,
            "mode": o.mode,
            "write outage (s)": o.outage_s,
            "redundant again (s)": o.redundant_s,
            "bytes lost": o.bytes_lost,
            "acknowledged writes lost": o.acked_lost,
            "resynced (KiB)": o.resynced_bytes >> 10 if o.resynced_bytes is not None else None,
            "written meanwhile (KiB)": o.written_bytes >> 10 if o.written_bytes is not None else None,
            "by hand": "; ".join(o.manual_commands) or "none",
            "drill took (s)": o.took_s,
            "what happened": o.summary,
            "verdict": "; ".join(o.problems) or "as expected",
        }
        for o in outcomes
    ]


def _seconds(value: float | None) -> str:
    return f"{value:.1f} s" if value is not None else "—"


def render_matrix(outcomes: Sequence[FaultOutcome], runs: int) -> str:
    """The matrix as plain text: one line per fault over its runs (``runs``: how many were asked for)."""
    summaries = summarise(outcomes)
    if not summaries:
        return "Fault matrix: no fault ran."
    header = (
        "fault",
        "mode",
        "runs",
        "write outage median / max",
        "redundant (median)",
        "bytes lost",
        "by hand",
    )
    rows = [
        (
            s.fault,
            s.mode,
            f"{s.runs}/{runs}",
            "not measured"
            if s.outage_median_s is None
            else f"{s.outage_median_s:.1f} s / {_seconds(s.outage_max_s)}",
            _seconds(s.redundant_median_s),
            f"{s.bytes_lost:,}",
            _plural(len(s.manual_commands), "command") if s.manual_commands else "none",
        )
        for s in summaries
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str], last: str) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + "  " + last

    faults, each = _plural(len(summaries), "fault"), _plural(runs, "run")
    by_hand = [
        line
        for s in summaries
        if s.manual_commands
        for line in (f"{s.fault} ({s.mode}), run by hand:", *(f"  {c}" for c in s.manual_commands))
    ]
    return "\n".join(
        [
            f"Fault matrix: {faults}, {each} each",
            line(header, "verdict"),
            *(line(row, s.verdict_text()) for row, s in zip(rows, summaries, strict=True)),
            *by_hand,
        ]
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def exit_code(outcomes: Sequence[FaultOutcome]) -> int:
    """tasks/cli.py's table: 1 if any fault lost data, else 4 if any ended other than promised, else 0."""
    if any(o.data_lost for o in outcomes):
        return EXIT_DATA_LOST
    return EXIT_COMMAND_FAILED if any(o.problems for o in outcomes) else EXIT_OK
