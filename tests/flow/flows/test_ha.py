"""The HA flows and the drills on replayed nodes: they refuse before changing anything."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flows.failover import failover_drill
from flows.ha_node_loss import ha_node_loss
from flows.ha_upgrade import ha_upgrade
from flows.split_brain import split_brain_drill
from tasks.context import DryRunRefused
from tasks.drbd.plan import Refused
from tests.flow.conftest import Replay


def test_upgrade_refuses_a_degraded_volume_naming_the_node(replay: Callable[..., Replay]) -> None:
    nodes = replay("secondary-down")
    with pytest.raises(Refused, match=r"nodea: r0 is not healthy \(cs:WFConnection .*Nothing was changed"):
        ha_upgrade()
    assert nodes.changed == []


def test_node_loss_refuses_a_volume_that_is_not_in_ha_mode(replay: Callable[..., Replay]) -> None:
    nodes = replay("fault-tolerant")
    with pytest.raises(Refused, match=r"not in HA mode .*run flows\.ha_upgrade first"):
        ha_node_loss()
    assert nodes.changed == []


def test_split_brain_drill_refuses_a_high_availability_volume(replay: Callable[..., Replay]) -> None:
    nodes = replay("ha")
    with pytest.raises(Refused, match="high-availability mode"):
        split_brain_drill()
    assert nodes.changed == []


@pytest.mark.parametrize(
    ("drill", "says"),
    [
        (failover_drill, "the failover drill does not dry-run: its proof is a real kill of the primary"),
        (ha_upgrade, "the HA upgrade does not dry-run"),
        (ha_node_loss, "the HA node-loss drill does not dry-run"),
        (split_brain_drill, "the split-brain drill does not dry-run"),
    ],
)
def test_drills_refuse_a_dry_run_in_one_line_without_touching_a_node(
    replay: Callable[..., Replay], drill: Callable[[], object], says: str
) -> None:
    nodes = replay("fault-tolerant", dry_run=True)
    with pytest.raises(DryRunRefused, match=says) as refused:
        drill()
    assert "\n" not in str(refused.value) and str(refused.value).endswith("Nothing was changed.")
    assert nodes.executors == [], "the refused drill opened a run on the nodes"
