"""Cutting a node's replication link inside the node (nftables), and healing it: the link-cut fault.

The ruleset is one table of our own, so healing deletes exactly what the cut added and nothing of the
host's own firewall. Pure builders and a renderer; the steps run them through the executor.
"""

from __future__ import annotations

from collections.abc import Sequence

from tasks.context import current_executor
from tasks.executor import SshTarget
from tasks.step import step

CUT_TABLE = "hsf_link_cut"


def render_cut_ruleset(ports: Sequence[int], table: str = CUT_TABLE) -> str:
    """Drop every TCP segment to or from ``ports`` in both directions, nothing else: DRBD's connection
    runs between the two nodes' ports (each may listen on its own), while corosync's knet (UDP) keeps
    the cluster membership, so only the replication link is cut."""
    if not ports:
        raise ValueError("no port to cut")
    listed = ", ".join(str(port) for port in sorted(set(ports)))
    rules = f"tcp dport {{ {listed} }} drop; tcp sport {{ {listed} }} drop;"
    return "\n".join(
        (
            f"table inet {table} {{",
            f"    chain input {{ type filter hook input priority 0; {rules} }}",
            f"    chain output {{ type filter hook output priority 0; {rules} }}",
            "}",
            "",
        )
    )


def nft_load_argv(check_only: bool = False) -> list[str]:
    """Apply (or with ``check_only`` only validate) the ruleset on stdin, atomically."""
    return ["nft", *(["--check"] if check_only else []), "-f", "-"]


def nft_delete_table_argv(table: str = CUT_TABLE) -> list[str]:
    """Remove the cut's table (exit 1 when it does not exist)."""
    return ["nft", "delete", "table", "inet", table]


@step(name="cut-replication-link", timeout_seconds=60, retry_transport=True)
def cut_link(target: SshTarget, ports: Sequence[int]) -> None:
    current_executor().run(nft_load_argv(), target, stdin=render_cut_ruleset(ports))


@step(name="heal-replication-link", timeout_seconds=60, retry_transport=True)
def heal_link(target: SshTarget) -> None:
    """Delete the cut's table; a link that was never cut is healed already."""
    current_executor().run(nft_delete_table_argv(), target, ok_codes=(0, 1))
