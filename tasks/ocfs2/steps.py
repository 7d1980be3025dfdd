"""Prefect tasks for the o2cb cluster stack and OCFS2, and the file copies of the HA upgrade."""

from __future__ import annotations

from tasks.cli import CheckFailed
from tasks.drbd.steps import run
from tasks.executor import SshTarget
from tasks.ocfs2.model import O2cbCluster, render_cluster_conf, render_o2cb_defaults
from tasks.step import step

CLUSTER_CONF = "/etc/ocfs2/cluster.conf"
O2CB_DEFAULTS = "/etc/default/o2cb"


def mkfs_ocfs2_argv(device: str, cluster: O2cbCluster, label: str, overwrite: bool) -> list[str]:
    """OCFS2 with one slot per node. ``overwrite`` (-F) only when replacing a filesystem on purpose."""
    return [
        "mkfs.ocfs2", "-q", *(("-F",) if overwrite else ()), "-N", str(len(cluster.nodes)), "-L", label,
        "--cluster-stack=o2cb", f"--cluster-name={cluster.name}", device,
    ]  # fmt: skip


def mount_ocfs2_argv(device: str, mountpoint: str) -> list[str]:
    return ["mount", "-t", "ocfs2", device, mountpoint]


def o2cb_restart_argv() -> list[str]:
    return ["systemctl", "restart", "o2cb"]


def o2cb_status_argv(cluster: str) -> list[str]:
    return ["o2cb", "cluster-status", cluster]


def sync_tree_argv(source: str, dest: str, delete: bool) -> list[str]:
    """Copy a tree with owners, modes, times, hard links, ACLs and xattrs."""
    return [
        "rsync",
        "-aHAX",
        "--exclude=/lost+found",
        *(("--delete",) if delete else ()),
        f"{source}/",
        f"{dest}/",
    ]


@step(name="write-o2cb-config", timeout_seconds=120, retry_transport=True)
def write_o2cb_config(target: SshTarget, cluster: O2cbCluster) -> None:
    for path, text in (
        (CLUSTER_CONF, render_cluster_conf(cluster)),
        (O2CB_DEFAULTS, render_o2cb_defaults(cluster)),
    ):
        run(target, ["mkdir", "-p", path.rsplit("/", 1)[0]])
        run(target, ["dd", f"of={path}", "status=none"], stdin=text)


@step(name="start-o2cb", timeout_seconds=180, retry_transport=True)
def start_o2cb(target: SshTarget, cluster: O2cbCluster) -> None:
    """(Re)start the o2cb stack with the written config and check the cluster is online."""
    run(target, o2cb_restart_argv(), timeout=120)
    status = run(target, o2cb_status_argv(cluster.name), read_only=True)
    if "online" not in status.stdout.lower():
        raise CheckFailed(
            f"{target.name}: o2cb cluster {cluster.name} is not online: {status.stdout.strip()}"
        )


@step(name="mkfs-ocfs2", timeout_seconds=600, retry_transport=True)
def mkfs_ocfs2(target: SshTarget, device: str, cluster: O2cbCluster, label: str, overwrite: bool) -> None:
    run(target, mkfs_ocfs2_argv(device, cluster, label, overwrite), timeout=540)


@step(name="mount-ocfs2", timeout_seconds=300, retry_transport=True)
def mount_ocfs2(target: SshTarget, device: str, mountpoint: str) -> None:
    run(target, ["mkdir", "-p", mountpoint])
    run(target, mount_ocfs2_argv(device, mountpoint), timeout=240)


@step(name="copy-tree", timeout_seconds=1800, retry_transport=True)
def copy_tree(target: SshTarget, source: str, dest: str, delete: bool = False) -> None:
    run(target, ["mkdir", "-p", dest])
    run(target, sync_tree_argv(source, dest, delete), timeout=1740)
