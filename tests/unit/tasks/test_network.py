"""tasks/network.py: the link-cut ruleset, checked by the real nft (check mode: nothing is applied)."""

from __future__ import annotations

import subprocess

import pytest

from tasks.network import CUT_TABLE, nft_delete_table_argv, nft_load_argv, render_cut_ruleset


def test_the_cut_drops_only_the_replication_ports_both_ways() -> None:
    ruleset = render_cut_ruleset([7790, 7789, 7790])  # each node's own port, once each
    assert ruleset.startswith(f"table inet {CUT_TABLE} {{")
    for chain in ("input", "output"):
        rules = "tcp dport { 7789, 7790 } drop; tcp sport { 7789, 7790 } drop;"
        assert f"chain {chain} {{ type filter hook {chain} priority 0; {rules} }}" in ruleset
    assert "udp" not in ruleset  # corosync's knet stays up


def test_nft_accepts_the_ruleset() -> None:
    checked = subprocess.run(
        nft_load_argv(check_only=True), input=render_cut_ruleset([7790]), capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    listed = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True)
    assert CUT_TABLE not in listed.stdout  # check mode applied nothing


def test_nft_rejects_a_broken_ruleset() -> None:
    broken = render_cut_ruleset([7789]).replace("drop", "dorp", 1)
    checked = subprocess.run(nft_load_argv(check_only=True), input=broken, capture_output=True, text=True)
    assert checked.returncode != 0 and "dorp" in checked.stderr


def test_builders() -> None:
    assert nft_load_argv() == ["nft", "-f", "-"]
    assert nft_load_argv(check_only=True) == ["nft", "--check", "-f", "-"]
    assert nft_delete_table_argv() == ["nft", "delete", "table", "inet", CUT_TABLE]


def test_a_cut_without_a_port_is_refused() -> None:
    with pytest.raises(ValueError, match="no port to cut"):
        render_cut_ruleset([])
