"""The lab itself, on real VMs: disks, network between guests, DRBD tooling, idempotent 'up'."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

import pytest

from flows.lab import LabStatus, lab_status, lab_up
from tasks.context import current_executor
from tasks.executor import Executor, HostKeyRejected, SshTarget, is_transport_error
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


def test_a_mebibyte_sent_on_stdin_arrives_whole(machines: dict[str, SshTarget]) -> None:
    """Files and configurations travel on stdin (secrets stay off argv): invoke read it one character per
    10 ms, so a 1 KiB file took 10 s and 100 KiB outlived the command's timeout."""
    text = secrets.token_hex(1 << 19)  # 1 MiB
    target = machines["nodea"]
    try:
        sent = current_executor().run(
            ["dd", "of=/tmp/hsf-stdin-test", "status=none"], target, stdin=text, timeout=60
        )
        assert sent.exit_code == 0
        digest = run(target, "sha256sum", "/tmp/hsf-stdin-test").split()[0]
        assert digest == hashlib.sha256(text.encode()).hexdigest()
    finally:
        run(target, "rm", "-f", "/tmp/hsf-stdin-test")


def test_drbd_tools_and_module_load(machines: dict[str, SshTarget]) -> None:
    for target in machines.values():
        assert "DRBDADM_VERSION" in run(target, "drbdadm", "--version")
        run(target, "modprobe", "drbd")
        assert run(target, "cat", "/proc/drbd").startswith("version: 8.4")


def test_borg_self_tests_pass_on_the_guest_cpu_once_then_stay_off(machines: dict[str, SshTarget]) -> None:
    """The image switches borg's per-command self tests off (a second each under TCG, on both ends of
    every command); borg allows that after one run on the machine, which is this."""
    for target in machines.values():
        assert run(target, "printenv", "BORG_SELFTEST").strip() == "disabled"  # sshd's SetEnv
        argv = ["env", "-u", "BORG_SELFTEST", "borg", "--debug", "help"]  # --version exits before them
        checked = current_executor().run(argv, target, timeout=60).stderr  # borg logs to stderr
        assert "self tests completed" in checked, checked


def test_each_vm_has_its_own_host_key(machines: dict[str, SshTarget]) -> None:
    fingerprints = {
        run(t, "ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub").split()[1] for t in machines.values()
    }
    assert len(fingerprints) == len(machines)


def test_second_up_changes_nothing(lab: LabStatus, settings: Settings) -> None:
    again = lab_up(settings)
    assert again.actions == []
    assert again.running == list(settings.lab.machines)


def test_a_host_key_that_is_not_pinned_is_one_line_and_never_retried(
    lab: LabStatus, machines: dict[str, SshTarget], tmp_path: Path
) -> None:
    nodea, nodeb = machines["nodea"], machines["nodeb"]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(
        HostKeyRejected, match=rf"the host key of {nodea.address}:22 is not in {empty}: check"
    ):
        Executor().run(["true"], nodea.model_copy(update={"known_hosts": empty}))
    wrong = tmp_path / "wrong_known_hosts"  # nodeb's key written down for nodea's address
    key = run(nodeb, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").split()
    wrong.write_text(f"{nodea.address} {key[0]} {key[1]}\n")
    with pytest.raises(HostKeyRejected, match=rf"the host key of {nodea.address}:22 differs from the one in"):
        Executor().run(["true"], nodea.model_copy(update={"known_hosts": wrong}))
    assert not is_transport_error(HostKeyRejected("true", 255, "", "nodea"))  # retries skip it
