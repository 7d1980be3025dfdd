"""Lab flows under the Prefect test harness, on a lab that does not exist: nothing is created."""

from __future__ import annotations

import subprocess
from pathlib import Path

from flows.lab import lab_down, lab_status, lab_up
from tasks.lab.state import LabLayout
from tasks.settings import LabSettings, Settings, load_settings


def _ghost_lab(tmp_path: Path) -> Settings:
    # An explicit URI that answers nothing keeps this flow away from any running libvirtd.
    lab = LabSettings(
        name="ghost",
        state_dir=tmp_path / "state",
        libvirt_uri="qemu:///system?socket=/nonexistent/hsf-ghost-sock",
    )
    return load_settings(lab=lab)


def test_status_of_an_absent_lab_reports_absent_vms(prefect_harness: None, tmp_path: Path) -> None:
    status = lab_status(_ghost_lab(tmp_path))
    assert [(vm.node, vm.state, vm.ssh) for vm in status.vms] == [
        ("nodea", "absent", None),
        ("nodeb", "absent", None),
        ("backup", "absent", None),
    ]
    assert status.netns is None and status.daemons == {}
    assert "not answering" in status.libvirt_uri


def test_down_of_an_absent_lab_plans_nothing_and_creates_nothing(
    prefect_harness: None, tmp_path: Path
) -> None:
    settings = _ghost_lab(tmp_path)
    lab = settings.lab
    assert lab_down(settings) == []
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert LabLayout(lab).netns not in namespaces
    assert not lab.state_dir.exists()


def test_dry_run_up_plans_the_whole_lab_and_creates_nothing(prefect_harness: None, tmp_path: Path) -> None:
    lab = LabSettings(name="ghost", state_dir=tmp_path / "state", image_cache_dir=tmp_path / "images")
    status = lab_up(load_settings(lab=lab, dry_run=True))
    assert status.dry_run
    planned = [action.split(":")[0] for action in status.actions]
    for node in lab.machines:
        assert f"prepare_vm_files({node})" in planned and f"start_vm({node})" in planned
    assert not (tmp_path / "state").exists() and not (tmp_path / "images").exists()
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert LabLayout(lab).netns not in namespaces
