"""The booted lab, shared by every lab test of the session and torn down at the end."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.lab import LabStatus, lab_down, lab_targets, lab_up
from tasks.context import close_standalone
from tasks.executor import SshTarget
from tasks.lab.state import LabLayout
from tasks.settings import LabSettings, Settings, load_settings

# The lab tests share one lab and build on each other's state: basics, the fault-tolerant volume and its
# drills (and the exporter's view of them), then the one-way upgrade to high availability, then (the
# volume blanked) the three-node stacked volume on a third VM. Backups use the backup VM and nodea's /home.
MODULE_ORDER = (
    "test_lab.py",
    "test_backup.py",
    "test_drbd.py",
    "test_metrics.py",
    "test_setup_hand_made.py",
    "test_inventory.py",
    "test_split_brain.py",
    "test_faults.py",
    "test_pacemaker.py",
    "test_ha.py",
    "test_stacked.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent

    def rank(item: pytest.Item) -> int:
        name = item.path.name
        in_lab = item.path.parent == here  # tests of other tiers may share a module's name
        return MODULE_ORDER.index(name) if in_lab and name in MODULE_ORDER else len(MODULE_ORDER)

    items.sort(key=rank)  # stable: the order inside a module is kept


@pytest.fixture(autouse=True)
def _fresh_connections() -> Iterator[None]:
    """The tests' own commands run outside any flow run, on connections of their own; a flow in the
    previous test may have killed that node (its run dropped only its own connections)."""
    close_standalone()
    yield


# The drills here prove that nothing is lost, not how fast a big dataset moves (the benchmarks time the
# defaults): each failover drill writes two files of 4 MiB (five of 20 MiB by default), as the fault
# matrix always did, and the site loss 64 MiB of background traffic (256). Set in the environment, so the
# settings every test loads and the files written for the CLI runs agree.
SMALL_DATASET = {
    "HSF_FAILOVER__DATASET_FILES": "2",
    "HSF_FAILOVER__FILE_MIB": "4",
    "HSF_SITE_LOSS__TRAFFIC_MIB": "64",
}


@pytest.fixture(scope="session", autouse=True)
def _small_drill_dataset() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in SMALL_DATASET.items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def settings(_small_drill_dataset: None) -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def lab_settings(settings: Settings) -> LabSettings:
    return settings.lab


@pytest.fixture(scope="session")
def lab(prefect_harness: None, settings: Settings, lab_settings: LabSettings) -> Iterator[LabStatus]:
    started = time.monotonic()
    try:
        status = lab_up(settings)
    except BaseException:
        lab_down(settings)  # a lab that failed to come up is still taken down
        raise
    print(f"\nlab up (first) in {time.monotonic() - started:.1f} s:\n{status.render()}")
    yield status
    close_standalone()
    removed = lab_down(settings)
    print(f"\nlab down removed: {removed}")
    leftovers = assert_nothing_left(lab_settings)
    assert not leftovers, f"lab down left these behind: {leftovers}"


def assert_nothing_left(lab: LabSettings) -> list[str]:
    """Everything 'up' can create, checked from the outside."""
    layout = LabLayout(lab)
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    if layout.netns in netns.split():
        found.append(f"namespace {layout.netns}")
    qemu = subprocess.run(
        ["pgrep", "-f", f"guest={lab.name}-"], capture_output=True, text=True
    ).stdout.split()
    found.extend(f"qemu pid {pid}" for pid in qemu)
    host_netns = Path("/proc/self/ns/net").stat().st_ino  # this test runs in the host namespace
    for process in ("libvirtd", "virtlogd", "dnsmasq"):  # ours ran in the lab namespace, never the host's
        for pid in subprocess.run(["pgrep", "-x", process], capture_output=True, text=True).stdout.split():
            if _alive(int(pid)) and Path(f"/proc/{pid}/ns/net").stat().st_ino != host_netns:
                found.append(f"{process} pid {pid} (in a namespace)")
    if layout.root.exists():
        found.append(str(layout.root))
    return found


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for PID 1 to reap it (it holds nothing but a pid)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.fixture(scope="session")
def machines(lab: LabStatus, lab_settings: LabSettings) -> dict[str, SshTarget]:
    """Every VM of the lab: the storage nodes and the backup server."""
    return lab_targets(lab_settings)


@pytest.fixture(scope="session")
def targets(machines: dict[str, SshTarget], lab_settings: LabSettings) -> dict[str, SshTarget]:
    """The storage nodes (DRBD, OCFS2)."""
    return {node: machines[node] for node in lab_settings.nodes}
