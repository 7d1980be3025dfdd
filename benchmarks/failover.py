"""Benchmark: manual and automatic failover in one run — the drill as the Prefect flow, as a plain shell
sequence, and under Pacemaker.

    .venv/bin/python -m benchmarks.failover [--rounds N] [--no-pacemaker]

The flow and the shell kill the same primary of the same lab volume, promote and mount the survivor
themselves, verify the dataset's sha256, restart the node, resync and switch back. Then setup builds
the Pacemaker cluster over the same volume and the automatic drill kills its primary while the flow
only watches; afterwards the cluster is stopped and the volume is DRBD's alone again. Prints the RTO of
each beside the others. Figures, not assertions.

Like for like: the flow and the shell do the same work in each of these phases — the dataset (random
files written and hashed on the primary), the failover (kill, detection, promotion, mount, every byte
verified: the RTO), the old primary's return (restart until SSH answers), its resync, and the switch
back (verified on the survivor, switched, verified on the old primary). Each phase's flow/shell ratio is
printed (medians over the rounds), and the ratio of their sums. The flow's wall time also holds work
the shell does not do — setup's check of the volume, the acknowledged writers through the fault and
their read-back, the report, its pictures and events — shown on its own line.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

from flows.failover import FailoverReport, failover_drill
from flows.setup import setup
from tasks.cluster import drbd_resource, node_targets, pacemaker_cluster, secret_block_name, shared_secret
from tasks.context import current_executor
from tasks.lab.state import LabLayout, in_netns
from tasks.pacemaker.steps import stop_cluster
from tasks.settings import Settings, load_settings

SHELL_DRILL = Path(__file__).with_name("failover_shell.sh")


def shell_drill(settings: Settings) -> dict[str, float]:
    layout = LabLayout(settings.lab)
    resource = drbd_resource(settings, shared_secret(secret_block_name(settings)))
    primary, survivor = settings.primary, resource.peer_of(settings.primary).name
    env = {
        "NS": layout.netns,
        "KEY": str(layout.client_key),
        "KNOWN_HOSTS": str(layout.known_hosts),
        "A": str(settings.lab.address_of(primary)),
        "B": str(settings.lab.address_of(survivor)),
        "A_DOMAIN": layout.domain(primary),
        "URI": "qemu:///system",
        "RES": resource.name,
        "DEV": resource.node(primary).device,
        "MNT": settings.drbd.mountpoint,
        "FILES": str(settings.failover.dataset_files),
        "MIB": str(settings.failover.file_mib),
    }
    started = time.monotonic()
    out = current_executor().run(["bash", str(SHELL_DRILL)], env=env, timeout=1800).stdout
    figures = {k: float(v) for k, v in re.findall(r"^TIMING (\w+)=([\d.]+)$", out, re.MULTILINE)}
    figures["switch back"] = figures.pop("switchback")
    figures["wall"] = time.monotonic() - started
    figures["lost"] = 0.0 if "LOST 0" in out else float("nan")
    return like_for_like(figures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="drills of each kind (alternating)")
    parser.add_argument(
        "--no-pacemaker", action="store_true", help="only the manual drills (no cluster is built)"
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    if settings.target != "lab" or not settings.lab.embedded:
        print("the benchmark drives the embedded lab only", file=sys.stderr)
        return 2
    setup(settings)
    if not in_netns(settings.lab):
        print("the lab does not run in its own namespace", file=sys.stderr)
        return 2
    flow_runs, shell_runs = [], []
    for round_no in range(1, args.rounds + 1):
        started = time.monotonic()
        report = failover_drill(settings)
        flow_runs.append(drill_figures(report, started))
        shell_runs.append(shell_drill(settings))
        flow_rto, shell_rto = flow_runs[-1]["rto"], shell_runs[-1]["rto"]
        print(f"round {round_no}: flow RTO {flow_rto:.1f} s, shell RTO {shell_rto:.1f} s")
    automatic = [] if args.no_pacemaker else automatic_drills(settings, args.rounds)
    current_executor().close()

    def median(runs: list[dict[str, float]], key: str) -> float:
        values = [r[key] for r in runs if key in r]
        return statistics.median(values) if values else float("nan")

    def cell(runs: list[dict[str, float]], key: str, digits: int = 1) -> str:
        value = median(runs, key)
        return f"{'—':>10}" if value != value else f"{value:10.{digits}f}"  # NaN: not measured

    columns = [("flow", flow_runs), ("shell", shell_runs), *([("pacemaker", automatic)] if automatic else [])]
    print(
        f"\nfailover drill, {args.rounds} round(s), medians (s)  " + "".join(f"{n:>10}" for n, _ in columns)
    )
    for key in (
        "dataset", "detection", "fenced", "promote", "mount", "rto", "write outage", "returned", "resync",
        "switch back", "like for like", "flow-only work", "wall",
    ):  # fmt: skip
        print(f"  {key:<38}" + "".join(cell(runs, key) for _, runs in columns))
    print(f"  {'bytes lost':<38}" + "".join(cell(runs, "lost", 0) for _, runs in columns))
    print(f"  {'acknowledged writes lost':<38}" + "".join(cell(runs, "acked lost", 0) for _, runs in columns))
    print(
        "  (manual: the flow or the shell promotes and mounts; pacemaker: the cluster does, the flow watches)"
    )
    print("flow/shell ratios, like for like (medians):")
    for key in (*LIKE_FOR_LIKE, "like for like"):
        print(f"  {key:<38}{median(flow_runs, key) / median(shell_runs, key):10.2f}")
    print(
        f"flow/shell wall-time ratio (the flow's extra work included): "
        f"{median(flow_runs, 'wall') / median(shell_runs, 'wall'):.2f}"
    )
    return 0


# The phases both sides do alike; their sum is the like-for-like total.
LIKE_FOR_LIKE = ("dataset", "rto", "returned", "resync", "switch back")


def like_for_like(figures: dict[str, float]) -> dict[str, float]:
    """``figures`` with the like-for-like total, and the wall time outside it (the flow's own extra work)."""
    total = sum(figures[key] for key in LIKE_FOR_LIKE)
    return {**figures, "like for like": total, "flow-only work": figures["wall"] - total}


def drill_figures(report: FailoverReport, started: float) -> dict[str, float]:
    """One drill's figures (a figure the drill did not measure is left out: shown as —)."""
    figures = {
        "detection": report.detection_s,
        "promote": report.promote_s,
        "mount": report.mount_s,
        "rto": report.rto_s,
        "returned": report.returned_s,
        "resync": report.resync_s,
        "wall": time.monotonic() - started,
        "lost": float(report.bytes_lost),
        "acked lost": float(report.acked_lost),
    }
    if report.dataset_s is not None and report.switch_back_s is not None:
        figures |= {"dataset": report.dataset_s, "switch back": report.switch_back_s}
        figures = like_for_like(figures)
    if report.fenced_s is not None:
        figures["fenced"] = report.fenced_s
    if report.writes and report.writes.outage:
        figures["write outage"] = report.writes.outage.gap_s
    return figures


def automatic_drills(settings: Settings, rounds: int) -> list[dict[str, float]]:
    """Build the Pacemaker cluster over the volume, run the automatic drill ``rounds`` times, then stop the
    cluster and hand the volume back to DRBD alone (setup with manager none)."""
    managed = settings.model_copy(
        update={"cluster": settings.cluster.model_copy(update={"manager": "pacemaker"})}
    )
    runs = []
    try:
        setup(managed)
        for round_no in range(1, rounds + 1):
            started = time.monotonic()
            report = failover_drill(managed)
            runs.append(drill_figures(report, started))
            print(f"round {round_no}: pacemaker RTO {report.rto_s:.1f} s")
    finally:
        stop_cluster(node_targets(settings), pacemaker_cluster(settings).cib)
        setup(settings)
    return runs


if __name__ == "__main__":
    sys.exit(main())
