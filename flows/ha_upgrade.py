"""Upgrade the fault-tolerant volume to high availability: ``python -m flows.ha_upgrade``.

Single-primary DRBD + ext4 becomes dual-primary DRBD (protocol C) + OCFS2 mounted on both nodes.
The files on the ext4 volume survive: they are copied aside on the primary (verified by sha256),
the volume is reformatted as OCFS2, and they are restored and verified again — from both nodes.
Then the cross-node proof: a file written on one node is read on the other, both ways, with no role
change, unmount or promote in between. Refuses to start unless DRBD is Connected and UpToDate on both.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from tasks.cli import CheckFailed, run_cli
from tasks.cluster import drbd_resource, node_targets, o2cb_cluster, secret_block_name, shared_secret
from tasks.context import current_executor, refuse_dry_run, run_context
from tasks.disks import free_bytes, used_bytes
from tasks.drbd import steps
from tasks.drbd.model import render_resource
from tasks.drbd.plan import NodeProbe, Refused, foreign_config_problems
from tasks.events import DATA_LOST, HA_UPGRADED, cluster_resource, emit
from tasks.executor import SshTarget
from tasks.manifest import contents, tree_manifest
from tasks.ocfs2 import steps as ocfs2
from tasks.settings import Settings, load_settings


class CrossNodeCheck(BaseModel):
    writer: str
    reader: str
    path: str
    sha256_written: str
    sha256_read: str
    commands_between: list[str] = Field(
        description="Every state-changing command run between write and read."
    )

    @property
    def ok(self) -> bool:
        return self.sha256_written == self.sha256_read


class HaUpgradeReport(BaseModel):
    resource: str
    cluster: str
    steps: list[str] = Field(default_factory=list)
    files_preserved: int = 0
    files_verified_on: dict[str, int] = Field(default_factory=dict, description="Node → files matching.")
    cross_node: list[CrossNodeCheck] = Field(default_factory=list)
    seconds: float = 0.0

    def answer(self) -> str:
        if not self.cross_node:
            return "not checked"
        if all(c.ok for c in self.cross_node) and not any(c.commands_between for c in self.cross_node):
            pairs = ", ".join(f"{c.writer}→{c.reader}" for c in self.cross_node)
            return f"No: each node read intact what the other wrote ({pairs}), with no command in between."
        return "Yes: " + "; ".join(f"{c.writer}→{c.reader}: {c.commands_between}" for c in self.cross_node)

    def render(self) -> str:
        lines = [f"HA upgrade of {self.resource} (o2cb cluster {self.cluster})"]
        lines += [f"  - {s}" for s in self.steps] or [
            "  nothing to do: already dual-primary OCFS2 on both nodes"
        ]
        if self.files_verified_on:
            verified = ", ".join(
                f"{n}: {c}/{self.files_preserved}" for n, c in self.files_verified_on.items()
            )
            lines.append(f"files from the ext4 volume preserved and verified: {verified}")
        lines.append(f"Was it necessary to do something on another node to see the data? {self.answer()}")
        lines.append(f"took {self.seconds:.1f} s")
        return "\n".join(lines)


def cross_node_proof(targets: dict[str, SshTarget], mountpoint: str) -> list[CrossNodeCheck]:
    """Write on each node, read on the other, recording every state-changing command in between."""
    run = current_executor().run
    checks = []
    nodes = list(targets)
    for writer, reader in ((nodes[0], nodes[1]), (nodes[1], nodes[0])):
        path = f"{mountpoint}/cross-node/from-{writer}-{secrets.token_hex(4)}.bin"
        run(["mkdir", "-p", f"{mountpoint}/cross-node"], targets[writer])
        run(
            ["dd", "if=/dev/urandom", f"of={path}", "bs=1M", "count=4", "conv=fsync", "status=none"],
            targets[writer],
        )
        written = run(["sha256sum", path], targets[writer], read_only=True).stdout.split()[0]
        with current_executor().recording() as between:
            read = run(["sha256sum", path], targets[reader], read_only=True).stdout.split()[0]
        checks.append(
            CrossNodeCheck(
                writer=writer,
                reader=reader,
                path=path,
                sha256_written=written,
                sha256_read=read,
                commands_between=[c.command for c in between],
            )
        )
    return checks


@flow(name="ha-upgrade")
def ha_upgrade(settings: Settings | None = None) -> HaUpgradeReport:
    settings = settings or load_settings()
    refuse_dry_run(
        settings,
        "the HA upgrade",
        "it proves each phase (staged files, OCFS2 on both nodes) before the next; run it for real",
    )
    with run_context(settings, changes_state=True):
        return _upgrade(settings)


def _stacked_copies(probes: Mapping[str, NodeProbe], device: str) -> str:
    """Upper devices found stacked on the volume, as ``node: /dev/drbdN`` ('' when none)."""
    return ", ".join(f"{node}: {upper}" for node, p in probes.items() for upper in p.stacked_on(device))


STACKED_EXCLUDES_HA = (
    "OCFS2 dual-primary and a stacked copy exclude each other on one volume (the upper device runs on one "
    "node at a time). Nothing was changed."
)


def _upgrade(settings: Settings) -> HaUpgradeReport:
    log = get_run_logger()
    started = time.monotonic()
    if settings.third_node is not None:
        raise Refused(f"drbd.topology is 'stacked': {STACKED_EXCLUDES_HA}")
    targets = node_targets(settings)
    resource = drbd_resource(settings, shared_secret(secret_block_name(settings)), dual_primary=True)
    current_executor().add_secret(resource.shared_secret.get_secret_value())
    cluster = o2cb_cluster(settings)
    drbd, ha = settings.drbd, settings.ha
    device = resource.node(settings.primary).device
    report = HaUpgradeReport(resource=resource.name, cluster=cluster.name)

    def step(text: str) -> None:
        log.info("%s", text)
        report.steps.append(text)

    # Phase 1: probe; nothing to do, or refuse unless healthy with exactly one primary.
    probes = steps.probe_nodes(targets, resource, drbd.mountpoint)
    already = all(
        p.config_current and p.state.role == "Primary" and p.mount is not None and p.mount.fstype == "ocfs2"
        for p in probes.values()
    )
    if already:
        log.info("nothing to do: %s is dual-primary with OCFS2 mounted on every node", resource.name)
        report.cross_node = cross_node_proof(targets, drbd.mountpoint)
        report.seconds = round(time.monotonic() - started, 1)
        publish(report, settings.cluster_name)
        return report
    if stacked := _stacked_copies(probes, device):
        raise Refused(f"{resource.name} carries a stacked third copy ({stacked}): {STACKED_EXCLUDES_HA}")
    rendered = render_resource(resource)
    foreign = [
        line for node, p in probes.items() for line in foreign_config_problems(node, p, resource, rendered)
    ]
    if foreign:  # setup adopts a hand-made resource (keeping its file); the upgrade never replaces one
        raise Refused(
            "nothing was changed; adopt the resource with python -m flows.setup first:\n" + "\n".join(foreign)
        )
    for node, probe in probes.items():
        if not probe.state.healthy:
            raise Refused(
                f"{node}: {resource.name} is not healthy ({probe.state.summary()}); the upgrade needs "
                "cs:Connected with ds:UpToDate/UpToDate on both nodes. Nothing was changed."
            )
    primaries = [n for n, p in probes.items() if p.state.role == "Primary"]
    if len(primaries) != 1:
        raise Refused(f"expected exactly one primary before the upgrade, found {primaries or 'none'}")
    primary = primaries[0]
    source = probes[primary]

    # Phase 2: the volume's files copied aside on the primary, verified, then the volume unmounted.
    staged: dict[str, str] = {}
    staged_fs: str | None = None  # the filesystem whose files are safe in the staging copy
    if source.mount is not None:
        need = used_bytes(targets[primary], drbd.mountpoint)
        have = free_bytes(targets[primary], "/")
        if need * 1.1 > have:
            raise Refused(f"{primary}: {need} bytes to stage but only {have} free on / ; nothing was changed")
        original = contents(tree_manifest(targets[primary], drbd.mountpoint))
        ocfs2.copy_tree(targets[primary], drbd.mountpoint, ha.staging_dir, delete=True)
        staged = contents(tree_manifest(targets[primary], ha.staging_dir))
        if staged != original:
            raise Refused(f"{primary}: the staging copy differs from the volume; nothing was changed")
        staged_fs = source.mount.fstype
        step(
            f"staged {len(staged)} files from {drbd.mountpoint} to {primary}:{ha.staging_dir} (sha256 match)"
        )
        steps.umount(targets[primary], drbd.mountpoint)
        step(f"unmounted {source.mount.fstype} on {primary}")

    # Phase 3: dual-primary DRBD, the o2cb cluster, both nodes Primary.
    for target in targets.values():
        steps.write_config(target, resource)
        steps.adjust(target, resource)
    step(
        "resource reconfigured on both nodes: allow-two-primaries, protocol C, after-sb "
        f"{ha.after_sb_0pri}/{ha.after_sb_1pri}/{ha.after_sb_2pri}"
    )
    for target in targets.values():
        ocfs2.write_o2cb_config(target, cluster)
        ocfs2.start_o2cb(target, cluster)
    step(
        f"o2cb cluster {cluster.name} online on both nodes "
        f"(heartbeat threshold {cluster.heartbeat_threshold}, idle timeout {cluster.idle_timeout_ms} ms)"
    )
    for node, target in targets.items():
        if probes[node].state.role != "Primary":
            steps.promote(target, resource)
    step("both nodes Primary")

    # Phase 4: OCFS2 (only over the filesystem just staged), mounted on both nodes.
    volume_type = steps.filesystem_type(targets[primary], device)
    if volume_type != "ocfs2":
        if volume_type is not None and volume_type != staged_fs:
            raise Refused(
                f"{primary}: {device} holds {volume_type} whose files were not staged; refusing to format it"
            )
        ocfs2.mkfs_ocfs2(
            targets[primary], device, cluster, label=resource.name, overwrite=volume_type is not None
        )
        step(f"mkfs.ocfs2 on {device} (was {volume_type or 'empty'}), {len(cluster.nodes)} node slots")
    for target in targets.values():
        ocfs2.mount_ocfs2(target, device, drbd.mountpoint)
    step(f"OCFS2 mounted at {drbd.mountpoint} on both nodes")

    # Phase 5: the staged files back, verified from every node; then the cross-node proof.
    if staged:
        ocfs2.copy_tree(targets[primary], ha.staging_dir, drbd.mountpoint)
        report.files_preserved = len(staged)
        for node, target in targets.items():
            found = contents(tree_manifest(target, drbd.mountpoint))
            report.files_verified_on[node] = sum(
                1 for path, digest in staged.items() if found.get(path) == digest
            )
        if any(count != len(staged) for count in report.files_verified_on.values()):
            raise CheckFailed(  # not lost: the staging copy on the primary still holds every file
                f"restored files differ from the staging copy (files verified per node: "
                f"{report.files_verified_on} of {len(staged)}); "
                f"the staging copy {primary}:{ha.staging_dir} is kept"
            )
        current_executor().run(["rm", "-rf", ha.staging_dir], targets[primary])
        step(f"restored {len(staged)} files onto OCFS2, verified on every node; staging copy removed")
    report.cross_node = cross_node_proof(targets, drbd.mountpoint)
    report.seconds = round(time.monotonic() - started, 1)
    publish(report, settings.cluster_name)
    return report


def cross_node_table(report: HaUpgradeReport) -> list[dict[str, object]]:
    """One row per cross-node check: who wrote, who read, whether the bytes matched, what ran between."""
    return [
        {
            "writer": c.writer,
            "reader": c.reader,
            "path": c.path,
            "sha256 match": c.ok,
            "commands between": "; ".join(c.commands_between) or "none",
        }
        for c in report.cross_node
    ]


def publish(report: HaUpgradeReport, cluster: str) -> None:
    """The report as markdown and table artifacts (also when nothing had to change), then the events."""
    create_markdown_artifact(
        key=f"ha-upgrade-{report.resource}",
        markdown=(
            "# HA upgrade\n\n**Was it necessary to do something on another node to see the data?** "
            f"{report.answer()}\n\n```\n{report.render()}\n```"
        ),
        description=f"{len(report.steps)} steps, {report.files_preserved} files preserved",
    )
    create_table_artifact(
        key=f"ha-upgrade-{report.resource}-cross-node",
        table=cross_node_table(report),
        description="Written on one node, read on the other (sha256)",
    )
    payload = {
        "resource": report.resource,
        "cluster": report.cluster,
        "changed": bool(report.steps),
        "files_preserved": report.files_preserved,
        "files_verified_on": report.files_verified_on,
        "cross_node_ok": all(c.ok for c in report.cross_node),
    }
    emit(HA_UPGRADED, resource=cluster_resource(cluster), payload=payload)
    if not payload["cross_node_ok"]:
        emit(DATA_LOST, resource=cluster_resource(cluster), payload={**payload, "drill": "ha-upgrade"})


def _print_upgrade(settings: Settings) -> int:
    report = ha_upgrade(settings)
    print(report.render())
    return 0 if all(c.ok for c in report.cross_node) else 1


if __name__ == "__main__":
    raise SystemExit(run_cli(_print_upgrade))
