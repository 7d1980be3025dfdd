"""The split-brain drill: ``python -m flows.split_brain``.

On the healthy single-primary volume: cut the replication link (an nftables rule inside both guests
drops the DRBD port), promote the secondary as an operator would, write different data on both
sides, restore the link. DRBD itself detects the split-brain (StandAlone, "Split-Brain detected" in
the kernel log) — nothing is guessed. The report says what each side changed; the victim's diverged
files are saved aside on the victim *before* ``connect --discard-my-data`` throws them away; after
the resync both nodes are checked to hold the same files.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from flows.setup import setup
from tasks.cli import CheckFailed, run_cli
from tasks.cluster import drbd_resource, node_targets, secret_block_name, shared_secret
from tasks.context import current_executor, refuse_dry_run, run_context
from tasks.drbd import commands as cmd
from tasks.drbd import steps
from tasks.drbd.model import DrbdResource
from tasks.drbd.probes import DrbdState
from tasks.drbd.roles import switch_primary
from tasks.events import DATA_LOST, SPLIT_BRAIN_RESOLVED, cluster_resource, emit
from tasks.executor import SshTarget
from tasks.lab.host import wait_until
from tasks.manifest import contents, tree_manifest
from tasks.settings import Settings, load_settings
from tasks.step import step

CUT_TABLE = "hsf_split_brain"


def cut_ruleset(port: int) -> str:
    """nftables rules that drop DRBD replication traffic (both directions) on one node."""
    rule = f"tcp dport {port} drop; tcp sport {port} drop;"
    return (
        f"table inet {CUT_TABLE} {{\n"
        f"  chain input {{ type filter hook input priority 0; {rule} }}\n"
        f"  chain output {{ type filter hook output priority 0; {rule} }}\n"
        "}\n"
    )


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


class SplitBrainReport(BaseModel):
    survivor: str
    victim: str
    detection: dict[str, str] = Field(description="Each node's DRBD state when the split-brain was detected.")
    kernel_log: list[str] = Field(description="DRBD's own split-brain lines from the kernel log.")
    changes: dict[str, SideChanges]
    rescued: dict[str, str] = Field(description="Victim files saved before the discard: path → sha256.")
    rescue_dir: str
    resync_s: float
    nodes_agree: bool
    files_after: int

    def render(self) -> str:
        lines = [f"Split-brain drill: survivor {self.survivor}, victim {self.victim}"]
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
        return "\n".join(lines)


@step(name="cut-replication-link", timeout_seconds=60)
def cut_link(target: SshTarget, port: int) -> None:
    current_executor().run(["nft", "-f", "-"], target, stdin=cut_ruleset(port))


@step(name="restore-replication-link", timeout_seconds=60)
def restore_link(target: SshTarget) -> None:
    current_executor().run(["nft", "delete", "table", "inet", CUT_TABLE], target, ok_codes=(0, 1))


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


def _drill(settings: Settings) -> SplitBrainReport:
    log = get_run_logger()
    setup(settings)  # the healthy single-primary volume (refuses on an HA volume)
    targets = node_targets(settings)
    resource = drbd_resource(settings, shared_secret(secret_block_name(settings)))
    drbd, sb = settings.drbd, settings.split_brain
    primary, secondary = settings.primary, resource.peer_of(settings.primary).name
    victim = sb.victim or secondary
    survivor = resource.peer_of(victim).name
    device, mp = resource.node(primary).device, drbd.mountpoint
    run = current_executor().run

    def files_on(node: str, root: str = mp) -> dict[str, str]:
        return contents(tree_manifest(targets[node], root))

    # Phase 1: a baseline, then the link cut and the secondary promoted as an operator would.
    run(["mkdir", "-p", f"{mp}/split"], targets[primary])
    run(["dd", f"of={mp}/split/shared.txt", "status=none"], targets[primary], stdin="before the split\n")
    run(["dd", f"of={mp}/split/doomed.txt", "status=none"], targets[primary], stdin="deleted on one side\n")
    run(["sync"], targets[primary])
    baseline = files_on(primary)
    for target in targets.values():
        cut_link(target, resource.node(target.name).port)
    wait_until(
        lambda: not any(_state(t, resource).connected for t in targets.values()), 120, "the link to drop"
    )
    log.info("replication link cut: %s", {n: _state(t, resource).summary() for n, t in targets.items()})
    steps.promote(targets[secondary], resource)  # what an operator does when the primary "looks dead"
    steps.mount(targets[secondary], device, mp)

    # Phase 2: both sides write different data; the link comes back; DRBD detects the split-brain.
    write_side(targets[primary], mp, primary, delete=None)
    write_side(targets[secondary], mp, secondary, delete="split/doomed.txt")
    sides = {node: files_on(node) for node in targets}
    changes = {node: changes_between(baseline, manifest) for node, manifest in sides.items()}
    for target in targets.values():
        restore_link(target)
    wait_until(
        lambda: any(_state(t, resource).connection == "StandAlone" for t in targets.values()),
        sb.detect_timeout_s,
        "DRBD to detect the split-brain",
    )
    detection = {node: _state(target, resource).summary() for node, target in targets.items()}
    kernel_log = [
        line
        for target in targets.values()
        for line in run(["dmesg"], target, read_only=True).stdout.splitlines()
        if "split-brain" in line.lower()
    ]
    log.info("split-brain detected: %s", detection)

    # Phase 3: save what the victim would lose, then discard its side and resync.
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
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
        raise CheckFailed(f"{victim}: saving the victim's files into {rescue} failed; nothing was discarded")
    steps.umount(targets[victim], mp)
    steps.demote(targets[victim], resource)
    run(cmd.disconnect_argv(resource.name), targets[victim], ok_codes=(0, 10, 11))
    run(cmd.connect_argv(resource.name, discard_my_data=True), targets[victim])
    if _state(targets[survivor], resource).connection == "StandAlone":
        run(cmd.connect_argv(resource.name), targets[survivor])
    steps.wait_connected(targets[survivor], resource, drbd.connect_timeout_s)
    resync_s = steps.wait_synced(targets[survivor], resource, drbd.sync_timeout_s)

    # Phase 4: do the nodes agree? The survivor's files, then the victim's copy after a role switch;
    # the original primary serves the volume again at the end.
    on_survivor = files_on(survivor)
    switch_primary(targets, resource, mp, old=survivor, new=victim)
    on_victim = files_on(victim)
    if victim != primary:
        switch_primary(targets, resource, mp, old=victim, new=primary)

    report = SplitBrainReport(
        survivor=survivor,
        victim=victim,
        detection=detection,
        kernel_log=kernel_log,
        changes=changes,
        rescued=rescued,
        rescue_dir=rescue,
        resync_s=round(resync_s, 1),
        nodes_agree=on_survivor == on_victim == sides[survivor],
        files_after=len(on_survivor),
    )
    publish(report, settings.cluster_name)
    return report


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
        }
        for node, change in report.changes.items()
    ]


def publish(report: SplitBrainReport, cluster: str) -> None:
    """The report as markdown and table artifacts; resolved only if both nodes agree afterwards."""
    verdict = "both nodes hold identical files" if report.nodes_agree else "NODES DISAGREE after the resync"
    create_markdown_artifact(
        key="split-brain",
        markdown=f"# Split-brain drill\n\n**{verdict}**\n\n```\n{report.render()}\n```",
        description=f"victim {report.victim}: {len(report.rescued)} files saved; {verdict}",
    )
    create_table_artifact(
        key="split-brain-changes",
        table=changes_table(report),
        description="What each side changed while split, and what was saved before the discard",
    )
    payload = {
        "survivor": report.survivor,
        "victim": report.victim,
        "rescued_files": len(report.rescued),
        "rescue_dir": report.rescue_dir,
        "resync_s": report.resync_s,
        "nodes_agree": report.nodes_agree,
    }
    if report.nodes_agree:
        emit(SPLIT_BRAIN_RESOLVED, resource=cluster_resource(cluster), payload=payload)
    else:
        emit(DATA_LOST, resource=cluster_resource(cluster), payload={**payload, "drill": "split-brain"})


def _print_drill(settings: Settings) -> int:
    report = split_brain_drill(settings)
    print(report.render())
    return 0 if report.nodes_agree else 1


if __name__ == "__main__":
    raise SystemExit(run_cli(_print_drill))
