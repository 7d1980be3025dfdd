"""Unit tests for tasks/pacemaker/commands.py: every argv builder, exactly.

crm_mon, stonith_admin, sbd, crm and corosync are not installed here, so nothing is run: each argv is
compared with the command as measured on the lab (pacemaker 2.1.5), and where the lab's captured output
records its own command line (``<pacemaker-result request="…">``) with that.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tasks.pacemaker import commands as c

CAPTURED = Path(__file__).parents[3] / "fixtures" / "pacemaker" / "captured"
DEVICE = "/dev/disk/by-id/virtio-sbd"

ARGVS: dict[str, tuple[list[str], list[str]]] = {
    "crm_mon": (
        c.crm_mon_argv(),
        ["crm_mon", "--one-shot", "--inactive", "--output-as=xml", "--fence-history=3"],
    ),
    "crm_mon_text": (c.crm_mon_text_argv(), ["crm_mon", "--one-shot", "--inactive", "--fence-history=1"]),
    "quorum_members": (c.quorum_members_argv(), ["corosync-quorumtool", "-l"]),
    "fence_history": (
        c.fence_history_argv("nodeb"),
        ["stonith_admin", "--history", "nodeb", "--verbose", "--output-as=xml"],
    ),
    "constraints": (c.constraints_argv(), ["cibadmin", "--query", "--scope", "constraints"]),
    "resources": (c.resources_argv(), ["cibadmin", "--query", "--scope", "resources"]),
    "load_update": (c.load_update_argv(), ["crm", "configure", "load", "update", "-"]),
    "sbd_dump": (c.sbd_dump_argv(DEVICE), ["sbd", "-d", DEVICE, "dump"]),
    "sbd_create": (
        c.sbd_create_argv(DEVICE, 5, 10),
        ["sbd", "-d", DEVICE, "-1", "5", "-4", "10", "create"],
    ),
    "sbd_list": (c.sbd_list_argv(DEVICE), ["sbd", "-d", DEVICE, "list"]),
    "systemctl_enable": (
        c.systemctl_argv("enable", ("corosync", "pacemaker", "sbd")),
        ["env", "SYSTEMCTL_SKIP_SYSV=1", "systemctl", "enable", "corosync", "pacemaker", "sbd"],
    ),
    "systemctl_start": (
        c.systemctl_argv("start", ["corosync", "pacemaker"]),
        ["systemctl", "start", "corosync", "pacemaker"],
    ),
    "systemctl_stop": (
        c.systemctl_argv("stop", ["pacemaker", "corosync"]),
        ["systemctl", "stop", "pacemaker", "corosync"],
    ),
    "systemctl_disable": (
        c.systemctl_argv("disable", ["sbd"]),
        ["env", "SYSTEMCTL_SKIP_SYSV=1", "systemctl", "disable", "sbd"],
    ),
    "is_active": (
        c.is_active_argv(("corosync", "pacemaker", "sbd")),
        ["systemctl", "is-active", "corosync", "pacemaker", "sbd"],
    ),
    "is_enabled": (
        c.is_enabled_argv(["corosync", "pacemaker"]),
        ["systemctl", "is-enabled", "corosync", "pacemaker"],
    ),
    "corosync_reload": (c.corosync_reload_argv(), ["corosync-cfgtool", "-R"]),
    "sha256": (c.sha256_argv(c.COROSYNC_AUTHKEY), ["sha256sum", "/etc/corosync/authkey"]),
    "mkdir": (
        c.mkdir_argv("/var/lib/ha-storage-flows"),
        ["mkdir", "-p", "-m", "0700", "/var/lib/ha-storage-flows"],
    ),
}


@pytest.mark.parametrize(("argv", "expected"), list(ARGVS.values()), ids=list(ARGVS))
def test_argv(argv: list[str], expected: list[str]) -> None:
    assert argv == expected


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("crm_mon-healthy.xml", c.crm_mon_argv()),
        ("crm_mon-peer-fenced.xml", c.crm_mon_argv()),
        ("fence-history-nodeb.xml", c.fence_history_argv("nodeb")),
    ],
)
def test_the_captured_output_came_from_this_very_command(name: str, argv: list[str]) -> None:
    """pacemaker's XML names the command that produced it: the parsers' fixtures are this argv's output."""
    request = ET.fromstring((CAPTURED / name).read_text()).get("request")
    assert request == " ".join(argv)


def test_sbd_create_takes_the_timeouts_it_is_given() -> None:
    argv = c.sbd_create_argv("/dev/sdz", 10, 20)
    assert argv[argv.index("-1") + 1] == "10"  # -1: watchdog timeout
    assert argv[argv.index("-4") + 1] == "20"  # -4: msgwait
    assert (argv[2], argv[-1]) == ("/dev/sdz", "create")


def test_the_loaded_hash_lives_in_a_directory_mkdir_makes() -> None:
    """load_cib makes the hash file's directory with mkdir_argv, then writes the hash into it."""
    directory = c.CIB_LOADED_HASH.rsplit("/", 1)[0]
    assert (directory, c.CIB_LOADED_HASH) == (
        "/var/lib/ha-storage-flows",
        "/var/lib/ha-storage-flows/cib.sha256",
    )
    assert c.mkdir_argv(directory)[-1] == directory


def test_file_paths_and_tools() -> None:
    assert (c.COROSYNC_CONF, c.COROSYNC_AUTHKEY, c.SBD_DEFAULT) == (
        "/etc/corosync/corosync.conf",
        "/etc/corosync/authkey",
        "/etc/default/sbd",
    )
    assert c.CLUSTER_TOOLS == ("corosync", "pacemakerd", "crm", "crm_mon", "cibadmin")
    assert c.CLUSTER_PACKAGES == ("pacemaker", "corosync", "crmsh", "resource-agents", "fence-agents")
    assert (c.SBD_TOOLS, c.SBD_PACKAGES) == (("sbd",), ("sbd",))


def test_builders_return_fresh_lists() -> None:
    """Callers may append to an argv: doing so must not leak into the next call."""
    first = c.crm_mon_argv()
    first.append("--extra")
    assert "--extra" not in c.crm_mon_argv()
    units = ["corosync"]
    argv = c.systemctl_argv("start", units)
    argv.append("pacemaker")
    assert units == ["corosync"]


def test_every_builder_is_covered() -> None:
    """A new builder without a test here fails: each ``c.<builder>`` must appear in this file."""
    source = Path(__file__).read_text()
    builders = {name for name in dir(c) if name.endswith("_argv")}
    assert {"crm_mon_argv", "sbd_create_argv", "load_update_argv", "systemctl_argv"} <= builders
    assert {b for b in builders if not re.search(rf"\bc\.{b}\b", source)} == set()
