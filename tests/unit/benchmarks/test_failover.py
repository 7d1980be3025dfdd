"""Unit tests for benchmarks/failover.py: the like-for-like total and what lies outside it."""

from __future__ import annotations

import pytest

from benchmarks.failover import LIKE_FOR_LIKE, like_for_like


def test_the_like_for_like_total_is_the_sum_of_the_shared_phases_and_the_rest_is_the_flows_own() -> None:
    phases = {"dataset": 6.0, "rto": 12.5, "returned": 23.0, "resync": 4.0, "switch back": 9.5}
    figures = like_for_like({**phases, "detection": 3.0, "wall": 71.0})
    assert figures["like for like"] == pytest.approx(55.0)
    assert figures["flow-only work"] == pytest.approx(16.0)
    assert figures["detection"] == 3.0  # inside the RTO: never counted twice
    assert set(LIKE_FOR_LIKE) == set(phases)


def test_a_phase_missing_from_a_run_is_an_error_not_a_smaller_total() -> None:
    with pytest.raises(KeyError, match="switch back"):
        like_for_like({"dataset": 6.0, "rto": 12.5, "returned": 23.0, "resync": 4.0, "wall": 50.0})
