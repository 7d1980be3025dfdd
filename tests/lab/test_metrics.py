"""The exporter on the lab (tasks/metrics.py, deployments/metrics.py): DRBD's state on both nodes over SSH,
healthy after test_drbd.py's drill and not while the secondary is disconnected (StandAlone, and no
split-brain: its kernel log is read and says none); the failover drill's recorded result; the textfile
judged by promtool; a real Prometheus scraping the exporter and answering with the lab's DRBD state.
The volume is left Connected and UpToDate, Primary on the first node."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deployments.metrics import write_textfile
from flows.lab import LabStatus
from tasks.context import current_executor
from tasks.drbd import commands as cmd
from tasks.drbd.steps import drbd_state
from tasks.executor import SshTarget
from tasks.lab.host import wait_until
from tasks.metrics import DrbdDevice, Snapshot, take_snapshot
from tasks.settings import Settings
from tests.prometheus import PROMETHEUS, scraped

pytestmark = pytest.mark.lab


def probing(settings: Settings, *probes: str) -> Settings:
    return settings.model_copy(update={"metrics": settings.metrics.model_copy(update={"probes": probes})})


def devices(snapshot: Snapshot) -> dict[str, DrbdDevice]:
    assert snapshot.probes and all(p.success for p in snapshot.probes), snapshot.probes
    return {d.node: d for d in snapshot.drbd if d.resource == "r0"}


def test_drbd_state_of_both_nodes_healthy_then_disconnected(
    lab: LabStatus, settings: Settings, targets: dict[str, SshTarget]
) -> None:
    primary, secondary = settings.lab.nodes
    drbd_only = probing(settings, "drbd")
    healthy = devices(take_snapshot(drbd_only))
    assert set(healthy) == {primary, secondary}
    assert healthy[primary].state.role == "Primary" and healthy[secondary].state.role == "Secondary"
    for device in healthy.values():
        assert device.state.healthy and device.state.out_of_sync_kib == 0 and not device.split_brain

    run = current_executor().run
    run(cmd.disconnect_argv(settings.drbd.resource), targets[secondary], timeout=120)
    try:
        apart = devices(take_snapshot(drbd_only))
        assert apart[secondary].state.connection == "StandAlone" and not apart[secondary].split_brain
        assert apart[primary].state.connection in {"WFConnection", "Unconnected"}
        assert not any(d.state.healthy for d in apart.values())
    finally:
        run(cmd.connect_argv(settings.drbd.resource), targets[secondary], timeout=120)
        wait_until(
            lambda: all(drbd_state(t, settings.drbd.minor).healthy for t in targets.values()),
            300,
            "r0 Connected and UpToDate on both nodes again",
        )
    assert all(d.state.healthy for d in devices(take_snapshot(drbd_only)).values())


def test_the_failover_drill_s_recorded_result(lab: LabStatus, settings: Settings) -> None:
    """test_drbd.py's drill emitted hsf.failover.completed into this session's Prefect server."""
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()
    drills = probing(settings, "drills")

    def recorded() -> Snapshot | None:
        snapshot = take_snapshot(drills)
        return snapshot if any(d.drill == "failover" for d in snapshot.drills) else None

    snapshot = wait_until(recorded, 60, "the failover drill's event on the Prefect server")
    [failover] = [d for d in snapshot.drills if d.drill == "failover"]
    assert failover.passed and failover.data_lost is False and failover.bytes_lost == 0
    assert failover.acked_lost == 0 and failover.rto_s is not None and 0 < failover.rto_s < 120


def test_the_textfile_of_the_lab_passes_promtool(lab: LabStatus, settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "hsf.prom"
    write_textfile(probing(settings, "drbd", "drills"), path)
    text = path.read_text()
    for node in settings.lab.nodes:
        assert f'hsf_drbd_healthy{{node="{node}",resource="r0"}} 1.0' in text
        assert f'hsf_probe_success{{probe="drbd",target="{node}"}} 1.0' in text
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


@pytest.mark.skipif(not PROMETHEUS.exists(), reason="needs Debian's prometheus (make deps)")
def test_prometheus_reads_the_lab_s_drbd_state(lab: LabStatus, settings: Settings, tmp_path: Path) -> None:
    """``python -m deployments metrics`` on this host, probing the lab's nodes over SSH, scraped by a real
    Prometheus: the state read back through its HTTP API, and none of the project's alerts firing."""
    from prefect.settings import get_current_settings

    primary, secondary = settings.lab.nodes
    with scraped(probing(settings, "drbd"), tmp_path, str(get_current_settings().api.url)) as scrape:
        for node in (primary, secondary):
            assert scrape.value(f'hsf_probe_success{{probe="drbd",target="{node}"}}') == 1
            assert scrape.value(f'hsf_drbd_healthy{{node="{node}",resource="r0"}}') == 1
            assert scrape.value(f'hsf_drbd_split_brain{{node="{node}",resource="r0"}}') == 0
            assert scrape.value(f'hsf_drbd_out_of_sync_bytes{{node="{node}",resource="r0"}}') == 0
        assert scrape.value(f'hsf_drbd_role{{node="{primary}",resource="r0",role="Primary"}}') == 1
        assert scrape.value(f'hsf_drbd_role{{node="{secondary}",resource="r0",role="Secondary"}}') == 1
        assert scrape.value('count(hsf_drbd_connection_state{resource="r0",state="Connected"} == 1)') == 2
        assert scrape.alerts() == []
