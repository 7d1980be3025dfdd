"""tasks/pacemaker/model.py: the cluster's models and the three files they render.

The renderers are compared with the files of the Pacemaker feasibility spike, which ran 9 automatic
failovers on the TCG lab with them: tests/fixtures/pacemaker/ holds verbatim copies of that spike's
cfg/corosync.conf, cfg/sbd.default and cfg/cib.crm (see its README.md). Comments differ; every other
line must be the same.

crmsh is not installed here, so the CIB text is checked structurally only (statements, ids, references,
properties) by a small reader in this file; that crmsh and pacemaker accept it is left to the lab.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
from pathlib import Path
from typing import Any

import pydantic
import pytest

from tasks.executor import MASK, mask
from tasks.pacemaker.model import (
    Cib,
    Corosync,
    CorosyncNode,
    FenceParams,
    Sbd,
    StonithDevice,
    cib_secrets,
    default_stonith_timeout_s,
    render_cib,
    render_corosync_conf,
    render_sbd_default,
    stonith_devices,
)

# Copies of the spike's working files (lab-recipe/pacemaker/cfg/ in the shared lab recipe).
FIXTURES = Path(__file__).parents[3] / "fixtures" / "pacemaker"
SPIKE_ADDRESSES = {"nodea": "10.81.0.11", "nodeb": "10.81.0.12"}  # the spike's lab 'pmlab'
PASSWORD = "bmc-Pa55 word!"  # a space and punctuation: it must be quoted in the CIB


def _significant(text: str) -> list[str]:
    """The lines that configure something: no comments, no blank lines."""
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _lab_cib(**overrides: Any) -> Cib:
    """The lab's cluster: fence_sbd with the default SBD timings, as the spike ran it."""
    fields: dict[str, Any] = {
        "cluster_name": "pmlab",
        "nodes": ("nodea", "nodeb"),
        "stonith_devices": stonith_devices("fence_sbd", ("nodea", "nodeb"), FenceParams(), {}, Sbd()),
    }
    fields.update(overrides)
    return Cib(**fields)


def _ipmi_devices(nodes: tuple[str, ...] = ("store1", "store2")) -> tuple[StonithDevice, ...]:
    shared = FenceParams(params={"username": "admin", "lanplus": "1"})
    per_node = {
        node: FenceParams(params={"ip": f"10.0.9.{101 + i}"}, secret_params={"password": PASSWORD})
        for i, node in enumerate(nodes)
    }
    return stonith_devices("fence_ipmilan", nodes, shared, per_node, Sbd())


def _ipmi_cib(**overrides: Any) -> Cib:
    fields: dict[str, Any] = {
        "cluster_name": "inventory",
        "nodes": ("store1", "store2"),
        "stonith_devices": _ipmi_devices(),
        "service_ip": "10.0.9.50/24",
    }
    fields.update(overrides)
    return Cib(**fields)


# -- corosync.conf -------------------------------------------------------------------------------------


def test_corosync_conf_matches_the_measured_file() -> None:
    text = render_corosync_conf(Corosync.of("pmlab", SPIKE_ADDRESSES, token_ms=3000))
    assert text.startswith("# Written by ha-storage-flows")
    assert _significant(text) == _significant((FIXTURES / "corosync.conf").read_text())


def test_corosync_over_the_settings_replication_addresses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tasks.cluster import node_addresses
    from tasks.settings import load_settings

    for name in list(os.environ):
        if name.startswith("HSF_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray hsf.toml
    settings = load_settings(cluster={"manager": "pacemaker", "token_ms": 5000})
    corosync = Corosync.of(settings.cluster_name, node_addresses(settings), settings.cluster.token_ms)
    text = render_corosync_conf(corosync)
    assert "    cluster_name: hsf\n" in text and "    token: 5000\n" in text
    assert re.findall(r"name: (\S+)\n\s+nodeid: (\d+)\n\s+ring0_addr: (\S+)", text) == [
        ("nodea", "1", "10.77.0.11"),
        ("nodeb", "2", "10.77.0.12"),
    ]


@pytest.mark.parametrize(("count", "two_node"), [(2, True), (3, False), (5, False)])
def test_two_node_exactly_when_there_are_two_nodes(count: int, two_node: bool) -> None:
    addresses = {f"node{chr(97 + i)}": f"10.0.0.{11 + i}" for i in range(count)}
    corosync = Corosync.of("c1", addresses)
    text = render_corosync_conf(corosync)
    assert corosync.two_node is two_node
    assert ("    two_node: 1\n" in text) is two_node
    assert "    provider: corosync_votequorum\n" in text
    assert re.findall(r"nodeid: (\d+)", text) == [str(i) for i in range(1, count + 1)]
    assert text.count("{") == text.count("}")


def test_corosync_knet_is_encrypted_and_speaks_ipv6() -> None:
    text = render_corosync_conf(Corosync.of("c1", {"nodea": "fd00::1", "nodeb": "fd00::2"}))
    for line in ("transport: knet", "crypto_cipher: aes256", "crypto_hash: sha256", "ring0_addr: fd00::2"):
        assert f"    {line}\n" in text or f"        {line}\n" in text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"nodes": ({"name": "nodea", "nodeid": 1, "address": "10.0.0.1"},)}, "at least 2 items"),
        (
            {
                "nodes": (
                    {"name": "nodea", "nodeid": 1, "address": "10.0.0.1"},
                    {"name": "nodea", "nodeid": 2, "address": "10.0.0.2"},
                )
            },
            "duplicate node names: nodea, nodea",
        ),
        (
            {
                "nodes": (
                    {"name": "nodea", "nodeid": 1, "address": "10.0.0.1"},
                    {"name": "nodeb", "nodeid": 1, "address": "10.0.0.2"},
                )
            },
            "duplicate node ids",
        ),
        (
            {
                "nodes": (
                    {"name": "nodea", "nodeid": 1, "address": "10.0.0.1"},
                    {"name": "nodeb", "nodeid": 2, "address": "10.0.0.1"},
                )
            },
            "duplicate node addresses",
        ),
        (
            {
                "nodes": (
                    {"name": "nodea", "nodeid": 1, "address": "10.0.0.1"},
                    {"name": "nodeb", "nodeid": 2, "address": "fd00::2"},
                )
            },
            "mix IPv4 and IPv6",
        ),
        ({"token_ms": 999}, "greater than or equal to 1000"),
        ({"cluster_name": "my cluster"}, "String should match pattern"),
    ],
)
def test_bad_corosync_is_rejected(fields: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "cluster_name": "c1",
        "nodes": (
            CorosyncNode(name="nodea", nodeid=1, address=ipaddress.ip_address("10.0.0.1")),
            CorosyncNode(name="nodeb", nodeid=2, address=ipaddress.ip_address("10.0.0.2")),
        ),
    }
    with pytest.raises(pydantic.ValidationError, match=message):
        Corosync(**{**base, **fields})


# -- /etc/default/sbd ------------------------------------------------------------------------------------


def test_sbd_default_matches_the_measured_file() -> None:
    text = render_sbd_default(Sbd())
    assert _significant(text) == _significant((FIXTURES / "sbd.default").read_text())


def test_sbd_default_follows_the_settings() -> None:
    text = render_sbd_default(Sbd(device="/dev/disk/by-id/scsi-sbd0", watchdog_timeout_s=10, msgwait_s=20))
    assert "SBD_DEVICE=/dev/disk/by-id/scsi-sbd0\n" in text
    assert "SBD_WATCHDOG_TIMEOUT=10\n" in text
    assert not [line for line in _significant(text) if "MSGWAIT" in line]  # it lives in the SBD header


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"watchdog_timeout_s": 10, "msgwait_s": 19},
            "msgwait_s 19 must be at least twice watchdog_timeout_s 10",
        ),
        ({"device": "sbd"}, "String should match pattern"),
        ({"watchdog_timeout_s": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_sbd_is_rejected(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        Sbd(**fields)


# -- the CIB: a small reader for its structure -------------------------------------------------------------

ROLES = {"Promoted", "Unpromoted", "Started"}
ACTIONS = {"start", "stop", "promote", "demote"}


def _statements(text: str) -> list[list[str]]:
    """crm statements as tokens: continuation lines joined, comments dropped, quotes resolved."""
    joined = text.replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def _key_values(tokens: list[str]) -> dict[str, str]:
    pairs = [token.split("=", 1) for token in tokens]
    assert all(len(pair) == 2 for pair in pairs), tokens
    return dict(pairs)  # type: ignore[arg-type]


def _read_cib(text: str) -> dict[str, Any]:
    """Every id, what each statement defines and references, and the properties; fails on anything it
    does not know. Checks that crmsh would check too: ids unique, references defined, roles/actions."""
    ids: list[str] = []
    resources: dict[str, dict[str, Any]] = {}
    references: list[str] = []
    properties: dict[str, str] = {}
    defaults: dict[str, str] = {}
    constraints: dict[str, list[str]] = {}
    for tokens in _statements(text):
        kind, name = tokens[0], tokens[1].removesuffix(":")
        ids.append(name)
        if kind == "property":
            assert name == "cib-bootstrap-options"
            properties.update(_key_values(tokens[2:]))
        elif kind == "rsc_defaults":
            defaults.update(_key_values(tokens[2:]))
        elif kind == "primitive":
            sections: dict[str, list[str]] = {}
            current = ""
            ops: list[dict[str, str]] = []
            for token in tokens[3:]:
                if token in ("params", "meta"):
                    current = token
                    sections[current] = []
                elif token == "op":
                    current = "op"
                    ops.append({})
                elif current == "op" and "=" not in token:
                    ops[-1]["name"] = token
                else:
                    assert current, f"{name}: {token!r} outside params/meta/op"
                    if current == "op":
                        ops[-1].update(_key_values([token]))
                    else:
                        sections[current].append(token)
            resources[name] = {
                "agent": tokens[2],
                "params": _key_values(sections.get("params", [])),
                "meta": _key_values(sections.get("meta", [])),
                "ops": ops,
            }
        elif kind == "clone":
            assert tokens[3] == "meta"
            resources[name] = {"agent": "clone", "child": tokens[2], "meta": _key_values(tokens[4:])}
            references.append(tokens[2])
        elif kind == "colocation":
            assert tokens[2] == "inf:", tokens
            for ref in tokens[3:]:
                resource, _, role = ref.partition(":")
                assert not role or role in ROLES, ref
                references.append(resource)
            constraints[name] = tokens[2:]
        elif kind == "order":
            assert tokens[2] == "Mandatory:", tokens
            for ref in tokens[3:]:
                resource, _, action = ref.partition(":")
                assert action in ACTIONS, ref
                references.append(resource)
            constraints[name] = tokens[2:]
        elif kind == "location":
            assert len(tokens) == 5 and tokens[3] == "-inf:", tokens
            references.append(tokens[2])
            constraints[name] = tokens[2:]
        else:
            raise AssertionError(f"unknown statement {kind!r}")
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"duplicate ids: {duplicates}"
    undefined = sorted(set(references) - set(resources))
    assert not undefined, f"referenced but not defined: {undefined}"
    return {
        "resources": resources,
        "properties": properties,
        "defaults": defaults,
        "constraints": constraints,
    }


def test_the_reader_catches_what_it_should() -> None:
    """The structural check is not a rubber stamp: a dangling reference and a duplicate id fail it."""
    text = render_cib(_lab_cib())
    with pytest.raises(AssertionError, match=r"referenced but not defined: \['p_fs_typo'\]"):
        _read_cib(
            text.replace("colocation c_fs_on_drbd inf: p_fs_r0", "colocation c_fs_on_drbd inf: p_fs_typo")
        )
    with pytest.raises(AssertionError, match=r"duplicate ids: \['p_fs_r0'\]"):
        _read_cib(text.replace("order o_drbd_before_fs", "order p_fs_r0"))


# -- the CIB -------------------------------------------------------------------------------------------------


def test_lab_cib_matches_the_measured_file() -> None:
    text = render_cib(_lab_cib())
    assert _significant(text) == _significant((FIXTURES / "cib.crm").read_text())


VARIANTS: dict[str, Any] = {
    "lab-sbd": _lab_cib,
    "lab-sbd-service-ip-xfs": lambda: _lab_cib(
        service_ip="10.77.0.50/24", fstype="xfs", mountpoint="/srv/data", drbd_resource="data", minor=3
    ),
    "ipmilan-per-node": _ipmi_cib,
    "shared-agent": lambda: _ipmi_cib(
        stonith_devices=stonith_devices(
            "fence_xvm",
            ("store1", "store2"),
            FenceParams(params={"multicast_address": "225.0.0.12"}),
            {},
            Sbd(),
        ),
        service_ip=None,
    ),
    "stonith-disabled": lambda: _lab_cib(stonith_enabled=False, stonith_devices=()),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_cib_is_structurally_sound(variant: str) -> None:
    cib: Cib = VARIANTS[variant]()
    text = render_cib(cib)
    read = _read_cib(text)
    resources, properties = read["resources"], read["properties"]

    assert properties["stonith-enabled"] == ("true" if cib.stonith_enabled else "false")
    assert properties["no-quorum-policy"] == "stop"
    assert properties["cluster-name"] == cib.cluster_name
    assert properties["dc-deadtime"] == "5s" and properties["load-threshold"] == "800%"
    if cib.stonith_enabled:
        assert properties["stonith-timeout"] == f"{cib.stonith_timeout_s}s"
        assert properties["priority-fencing-delay"] == "5s"
    else:
        assert "stonith-timeout" not in properties and "priority-fencing-delay" not in properties
        assert "# STONITH IS DISABLED" in text
    assert read["defaults"] == {"resource-stickiness": "100"}

    res = cib.drbd_resource
    drbd, clone, fs = resources[f"p_drbd_{res}"], resources[f"ms_drbd_{res}"], resources[f"p_fs_{res}"]
    assert drbd["agent"] == "ocf:linbit:drbd" and drbd["params"] == {"drbd_resource": res}
    assert {op.get("role") for op in drbd["ops"] if op["name"] == "monitor"} == {"Promoted", "Unpromoted"}
    assert clone["child"] == f"p_drbd_{res}"
    assert clone["meta"] == {
        "promotable": "true",
        "promoted-max": "1",
        "promoted-node-max": "1",
        "clone-max": "2",
        "clone-node-max": "1",
        "notify": "true",
    }
    assert fs["agent"] == "Filesystem"
    assert fs["params"] == {
        "device": f"/dev/drbd{cib.minor}",
        "directory": cib.mountpoint,
        "fstype": cib.fstype,
    }
    assert fs["meta"] == {"priority": "10"}
    constraints = read["constraints"]
    assert constraints["c_fs_on_drbd"] == ["inf:", f"p_fs_{res}", f"ms_drbd_{res}:Promoted"]
    assert constraints["o_drbd_before_fs"] == ["Mandatory:", f"ms_drbd_{res}:promote", f"p_fs_{res}:start"]

    stonith = {name: r for name, r in resources.items() if r["agent"].startswith("stonith:")}
    assert len(stonith) == len(cib.stonith_devices)
    fenced = set()
    for name, device in stonith.items():
        hosts = device["params"]["pcmk_host_list"].split()
        assert device["params"]["pcmk_host_check"] == "static-list"
        fenced |= set(hosts)
        if len(hosts) == 1:  # a node's own fence device is kept off that node
            assert constraints[f"l_{name}_avoid"] == [name, "-inf:", hosts[0]]
    assert fenced == (set(cib.nodes) if cib.stonith_enabled else set())

    if cib.service_ip is not None:
        ip = resources[f"p_ip_{res}"]
        assert ip["agent"] == "IPaddr2"
        assert ip["params"] == {
            "ip": str(cib.service_ip.ip),
            "cidr_netmask": str(cib.service_ip.network.prefixlen),
        }
        assert constraints["c_ip_with_fs"] == ["inf:", f"p_ip_{res}", f"p_fs_{res}"]
        assert constraints["o_fs_before_ip"] == ["Mandatory:", f"p_fs_{res}:start", f"p_ip_{res}:start"]
    else:
        assert "IPaddr2" not in text


def test_per_node_fence_devices_carry_the_merged_parameters() -> None:
    resources = _read_cib(render_cib(_ipmi_cib()))["resources"]
    assert resources["st_ipmilan_store2"]["agent"] == "stonith:fence_ipmilan"
    assert resources["st_ipmilan_store2"]["params"] == {
        "username": "admin",
        "lanplus": "1",
        "ip": "10.0.9.102",
        "password": PASSWORD,
        "pcmk_host_list": "store2",
        "pcmk_host_check": "static-list",
    }
    assert resources["st_ipmilan_store2"]["ops"] == [{"name": "monitor", "interval": "60s", "timeout": "60s"}]


def test_a_node_can_override_a_shared_parameter_or_make_it_secret() -> None:
    shared = FenceParams(params={"username": "admin"}, secret_params={"password": "shared-pw"})
    with pytest.raises(pydantic.ValidationError, match="password_script look like secrets"):
        FenceParams(params={"password_script": "/usr/local/bin/bmc-pass"})
    merged = shared.merged(FenceParams(params={"ip": "10.0.0.1"}, secret_params={"username": "root"}))
    assert merged.params == {"ip": "10.0.0.1"}
    assert {k: v.get_secret_value() for k, v in merged.secret_params.items()} == {
        "password": "shared-pw",
        "username": "root",
    }


def test_the_users_host_map_replaces_the_static_host_list() -> None:
    (device,) = stonith_devices(
        "fence_vmware_rest",
        ("nodea", "nodeb"),
        FenceParams(params={"ip": "vc.example", "pcmk_host_map": "nodea:vm-a;nodeb:vm-b"}),
        {},
        Sbd(),
    )
    params = _read_cib(render_cib(_lab_cib(stonith_devices=(device,))))["resources"]["st_vmware_rest"][
        "params"
    ]
    assert params == {"ip": "vc.example", "pcmk_host_map": "nodea:vm-a;nodeb:vm-b"}
    assert 'pcmk_host_map="nodea:vm-a;nodeb:vm-b"' in render_cib(_lab_cib(stonith_devices=(device,)))


def test_the_fence_password_is_only_in_the_rendered_text() -> None:
    cib = _ipmi_cib()
    text = render_cib(cib)
    assert text.count(f'password="{PASSWORD}"') == 2  # quoted: it has a space
    for shown in (repr(cib), str(cib), cib.model_dump_json(), repr(cib.stonith_devices[0].params)):
        assert PASSWORD not in shown
    assert cib_secrets(cib) == [PASSWORD, PASSWORD]
    masked = mask(text, cib_secrets(cib))
    assert PASSWORD not in masked and f'password="{MASK}"' in masked
    assert cib_secrets(_lab_cib()) == []


@pytest.mark.parametrize(
    ("msgwait", "expected"),
    [(10, 60), (20, 60), (24, 66), (30, 78)],  # max(60, 2 x (msgwait + 4 + 5))
)
def test_default_stonith_timeout_covers_a_slow_sbd(msgwait: int, expected: int) -> None:
    sbd = Sbd(watchdog_timeout_s=msgwait // 2, msgwait_s=msgwait)
    assert default_stonith_timeout_s(sbd.fence_duration_s) == expected
    assert default_stonith_timeout_s(None) == 60


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stonith_timeout_s": 19}, r"stonith_timeout_s 19 must exceed 19 s: a fencing takes up to 14 s"),
        ({"stonith_devices": ()}, "STONITH is enabled but there is no fence device"),
        ({"stonith_enabled": False}, "fence devices are configured but STONITH is disabled"),
        ({"nodes": ("nodea", "nodeb", "nodec")}, "no fence device fences nodec"),
        ({"nodes": ("nodea", "nodea")}, "duplicate node names"),
        (
            {
                "stonith_devices": (
                    StonithDevice(name="p_fs_r0", agent="fence_xvm", targets=("nodea", "nodeb")),
                )
            },
            r"duplicate CIB ids: p_fs_r0",
        ),
        (
            {"stonith_devices": (StonithDevice(name="st_x", agent="fence_xvm", targets=("nodea", "nodez")),)},
            "fence devices name unknown nodes: nodez",
        ),
        ({"service_ip": "10.77.0.50"}, "has no prefix length"),
        ({"service_ip": "10.77.0.0/24"}, "the network's own address"),
        ({"service_ip": "10.77.0.255/24"}, "broadcast address"),
        ({"fstype": "btrfs"}, "Input should be 'ext4' or 'xfs'"),
        ({"mountpoint": "mnt"}, "String should match pattern"),
    ],
)
def test_bad_cib_is_rejected(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        _lab_cib(**overrides)


def test_a_longer_timeout_passes_and_is_rendered() -> None:
    assert "    stonith-timeout=20s \\\n" in render_cib(_lab_cib(stonith_timeout_s=20))


@pytest.mark.parametrize(
    "agent", ["ipmilan", "fence-ipmilan", "fence_IPMI", "fence_", "/usr/sbin/fence_x", ""]
)
def test_a_fence_agent_name_must_look_like_one(agent: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="is not a fence agent name"):
        StonithDevice(name="st_x", agent=agent, targets=("nodea",))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"params": {"password": "x"}}, "params password look like secrets: put them in secret_params"),
        ({"params": {"snmp_priv_passwd": "x"}}, "snmp_priv_passwd look like secrets"),
        ({"params": {"community": "public"}}, "community look like secrets"),
        ({"params": {"ip": "a b", "x": 'say "hi"'}}, "double quote, a backslash or a control character"),
        ({"params": {"ip": "line\nbreak"}}, "control character"),
        ({"params": {"ip": ""}}, "an empty value"),
        ({"params": {"IP": "10.0.0.1"}}, "String should match pattern"),
        (
            {"params": {"ip": "1"}, "secret_params": {"ip": "2"}},
            "ip given both in params and in secret_params",
        ),
        ({"secret_params": {"password": 12345}}, "a secret must be a string"),
        ({"unknown": {}}, "Extra inputs are not permitted"),
    ],
)
def test_bad_fence_params_are_rejected(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        FenceParams(**fields)


def test_a_rejected_secret_is_not_echoed() -> None:
    bad = 'pa"ss word'
    with pytest.raises(pydantic.ValidationError) as info:
        FenceParams(secret_params={"password": pydantic.SecretStr(bad)})
    assert bad not in str(info.value)


@pytest.mark.parametrize(
    ("per_node", "message"),
    [
        ({"store1": FenceParams()}, r"no fence parameters for node\(s\) store2"),
        ({"store1": FenceParams(), "store2": FenceParams(), "store3": FenceParams()}, "unknown node"),
    ],
)
def test_per_node_parameters_cover_exactly_the_nodes(per_node: dict[str, FenceParams], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stonith_devices("fence_ipmilan", ("store1", "store2"), FenceParams(), per_node, Sbd())


def test_fence_sbd_takes_no_per_node_parameters() -> None:
    with pytest.raises(ValueError, match="fence_sbd fences every node"):
        stonith_devices("fence_sbd", ("nodea", "nodeb"), FenceParams(), {"nodea": FenceParams()}, Sbd())
