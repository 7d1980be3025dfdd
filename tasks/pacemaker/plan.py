"""Probe → plan for the Pacemaker cluster that owns the volume (``cluster.manager = "pacemaker"``).

Setup builds the DRBD volume first (``tasks.drbd.plan``), then :func:`plan_cluster` turns what every node
holds (:class:`ClusterProbe`) into the steps that make it the cluster the settings describe:

1. the tools, corosync.conf, the authkey and /etc/default/sbd on every node;
2. the SBD header on the shared disk (only while the cluster is stopped on every node: its timeouts
   are read when sbd starts);
3. the hand-over: the volume built by hand is unmounted and taken down, so that Pacemaker starts it;
4. the units enabled and started, the membership awaited;
5. the CIB loaded (``crm configure load update``) when the settings changed it;
6. the volume awaited, promoted and mounted by Pacemaker.

:func:`cluster_problems` lists every reason not to start, one line each, before anything changes. A
second run on a cluster as specified plans nothing.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, Field

from tasks.drbd.model import OWN_FILE_HEADER
from tasks.drbd.plan import NodeProbe
from tasks.pacemaker import commands as cmd
from tasks.pacemaker.model import Cib, Corosync, Sbd, render_cib, render_corosync_conf, render_sbd_default
from tasks.pacemaker.probes import ClusterStatus, SbdHeader
from tasks.plan import PlannedStep

# sbd starts with corosync (it is RequiredBy=corosync.service): enabled and checked, never started alone.
CLUSTER_UNITS = ("corosync", "pacemaker")
SBD_UNIT = "sbd"


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class ClusterProbe(BaseModel):
    """One node's cluster facts, read without changing anything."""

    node: str
    tools_found: list[str] = Field(default_factory=list, description="Cluster tools that are installed.")
    corosync_conf: str | None = Field(None, description="/etc/corosync/corosync.conf (None: no file).")
    authkey_sha256: str | None = Field(None, description="sha256 of /etc/corosync/authkey (None: no file).")
    sbd_default: str | None = Field(None, description="/etc/default/sbd (None: no file).")
    active: dict[str, str] = Field(default_factory=dict, description="systemctl is-active per unit.")
    enabled: dict[str, str] = Field(default_factory=dict, description="systemctl is-enabled per unit.")
    sbd_device_present: bool = Field(True, description="The SBD disk exists (when SBD fences).")
    sbd_device_type: str | None = Field(None, description="What blkid finds on the SBD disk (a filesystem…).")
    sbd_device_blank: bool | None = Field(
        None, description="The SBD disk's first 65 KiB are zeros (None: not read, or it has a header)."
    )
    sbd_header: SbdHeader | None = Field(None, description="The SBD header's timeouts (None: no header).")
    cib_sha256: str | None = Field(None, description="sha256 of the crm text setup last loaded, as recorded.")
    status: ClusterStatus | None = Field(None, description="crm_mon's view, when pacemaker runs here.")

    def is_active(self, unit: str) -> bool:
        return self.active.get(unit) == "active"

    @property
    def runs_cluster(self) -> bool:
        return self.is_active("corosync") or self.is_active("pacemaker")

    @property
    def own_corosync_conf(self) -> bool:
        return self.corosync_conf is not None and self.corosync_conf.startswith(OWN_FILE_HEADER)


class WantedCluster(BaseModel):
    """What every node should hold, rendered once from the models."""

    corosync: Corosync
    sbd: Sbd | None
    cib: Cib
    corosync_conf: str
    authkey_sha256: str
    sbd_default: str | None
    cib_sha256: str

    @classmethod
    def of(cls, corosync: Corosync, sbd: Sbd | None, cib: Cib, authkey: str) -> WantedCluster:
        return cls(
            corosync=corosync,
            sbd=sbd,
            cib=cib,
            corosync_conf=render_corosync_conf(corosync),
            authkey_sha256=text_sha256(authkey),
            sbd_default=render_sbd_default(sbd) if sbd else None,
            cib_sha256=text_sha256(render_cib(cib)),
        )

    @property
    def units(self) -> tuple[str, ...]:
        return (*CLUSTER_UNITS, SBD_UNIT) if self.sbd else CLUSTER_UNITS

    @property
    def tools(self) -> tuple[str, ...]:
        return (*cmd.CLUSTER_TOOLS, *cmd.SBD_TOOLS) if self.sbd else cmd.CLUSTER_TOOLS

    @property
    def packages(self) -> tuple[str, ...]:
        return (*cmd.CLUSTER_PACKAGES, *cmd.SBD_PACKAGES) if self.sbd else cmd.CLUSTER_PACKAGES

    def header_matches(self, header: SbdHeader | None) -> bool:
        return self.sbd is None or (
            header is not None
            and (header.watchdog_s, header.msgwait_s) == (self.sbd.watchdog_timeout_s, self.sbd.msgwait_s)
        )


ClusterStepKind = Literal[
    "install_cluster_tools",
    "keep_file",
    "write_corosync_conf",
    "write_authkey",
    "write_sbd_default",
    "create_sbd_header",
    "hand_over_umount",
    "hand_over_down",
    "enable_cluster",
    "reload_corosync",
    "start_cluster",
    "wait_members",
    "load_cib",
    "wait_serving",
]


class ClusterStep(PlannedStep):
    kind: ClusterStepKind
    path: str = Field("", description="keep_file: the file copied aside.")
    packages: tuple[str, ...] = Field((), description="install_cluster_tools: the Debian packages.")


def cluster_problems(
    probes: dict[str, ClusterProbe], wanted: WantedCluster, install_packages: bool
) -> list[str]:
    """Every reason not to build or change the cluster, one line each; empty when it may go ahead."""
    problems = []
    running = [node for node, p in probes.items() if p.runs_cluster]
    for node, probe in probes.items():
        missing = [tool for tool in wanted.tools if tool not in probe.tools_found]
        if missing and not install_packages:
            problems.append(
                f"{node}: {', '.join(missing)} not installed (packages {' '.join(wanted.packages)}; or set "
                "drbd.install_packages = true to let setup install them)"
            )
        if probe.runs_cluster and not probe.own_corosync_conf:
            problems.append(
                f"{node}: corosync runs with a corosync.conf this project did not write: another cluster "
                "lives here, and setup does not join or change it"
            )
        if probe.runs_cluster and probe.authkey_sha256 != wanted.authkey_sha256:
            problems.append(
                f"{node}: corosync runs with another authkey than the Secret block's: a new key needs the "
                "cluster stopped on every node (systemctl stop pacemaker corosync), then run setup again"
            )
        if wanted.sbd is not None:
            device = wanted.sbd.device
            if not probe.sbd_device_present:
                problems.append(f"{node}: the SBD disk {device} does not exist (cluster.fencing.sbd.device)")
            elif probe.sbd_header is None and (probe.sbd_device_type or probe.sbd_device_blank is False):
                holds = probe.sbd_device_type or "data (its first 65 KiB are not zeros)"
                problems.append(
                    f"{node}: the SBD disk {device} holds {holds}, not an SBD header: setup writes SBD only "
                    "onto a disk without a signature (wipefs it if it is unused)"
                )
    if wanted.sbd is not None and running:
        first = next(iter(probes.values()))
        if not wanted.header_matches(first.sbd_header):
            now = (
                f"watchdog {first.sbd_header.watchdog_s} s, msgwait {first.sbd_header.msgwait_s} s"
                if first.sbd_header
                else "no header"
            )
            problems.append(
                f"the SBD disk has {now}, the settings want watchdog {wanted.sbd.watchdog_timeout_s} s, "
                f"msgwait {wanted.sbd.msgwait_s} s: the header is rewritten only while the cluster is "
                f"stopped on every node (it runs on {', '.join(running)}: "
                "systemctl stop pacemaker corosync there)"
            )
    return problems


def serving_node(status: ClusterStatus | None, cib: Cib) -> str | None:
    """The node where Pacemaker has the volume promoted and the filesystem started, if it has."""
    if status is None:
        return None
    mounted = status.started_on(cib.fs_id)
    return mounted if mounted and status.promoted_on(cib.clone_id) == mounted else None


def plan_cluster(
    probes: dict[str, ClusterProbe],
    drbd: dict[str, NodeProbe],
    wanted: WantedCluster,
    install_packages: bool,
) -> list[ClusterStep]:
    """The steps from ``probes`` to the cluster in ``wanted``; empty when it runs as specified."""
    steps: list[ClusterStep] = []
    nodes = list(probes)
    first = nodes[0]
    running = [node for node in nodes if probes[node].runs_cluster]
    pacemaker_running = [node for node in nodes if probes[node].is_active("pacemaker")]

    for node, probe in probes.items():
        missing = [tool for tool in wanted.tools if tool not in probe.tools_found]
        if missing and install_packages:
            steps.append(
                ClusterStep(
                    kind="install_cluster_tools",
                    node=node,
                    packages=wanted.packages,
                    reason=f"{', '.join(missing)} not installed",
                )
            )
    for node, probe in probes.items():
        # the authkey has no header: it is this project's when the corosync.conf beside it is
        ours = probe.own_corosync_conf or probe.corosync_conf is None
        # (kind, path, name in reasons, what it is now, what it should be, why it differs, ours)
        files = [
            ("write_corosync_conf", cmd.COROSYNC_CONF, "corosync.conf", probe.corosync_conf,
             wanted.corosync_conf, "differs from the settings", probe.own_corosync_conf),
            ("write_authkey", cmd.COROSYNC_AUTHKEY, "the corosync authkey", probe.authkey_sha256,
             wanted.authkey_sha256, "is not the Secret block's key", ours),
        ]  # fmt: skip
        if wanted.sbd_default is not None:
            own = probe.sbd_default is not None and probe.sbd_default.startswith(OWN_FILE_HEADER)
            files.append(
                ("write_sbd_default", cmd.SBD_DEFAULT, cmd.SBD_DEFAULT, probe.sbd_default, wanted.sbd_default,
                 "differs from the settings", own)
            )  # fmt: skip
        for kind, path, name, current, target, differs, own in files:
            if current == target:
                continue
            if current is not None and not own:  # nothing this project did not write is lost
                steps.append(
                    ClusterStep(
                        kind="keep_file",
                        node=node,
                        path=path,
                        reason=f"{name} was not written by this project (the package's sample?)",
                    )
                )
            why = "absent" if current is None else differs
            steps.append(ClusterStep(kind=kind, node=node, reason=f"{name} {why}"))
    if wanted.sbd is not None and not running and not wanted.header_matches(probes[first].sbd_header):
        header = probes[first].sbd_header
        why = (
            "the SBD disk has no header"
            if header is None
            else f"the SBD header has watchdog {header.watchdog_s} s, msgwait {header.msgwait_s} s"
        )
        steps.append(
            ClusterStep(kind="create_sbd_header", node=first, reason=f"{why}; the cluster is stopped")
        )

    if not pacemaker_running:  # the volume setup built by hand is handed to Pacemaker, stopped
        for node, volume in drbd.items():
            if volume.mount is not None:
                steps.append(
                    ClusterStep(
                        kind="hand_over_umount",
                        node=node,
                        reason=f"{volume.mount.target} is mounted by hand; Pacemaker mounts it from now on",
                    )
                )
        for node, volume in drbd.items():
            if volume.state.connection != "Unconfigured":
                steps.append(
                    ClusterStep(
                        kind="hand_over_down",
                        node=node,
                        reason=f"DRBD runs by hand ({volume.state.summary()}); Pacemaker starts it",
                    )
                )

    for node, probe in probes.items():
        disabled = [unit for unit in wanted.units if probe.enabled.get(unit) != "enabled"]
        if disabled:
            steps.append(
                ClusterStep(
                    kind="enable_cluster",
                    node=node,
                    reason=f"{', '.join(disabled)} not enabled: the node would not rejoin after a reboot",
                )
            )
    outdated = [
        n for n, p in probes.items() if p.is_active("corosync") and p.corosync_conf != wanted.corosync_conf
    ]
    if outdated:  # corosync-cfgtool -R makes every member reread its file: once, after every write
        steps.append(
            ClusterStep(
                kind="reload_corosync",
                node=outdated[0],
                reason=f"corosync runs the old config on {', '.join(outdated)}",
            )
        )
    stopped = [node for node in nodes if not all(probes[node].is_active(u) for u in CLUSTER_UNITS)]
    for node in stopped:
        steps.append(ClusterStep(kind="start_cluster", node=node, reason="corosync or pacemaker not running"))
    if stopped:
        steps.append(
            ClusterStep(kind="wait_members", reason=f"{', '.join(stopped)} started: every node online")
        )

    statuses = [probes[node].status for node in pacemaker_running]
    configured = any(s is not None and s.instances(wanted.cib.fs_id) for s in statuses)
    recorded = {probes[node].cib_sha256 for node in nodes}
    if not configured or recorded != {wanted.cib_sha256}:
        why = "the CIB has no volume resources" if not configured else "the settings changed the CIB"
        steps.append(ClusterStep(kind="load_cib", node=first, reason=why))
    serving = next((found for s in statuses if (found := serving_node(s, wanted.cib))), None)
    if steps or serving is None:
        steps.append(
            ClusterStep(kind="wait_serving", reason="Pacemaker promotes and mounts the volume on one node")
        )
    return steps
