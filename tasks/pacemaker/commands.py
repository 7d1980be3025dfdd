"""Pure argv builders, one per Pacemaker / Corosync / SBD step. Nothing here runs anything.

Files are written with the generic builders of ``tasks.drbd.commands`` (``dd`` from stdin, ``chmod``,
``mv``): secrets and configurations travel on stdin, never on a command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

COROSYNC_CONF = "/etc/corosync/corosync.conf"
COROSYNC_AUTHKEY = "/etc/corosync/authkey"
SBD_DEFAULT = "/etc/default/sbd"
# sha256 of the crm text last loaded into the CIB by setup: the CIB's own XML differs in form from it,
# so this says whether the settings changed since; the CIB is read separately for the resources.
CIB_LOADED_HASH = "/var/lib/ha-storage-flows/cib.sha256"

# What the cluster needs on a node, and the Debian packages that bring it (ocf:linbit:drbd is drbd-utils').
CLUSTER_TOOLS = ("corosync", "pacemakerd", "crm", "crm_mon", "cibadmin")
SBD_TOOLS = ("sbd",)
CLUSTER_PACKAGES = ("pacemaker", "corosync", "crmsh", "resource-agents", "fence-agents")
SBD_PACKAGES = ("sbd",)

Verb = Literal["start", "stop", "enable", "disable"]


def crm_mon_argv() -> list[str]:
    """The cluster's state as XML, once: nodes, resources with their roles, failures and every fencing
    (``--fence-history=3``: all of them, with their times)."""
    return ["crm_mon", "--one-shot", "--inactive", "--output-as=xml", "--fence-history=3"]


def crm_mon_text_argv() -> list[str]:
    """The cluster's state as an operator reads it, for reports."""
    return ["crm_mon", "--one-shot", "--inactive", "--fence-history=1"]


def quorum_members_argv() -> list[str]:
    """The current corosync membership, one node per line (cheap: no Pacemaker client)."""
    return ["corosync-quorumtool", "-l"]


def fence_history_argv(node: str) -> list[str]:
    """Every fencing of ``node`` as XML (a fraction of crm_mon's cost to a busy node). ``--verbose``: without
    it pacemaker 2.1.5 showed one older fencing instead of the latest (measured after two fencings)."""
    return ["stonith_admin", "--history", node, "--verbose", "--output-as=xml"]


def constraints_argv() -> list[str]:
    """The CIB's constraints as XML (crm-fence-peer.sh's ``drbd-fence-by-handler-…`` among them)."""
    return ["cibadmin", "--query", "--scope", "constraints"]


def resources_argv() -> list[str]:
    """The CIB's configured resources as XML (exit 105 when the section is empty)."""
    return ["cibadmin", "--query", "--scope", "resources"]


def load_update_argv() -> list[str]:
    """Merge crm text from stdin into the CIB. ``update``, never ``replace``: what the text does not name
    (crm-fence-peer.sh's constraint while a peer is fenced) is left alone."""
    return ["crm", "configure", "load", "update", "-"]


def sbd_dump_argv(device: str) -> list[str]:
    """The SBD header: its timeouts (exit 1 when the disk has no SBD header)."""
    return ["sbd", "-d", device, "dump"]


def sbd_create_argv(device: str, watchdog_s: int, msgwait_s: int) -> list[str]:
    """Write a fresh SBD header and empty slots. Only while the cluster is stopped on every node."""
    return ["sbd", "-d", device, "-1", str(watchdog_s), "-4", str(msgwait_s), "create"]


def sbd_list_argv(device: str) -> list[str]:
    """Every node's slot and the message in it (``clear``, ``reset``, …)."""
    return ["sbd", "-d", device, "list"]


def systemctl_argv(verb: Verb, units: Sequence[str]) -> list[str]:
    """Enabling or disabling skips Debian's SysV hooks (``SYSTEMCTL_SKIP_SYSV``): corosync, pacemaker and
    sbd ship native units, so the rc.d links ``update-rc.d`` keeps matter only without systemd, and it
    cost 7 s a unit on the lab's guests. The daemon reload stays: sbd's RequiredBy=corosync needs it."""
    if verb in ("enable", "disable"):
        return ["env", "SYSTEMCTL_SKIP_SYSV=1", "systemctl", verb, *units]
    return ["systemctl", verb, *units]


def is_active_argv(units: Sequence[str]) -> list[str]:
    """One line per unit (active, inactive, failed, …); exit 3 when any is not active."""
    return ["systemctl", "is-active", *units]


def is_enabled_argv(units: Sequence[str]) -> list[str]:
    """One line per unit (enabled, disabled, …); exit 1 when any is not enabled."""
    return ["systemctl", "is-enabled", *units]


def corosync_reload_argv() -> list[str]:
    """Every node's corosync rereads corosync.conf (nodelist, token; not the crypto or the name)."""
    return ["corosync-cfgtool", "-R"]


def sha256_argv(path: str) -> list[str]:
    """``<hex>  <path>`` (exit 1 when the file does not exist)."""
    return ["sha256sum", path]


def mkdir_argv(path: str) -> list[str]:
    return ["mkdir", "-p", "-m", "0700", path]
