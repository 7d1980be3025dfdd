"""The lab's VMs driven as a user's own hosts: ``target = "inventory"``, each host given by address, key
and known_hosts, the CLI run as a user runs it. The flows do not know they are lab VMs: no libvirt, no
lab namespace of their own (the command runs inside the lab's network namespace, the way a control
host sits on the storage network). Power comes back through ``failover.power_on_command``, as it would
through ``ipmitool``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from flows.lab import LabStatus
from tasks.context import current_executor
from tasks.drbd import steps
from tasks.executor import SshTarget
from tasks.lab.state import LabLayout
from tasks.settings import Settings

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]


def inventory_toml(settings: Settings, names: dict[str, str] | None = None) -> str:
    """The settings file a user writes for two hosts (``names``: node → inventory name, to mislabel)."""
    layout = LabLayout(settings.lab)
    hosts = "".join(
        f'[[inventory]]\nname = "{(names or {}).get(node, node)}"\n'
        f'address = "{settings.lab.address_of(node)}"\n'
        f'key_file = "{layout.client_key}"\nknown_hosts = "{layout.known_hosts}"\n\n'
        for node in settings.lab.nodes
    )
    return (
        'target = "inventory"\n\n[failover]\nfault = "sysrq-poweroff"\n'
        f'power_on_command = ["virsh", "-c", "qemu:///system", "start", "{settings.lab.name}-{{node}}"]\n\n'
        f"{hosts}"
    )


def cli(settings: Settings, tmp_path: Path, toml: str, module: str) -> subprocess.CompletedProcess[str]:
    """``python -m <module>`` with the settings file, from inside the lab's network namespace."""
    config = tmp_path / "hsf.toml"
    config.write_text(toml)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HSF_", "PREFECT_"))},
        "HSF_CONFIG": str(config),
        "PREFECT_HOME": str(tmp_path / "prefect"),  # its own temporary server, as a first-time user has
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    }
    started = time.monotonic()
    argv = [
        "ip",
        "netns",
        "exec",
        LabLayout(settings.lab).netns,
        str(ROOT / ".venv/bin/python"),
        "-m",
        module,
    ]
    result = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=1800)
    print(f"\n$ python -m {module}  (exit {result.returncode}, {time.monotonic() - started:.0f} s)")
    print(result.stdout)
    print(result.stderr[-3000:])
    return result


def run(target: SshTarget, *argv: str, ok: tuple[int, ...] = (0,)) -> str:
    return current_executor().run(list(argv), target, timeout=120, ok_codes=ok).stdout


def test_a_host_whose_name_is_not_its_hostname_stops_setup_before_any_change(
    lab: LabStatus, settings: Settings, targets: dict[str, SshTarget], tmp_path: Path
) -> None:
    before = {node: run(t, "sha256sum", "/etc/drbd.d/r0.res", ok=(0, 1)) for node, t in targets.items()}
    result = cli(settings, tmp_path, inventory_toml(settings, {"nodeb": "store2"}), "flows.setup")
    assert result.returncode == 3
    assert (
        "store2: the host's name is 'nodeb', and DRBD finds its section by that name: "
        "name the inventory host 'nodeb' (or rename the host)"
    ) in result.stderr.splitlines()
    assert "Traceback" not in result.stderr + result.stdout
    assert {
        node: run(t, "sha256sum", "/etc/drbd.d/r0.res", ok=(0, 1)) for node, t in targets.items()
    } == before


def test_setup_and_the_failover_drill_on_hosts_given_as_an_inventory(
    lab: LabStatus, settings: Settings, targets: dict[str, SshTarget], tmp_path: Path
) -> None:
    toml = inventory_toml(settings)
    built = cli(settings, tmp_path, toml, "flows.setup")
    assert built.returncode == 0, built.stderr
    drill = cli(settings, tmp_path, toml, "flows.failover")
    assert drill.returncode == 0, drill.stderr
    assert re.search(r"^  bytes lost +0 of [\d,]+$", drill.stdout, re.MULTILINE)
    assert "Have you lost data after destroying one node?  No." in drill.stdout
    assert "on nodeb after nodea was powered off" in drill.stdout
    assert re.search(r"^  killed node confirmed off SSH +\+[\d.]+ s$", drill.stdout, re.MULTILINE)
    assert "Traceback" not in drill.stderr + drill.stdout
    nodea, nodeb = targets["nodea"], targets["nodeb"]
    assert steps.drbd_state(nodea, 0).summary() == "cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate"
    assert steps.drbd_state(nodeb, 0).summary() == "cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate"
    assert "/dev/drbd0" in run(nodea, "findmnt", "-n", "-o", "SOURCE", settings.drbd.mountpoint)
    again = cli(settings, tmp_path, toml, "flows.setup")
    assert again.returncode == 0 and "changes: none (already set up)" in again.stdout
