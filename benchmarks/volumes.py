"""Benchmark: how setup and the failover drill grow from one volume to several on one lab cluster.

    .venv/bin/python -m benchmarks.volumes [--volumes N] [--rounds R]

For 1, 2, … N volumes (r0 on vdb, r1 on vdc, …; ``lab.data_disks`` is raised to N, which redefines the
lab's VMs once if it had fewer), every volume is taken off the nodes and its disks wiped, then setup
builds them all (at once: each volume's setup is a subflow of its own, with its full initial sync), and
the failover drill kills their primary once and fails every volume over, rejoins and switches back.
Prints each count's setup and drill time beside one volume's, and their ratio to n times one volume's
(far below 1 is what running them at once buys). Figures, not assertions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from flows.failover import failover_drill
from flows.setup import setup
from tasks.cluster import drbd_resource, node_targets, secret_block_name, shared_secret
from tasks.context import close_standalone
from tasks.drbd import steps
from tasks.settings import Settings, load_settings


def volumes(count: int) -> list[dict[str, object]]:
    """The volumes beside r0: r1 on vdc at minor 1 and port 7790, r2 on vdd, …"""
    return [
        {
            "resource": f"r{i}",
            "port": 7789 + i,
            "disk": f"/dev/vd{chr(ord('b') + i)}",
            "minor": i,
            "mountpoint": f"/mnt/r{i}",
        }
        for i in range(1, count)
    ]


def settings_for(count: int, most: int) -> Settings:
    return load_settings(lab={"data_disks": most}, drbd={"volumes": volumes(count)})


def start_over(settings: Settings) -> None:
    """Every volume of ``settings`` off both nodes, its disk wiped: the next setup builds it from nothing."""
    targets = node_targets(settings)
    for volume in settings.each_volume():
        resource = drbd_resource(volume, shared_secret(secret_block_name(volume)))
        for target in targets.values():
            steps.remove_resource.fn(target, resource, volume.drbd.mountpoint)
            steps.wipe_disk.fn(target, volume.drbd.disk)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=4, help="the most volumes (from 1)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of each count (medians)")
    args = parser.parse_args(argv)
    if not 1 <= args.volumes <= 8:
        print("--volumes: 1 to 8 (the lab's data disks per VM)", file=sys.stderr)
        return 2
    most = settings_for(args.volumes, args.volumes)
    if most.target != "lab":
        print("the benchmark drives the embedded lab only", file=sys.stderr)
        return 2
    setup(settings_for(1, args.volumes))  # the lab up with its disks, before anything is timed
    runs: dict[int, list[dict[str, float]]] = {n: [] for n in range(1, args.volumes + 1)}
    for round_no in range(1, args.rounds + 1):
        for count in runs:
            settings = settings_for(count, args.volumes)
            start_over(most)
            close_standalone()
            started = time.monotonic()
            setup(settings)
            setup_s = time.monotonic() - started
            started = time.monotonic()
            report = failover_drill(settings)
            drill_s = time.monotonic() - started
            last = max([report.rto_s, *(v.verified_s for v in report.volumes)])
            resync = max([report.resync_s, *(v.resync_s or 0.0 for v in report.volumes)])
            runs[count].append(
                {
                    "setup": setup_s,
                    "drill": drill_s,
                    "rto": report.rto_s,
                    "last verified": last,
                    "resync": resync,
                    "lost": float(report.bytes_lost),
                }
            )
            print(f"round {round_no}, {count} volume(s): setup {setup_s:.1f} s, drill {drill_s:.1f} s")
    close_standalone()

    def median(count: int, key: str) -> float:
        return statistics.median(r[key] for r in runs[count])

    print(f"\nvolumes: setup and failover drill, {args.rounds} round(s), medians (s)")
    columns = ("volumes", "setup", "ratio", "drill", "ratio", "RTO r0", "last ok", "resync", "lost")
    print("  " + "".join(f"{name:>9}" for name in columns))
    for count in runs:
        setup_s, drill_s = median(count, "setup"), median(count, "drill")
        cells = (
            f"{count:9d}",
            f"{setup_s:9.1f}",
            f"{setup_s / (count * median(1, 'setup')):9.2f}",
            f"{drill_s:9.1f}",
            f"{drill_s / (count * median(1, 'drill')):9.2f}",
            f"{median(count, 'rto'):9.1f}",
            f"{median(count, 'last verified'):9.1f}",
            f"{median(count, 'resync'):9.1f}",
            f"{median(count, 'lost'):9.0f}",
        )
        print("  " + "".join(cells))
    print(
        "  (ratio: the time over n times one volume's, 1.0 being one volume after another; last ok: kill "
        "to the last volume's data verified on the survivor; resync: the slowest volume's)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
