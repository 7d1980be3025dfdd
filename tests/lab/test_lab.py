"""The lab itself, on real VMs: disks, network between guests, DRBD tooling, idempotent 'up'."""

from __future__ import annotations

import json

import pytest

from flows.lab import LabStatus, lab_status, lab_up
from tasks.context import current_executor
from tasks.executor import SshTarget
from tasks.settings import LabSettings, Settings

pytestmark = pytest.mark.lab


def run(target: SshTarget, *argv: str) -> str:
    return current_executor().run(list(argv), target, timeout=60).stdout


def test_two_vms_run_and_answer_ssh(lab: LabStatus, settings: Settings, lab_settings: LabSettings) -> None:
    assert [vm.node for vm in lab.vms] == list(lab_settings.machines)  # storage nodes, backup server
    assert all(vm.state == "running" and vm.ssh for vm in lab.vms)
    status = lab_status(settings)
    assert status.running == list(lab_settings.machines)
    assert all(vm.ssh for vm in status.vms)


def test_each_vm_has_its_hostname_and_extra_disk(
    machines: dict[str, SshTarget], lab_settings: LabSettings
) -> None:
    for node, target in machines.items():
        assert run(target, "hostname").strip() == node
        disks = json.loads(run(target, "lsblk", "--json", "--bytes", "--nodeps", "-o", "NAME,SIZE,TYPE"))
        sizes = {d["name"]: int(d["size"]) for d in disks["blockdevices"]}
        assert sizes["vdb"] == lab_settings.data_disk_gib * 1024**3, sizes  # the DRBD backing disk
        assert "vda" in sizes  # root overlay


def test_vms_reach_each_other_on_the_lab_network(
    machines: dict[str, SshTarget], lab_settings: LabSettings
) -> None:
    nodes = list(lab_settings.machines)
    for node in nodes:
        for peer in nodes:
            if peer != node:
                out = run(machines[node], "ping", "-c", "2", "-W", "3", str(lab_settings.address_of(peer)))
                assert " 0% packet loss" in out, out


def test_drbd_tools_and_module_load(machines: dict[str, SshTarget]) -> None:
    for target in machines.values():
        assert "DRBDADM_VERSION" in run(target, "drbdadm", "--version")
        run(target, "modprobe", "drbd")
        assert run(target, "cat", "/proc/drbd").startswith("version: 8.4")


def test_each_vm_has_its_own_host_key(machines: dict[str, SshTarget]) -> None:
    fingerprints = {
        run(t, "ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub").split()[1] for t in machines.values()
    }
    assert len(fingerprints) == len(machines)


def test_second_up_changes_nothing(lab: LabStatus, settings: Settings) -> None:
    again = lab_up(settings)
    assert again.actions == []
    assert again.running == list(settings.lab.machines)
