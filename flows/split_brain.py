"""The split-brain drill: ``python -m flows.split_brain``.

On the healthy single-primary volume: cut the replication link (an nftables rule inside both guests
drops the DRBD port), promote the secondary as an operator would, write different data on both
sides, restore the link. While split, a writer on each side appends records it acknowledges only after
fsync (``tasks/writes.py``). DRBD itself detects the split-brain (StandAlone, "Split-Brain detected" in
the kernel log) — nothing is guessed. The report says what each side changed; the victim's diverged
files, its acknowledged records among them, are saved aside on the victim *before*
``connect --discard-my-data`` throws them away; after the resync both nodes are checked to hold the
same files.

Discarding acknowledged writes is exactly what resolving a split-brain does, so the report says so in
plain words: how many of the victim's acknowledged records the resolution discarded, and that every one
of them is in the rescue copy. Acknowledged data is lost (DATA_LOST, exit 1) only if the survivor lost a
record of its own, or a discarded record is missing from the rescue copy. The fault on the picture is
the cut: every acknowledgement comes after it, from two Primaries, so there is no write outage to
measure — what the picture shows is the two sides writing at once and the victim's records discarded.

On the high-availability volume (both nodes Primary with OCFS2 mounted) nobody needs to promote: the
drill cuts only DRBD's port, OCFS2's own link stays up, and the writers run on both nodes from before the
cut. Each node's OCFS2 evicts the other once its heartbeat stops reaching the local copy, and each writes
on alone; the report keeps those kernel lines and each side's pause. DRBD refuses to resolve two
Primaries (after-sb-2pri disconnect); the resolution is the same as above, with the victim leaving the
OCFS2 cluster (umount) before the discard and joining it again (promote, mount) after the resync.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Literal

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from flows.setup import setup
from tasks.cli import CheckFailed, run_cli
from tasks.cluster import drbd_resource, node_targets, o2cb_cluster, secret_block_name, shared_secret
from tasks.context import current_executor, refuse_dry_run, run_context
from tasks.drbd import commands as cmd
from tasks.drbd import steps
from tasks.drbd.model import DrbdResource
from tasks.drbd.plan import Refused
from tasks.drbd.probes import DrbdState
from tasks.drbd.roles import switch_primary
from tasks.events import DATA_LOST, SPLIT_BRAIN_RESOLVED, cluster_resource, emit
from tasks.executor import SshTarget
from tasks.faults import mode_of
from tasks.lab.host import wait_until
from tasks.manifest import contents, tree_manifest
from tasks.network import cut_link, heal_link
from tasks.ocfs2 import steps as ocfs2
from tasks.pictures import ack_timeline_png, save_picture
from tasks.settings import Settings, load_settings
from tasks.step import step
from tasks.writes import AckLog, Writer, WriterCheck, acked_writes, check_writers, write_outage

ACKED_DIR = "split/acked"  # the writers' records, under the mountpoint (and the rescue copy)
# OCFS2's cluster stack in the kernel log, its verdicts only: a stalled heartbeat, the peer's link lost,
# the peer evicted, its journal replayed, a fence or a filesystem error.
OCFS2_KERNEL = re.compile(
    r"hb write hung|No longer connected to node|has evicted node|Begin replay journal|fenc|OCFS2: ERROR"
)


def writer_name(node: str) -> str:
    return f"{node}-split"


class SideChanges(BaseModel):
    added: list[str] = Field(default_factory=list)
    modified: list[str] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)

    @property
    def diverged(self) -> list[str]:
        """Files that exist only in this side's version (what discarding it would lose)."""
        return sorted(self.added + self.modified)


def changes_between(baseline: dict[str, str], now: dict[str, str]) -> SideChanges:
    return SideChanges(
        added=sorted(set(now) - set(baseline)),
        modified=sorted(p for p in now if p in baseline and now[p] != baseline[p]),
        deleted=sorted(set(baseline) - set(now)),
    )


def acked_fate(
    checks: list[WriterCheck], rescue: WriterCheck, survivor: str, victim: str
) -> tuple[int, int, int]:
    """(discarded, rescued, survivor lost): the victim's acknowledged records missing from the volume on
    any node checked, those of them intact in the rescue copy, and the survivor's own acknowledged
    records missing on any node checked."""
    discarded = {seq for c in checks if c.writer == writer_name(victim) for seq in c.lost}
    survivor_lost = {seq for c in checks if c.writer == writer_name(survivor) for seq in c.lost}
    return len(discarded), len(discarded - set(rescue.lost)), len(survivor_lost)


class SplitBrainReport(BaseModel):
    mode: Literal["fault-tolerant", "ha"] = Field(
        "fault-tolerant",
        description="fault-tolerant: the secondary promoted by an operator while cut off; ha: both nodes "
        "Primary with OCFS2 all along, only DRBD's link cut.",
    )
    survivor: str
    victim: str
    detection: dict[str, str] = Field(description="Each node's DRBD state when the split-brain was detected.")
    kernel_log: list[str] = Field(description="DRBD's own split-brain lines from the kernel log.")
    ocfs2_log: list[str] = Field(
        default_factory=list,
        description="HA mode: OCFS2's cluster stack's verdicts during the split (`node: line`): each node "
        "evicting its peer and replaying its journal.",
    )
    stalls: dict[str, float] = Field(
        default_factory=dict,
        description="HA mode: each side's longest pause between acknowledged writes after the cut.",
    )
    changes: dict[str, SideChanges]
    rescued: dict[str, str] = Field(description="Victim files saved before the discard: path → sha256.")
    rescue_dir: str
    resync_s: float
    nodes_agree: bool
    files_after: int
    acked: dict[str, int] = Field(
        description="Each side's records acknowledged (after fsync): while split (in HA mode the writers "
        "began before the cut)."
    )
    checks: list[WriterCheck] = Field(
        description="Both writers' records read back on the volume after the resolution, on each node."
    )
    rescue_check: WriterCheck = Field(description="The victim's writer's records in the rescue copy.")
    discarded_acked: int = Field(
        description="The victim's acknowledged records no longer on the volume: discarded by the resolution."
    )
    rescued_acked: int = Field(
        description="Of the discarded acknowledged records, found intact in the rescue."
    )
    survivor_acked_lost: int = Field(description="The survivor's own acknowledged records lost: must be 0.")
    picture: str = Field("", description="Both sides' acknowledged records over time (PNG).")
    resolution_commands: list[str] = Field(
        default_factory=list,
        description="The state-changing commands the resolution ran, as `node: command`.",
    )

    @property
    def acked_gone(self) -> int:
        """Acknowledged records gone for good: the survivor's lost, and discarded ones not saved aside."""
        return self.survivor_acked_lost + self.discarded_acked - self.rescued_acked

    @property
    def data_lost(self) -> bool:
        return not self.nodes_agree or self.acked_gone > 0

    def acked_sentences(self) -> list[str]:
        """What happened to the acknowledged writes, in plain words."""
        victim, saved_in = self.victim, f"{self.victim}:{self.rescue_dir}/{ACKED_DIR}"
        made = f"acknowledged writes made on {victim} during the split"
        if not self.discarded_acked:
            discarded = f"The resolution discarded none of the {self.acked.get(victim, 0)} {made}."
        elif self.rescued_acked == self.discarded_acked:
            discarded = (
                f"The resolution discarded {self.discarded_acked} {made} (that is what split-brain "
                f"resolution does); all {self.discarded_acked} are saved in {saved_in}."
            )
        else:
            discarded = (
                f"The resolution discarded {self.discarded_acked} {made} (that is what split-brain "
                f"resolution does); only {self.rescued_acked} of them are saved in {saved_in}: "
                f"{self.discarded_acked - self.rescued_acked} acknowledged writes are GONE."
            )
        kept = self.acked.get(self.survivor, 0)
        survivor = (
            f"None of the {kept} acknowledged writes made on {self.survivor} (the side kept) was lost."
            if not self.survivor_acked_lost
            else f"{self.survivor} (the side kept) LOST {self.survivor_acked_lost} of its {kept} "
            "acknowledged writes."
        )
        return [discarded, survivor]

    def render(self) -> str:
        mode = " (HA: dual-primary OCFS2, DRBD's link cut)" if self.mode == "ha" else ""
        lines = [f"Split-brain drill{mode}: survivor {self.survivor}, victim {self.victim}"]
        lines += [f"  writes paused after the cut on {node}: {s:.1f} s" for node, s in self.stalls.items()]
        lines += [f"  ocfs2: {line}" for line in self.ocfs2_log]
        lines += [f"  detected: {node}: {state}" for node, state in self.detection.items()]
        lines += [f"  kernel: {line}" for line in self.kernel_log[:4]]
        for node, change in self.changes.items():
            lines.append(
                f"  {node} changed: added {change.added or '-'}, modified {change.modified or '-'}, "
                f"deleted {change.deleted or '-'}"
            )
        lines.append(
            f"  saved before discarding: {len(self.rescued)} files in {self.victim}:{self.rescue_dir}"
        )
        lines.append(f"  resync after resolution: {self.resync_s:.1f} s")
        agree = "yes" if self.nodes_agree else "NO"
        lines.append(f"  nodes agree afterwards ({self.files_after} files, sha256): {agree}")
        acked = ", ".join(f"{node} {count}" for node, count in self.acked.items())
        when = "from before the cut to the heal" if self.mode == "ha" else "while split"
        lines.append(f"  acknowledged writes {when} (each after fsync): {acked}")
        lines += [f"  on the volume after the resolution: {c.summary()}" for c in self.checks]
        lines.append(f"  in the rescue copy: {self.rescue_check.summary()}")
        if self.picture:
            lines.append(f"  picture: {self.picture}")
        return "\n".join([*lines, *self.acked_sentences()])


@step(name="write-diverging-data", timeout_seconds=300)
def write_side(target: SshTarget, mountpoint: str, node: str, delete: str | None) -> None:
    run = current_executor().run
    run(
        [
            "dd",
            "if=/dev/urandom",
            f"of={mountpoint}/split/only-on-{node}.bin",
            "bs=64k",
            "count=16",
            "status=none",
        ],
        target,
    )
    run(
        ["dd", f"of={mountpoint}/split/shared.txt", "status=none"],
        target,
        stdin=f"written by {node} during the split\n",
    )
    if delete:
        run(["rm", "-f", f"{mountpoint}/{delete}"], target)
    run(["sync"], target)


def _state(target: SshTarget, resource: DrbdResource) -> DrbdState:
    return steps.drbd_state(target, resource.node(target.name).minor)


@flow(name="split-brain-drill")
def split_brain_drill(settings: Settings | None = None) -> SplitBrainReport:
    settings = settings or load_settings()
    refuse_dry_run(settings, "the split-brain drill", "its proof is a real split of the replication link")
    with run_context(settings, changes_state=True):
        return _drill(settings)


def _ha_volume(settings: Settings, targets: dict[str, SshTarget], secret: str) -> bool:
    """Both nodes Primary with OCFS2 mounted (the HA mode); a half-HA volume is refused by setup, which
    the fault-tolerant drill runs first."""
    resource = drbd_resource(settings, secret, dual_primary=True)
    probes = steps.probe_nodes(targets, resource, settings.drbd.mountpoint)
    if mode_of(settings.cluster.manager, probes) != "ha":
        return False
    unhealthy = [f"{node}: {p.state.summary()}" for node, p in probes.items() if not p.state.healthy]
    if unhealthy:
        raise Refused(f"the HA volume is not healthy ({'; '.join(unhealthy)}); nothing was cut")
    return True


def _kernel_lines(target: SshTarget) -> list[str]:
    return current_executor().run(["dmesg"], target, read_only=True).stdout.splitlines()


def _drill(settings: Settings) -> SplitBrainReport:
    log = get_run_logger()
    targets = node_targets(settings)
    secret = shared_secret(secret_block_name(settings))
    ha = _ha_volume(settings, targets, secret)
    if not ha:
        setup(settings)  # the healthy single-primary volume
    resource = drbd_resource(settings, secret, dual_primary=ha)
    drbd, sb = settings.drbd, settings.split_brain
    primary, secondary = settings.primary, resource.peer_of(settings.primary).name
    victim = sb.victim or secondary
    survivor = resource.peer_of(victim).name
    device, mp = resource.node(primary).device, drbd.mountpoint
    acked_dir, writes = f"{mp}/{ACKED_DIR}", settings.writes
    o2cb = o2cb_cluster(settings)
    # In HA mode each side writes on alone once OCFS2 has declared its peer dead (its heartbeat no longer
    # reaches the local copy): the files are written only then, and each side writes past it.
    settle_s = o2cb.dead_after_s if ha else 0.0
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run = current_executor().run

    def files_on(node: str, root: str = mp) -> dict[str, str]:
        return contents(tree_manifest(targets[node], root))

    # Phase 1: a baseline, then the link cut — only DRBD's port: in HA mode OCFS2's own link (o2net) stays
    # up, as when a dedicated replication link fails. Without a cluster manager the single-primary
    # secondary is then promoted as an operator would; in HA mode both nodes are Primary already and the
    # application writes on both before, through and after the cut.
    run(["mkdir", "-p", f"{mp}/split"], targets[primary])
    run(["rm", "-rf", acked_dir], targets[primary])  # an earlier run's records: the writers append
    run(["dd", f"of={mp}/split/shared.txt", "status=none"], targets[primary], stdin="before the split\n")
    run(["dd", f"of={mp}/split/doomed.txt", "status=none"], targets[primary], stdin="deleted on one side\n")
    run(["sync"], targets[primary])
    baseline = files_on(primary)
    kernel_before = {node: len(_kernel_lines(target)) for node, target in targets.items()}
    acks = AckLog()
    writers: list[Writer] = []
    max_s = settle_s + writes.after_s + 900  # a safety net: the flow stops them after after_s

    def start_writers() -> None:
        for node in (survivor, victim):
            writers.append(Writer(targets[node], acked_dir, writer_name(node), acks, writes, max_s))
            writers[-1].start(writes.first_acks, 120)  # listed first: one that fails to start is stopped

    # Phase 2: both sides write different data while a writer on each side appends acknowledged records
    # (stopped before the snapshot, so the victim's records are among its diverged files); the link
    # comes back; DRBD detects the split-brain.
    try:
        if ha:
            start_writers()
        cut_at = time.monotonic()
        for target in targets.values():
            cut_link(target, [resource.node(target.name).port])
        wait_until(
            lambda: not any(_state(t, resource).connected for t in targets.values()), 120, "the link to drop"
        )
        log.info("replication link cut: %s", {n: _state(t, resource).summary() for n, t in targets.items()})
        if not ha:
            steps.promote(targets[secondary], resource)  # what an operator does when the primary "looks dead"
            steps.mount(targets[secondary], device, mp)
            start_writers()

        def span(writer: Writer, seconds: float) -> float:
            """HA: ``seconds`` past the cut (the writers began before it); else ``seconds`` of writing."""
            return _span(acks, writer.name, cut_at, seconds) if ha else seconds

        if ha:  # each side writes past OCFS2's verdict on its peer before the files are written
            for writer in writers:
                writer.keep_writing(span(writer, settle_s), timeout_s=settle_s + 300)
        write_side(targets[primary], mp, primary, delete=None)
        write_side(targets[secondary], mp, secondary, delete="split/doomed.txt")
        for writer in writers:  # each side's acknowledgements span after_s (more)
            writer.keep_writing(span(writer, settle_s + writes.after_s), timeout_s=writes.after_s + 300)
    finally:
        acked = {writer.target.name: writer.stop() for writer in writers}
    ended_at = time.monotonic()
    log.info("acknowledged: %s", acked)
    sides = {node: files_on(node) for node in targets}
    changes = {node: changes_between(baseline, manifest) for node, manifest in sides.items()}
    for target in targets.values():
        heal_link(target)
    wait_until(
        lambda: any(_state(t, resource).connection == "StandAlone" for t in targets.values()),
        sb.detect_timeout_s,
        "DRBD to detect the split-brain",
    )
    detection = {node: _state(target, resource).summary() for node, target in targets.items()}
    during = {node: _kernel_lines(target)[kernel_before[node] :] for node, target in targets.items()}
    kernel_log = [line for lines in during.values() for line in lines if "split-brain" in line.lower()]
    ocfs2_log = [
        f"{node}: {line}" for node, lines in during.items() for line in lines if OCFS2_KERNEL.search(line)
    ]
    log.info("split-brain detected: %s", detection)

    # Phase 3: save what the victim would lose, then discard its side and resync (every state-changing
    # command is recorded: this is what an operator runs to resolve a split-brain). In HA mode the victim
    # leaves the OCFS2 cluster first and joins it again once its disk holds the survivor's data.
    with current_executor().recording() as resolution:
        rescue = f"{sb.rescue_dir}/{stamp}"
        diverged = changes[victim].diverged
        run(["mkdir", "-p", rescue], targets[victim])
        if diverged:
            run(
                ["rsync", "-a", "--files-from=-", f"{mp}/", f"{rescue}/"],
                targets[victim],
                stdin="\n".join(diverged) + "\n",
            )
        rescued = files_on(victim, rescue)
        if any(rescued.get(p) != sides[victim][p] for p in diverged):
            raise CheckFailed(
                f"{victim}: saving the victim's files into {rescue} failed; nothing was discarded"
            )
        steps.umount(targets[victim], mp)
        steps.demote(targets[victim], resource)
        run(cmd.disconnect_argv(resource.name), targets[victim], ok_codes=(0, 10, 11))
        run(cmd.connect_argv(resource.name, discard_my_data=True), targets[victim])
        if _state(targets[survivor], resource).connection == "StandAlone":
            run(cmd.connect_argv(resource.name), targets[survivor])
        steps.wait_connected(targets[survivor], resource, drbd.connect_timeout_s)
        resync_s = steps.wait_synced(targets[survivor], resource, drbd.sync_timeout_s).seconds
        if ha:
            steps.promote(targets[victim], resource)
            ocfs2.mount_ocfs2(targets[victim], resource.node(victim).device, mp)

    # Phase 4: do the nodes agree? The survivor's files and both writers' records, then the victim's
    # copy (after a role switch on a single-primary volume); the original primary serves the volume again
    # at the end. The rescue copy is read after the resolution: what was saved aside survived it.
    names = [writer_name(survivor), writer_name(victim)]
    on_survivor = files_on(survivor)
    checks = check_writers(targets[survivor], acked_dir, acks, names, writes.payload_bytes)
    if not ha:
        switch_primary(targets, resource, mp, old=survivor, new=victim)
    on_victim = files_on(victim)
    checks += check_writers(targets[victim], acked_dir, acks, names, writes.payload_bytes)
    if not ha and victim != primary:
        switch_primary(targets, resource, mp, old=victim, new=primary)
    [rescue_check] = check_writers(
        targets[victim], f"{rescue}/{ACKED_DIR}", acks, [writer_name(victim)], writes.payload_bytes
    )
    discarded, saved, survivor_lost = acked_fate(checks, rescue_check, survivor, victim)
    on_the_volume = acked_writes(acks, [c for c in checks if c.node == survivor], cut_at, ended_at)
    stalls = {
        node: outage.gap_s
        for node in (survivor, victim)
        if (outage := write_outage((a.at for a in acks.acks(writer_name(node))), cut_at, ended_at))
    }
    png = ack_timeline_png(
        on_the_volume,
        f"Split-brain{' (HA)' if ha else ''}: both sides write; {victim}'s {discarded} acknowledged records "
        f"discarded, {saved} saved aside",
        "replication link cut",
    )
    picture = save_picture(png, writes.reports_dir, f"split-brain-{resource.name}-{stamp}")

    report = SplitBrainReport(
        mode="ha" if ha else "fault-tolerant",
        survivor=survivor,
        victim=victim,
        detection=detection,
        kernel_log=kernel_log,
        ocfs2_log=ocfs2_log,
        stalls=stalls,
        changes=changes,
        rescued=rescued,
        rescue_dir=rescue,
        resync_s=round(resync_s, 1),
        nodes_agree=on_survivor == on_victim == sides[survivor],
        files_after=len(on_survivor),
        acked=acked,
        checks=checks,
        rescue_check=rescue_check,
        discarded_acked=discarded,
        rescued_acked=saved,
        survivor_acked_lost=survivor_lost,
        picture=str(picture),
        resolution_commands=[f"{c.target}: {c.command}" for c in resolution],
    )
    publish(report, settings.cluster_name)
    return report


def _span(acks: AckLog, writer: str, cut_at: float, after_cut_s: float) -> float:
    """How long ``writer``'s acknowledgements must span to reach ``after_cut_s`` past the cut (a writer
    started before the cut has written for a while already)."""
    first = acks.acks(writer)
    return max(after_cut_s + cut_at - first[0].at, 0.0) if first else after_cut_s


def changes_table(report: SplitBrainReport) -> list[dict[str, object]]:
    """One row per node: what it changed during the split, and what was saved before the discard."""
    return [
        {
            "node": node,
            "role": "victim" if node == report.victim else "survivor",
            "added": ", ".join(change.added) or "-",
            "modified": ", ".join(change.modified) or "-",
            "deleted": ", ".join(change.deleted) or "-",
            "saved before discard": len(report.rescued) if node == report.victim else 0,
            "acknowledged writes": report.acked.get(node, 0),
            "acknowledged, gone from the volume": (
                report.discarded_acked if node == report.victim else report.survivor_acked_lost
            ),
            "acknowledged, saved aside": report.rescued_acked if node == report.victim else 0,
        }
        for node, change in report.changes.items()
    ]


def verdict_events(report: SplitBrainReport) -> list[str]:
    """Resolved when both nodes agree; data lost as well when they do not, or when an acknowledged write
    is gone for good (the survivor's own, or a discarded one missing from the rescue copy)."""
    return [
        *([SPLIT_BRAIN_RESOLVED] if report.nodes_agree else []),
        *([DATA_LOST] if report.data_lost else []),
    ]


def publish(report: SplitBrainReport, cluster: str) -> None:
    """The report as markdown and table artifacts, and its events (``verdict_events``)."""
    verdict = "both nodes hold identical files" if report.nodes_agree else "NODES DISAGREE after the resync"
    if report.acked_gone:
        verdict += f"; {report.acked_gone} ACKNOWLEDGED WRITES GONE"
    create_markdown_artifact(
        key="split-brain",
        markdown="\n\n".join(
            (
                "# Split-brain drill",
                f"**{verdict}**",
                *report.acked_sentences(),
                *([f"Picture: `{report.picture}`"] if report.picture else []),
                f"```\n{report.render()}\n```",
            )
        ),
        description=f"victim {report.victim}: {len(report.rescued)} files saved, {report.discarded_acked} "
        f"acknowledged writes discarded and {report.rescued_acked} saved; {verdict}",
    )
    create_table_artifact(
        key="split-brain-changes",
        table=changes_table(report),
        description="What each side changed while split, and what was saved before the discard",
    )
    payload = {
        "mode": report.mode,
        "stalls": report.stalls,
        "survivor": report.survivor,
        "victim": report.victim,
        "rescued_files": len(report.rescued),
        "rescue_dir": report.rescue_dir,
        "resync_s": report.resync_s,
        "nodes_agree": report.nodes_agree,
        "acked": report.acked,
        "discarded_acked": report.discarded_acked,
        "rescued_acked": report.rescued_acked,
        "survivor_acked_lost": report.survivor_acked_lost,
        "picture": report.picture,
    }
    for event in verdict_events(report):
        extra = {"drill": "split-brain"} if event == DATA_LOST else {}
        emit(event, resource=cluster_resource(cluster), payload={**payload, **extra})


def _print_drill(settings: Settings) -> int:
    report = split_brain_drill(settings)
    print(report.render())
    return 1 if report.data_lost else 0


if __name__ == "__main__":
    raise SystemExit(run_cli(_print_drill))
