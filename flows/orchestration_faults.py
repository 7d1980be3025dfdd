"""Orchestration faults, a flow's own process killed and run again: ``python -m flows.orchestration_faults``.

The flows act on the nodes from one process; that process can die at any moment (an OOM kill, the
machine running it rebooted, a worker lost). What matters is the next run: it must resume from what the
nodes say, never from what the dead run meant to do. Each fault starts the flow as its own CLI in a
process of its own (``tasks/processes.py``: the same settings, server and hold of the cluster), kills it
with SIGKILL at its most delicate moment, runs the flow again (here, as a subflow, standing in for the
operator who runs it again) and checks, from every command the re-run ran and from the nodes:

- no metadata created again (``drbdadm create-md``), no promotion forced again (``primary --force``);
- the filesystem made at most once, the device mounted once, on one node.

- ``setup-killed`` (lab only): a brand-new throwaway resource on loop devices of both nodes
  (``hsf-fault``, a slow resync rate so the sync lasts); ``python -m flows.setup`` is killed while DRBD
  makes the initial sync, after its one forced promotion. The re-run must wait for the sync, make the
  filesystem and mount it. The resource, its files and its secret are removed at the end.
- ``drill-killed`` (lab only): ``python -m flows.failover`` is killed the moment it has killed the
  primary, before it promoted anything: no Primary, nothing mounted, the drill's writer gone with the
  primary. The re-run (the drill, which starts with setup) must bring the killed node back, promote
  without force, mount once, and then run its own drill with nothing lost.

Exits 1 if a byte was lost, 4 if the re-run repeated what must happen once.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from flows.failover import failover_drill
from flows.setup import setup
from tasks.cli import EXIT_COMMAND_FAILED, EXIT_DATA_LOST, EXIT_OK, run_cli
from tasks.cluster import delete_secret, drbd_resource, node_targets, secret_block_name, shared_secret
from tasks.context import current_executor, refuse_dry_run, run_context, take_back_lease
from tasks.disks import attach_loop_file, detach_loop_file
from tasks.drbd import steps
from tasks.drbd.plan import Refused
from tasks.events import ORCHESTRATION_FAULT_COMPLETED, cluster_resource, emit
from tasks.executor import RecordedCommand
from tasks.faults import LAB_ONLY_ORCHESTRATION_FAULTS, ORCHESTRATION_FAULTS, OrchestrationFault
from tasks.lab import steps as lab_steps
from tasks.processes import kill_when, start_flow_process
from tasks.settings import Settings, load_settings

# The setup-killed fault's throwaway resource: its own name, minor, port, loop file and mountpoint, well
# away from a user's r0..r9 and 7789..; a slow resync so that the initial sync lasts long enough to strike.
THROWAWAY_RESOURCE = "hsf-fault"
THROWAWAY_MINOR = 99
THROWAWAY_PORT_OFFSET = 100
THROWAWAY_FILE = "/var/lib/hsf/fault-disk.img"
THROWAWAY_MIB = 32
THROWAWAY_RESYNC_RATE = "4M"  # 32 MiB in about 8 s: time enough to strike, little to wait
KILL_TIMEOUT_S = 300.0


class OrchestrationFaultReport(BaseModel):
    fault: OrchestrationFault
    resource: str
    started_at: str
    killed: str = Field(description="The flow killed, and when (seconds after it started).")
    killed_while: str = Field(description="What the nodes showed at the kill.")
    victim_log: str = Field(description="The killed process's output.")
    victim_run: str = Field(
        "", description="The killed process's flow run, marked Crashed (empty: it never took the cluster)."
    )
    rerun: str = Field(description="The command run again (here as a subflow).")
    rerun_steps: list[str] = Field(
        description="What the re-run did to bring the volume back: setup's steps (setup-killed), its "
        "state-changing commands up to the mount (drill-killed)."
    )
    repeated: list[str] = Field(description="What must happen once and the re-run did again.")
    mounted: dict[str, list[str]] = Field(description="Every mountpoint of the device, per node, at the end.")
    problems: list[str] = Field(default_factory=list, description="Anything else not as promised.")
    unserved_s: float | None = Field(
        None, description="drill-killed: the primary killed → the re-run mounted the volume again."
    )
    bytes_lost: int = Field(0, description="What the re-run's drill lost (at rest and acknowledged).")
    acked_lost: int = 0
    filesystem_seen: dict[str, str] = Field(
        default_factory=dict, description="setup-killed: the filesystem each node recognised."
    )
    seconds: float = 0.0

    def render(self) -> str:
        rows = [
            ("fault", f"{self.fault} at {self.started_at}, DRBD {self.resource}"),
            ("killed", self.killed),
            ("the nodes then", self.killed_while),
            ("its output", self.victim_log),
            ("its flow run", self.victim_run or "none seen"),
            ("run again", f"`{self.rerun}`"),
            ("repeated", "; ".join(self.repeated) or "nothing"),
            ("mounted", "; ".join(f"{n}: {', '.join(m) or 'nowhere'}" for n, m in self.mounted.items())),
        ]
        if self.unserved_s is not None:
            rows.append(("unserved", f"{self.unserved_s:.1f} s (the primary killed → mounted again)"))
        if self.filesystem_seen:
            rows.append(("recognised", ", ".join(f"{n}: {t}" for n, t in self.filesystem_seen.items())))
        rows.append(("lost", f"{self.bytes_lost:,} bytes, {self.acked_lost} acknowledged writes"))
        width = max(len(k) for k, _ in rows)
        return "\n".join(
            [
                f"Orchestration fault {self.fault}",
                *(f"  {k:<{width}}  {v}" for k, v in rows),
                *(f"  re-run: {s}" for s in self.rerun_steps),
                *(f"  PROBLEM: {p}" for p in self.problems),
                f"took {self.seconds:.1f} s",
            ]
        )


def once_only(commands: Sequence[RecordedCommand]) -> list[str]:
    """The re-run's commands that must happen once in a resource's life: metadata created, a forced
    promotion. (A mkfs is checked from setup's own steps: the killed run never reached it.)"""
    found = []
    for command in commands:
        argv = shlex.split(command.command)
        if argv[:1] != ["drbdadm"]:
            continue
        if "create-md" in argv:
            found.append(f"{command.target}: metadata created again (`{command.command}`)")
        elif "primary" in argv and "--force" in argv:
            found.append(f"{command.target}: a promotion forced again (`{command.command}`)")
    return found


def mount_problems(mounted: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """(repeated, problems) of the device's mounts at the end: a node that mounted it twice repeated a
    mount; a single-primary volume mounted on no node or on several is not served as promised."""
    repeated = [
        f"{node}: mounted {len(points)} times ({', '.join(points)})"
        for node, points in mounted.items()
        if len(points) > 1
    ]
    on = [node for node, points in mounted.items() if points]
    problems = (
        [] if len(on) == 1 else [f"the volume is mounted on {len(on)} nodes ({', '.join(on) or 'none'})"]
    )
    return repeated, problems


@flow(name="orchestration-fault")
def orchestration_fault(
    settings: Settings | None = None, fault: OrchestrationFault = "setup-killed"
) -> OrchestrationFaultReport:
    """Kill a flow's process at its most delicate moment, run it again, and check what the re-run did."""
    settings = settings or load_settings()
    refuse_dry_run(settings, f"the {fault} fault", "its proof is a real killed process")
    if settings.target != "lab":
        raise Refused(
            f"{fault} {LAB_ONLY_ORCHESTRATION_FAULTS[fault]}: it runs on the lab only, never on a host of "
            "yours"
        )
    if settings.cluster.manager != "none":
        raise Refused(
            f"the {fault} fault acts on the fault-tolerant volume (cluster.manager = 'none'); under "
            f"{settings.cluster.manager} the cluster manager starts and promotes DRBD itself"
        )
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    workdir = settings.writes.reports_dir / f"{fault}-{stamp}"  # the killed process's settings and output
    workdir.mkdir(parents=True, exist_ok=True)
    with run_context(settings, changes_state=True):
        return (
            _setup_killed(settings, workdir) if fault == "setup-killed" else _drill_killed(settings, workdir)
        )


def _throwaway(settings: Settings, disk: str) -> Settings:
    drbd = settings.drbd.model_copy(
        update={
            "resource": THROWAWAY_RESOURCE,
            "minor": THROWAWAY_MINOR,
            "port": settings.drbd.port + THROWAWAY_PORT_OFFSET,
            "disk": disk,
            "mountpoint": f"{settings.drbd.mountpoint.rstrip('/')}-{THROWAWAY_RESOURCE}",
            "resync_rate": THROWAWAY_RESYNC_RATE,
            "initial_sync": "full",
            "force_create_md": False,
            "adopt_existing": False,
        }
    )
    return settings.model_copy(update={"drbd": drbd})


def _setup_killed(settings: Settings, workdir: Path) -> OrchestrationFaultReport:
    log = get_run_logger()
    started, stamp = time.monotonic(), datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    targets = node_targets(settings)
    # Phase 1: what an earlier run of this fault may have left removed; a blank disk on every node, the
    # same device name everywhere (the setting names one disk).
    _remove_throwaway(_throwaway(settings, "/dev/null"), dict.fromkeys(targets, ""))
    disks = {
        node: attach_loop_file(target, THROWAWAY_FILE, THROWAWAY_MIB) for node, target in targets.items()
    }
    if len(set(disks.values())) != 1:
        _remove_throwaway(settings, disks)
        raise Refused(
            f"the throwaway loop devices differ between the nodes ({disks}); nothing was left behind"
        )
    throwaway = _throwaway(settings, next(iter(disks.values())))
    resource = drbd_resource(throwaway, shared_secret(secret_block_name(throwaway)))
    primary = throwaway.primary
    try:
        # Phase 2: setup in its own process, killed while DRBD makes the initial sync.
        victim = start_flow_process(throwaway, "flows.setup", (), workdir)

        def syncing() -> str | None:
            state = steps.drbd_state(targets[primary], resource.node(primary).minor)
            return (
                f"{primary}: {state.summary()}" if state.connection in ("SyncSource", "SyncTarget") else None
            )

        killed_at, seen = kill_when(victim, syncing, KILL_TIMEOUT_S)
        victim_run = take_back_lease(throwaway, "killed by the setup-killed fault (SIGKILL)")
        log.info("killed python -m flows.setup during the initial sync: %s; %s", seen, victim_run)
        # Phase 3: setup again, every command recorded; then the nodes read.
        with current_executor().recording() as commands:
            again = setup(throwaway)
        mounted = {
            node: steps.mounts_of(target, resource.node(node).device) for node, target in targets.items()
        }
        repeated = (
            once_only(commands) + [f"{primary}: mkfs again" for s in again.steps if s.startswith("mkfs")][1:]
        )
        more, problems = mount_problems(mounted)
        if not any(s.startswith("mkfs") for s in again.steps):
            problems.append("the re-run made no filesystem, and the killed run had not reached mkfs")
        return _finish(
            OrchestrationFaultReport(
                fault="setup-killed",
                resource=resource.name,
                started_at=stamp,
                killed=f"python -m flows.setup, {killed_at - victim.started_at:.1f} s after it started",
                killed_while=seen,
                victim_log=str(victim.log),
                victim_run=victim_run,
                rerun="python -m flows.setup",
                rerun_steps=again.steps,
                repeated=repeated + more,
                mounted=mounted,
                problems=problems,
                filesystem_seen=again.filesystem_seen,
            ),
            started,
            settings.cluster_name,
        )
    finally:
        _remove_throwaway(throwaway, disks)


def _remove_throwaway(settings: Settings, disks: dict[str, str]) -> None:
    """The throwaway resource off every node (unmounted, down, its file), the loop files, the secret."""
    targets = node_targets(settings)
    if settings.drbd.resource == THROWAWAY_RESOURCE:
        resource = drbd_resource(settings, shared_secret(secret_block_name(settings)))
        for target in targets.values():
            steps.remove_resource(target, resource, settings.drbd.mountpoint)
            current_executor().run(["rmdir", "--ignore-fail-on-non-empty", settings.drbd.mountpoint], target,
                                   ok_codes=(0, 1))  # fmt: skip
        delete_secret(secret_block_name(settings))
    for node in disks:
        detach_loop_file(targets[node], THROWAWAY_FILE)


def _drill_killed(settings: Settings, workdir: Path) -> OrchestrationFaultReport:
    log = get_run_logger()
    started, stamp = time.monotonic(), datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # Phase 1: the volume as configured (the drill kills its primary).
    built = setup(settings)
    primary = built.primary
    targets = node_targets(settings)
    resource = drbd_resource(settings, shared_secret(secret_block_name(settings)))
    # Phase 2: the drill in its own process, killed the moment its primary is off.
    victim = start_flow_process(settings, "flows.failover", (), workdir)

    def primary_off() -> str | None:
        vm = lab_steps.probe.fn(settings.lab).vms.get(primary)
        if vm is None or vm.active:
            return None
        states = {node: steps.drbd_state(t, resource.node(node).minor) for node, t in targets.items()
                  if node != primary}  # fmt: skip
        return "; ".join([f"{primary}: off", *(f"{n}: {s.summary()}" for n, s in states.items())])

    killed_at, seen = kill_when(victim, primary_off, KILL_TIMEOUT_S)
    victim_run = take_back_lease(settings, "killed by the drill-killed fault (SIGKILL)")
    log.info("killed python -m flows.failover with its primary off: %s; %s", seen, victim_run)
    # Phase 3: the drill again (it starts with setup), every command recorded; then the nodes read.
    with current_executor().recording() as commands:
        report = failover_drill(settings)
    device = resource.node(primary).device
    mounts = [i for i, c in enumerate(commands) if shlex.split(c.command)[:2] == ["mount", device]]
    resumed = commands[: mounts[0] + 1] if mounts else commands  # the re-run's setup: service back
    unserved_s = round(commands[mounts[0]].at - killed_at, 1) if mounts else None
    mounted = {node: steps.mounts_of(target, resource.node(node).device) for node, target in targets.items()}
    more, problems = mount_problems(mounted)
    return _finish(
        OrchestrationFaultReport(
            fault="drill-killed",
            resource=resource.name,
            started_at=stamp,
            killed=f"python -m flows.failover, {killed_at - victim.started_at:.1f} s after it started",
            killed_while=seen,
            victim_log=str(victim.log),
            victim_run=victim_run,
            rerun="python -m flows.failover",
            rerun_steps=[f"{c.target}: {c.command}" for c in resumed],
            repeated=once_only(commands) + more,
            mounted=mounted,
            problems=problems,
            unserved_s=unserved_s,
            bytes_lost=report.bytes_lost,
            acked_lost=report.acked_lost,
        ),
        started,
        settings.cluster_name,
    )


def _finish(report: OrchestrationFaultReport, started: float, cluster: str) -> OrchestrationFaultReport:
    report = report.model_copy(update={"seconds": round(time.monotonic() - started, 1)})
    create_markdown_artifact(
        key=f"orchestration-fault-{report.fault}",
        markdown=f"# Orchestration fault {report.fault}\n\n```\n{report.render()}\n```",
        description=f"{report.fault}: repeated {len(report.repeated)}, lost {report.bytes_lost} bytes",
    )
    emit(
        ORCHESTRATION_FAULT_COMPLETED,
        resource=cluster_resource(cluster),
        payload={
            "fault": report.fault,
            "resource": report.resource,
            "repeated": report.repeated,
            "problems": report.problems,
            "unserved_s": report.unserved_s,
            "bytes_lost": report.bytes_lost,
        },
    )
    return report


def exit_code(report: OrchestrationFaultReport) -> int:
    if report.bytes_lost or report.acked_lost:
        return EXIT_DATA_LOST
    return EXIT_COMMAND_FAILED if report.repeated or report.problems else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.orchestration_faults", description=__doc__.splitlines()[0]
    )
    parser.add_argument("fault", choices=ORCHESTRATION_FAULTS, help="the fault to inject")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks of failures")
    args = parser.parse_args(argv)

    def act(settings: Settings) -> int:
        report = orchestration_fault(settings, fault=args.fault)
        print(report.render())
        return exit_code(report)

    return run_cli(act, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
