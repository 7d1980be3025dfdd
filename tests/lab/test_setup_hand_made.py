"""Setup on nodes prepared by hand, as a user's hosts are: it refuses, or adopts when told, and never
changes anything before every precondition holds.

The running r0 is turned into a resource configured the seed's way (sha1, the secret "secret", port
7788, the same metadata and filesystem) that runs Primary, mounted, on nodeb, the node that is *not*
``primary_node``. At the end of the module r0 is setup's own again, Primary on nodea.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flows.lab import LabStatus
from flows.setup import setup
from tasks.cluster import drbd_resource, secret_block_name, shared_secret
from tasks.context import current_executor
from tasks.drbd import steps
from tasks.drbd.plan import Refused
from tasks.drbd.roles import switch_primary
from tasks.executor import CommandError, SshTarget
from tasks.lab.host import wait_until
from tasks.manifest import Entry, tree_manifest
from tasks.settings import Settings, load_settings

pytestmark = pytest.mark.lab

CONFIG = "/etc/drbd.d/r0.res"
HIDDEN_DRBDADM = "/usr/sbin/drbdadm.hsf-hidden"


def run(target: SshTarget, *argv: str, ok: tuple[int, ...] = (0,), stdin: str | None = None) -> str:
    return current_executor().run(list(argv), target, timeout=120, ok_codes=ok, stdin=stdin).stdout


def hand_made(settings: Settings) -> str:
    """A resource file as the seed wrote it by hand (no header: not setup's)."""
    hosts = "".join(
        f"  on {node} {{\n    device /dev/drbd0;\n    disk {settings.drbd.disk};\n"
        f"    address {settings.lab.address_of(node)}:7788;\n    meta-disk internal;\n  }}\n"
        for node in settings.lab.nodes
    )
    return (
        "resource r0 {\n  protocol C;\n  net {\n    cram-hmac-alg sha1;\n"
        f'    shared-secret "secret";\n  }}\n{hosts}}}\n'
    )


def healthy(target: SshTarget) -> str:
    state = wait_until(
        lambda: (s := steps.drbd_state(target, 0)).healthy and s, 120, f"r0 healthy on {target.name}"
    )
    return state.summary()


def snapshot(targets: dict[str, SshTarget]) -> dict[str, str]:
    """What must not change when setup refuses: each node's file, kernel config and DRBD state."""
    found = {}
    for node, target in targets.items():
        found[f"{node} file"] = run(target, "sha256sum", CONFIG)
        found[f"{node} kernel"] = run(target, "drbdsetup", "show", "r0")
        found[f"{node} state"] = steps.drbd_state(target, 0).summary()
        found[f"{node} mounts"] = run(target, "findmnt", "-n", "-o", "SOURCE,TARGET", "/mnt/r0", ok=(0, 1))
    return found


@pytest.fixture(scope="module")
def by_hand(lab: LabStatus, settings: Settings, targets: dict[str, SshTarget]) -> Iterator[dict[str, Entry]]:
    """r0 reconfigured by hand, Primary and mounted on nodeb, holding data; yields its manifest."""
    nodea, nodeb = targets["nodea"], targets["nodeb"]
    setup(settings)  # setup's own volume, Primary on nodea
    run(nodea, "sh", "-c", "mkdir -p /mnt/r0/precious && seq 1 200000 > /mnt/r0/precious/numbers && sync")
    run(nodea, "umount", "/mnt/r0")
    for target in targets.values():
        run(target, "drbdadm", "down", "r0")
        run(target, "dd", f"of={CONFIG}", "status=none", stdin=hand_made(settings))
    for target in targets.values():
        run(target, "drbdadm", "up", "r0")
    healthy(nodeb)
    run(nodeb, "drbdadm", "primary", "r0")
    run(nodeb, "mount", "/dev/drbd0", "/mnt/r0")
    yield tree_manifest.fn(nodeb, "/mnt/r0")
    # Whatever a test left: setup's own r0 again, Primary on nodea (the later modules expect it).
    for target in targets.values():
        run(target, "sh", "-c", f"test -e {HIDDEN_DRBDADM} && mv {HIDDEN_DRBDADM} /usr/sbin/drbdadm || true")
    report = setup(load_settings(drbd={"adopt_existing": True}))
    if report.primary != "nodea":
        resource = drbd_resource(settings, shared_secret(secret_block_name(settings)))
        switch_primary(targets, resource, settings.drbd.mountpoint, old=report.primary, new="nodea")
    assert setup(settings).steps == []


def test_a_hand_made_running_resource_is_refused_with_the_difference_and_nothing_changes(
    by_hand: dict[str, Entry], settings: Settings, targets: dict[str, SshTarget]
) -> None:
    before = snapshot(targets)
    with pytest.raises(Refused) as refused:
        setup(settings)
    message = str(refused.value)
    print(f"\n{message}")
    lines = message.splitlines()
    assert lines[0] == "nothing was changed:"
    assert lines[1].startswith("nodea: /etc/drbd.d/r0.res was not written by ha-storage-flows and differs")
    assert "set drbd.adopt_existing = true" in lines[1]
    assert '     shared-secret "******";' in message and "-    cram-hmac-alg sha1;" in message
    assert '"secret"' not in message
    assert any(line.startswith("nodeb: /etc/drbd.d/r0.res was not written") for line in lines)
    assert snapshot(targets) == before
    assert "7788" in before["nodeb kernel"]
    assert tree_manifest.fn(targets["nodeb"], "/mnt/r0") == by_hand


def test_a_wrong_disk_stops_the_setup_before_any_change(
    by_hand: dict[str, Entry], targets: dict[str, SshTarget]
) -> None:
    before = snapshot(targets)
    with pytest.raises(Refused) as refused:
        setup(load_settings(drbd={"disk": "/dev/vdz", "adopt_existing": True}))
    lines = str(refused.value).splitlines()
    print("\n" + "\n".join(lines))
    for node in targets:
        assert f"{node}: /dev/vdz is not a block device on this host: check drbd.disk" in lines
        assert any(
            line.startswith(f"{node}: applying the settings to the running r0 would detach") for line in lines
        )
    assert snapshot(targets) == before  # nobody is Diskless


def test_a_missing_tool_stops_the_setup_before_any_change_and_apt_errors_are_shown(
    by_hand: dict[str, Entry], targets: dict[str, SshTarget]
) -> None:
    nodeb = targets["nodeb"]
    before = snapshot(targets)
    run(nodeb, "mv", "/usr/sbin/drbdadm", HIDDEN_DRBDADM)
    try:
        with pytest.raises(Refused) as refused:
            setup(load_settings(drbd={"adopt_existing": True}))
        assert str(refused.value).splitlines()[1:] == [
            "nodeb: missing drbdadm (drbd-utils): install the package, or set drbd.install_packages = true"
        ]
        # Allowed to install: the guests reach no package source, and apt's own error is the failure.
        with pytest.raises(CommandError) as failed:
            setup(load_settings(drbd={"adopt_existing": True, "install_packages": True}))
        print(f"\n{failed.value}")
        assert failed.value.target == "nodeb" and "apt-get update" in failed.value.command
    finally:
        run(nodeb, "mv", HIDDEN_DRBDADM, "/usr/sbin/drbdadm")
    assert snapshot(targets) == before


def test_a_hand_made_resource_is_adopted_when_the_settings_say_so(
    by_hand: dict[str, Entry], settings: Settings, targets: dict[str, SshTarget]
) -> None:
    report = setup(load_settings(drbd={"adopt_existing": True}))
    print(f"\n{report.render()}")
    assert report.primary == "nodeb"  # the running primary, not primary_node: no role change, no mkfs
    assert not any(step.startswith(("mkfs", "create_md", "initial_promote")) for step in report.steps)
    assert len(report.kept_files) == 2
    for kept in report.kept_files:
        node, path = kept.split(":", 1)
        assert run(targets[node], "cat", path) == hand_made(settings)
        assert run(targets[node], "head", "-n", "1", CONFIG).startswith("# Written by ha-storage-flows")
        kernel = run(targets[node], "drbdsetup", "show", "r0")
        assert ":7789" in kernel and '"sha256"' in kernel and ":7788" not in kernel
        assert "cs:Connected" in healthy(targets[node])
    assert tree_manifest.fn(targets["nodeb"], "/mnt/r0") == by_hand
    assert setup(settings).steps == []  # adopted: the next run changes nothing
