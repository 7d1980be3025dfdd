"""flows/setup.py on nodes replayed from captured real output: its plans, refusals and dry run."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from flows.setup import setup
from tasks.drbd.plan import Refused
from tests.flow.conftest import Replay


def test_dry_run_started_like_a_deployment_changes_nothing_and_prints_every_step(
    replay: Callable[..., Replay],
) -> None:
    """A deployment calls the flow with no arguments; HSF_DRY_RUN comes from the environment."""
    nodes = replay("fresh", dry_run=True)
    report = setup()  # as a worker runs it: no settings passed, no CLI
    assert report.dry_run
    assert nodes.changed == [], "a dry run sent a state-changing command to a node"
    kinds = [line.split("(")[0].split(":")[0] for line in report.steps]
    assert kinds == [
        "write_config", "create_md", "up", "write_config", "create_md", "up",
        "wait_connected", "initial_promote", "wait_synced", "mkfs", "mount",
    ]  # fmt: skip
    printed = [line for line in nodes.logs if "(dry run; not actually running)" in line]
    for command in (
        "[nodea] (dry run; not actually running) dd of=/etc/drbd.d/r0.res.hsf-new status=none",
        "[nodeb] (dry run; not actually running) drbdadm create-md r0",
        "[nodea] (dry run; not actually running) drbdadm up r0",
        "[nodea] (dry run; not actually running) drbdadm primary --force r0",
        "[nodea] (dry run; not actually running) mkfs.ext4",
        "[nodea] (dry run; not actually running) mount /dev/drbd0 /mnt/r0",
    ):
        assert any(line.startswith(command) for line in printed), f"not printed: {command}"
    for step in report.steps:
        assert any(step in line for line in nodes.logs), f"planned step not logged: {step}"
    secret = nodes.executors[0].secrets
    assert secret and not any(s in line for s in secret for line in nodes.logs), "the DRBD secret was logged"


def test_a_disk_that_holds_a_filesystem_is_refused_before_anything_changes(
    replay: Callable[..., Replay],
) -> None:
    nodes = replay("disk-holds-ext4")
    with pytest.raises(Refused, match=r"nodeb: /dev/vdb holds ext4 \(label userdata\); refusing"):
        setup()
    assert nodes.changed == []


def test_a_second_run_on_a_built_volume_plans_nothing(replay: Callable[..., Replay]) -> None:
    nodes = replay("fault-tolerant")
    report = setup()
    assert report.steps == [] and not report.changed
    assert nodes.changed == []
    assert any("nothing to do: ext4 mounted on nodea" in line for line in nodes.logs)


def test_a_high_availability_volume_is_left_alone(replay: Callable[..., Replay]) -> None:
    nodes = replay("ha")
    with pytest.raises(Refused, match="high-availability mode"):
        setup()
    assert nodes.changed == []


def test_without_a_cluster_manager_setup_refuses_to_act_behind_a_running_pacemaker(
    replay: Callable[..., Replay],
) -> None:
    nodes = replay("pacemaker")  # Pacemaker owns the volume; the settings say manager "none"
    with pytest.raises(Refused, match=r"^nothing was changed:\n") as refused:
        setup()
    lines = str(refused.value).splitlines()[1:]
    for node in ("nodea", "nodeb"):
        assert (
            f"{node}: Pacemaker runs here and owns the volume: with cluster.manager = 'none' setup would "
            "act behind its back (set cluster.manager = 'pacemaker', or stop the cluster on every node "
            "first)"
        ) in lines
    assert nodes.changed == []
