"""Three nodes on the lab: the stacked volume (r0 on nodea/nodeb, r0-u stacked on it with its third copy on
nodec), its refusals, the lower-tier failover and the loss of the whole lower site with protocol A and C.

The module runs last: it takes the high-availability volume the earlier modules leave down, blanks both
lower disks and boots nodec (the lab's VM for ``drbd.third_node``, after the backup VM).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.ha_upgrade import ha_upgrade
from flows.lab import LabStatus, lab_up
from flows.lower_failover import lower_failover
from flows.setup import setup
from flows.site_loss import site_loss
from tasks.context import current_executor
from tasks.drbd import steps
from tasks.drbd.plan import Refused
from tasks.executor import SshTarget
from tasks.lab.state import LabLayout, lab_targets
from tasks.settings import Settings, SettingsError, load_settings

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
# Blank disks need no initial sync; 67 activity-log extents bound a crashed Primary's resync to 268 MiB.
STACKED = {"topology": "stacked", "initial_sync": "skip"}


def run(target: SshTarget, *argv: str, ok: tuple[int, ...] = (0,)) -> str:
    return current_executor().run(list(argv), target, timeout=300, ok_codes=ok).stdout


def stacked_settings(**drbd: object) -> Settings:
    return load_settings(drbd={**STACKED, **drbd})


def snapshot(nodes: dict[str, SshTarget]) -> dict[str, str]:
    """What a refusal must leave as it is: each node's DRBD states, resource files and mounts."""
    found = {}
    for node, target in nodes.items():
        states = [steps.drbd_state(target, minor).summary() for minor in (0, 10)]
        files = run(
            target, "sh", "-c", "sha256sum /etc/drbd.d/*.res; findmnt -n /mnt/r0; ip -br address", ok=(0, 1)
        )
        found[node] = "\n".join([*states, files])
    return found


@pytest.fixture(scope="module")
def nodes(lab: LabStatus, settings: Settings) -> Iterator[dict[str, SshTarget]]:
    """nodec booted; the earlier modules' volume taken down and every node's disk blank again."""
    started = time.monotonic()
    status = lab_up(stacked_settings())
    print(f"\nnodec booted in {time.monotonic() - started:.1f} s:\n{status.render()}")
    everyone = lab_targets(stacked_settings().lab)
    disk = settings.drbd.disk
    for node in ("nodea", "nodeb", "nodec"):
        target = everyone[node]
        run(target, "umount", "/mnt/r0", ok=(0, 32))
        for down in (["--stacked", "down", "r0-u"], ["down", "r0-u"], ["down", "r0"]):
            run(target, "drbdadm", *down, ok=(0, 1, 10, 11, 20))
        steps.wipe_disk.fn(target, disk)
        run(target, "rm", "-f", "/etc/drbd.d/r0.res", "/etc/drbd.d/r0-u.res")
    yield everyone


def test_setup_builds_the_stacked_volume_every_node_recognises_it_and_a_second_run_changes_nothing(
    nodes: dict[str, SshTarget],
) -> None:
    report = setup(stacked_settings())
    print(f"\n{report.render()}")
    assert (report.upper, report.third_node, report.device) == ("r0-u", "nodec", "/dev/drbd10")
    assert report.filesystem_seen == {"nodea": "ext4", "nodeb": "ext4", "nodec": "ext4"}
    assert "al-extents 67;" in run(nodes["nodea"], "cat", "/etc/drbd.d/r0.res")
    for node in ("nodea", "nodec"):
        assert steps.drbd_state(nodes[node], 10).healthy, f"r0-u on {node}"
    assert "10.77.0.10/24" in run(nodes["nodea"], "ip", "-br", "address", "show", "eth0")
    assert "10.77.0.10/24" not in run(nodes["nodeb"], "ip", "-br", "address", "show", "eth0")
    again = setup(stacked_settings())
    assert again.steps == []


def test_bad_combinations_are_refused_and_change_nothing(
    nodes: dict[str, SshTarget], settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(SettingsError, match="the third node 'nodeb' is a lab VM already"):
        stacked_settings(third_node="nodeb")
    before = snapshot(nodes)
    with pytest.raises(
        Refused, match=r"drbd\.topology is 'stacked': OCFS2 dual-primary and a stacked copy exclude"
    ):
        ha_upgrade(stacked_settings())
    with pytest.raises(Refused, match=r"r0 carries a stacked third copy \(nodea: /dev/drbd10\)"):
        ha_upgrade(settings)  # two-node settings, a stacked volume on the nodes
    assert snapshot(nodes) == before
    # The upper resource's file on the lower Secondary written by someone else: refused before any change.
    kept = run(nodes["nodeb"], "cat", "/etc/drbd.d/r0-u.res")
    run(nodes["nodeb"], "sh", "-c", "echo '# by hand' > /etc/drbd.d/r0-u.res")
    try:
        with pytest.raises(
            Refused, match=r"nodeb: /etc/drbd\.d/r0-u\.res was not written by ha-storage-flows"
        ):
            setup(stacked_settings())
    finally:
        current_executor().run(["dd", "of=/etc/drbd.d/r0-u.res", "status=none"], nodes["nodeb"], stdin=kept)
    before = snapshot(nodes)
    # A third node that does not answer SSH (nothing listens on the port given), on hosts given as an
    # inventory: one line, nothing changed.
    unanswered = _inventory_cli(settings, tmp_path, third_port=2222)
    assert unanswered.returncode == 5, unanswered.stderr
    [line] = [line for line in unanswered.stderr.splitlines() if line.startswith("[nodec]")]
    assert (
        line.startswith("[nodec] SSH transport error")
        and "Unable to connect to port 2222 on 10.77.0.14" in line
    )
    assert "Traceback" not in unanswered.stderr
    assert snapshot(nodes) == before


def _inventory_cli(settings: Settings, home: Path, third_port: int) -> subprocess.CompletedProcess[str]:
    """``python -m flows.setup`` for the lab's VMs given as a user's three hosts, from inside the lab's
    network namespace, the third reached on SSH port ``third_port``."""
    layout = LabLayout(settings.lab)
    lab = stacked_settings().lab
    ports = {"nodea": 22, "nodeb": 22, "nodec": third_port}
    hosts = "".join(
        f'[[inventory]]\nname = "{name}"\naddress = "{lab.address_of(name)}"\nport = {port}\n'
        f'key_file = "{layout.client_key}"\nknown_hosts = "{layout.known_hosts}"\n\n'
        for name, port in ports.items()
    )
    config = home / "hsf.toml"
    config.write_text(
        'target = "inventory"\n\n[drbd]\ntopology = "stacked"\nthird_node = "nodec"\n'
        f'stacked_address = "10.77.0.10/24"\n\n{hosts}'
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HSF_", "PREFECT_"))},
        "HSF_CONFIG": str(config),
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    }
    argv = ["ip", "netns", "exec", layout.netns, str(ROOT / ".venv/bin/python"), "-m", "flows.setup"]
    return subprocess.run(argv, env=env, cwd=home, capture_output=True, text=True, timeout=600)


def test_the_lower_tier_failover_moves_the_upper_resource_and_loses_nothing(
    nodes: dict[str, SshTarget],
) -> None:
    report = lower_failover(stacked_settings())
    print(f"\n{report.render()}")
    assert (report.failed, report.survivor) == ("nodea", "nodeb")
    assert report.writes.lost == 0 and report.writes.acked > 0
    assert {check.node for check in report.writes.checks} == {"nodea", "nodeb", "nodec"}
    assert report.third_reconnected_s < report.service_s + 30, "the third node did not follow the address"
    assert any("arping" in command for command in report.commands)
    assert steps.drbd_state(nodes["nodea"], 10).role == "Primary"  # back where it was served


def test_losing_the_lower_site_with_protocol_a_reports_the_recovery_point_and_fails_back(
    nodes: dict[str, SshTarget],
) -> None:
    report = site_loss(stacked_settings())
    print(f"\n{report.render()}")
    point = report.recovery_point  # measured on nodec when it was promoted, whatever it is
    assert point.protocol == "A" and point.acked > 0
    assert f"Recovery point: {point.describe()}" in report.render()
    assert bool(point.files) == bool(point.lost)
    assert not report.failed, report.verdict()  # the failback lost nothing the third node held
    assert set(report.manifest_differences) == {"nodea", "nodeb", "nodec"}
    assert report.manifest_files >= 3  # both writers' records and the traffic
    assert steps.drbd_state(nodes["nodea"], 10).role == "Primary"


def test_losing_the_lower_site_with_protocol_c_loses_no_acknowledged_write(
    nodes: dict[str, SshTarget],
) -> None:
    synchronous = stacked_settings(upper_protocol="C")
    changed = setup(synchronous)  # the running upper resource takes protocol C
    assert any(step.startswith("adjust(") for step in changed.steps), changed.steps
    assert "protocol C;" in run(nodes["nodec"], "cat", "/etc/drbd.d/r0-u.res")
    report = site_loss(synchronous)
    print(f"\n{report.render()}")
    assert report.recovery_point.protocol == "C"
    assert report.recovery_point.lost == 0 and report.recovery_point.lost_bytes == 0
    assert not report.failed and report.writes.lost == 0
