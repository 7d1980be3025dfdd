"""flows/link_cut.py under the harness: its refusals, before any node is touched (the drill itself runs
in the lab tier: tests/lab/test_pacemaker.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flows.link_cut import link_cut_drill
from tasks.context import DryRunRefused
from tasks.drbd.plan import Refused
from tests.flow.conftest import Replay


def test_without_the_cluster_manager_the_drill_refuses_and_touches_nothing(
    replay: Callable[..., Replay],
) -> None:
    nodes = replay("fault-tolerant")
    with pytest.raises(Refused, match=r"^the link-cut drill proves the cluster manager's fencing: set "):
        link_cut_drill()
    assert nodes.changed == [] and nodes.probed == []


def test_a_dry_run_is_refused(replay: Callable[..., Replay], monkeypatch: pytest.MonkeyPatch) -> None:
    nodes = replay("pacemaker", dry_run=True)
    monkeypatch.setenv("HSF_CLUSTER__MANAGER", "pacemaker")
    monkeypatch.setenv("HSF_CLUSTER__FENCING__AGENT", "fence_sbd")
    with pytest.raises(DryRunRefused, match="the link-cut drill"):
        link_cut_drill()
    assert nodes.changed == [] and nodes.probed == []
