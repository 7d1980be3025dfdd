"""Node loss in high-availability mode: ``python -m flows.ha_node_loss``.

With OCFS2 mounted on both dual-primary nodes, one node is destroyed while the other keeps writing
synchronous 4 KiB writes. The report gives the survivor's write stall (o2cb must declare the peer
dead and replay its journal slot before the cluster lock allows writes again), then the node is
brought back — o2cb, DRBD attach + resync, promote, mount — and every file is verified from both.
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from tasks.cli import run_cli
from tasks.cluster import drbd_resource, node_targets, o2cb_cluster, secret_block_name, shared_secret
from tasks.context import current_executor, refuse_dry_run, run_context
from tasks.drbd import steps
from tasks.drbd.plan import Refused
from tasks.drbd.roles import rejoin
from tasks.events import DATA_LOST, HA_NODE_LOSS_COMPLETED, cluster_resource, emit
from tasks.executor import SshTarget
from tasks.manifest import contents, tree_manifest
from tasks.nodes import confirm_down, fault_outcome, fire_fault
from tasks.ocfs2 import steps as ocfs2
from tasks.settings import Settings, load_settings
from tasks.step import step


class NodeLossReport(BaseModel):
    killed: str
    fault: str = Field("destroy", description="How the node was killed (failover.fault).")
    survivor: str
    heartbeat_threshold: int
    idle_timeout_ms: int
    baseline_write_s: float = Field(description="Slowest synchronous 4 KiB write before the kill.")
    stall_s: float = Field(description="Kill → the survivor's next synchronous write completed.")
    writes_after_kill: int
    returned_s: float
    resync_s: float
    files_checked: int
    files_verified_on: dict[str, int]

    @property
    def intact(self) -> bool:
        return all(count == self.files_checked for count in self.files_verified_on.values())

    def render(self) -> str:
        verified = ", ".join(f"{n}: {c}/{self.files_checked}" for n, c in self.files_verified_on.items())
        return "\n".join(
            (
                f"HA node loss: {self.killed} {fault_outcome(self.fault)} while {self.survivor} kept writing",
                f"  o2cb: heartbeat threshold {self.heartbeat_threshold}, idle {self.idle_timeout_ms} ms",
                f"  write latency before the kill   {self.baseline_write_s:.2f} s",
                f"  survivor's write stall          {self.stall_s:.1f} s",
                f"  writes completed after the kill {self.writes_after_kill}",
                f"  {'back on SSH':<31} {self.returned_s:.1f} s",
                f"  resync after rejoin             {self.resync_s:.1f} s",
                f"  files verified (sha256)         {verified}",
            )
        )


@step(name="timed-sync-write")
def timed_sync_write(target: SshTarget, path: str, timeout_s: float) -> float:
    """One synchronous 4 KiB write; returns how long it took (it blocks while the cluster recovers)."""
    started = time.monotonic()
    argv = ["dd", "if=/dev/urandom", f"of={path}", "bs=4k", "count=1", "oflag=sync", "status=none"]
    current_executor().run(argv, target, timeout=timeout_s)
    return time.monotonic() - started


@flow(name="ha-node-loss")
def ha_node_loss(settings: Settings | None = None, writes_after: int = 5) -> NodeLossReport:
    settings = settings or load_settings()
    refuse_dry_run(settings, "the HA node-loss drill", "its proof is a real node loss under load")
    with run_context(settings, changes_state=True):
        return _drill(settings, writes_after)


def _drill(settings: Settings, writes_after: int) -> NodeLossReport:
    log = get_run_logger()
    targets = node_targets(settings)
    resource = drbd_resource(settings, shared_secret(secret_block_name(settings)), dual_primary=True)
    cluster = o2cb_cluster(settings)
    drbd = settings.drbd
    survivor, killed = settings.primary, resource.peer_of(settings.primary).name
    device = resource.node(survivor).device

    # Phase 1: refuse unless both nodes are Primary with OCFS2 mounted.
    probes = steps.probe_nodes(targets, resource, drbd.mountpoint)
    for node, probe in probes.items():
        if not (
            probe.state.healthy
            and probe.state.role == "Primary"
            and probe.mount
            and probe.mount.fstype == "ocfs2"
        ):
            raise Refused(f"{node}: not in HA mode ({probe.state.summary()}); run flows.ha_upgrade first")

    # Phase 2: the survivor writes while its peer is destroyed; how long did its writes stall?
    writes = f"{drbd.mountpoint}/ha-writes"
    current_executor().run(["mkdir", "-p", writes], targets[survivor])
    baseline = max(timed_sync_write(targets[survivor], f"{writes}/before-{i}", 60) for i in range(3))
    killed_at = time.monotonic()
    fire_fault(settings, targets[killed])
    stall = timed_sync_write(targets[survivor], f"{writes}/after-0", 600)
    stall_s = time.monotonic() - killed_at
    confirm_down(settings, targets[killed])  # after the measurement: the check must not delay the write
    log.info(
        "%s wrote again %.1f s after %s was %s (that write took %.1f s)",
        survivor,
        stall_s,
        killed,
        fault_outcome(settings.fault),
        stall,
    )
    for i in range(1, writes_after):
        timed_sync_write(targets[survivor], f"{writes}/after-{i}", 60)
    before_rejoin = contents(tree_manifest(targets[survivor], drbd.mountpoint))

    # Phase 3: the lost node rejoins (DRBD resync, then o2cb, promote, mount); every file on both.
    rejoined = rejoin(settings, targets, resource, killed)
    ocfs2.start_o2cb(targets[killed], cluster)
    steps.promote(targets[killed], resource)
    ocfs2.mount_ocfs2(targets[killed], device, drbd.mountpoint)
    verified = {}
    for node, target in targets.items():
        found = contents(tree_manifest(target, drbd.mountpoint))
        verified[node] = sum(1 for path, digest in before_rejoin.items() if found.get(path) == digest)
    report = NodeLossReport(
        killed=killed,
        fault=settings.fault,
        survivor=survivor,
        heartbeat_threshold=cluster.heartbeat_threshold,
        idle_timeout_ms=cluster.idle_timeout_ms,
        baseline_write_s=round(baseline, 3),
        stall_s=round(stall_s, 1),
        writes_after_kill=writes_after,
        returned_s=round(rejoined.returned_s, 1),
        resync_s=round(rejoined.resync_s, 1),
        files_checked=len(before_rejoin),
        files_verified_on=verified,
    )
    publish(report, settings.cluster_name)
    return report


def publish(report: NodeLossReport, cluster: str) -> None:
    """The report as markdown and table artifacts, then the events automations react to."""
    verdict = "every file intact on every node" if report.intact else "FILES DIFFER after the rejoin"
    create_markdown_artifact(
        key="ha-node-loss",
        markdown=f"# HA node loss\n\n**{verdict}**\n\n```\n{report.render()}\n```",
        description=f"write stall {report.stall_s:.1f} s; {verdict}",
    )
    create_table_artifact(
        key="ha-node-loss-verification",
        table=[
            {"node": node, "files verified": count, "files checked": report.files_checked}
            for node, count in report.files_verified_on.items()
        ],
        description="Files written before the rejoin, verified by sha256 on each node afterwards",
    )
    payload = {
        "killed": report.killed,
        "survivor": report.survivor,
        "stall_s": report.stall_s,
        "resync_s": report.resync_s,
        "files_checked": report.files_checked,
        "files_verified_on": report.files_verified_on,
        "intact": report.intact,
    }
    emit(HA_NODE_LOSS_COMPLETED, resource=cluster_resource(cluster), payload=payload)
    if not report.intact:
        emit(DATA_LOST, resource=cluster_resource(cluster), payload={**payload, "drill": "ha-node-loss"})


def _print_drill(settings: Settings) -> int:
    report = ha_node_loss(settings)
    print(report.render())
    return 0 if report.intact else 1


if __name__ == "__main__":
    raise SystemExit(run_cli(_print_drill))
