"""Benchmark: the failover drill as the Prefect flow and as a plain shell sequence, in one run.

    .venv/bin/python -m benchmarks.failover [--rounds N]

Both kill the same primary of the same lab volume, promote and mount the survivor, verify the
dataset's sha256, restart the node, resync and switch back. Prints RTO and wall time of each and the
flow/shell wall-time ratio (the orchestration's cost). Figures, not assertions.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

from flows.failover import failover_drill
from flows.setup import setup
from tasks.cluster import drbd_resource, secret_block_name, shared_secret
from tasks.context import current_executor
from tasks.lab.state import LabLayout, in_netns
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
    figures["wall"] = time.monotonic() - started
    figures["lost"] = 0.0 if "LOST 0" in out else float("nan")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="drills of each kind (alternating)")
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
        flow_runs.append(
            {
                "rto": report.rto_s,
                "detection": report.detection_s,
                "resync": report.resync_s,
                "wall": time.monotonic() - started,
                "lost": float(report.bytes_lost),
            }
        )
        shell_runs.append(shell_drill(settings))
        flow_rto, shell_rto = flow_runs[-1]["rto"], shell_runs[-1]["rto"]
        print(f"round {round_no}: flow RTO {flow_rto:.1f} s, shell RTO {shell_rto:.1f} s")
    current_executor().close()

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print(f"\nfailover drill, {args.rounds} round(s), medians (s)   flow    shell")
    for key in ("detection", "rto", "resync", "wall"):
        print(f"  {key:<38} {median(flow_runs, key):7.1f}  {median(shell_runs, key):7.1f}")
    lost = (median(flow_runs, "lost"), median(shell_runs, "lost"))
    print(f"  {'bytes lost':<38} {lost[0]:7.0f}  {lost[1]:7.0f}")
    print(f"flow/shell wall-time ratio: {median(flow_runs, 'wall') / median(shell_runs, 'wall'):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
