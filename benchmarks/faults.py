"""Benchmark: the fault matrix, several times over, as figures per fault.

    .venv/bin/python -m benchmarks.faults [--runs N] [--only NAME ...]

Runs ``flows.faults`` on the volume as it is (its mode decides which faults apply; backup faults need
the repository ``flows.backup init`` made) with ``--runs N`` (3 by default) and prints, per fault: the
write outage (median, max), the time from the fault's end to full redundancy (median, max), the bytes
and acknowledged writes lost, what the resyncs copied next to what was written, and the commands a
human had to run. Figures, not assertions: the matrix's own verdicts are printed beside them, and the
exit code is the matrix's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence

from flows.faults import fault_matrix
from tasks.faults import FaultOutcome, exit_code, summarise
from tasks.settings import load_settings


def _spread(values: Sequence[float | None], unit: str = "s") -> str:
    measured = [v for v in values if v is not None]
    if not measured:
        return "—"
    return f"{statistics.median(measured):.1f} / {max(measured):.1f} {unit}"


def figures(outcomes: Sequence[FaultOutcome]) -> list[str]:
    """One line per fault: outage and redundancy (median / max), loss, resync, commands, verdict."""
    lines = []
    for summary in summarise(outcomes):
        runs = [o for o in outcomes if o.fault == summary.fault and o.mode == summary.mode]
        resync = [(o.resynced_bytes, o.written_bytes) for o in runs if o.resynced_bytes is not None]
        copied = (
            f"resync {statistics.median(r for r, _ in resync) / 2**20:.1f} MiB for "
            f"{statistics.median(w or 0 for _, w in resync) / 2**20:.1f} MiB written (medians)"
            if resync
            else "resync —"
        )
        lines.append(
            f"{summary.fault:<18} {summary.mode:<14} runs {summary.runs}  "
            f"outage {_spread([o.outage_s for o in runs])}  "
            f"redundant {_spread([o.redundant_s for o in runs])}  "
            f"lost {summary.bytes_lost:,} bytes ({summary.acked_lost} acknowledged)  {copied}  "
            f"by hand {len(summary.manual_commands)}  drill {_spread([o.took_s for o in runs])}  "
            f"{summary.verdict_text()}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each fault (default 3)")
    parser.add_argument("--only", action="append", metavar="NAME", help="only this fault (repeatable)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    outcomes = fault_matrix(load_settings(), only=args.only, runs=args.runs)
    print(f"\nFault matrix benchmark: {args.runs} runs each, {time.monotonic() - started:.0f} s in all")
    print("fault              mode           figures (median / max)")
    for line in figures(outcomes):
        print(line)
    return exit_code(outcomes)


if __name__ == "__main__":
    sys.exit(main())
