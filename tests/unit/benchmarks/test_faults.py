"""benchmarks/faults.py: the figures it prints per fault over several runs (the matrix runs in the lab)."""

from __future__ import annotations

from benchmarks.faults import figures
from tasks.faults import FaultOutcome, judge


def run(n: int, outage: float, redundant: float, resynced_mib: int, took: float = 80.0) -> FaultOutcome:
    return judge(
        FaultOutcome(
            fault="long-outage", run=n, mode="fault-tolerant", outage_s=outage, redundant_s=redundant,
            bytes_lost=0, resynced_bytes=resynced_mib << 20, written_bytes=64 << 20, summary="peer away",
            took_s=took,
        )
    )  # fmt: skip


def test_each_fault_is_one_line_of_medians_and_maxima() -> None:
    outcomes = [run(1, 4.2, 41.1, 76, 81.5), run(2, 4.4, 43.2, 74, 79.0), run(3, 9.0, 40.0, 80, 95.2)]
    [line] = figures(outcomes)
    assert line.startswith("long-outage        fault-tolerant runs 3  ")
    assert "outage 4.4 / 9.0 s" in line and "redundant 41.1 / 43.2 s" in line
    assert "lost 0 bytes (0 acknowledged)" in line
    assert "resync 76.0 MiB for 64.0 MiB written (medians)" in line
    assert line.endswith("by hand 0  drill 81.5 / 95.2 s  as expected")


def test_a_fault_without_figures_says_so() -> None:
    outcome = FaultOutcome(
        fault="wrong-passphrase", run=1, mode="ha", outage_s=None, redundant_s=None, bytes_lost=0, summary="x"
    )
    [line] = figures([outcome])
    assert "outage —  redundant —" in line and "resync —" in line and "drill —" in line
