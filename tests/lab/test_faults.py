"""The fault matrix on the lab's fault-tolerant volume and its backup repository: every storage, backup and
orchestration fault that strikes them, once, through ``flows.faults`` — each ends as the catalogue
promises, with nothing lost, and the lab is left as found, so the faults chain. (The primary killed and
the split-brain run in test_drbd and test_split_brain with their full reports, judged by the same
catalogue; the Pacemaker and HA faults in test_pacemaker and test_ha.)"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime
from prefect.client.schemas.objects import StateType

from flows.faults import fault_matrix
from flows.lab import LabStatus
from flows.orchestration_faults import THROWAWAY_RESOURCE
from flows.setup import setup
from tasks.cluster import borg_passphrase_block_name, stored_secret
from tasks.context import current_executor
from tasks.executor import SshTarget
from tasks.faults import BACKUP_FAULTS, ORCHESTRATION_FAULTS, STORAGE_FAULTS
from tasks.settings import load_settings

pytestmark = pytest.mark.lab


def test_every_storage_backup_and_orchestration_fault_ends_as_promised_and_leaves_the_lab_as_found(
    lab: LabStatus, targets: dict[str, SshTarget], machines: dict[str, SshTarget]
) -> None:
    # the repository test_backup made (nodea's /home on the backup VM); shorter cuts and outages and a
    # smaller dataset for the re-run failover drill than the defaults, the same faults
    settings = load_settings(
        backup={"client": "nodea", "server": "backup"},
        link_cut={"hold_s": 10},
        faults={"away_mib": 32},
        failover={"dataset_files": 2, "file_mib": 4},
    )
    faults: list[str] = [*STORAGE_FAULTS, *BACKUP_FAULTS, *ORCHESTRATION_FAULTS]
    started = datetime.now(UTC)
    outcomes = fault_matrix(settings, only=faults)
    for outcome in outcomes:
        print(f"\n{outcome.fault}: {outcome.summary}")
    assert [(o.fault, o.mode, o.problems) for o in outcomes] == [(f, "fault-tolerant", []) for f in faults]
    assert all(o.verdict == "as expected" and o.bytes_lost == 0 and o.acked_lost == 0 for o in outcomes)
    by_fault = {o.fault: o for o in outcomes}
    # the primary rode out every storage fault without a command; only the power cycle needed one (setup)
    assert [f for f in STORAGE_FAULTS if by_fault[f].manual_commands] == ["power-cycle"]
    assert by_fault["power-cycle"].manual_commands[0] == "python -m flows.setup"
    # a killed flow, run again, repeated nothing that must happen once and served the volume again
    for fault, rerun in (
        ("setup-killed", "python -m flows.setup"),
        ("drill-killed", "python -m flows.failover"),
    ):
        assert (by_fault[fault].manual_commands, by_fault[fault].repeated) == ([rerun], [])
    unserved = by_fault["drill-killed"].outage_s
    assert unserved is not None and unserved > 0
    # a disk failure costs no outage; a lost peer costs DRBD's ping timeout, no more
    disk = by_fault["disk-failure"].outage_s
    assert disk is not None and disk < 5
    for fault in ("secondary-killed", "long-outage", "link-cut"):
        outage, resynced, written = (
            by_fault[fault].outage_s, by_fault[fault].resynced_bytes, by_fault[fault].written_bytes,
        )  # fmt: skip
        assert outage is not None and outage < 15
        assert resynced is not None and written is not None and resynced < 256 << 20  # of a 1 GiB volume
    assert by_fault["long-outage"].written_bytes >= settings.faults.away_mib << 20  # type: ignore[operator]
    # the lab as found: the same primary serving, in sync, no fault's trace left
    assert setup(settings).steps == []
    run = current_executor().run
    assert run(["ls", "-A", f"{settings.drbd.mountpoint}/faults"], targets["nodea"]).stdout == ""
    mounts = run(["findmnt", "-rn", "-o", "TARGET"], machines["nodea"]).stdout.split()
    assert not [m for m in mounts if m.startswith(settings.backup.scratch_dir)]
    assert stored_secret(f"{borg_passphrase_block_name(settings)}-fault-wrong") is None
    for node, target in targets.items():  # the throwaway resource of setup-killed is gone
        assert f"{THROWAWAY_RESOURCE}.res" not in run(["ls", "/etc/drbd.d"], target).stdout.split(), node
        assert run(["losetup", "--list", "--noheadings"], target).stdout == "", node
    assert stored_secret(f"{settings.cluster_name}-drbd-{THROWAWAY_RESOURCE}") is None
    # the killed processes' flow runs are marked Crashed: none is left Running on the server
    since = FlowRunFilter(start_time=FlowRunFilterStartTime(after_=started))
    with get_client(sync_client=True) as client:
        runs = {r.name: (r.flow_id, r.state_type) for r in client.read_flow_runs(flow_run_filter=since)}
    assert [name for name, (_, state) in runs.items() if state == StateType.RUNNING] == []
    assert sum(state == StateType.CRASHED for _, state in runs.values()) == 2
