"""Unit tests for tasks/drbd/model.py: validation of the resource, and its rendering checked by the
host's real ``drbdadm`` parser (``drbdadm -c FILE dump RES`` parses without touching the kernel)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pydantic
import pytest

from tasks.drbd.commands import drbdadm_dump_argv
from tasks.drbd.model import DrbdNode, DrbdResource, StackedResource, render_resource, render_stacked_resource
from tasks.executor import CommandError, Executor

SECRET = "s3cr3t-Secret_value.0123"

needs_drbdadm = pytest.mark.skipif(shutil.which("drbdadm") is None, reason="drbdadm is not installed")


def _node(name: str, address: str, **kwargs: Any) -> dict[str, Any]:
    return {"name": name, "address": address, **kwargs}


def _resource(**overrides: Any) -> DrbdResource:
    fields: dict[str, Any] = {
        "nodes": (_node("nodea", "10.77.0.11"), _node("nodeb", "10.77.0.12")),
        "shared_secret": SECRET,
    }
    fields.update(overrides)
    return DrbdResource(**fields)


# -- construction ------------------------------------------------------------------------------------


def test_valid_resource_has_the_documented_defaults() -> None:
    resource = _resource()
    assert resource.name == "r0"
    assert resource.protocol == "C"
    assert resource.meta_disk == "internal"
    assert resource.cram_hmac_alg == "sha256"
    assert resource.resync_rate == "100M"
    assert resource.dual_primary is False
    assert [n.name for n in resource.nodes] == ["nodea", "nodeb"]
    a, b = resource.nodes
    assert (a.port, a.disk, a.minor) == (7789, "/dev/vdb", 0)
    assert str(b.address) == "10.77.0.12"
    assert resource.config_path == "/etc/drbd.d/r0.res"
    assert _resource(name="data_1").config_path == "/etc/drbd.d/data_1.res"


def test_secret_is_hidden_in_repr() -> None:
    resource = _resource()
    assert SECRET not in repr(resource)
    assert resource.shared_secret.get_secret_value() == SECRET


def test_node_and_peer_of() -> None:
    resource = _resource()
    assert resource.node("nodea").address == resource.nodes[0].address
    assert resource.node("nodeb") is resource.nodes[1]
    assert resource.peer_of("nodea").name == "nodeb"
    assert resource.peer_of("nodeb").name == "nodea"


@pytest.mark.parametrize("call", ["node", "peer_of"])
def test_unknown_node_is_rejected_with_the_known_names(call: str) -> None:
    resource = _resource()
    with pytest.raises(ValueError, match=r"unknown node 'nodec' \(known: nodea, nodeb\)"):
        getattr(resource, call)("nodec")


@pytest.mark.parametrize(
    ("address", "port", "endpoint"),
    [
        ("10.77.0.11", 7789, "ipv4 10.77.0.11:7789"),
        ("192.168.1.2", 7800, "ipv4 192.168.1.2:7800"),
        ("fd00::1", 7789, "ipv6 [fd00::1]:7789"),
        ("fd00:0:0:0:0:0:0:2", 7790, "ipv6 [fd00::2]:7790"),  # normalised to the short form
    ],
)
def test_endpoint(address: str, port: int, endpoint: str) -> None:
    assert DrbdNode(name="nodea", address=address, port=port).endpoint == endpoint


@pytest.mark.parametrize(
    ("minor", "device"), [(0, "/dev/drbd0"), (3, "/dev/drbd3"), (1048575, "/dev/drbd1048575")]
)
def test_device_path_follows_minor(minor: int, device: str) -> None:
    assert DrbdNode(name="nodea", address="10.0.0.1", minor=minor).device == device


# -- rejections -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nodes": (_node("nodea", "10.77.0.11"),)}, r"nodes\n.*at least 2 items"),
        (
            {
                "nodes": (
                    _node("nodea", "10.77.0.11"),
                    _node("nodeb", "10.77.0.12"),
                    _node("nodec", "10.77.0.13"),
                )
            },
            r"nodes\n.*at most 2 items",
        ),
        (
            {"nodes": (_node("nodea", "10.77.0.11"), _node("nodea", "10.77.0.12"))},
            r"duplicate node names: nodea, nodea",
        ),
        (
            {"nodes": (_node("nodea", "10.77.0.11"), _node("nodeb", "10.77.0.11"))},
            r"duplicate replication addresses: ipv4 10\.77\.0\.11:7789, ipv4 10\.77\.0\.11:7789",
        ),
        (
            {"nodes": (_node("nodea", "10.77.0.11", port=7789), _node("nodeb", "10.77.0.11", port=7790))},
            r"both nodes have address 10\.77\.0\.11: each node needs its own",
        ),
        (
            {"nodes": (_node("nodea", "fd00::1", port=7789), _node("nodeb", "fd00:0::1", port=7790))},
            r"both nodes have address fd00::1: each node needs its own",
        ),
        ({"protocol": "Q"}, r"protocol\n\s+Input should be 'A', 'B' or 'C'"),
        ({"name": "R0"}, r"name\n\s+String should match pattern"),
        ({"name": "r0 extra"}, r"name\n\s+String should match pattern"),
        ({"name": "0r"}, r"name\n\s+String should match pattern"),
        ({"name": "r" * 33}, r"name\n\s+String should match pattern"),
        (
            {"nodes": (_node("Node_A", "10.77.0.11"), _node("nodeb", "10.77.0.12"))},
            r"'Node_A' is not a valid node name",
        ),
        (
            {"nodes": (_node("nodea", "10.77.0.11"), _node("node.b", "10.77.0.12"))},
            r"'node\.b' is not a valid node name",
        ),
        ({"shared_secret": "short"}, r"shared secret must be 16-64 characters"),
        ({"shared_secret": "x" * 65}, r"shared secret must be 16-64 characters"),
        ({"shared_secret": 'abcdefghijklmnop"q'}, r"shared secret must be 16-64 characters"),
        ({"shared_secret": "abcdefgh ijklmnopq"}, r"shared secret must be 16-64 characters"),
        ({"shared_secret": "abcdefghijklmnopq;"}, r"shared secret must be 16-64 characters"),
        ({"resync_rate": "fast"}, r"resync_rate\n\s+Value error, .* is not a rate like 100M"),
        ({"resync_rate": "100MB"}, r"resync_rate\n\s+Value error, .* is not a rate like 100M"),
        ({"resync_rate": "-5M"}, r"resync_rate\n\s+Value error, .* is not a rate like 100M"),
        ({"resync_rate": "100T"}, r"resync_rate\n\s+Value error, .* is not a rate like 100M"),
        ({"resync_rate": "0"}, r"resync_rate\n\s+Value error, '0' is outside DRBD's range of 1K to 8G"),
        (
            {
                "nodes": (
                    DrbdNode(name="nodea", address="10.0.0.1"),
                    DrbdNode(name="nodeb", address="fd00::2"),
                )
            },
            r"nodes mix IPv4 and IPv6 addresses",
        ),
        ({"ping_int_s": 0}, r"ping_int_s\n\s+Input should be greater than or equal to 1"),
        ({"ping_timeout_ds": 301}, r"ping_timeout_ds\n\s+Input should be less than or equal to 300"),
        ({"after_sb_2pri": "discard-secondary"}, r"after_sb_2pri\n\s+Input should be"),
    ],
    ids=[
        "one-node",
        "three-nodes",
        "duplicate-names",
        "duplicate-endpoints",
        "same-address-other-port",
        "same-ipv6-address-other-port",
        "protocol-Q",
        "name-uppercase",
        "name-space",
        "name-digit-first",
        "name-too-long",
        "hostname-uppercase-underscore",
        "hostname-dot",
        "secret-too-short",
        "secret-too-long",
        "secret-quote",
        "secret-space",
        "secret-semicolon",
        "rate-word",
        "rate-MB",
        "rate-negative",
        "rate-T",
        "rate-zero",
        "mixed-families",
        "ping-int-zero",
        "ping-timeout-too-big",
        "after-sb-2pri-not-allowed",
    ],
)
def test_invalid_resource_is_rejected(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        _resource(**overrides)


def test_bad_secret_passed_as_secretstr_is_not_echoed_in_the_error() -> None:
    """tasks.cluster.drbd_resource passes a SecretStr: a rejected secret must stay masked in the error.
    (A plain str would be echoed as input_value by pydantic; the production path never passes one.)"""
    bad = "leaky secret with spaces"
    with pytest.raises(pydantic.ValidationError, match="shared secret must be 16-64 characters") as info:
        _resource(shared_secret=pydantic.SecretStr(bad))
    assert bad not in str(info.value)


def test_resource_is_frozen() -> None:
    resource = _resource()
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        resource.protocol = "A"  # type: ignore[misc]


# -- rendering ---------------------------------------------------------------------------------------


def test_secret_appears_exactly_once_and_quoted() -> None:
    text = render_resource(_resource())
    assert text.count(SECRET) == 1
    assert f'    shared-secret "{SECRET}";\n' in text


def test_render_default_layout() -> None:
    text = render_resource(_resource())
    assert text.startswith("# Written by ha-storage-flows")
    assert text.endswith("}\n")
    assert "resource r0 {\n  protocol C;\n" in text
    assert "allow-two-primaries" not in text
    assert "become-primary-on" not in text
    assert (
        "  on nodeb {\n"
        "    device /dev/drbd0;\n"
        "    disk /dev/vdb;\n"
        "    meta-disk internal;\n"
        "    address ipv4 10.77.0.12:7789;\n"
        "  }\n"
    ) in text
    assert text.count("{") == text.count("}")


def test_render_dual_primary_adds_startup_section() -> None:
    text = render_resource(_resource(dual_primary=True))
    assert "    allow-two-primaries yes;\n" in text
    assert "  startup { become-primary-on both; }\n" in text


def _drbdadm_dump(tmp_path: Path, text: str, resource: str, node: str) -> str:
    config = tmp_path / "r.res"
    config.write_text(text)
    result = Executor().run(
        drbdadm_dump_argv(str(config), resource), env={"__DRBD_NODE__": node}, read_only=True, timeout=30
    )
    return result.stdout


VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "protocol-A": {"protocol": "A"},
    "protocol-B": {"protocol": "B"},
    "dual-primary": {
        "dual_primary": True,
        "after_sb_0pri": "discard-zero-changes",
        "after_sb_1pri": "discard-secondary",
    },
    "ipv6": {"nodes": (_node("nodea", "fd00::1"), _node("nodeb", "fd00::2"))},
    "port-minor-disk": {
        "name": "data",
        "nodes": (
            _node("nodea", "10.77.0.11", port=7800, minor=3, disk="/dev/vdc"),
            _node("nodeb", "10.77.0.12", port=7800, minor=3, disk="/dev/vdc"),
        ),
    },
    "tuning": {
        "ping_int_s": 1,
        "ping_timeout_ds": 5,
        "resync_rate": "250M",
        "c_plan_ahead": 20,
        "cram_hmac_alg": "sha1",
        "after_sb_2pri": "violently-as0p",
        "al_extents": 1237,
    },
}


@needs_drbdadm
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rendered_config_is_accepted_by_drbdadm(tmp_path: Path, variant: str) -> None:
    resource = _resource(**VARIANTS[variant])
    first = resource.nodes[0].name
    dump = _drbdadm_dump(tmp_path, render_resource(resource), resource.name, first)

    assert re.search(rf"^resource {resource.name} \{{", dump, re.MULTILINE)
    assert re.search(rf"protocol\s+{resource.protocol};", dump)
    assert re.search(rf"cram-hmac-alg\s+{resource.cram_hmac_alg};", dump)
    assert re.search(rf"shared-secret\s+\"?{re.escape(SECRET)}\"?;", dump)
    assert re.search(rf"ping-int\s+{resource.ping_int_s};", dump)
    assert re.search(rf"ping-timeout\s+{resource.ping_timeout_ds};", dump)
    assert re.search(rf"resync-rate\s+{resource.resync_rate};", dump)
    assert re.search(rf"c-plan-ahead\s+{resource.c_plan_ahead};", dump)
    assert re.search(rf"after-sb-0pri\s+{resource.after_sb_0pri};", dump)
    assert re.search(rf"after-sb-1pri\s+{resource.after_sb_1pri};", dump)
    assert re.search(rf"after-sb-2pri\s+{resource.after_sb_2pri};", dump)
    assert re.search(r"meta-disk\s+internal;", dump)
    assert re.search(rf"al-extents\s+{resource.al_extents};", dump)
    if resource.dual_primary:
        assert re.search(r"allow-two-primaries\s+yes;", dump)
    else:
        assert "allow-two-primaries" not in dump
    for node in resource.nodes:
        assert re.search(rf"^\s+on {node.name} \{{", dump, re.MULTILINE)
        assert re.search(rf"address\s+{re.escape(node.endpoint)};", dump)
        assert re.search(rf"device\s+{node.device}\s+minor\s+{node.minor};", dump)
        assert re.search(rf"disk\s+{re.escape(node.disk)};", dump)


@needs_drbdadm
def test_dump_shows_the_exact_variant_values(tmp_path: Path) -> None:
    """Spot-check the non-default variants against literal values, not values read back from the model."""
    ipv6 = _resource(**VARIANTS["ipv6"])
    dump = _drbdadm_dump(tmp_path, render_resource(ipv6), "r0", "nodea")
    assert re.search(r"address\s+ipv6 \[fd00::1\]:7789;", dump)
    assert re.search(r"address\s+ipv6 \[fd00::2\]:7789;", dump)

    custom = _resource(**VARIANTS["port-minor-disk"])
    dump = _drbdadm_dump(tmp_path, render_resource(custom), "data", "nodea")
    assert re.search(r"device\s+/dev/drbd3 minor 3;", dump)
    assert re.search(r"disk\s+/dev/vdc;", dump)
    assert re.search(r"address\s+ipv4 10\.77\.0\.12:7800;", dump)

    tuned = _resource(**VARIANTS["tuning"])
    dump = _drbdadm_dump(tmp_path, render_resource(tuned), "r0", "nodea")
    assert re.search(r"ping-int\s+1;", dump)
    assert re.search(r"ping-timeout\s+5;", dump)
    assert re.search(r"resync-rate\s+250M;", dump)
    assert re.search(r"cram-hmac-alg\s+sha1;", dump)


@needs_drbdadm
def test_drbdadm_rejects_a_broken_config(tmp_path: Path) -> None:
    """The validator really validates: a bad protocol makes drbdadm fail with its parse-error code."""
    text = render_resource(_resource())
    assert "protocol C;" in text
    with pytest.raises(CommandError) as info:
        _drbdadm_dump(tmp_path, text.replace("protocol C;", "protocol Q;"), "r0", "nodea")
    assert info.value.exit_code == 10
    assert "Q" in info.value.stderr_tail


@needs_drbdadm
def test_drbdadm_rejects_an_unknown_resource_name(tmp_path: Path) -> None:
    with pytest.raises(CommandError) as info:
        _drbdadm_dump(tmp_path, render_resource(_resource()), "other", "nodea")
    assert info.value.exit_code != 0


@needs_drbdadm
@pytest.mark.parametrize("rate", ["0", "1", "1K", "100M", "8G", "8388608", "8388609", "8193M", "9G", "5000G"])
def test_model_accepts_exactly_the_resync_rates_drbdadm_accepts(tmp_path: Path, rate: str) -> None:
    """The model's range check agrees with the real parser on both sides of each boundary."""
    template = _resource()
    text = render_resource(template).replace("resync-rate 100M;", f"resync-rate {rate};")
    try:
        _drbdadm_dump(tmp_path, text, "r0", "nodea")
        drbdadm_accepts = True
    except CommandError:
        drbdadm_accepts = False
    try:
        _resource(resync_rate=rate)
        model_accepts = True
    except pydantic.ValidationError:
        model_accepts = False
    assert model_accepts == drbdadm_accepts, f"{rate}: model {model_accepts}, drbdadm {drbdadm_accepts}"


# -- fencing under a cluster manager (Pacemaker) -------------------------------------------------------
#
# The lab's nodes run the DRBD 8.4 module, so their drbdadm hands every file to drbdadm-84. Without a
# module (as here) drbdadm parses as DRBD 9, where `fencing` belongs in `net` and the 8.4 file is refused;
# DRBD_DRIVER_VERSION_OVERRIDE makes this drbdadm pick the 8.4 parser the nodes use.
# tests/fixtures/pacemaker/r0-rs.res is a verbatim copy of the Pacemaker spike's recommended resource
# (lab-recipe/pacemaker/cfg/r0-rs.res), with which 9 automatic failovers and 3 full partitions ran clean.

PACEMAKER_FIXTURES = Path(__file__).parents[3] / "fixtures" / "pacemaker"
DRBD_84 = {"DRBD_DRIVER_VERSION_OVERRIDE": "8.4.11"}
needs_drbdadm_84 = pytest.mark.skipif(
    shutil.which("drbdadm") is None or not Path("/usr/lib/drbd/drbdadm-84").exists(),
    reason="drbdadm with its 8.4 parser (drbd-utils) is not installed",
)


def _drbdadm_84_dump(tmp_path: Path, text: str, resource: str, node: str) -> str:
    config = tmp_path / "r84.res"
    config.write_text(text)
    result = Executor().run(
        drbdadm_dump_argv(str(config), resource),
        env={"__DRBD_NODE__": node, **DRBD_84},
        read_only=True,
        timeout=30,
    )
    return result.stdout


def _fencing_parts(dump: str) -> tuple[list[str], str]:
    """The fencing option and the handlers section of a drbdadm dump, whitespace normalised."""
    fencing = re.findall(r"^\s+fencing\s+(\S+);", dump, re.MULTILINE)
    handlers = re.search(r"^\s+handlers \{\n(.*?)^\s+\}", dump, re.MULTILINE | re.DOTALL)
    body = " ".join(handlers.group(1).split()) if handlers else ""
    return fencing, body


def test_no_fencing_by_default() -> None:
    text = render_resource(_resource())
    assert _resource().fencing is None
    assert "fencing" not in text and "handlers" not in text and "crm-" not in text


def test_fencing_adds_the_policy_and_the_84_handlers() -> None:
    text = render_resource(_resource(fencing="resource-and-stonith"))
    assert (
        "  disk {\n"
        "    c-plan-ahead 0;\n"
        "    resync-rate 100M;\n"
        "    al-extents 67;\n"
        "    fencing resource-and-stonith;\n"
        "  }\n"
        "  handlers {\n"
        '    fence-peer "/usr/lib/drbd/crm-fence-peer.sh";\n'
        '    after-resync-target "/usr/lib/drbd/crm-unfence-peer.sh";\n'
        "  }\n"
    ) in text
    assert ".9.sh" not in text
    assert text.count("{") == text.count("}")


def test_fencing_adds_only_the_option_and_the_handlers() -> None:
    """Everything else stays as it is without a cluster manager."""
    plain = render_resource(_resource()).splitlines()
    expected = list(plain)
    after_log = plain.index("    al-extents 67;") + 1
    expected[after_log:after_log] = ["    fencing resource-only;"]
    after_disk = expected.index("  }", after_log) + 1
    expected[after_disk:after_disk] = [
        "  handlers {",
        '    fence-peer "/usr/lib/drbd/crm-fence-peer.sh";',
        '    after-resync-target "/usr/lib/drbd/crm-unfence-peer.sh";',
        "  }",
    ]
    assert render_resource(_resource(fencing="resource-only")).splitlines() == expected


def test_unknown_fencing_policy_is_rejected() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"fencing\n\s+Input should be 'resource-only' or"):
        _resource(fencing="dont-care")


@needs_drbdadm_84
def test_measured_resource_parses_with_the_84_parser(tmp_path: Path) -> None:
    """The guard of the comparison below: the spike's file parses with drbdadm's 8.4 parser."""
    dump = _drbdadm_84_dump(tmp_path, (PACEMAKER_FIXTURES / "r0-rs.res").read_text(), "r0", "nodea")
    assert _fencing_parts(dump) == (
        ["resource-and-stonith"],
        "fence-peer /usr/lib/drbd/crm-fence-peer.sh; after-resync-target /usr/lib/drbd/crm-unfence-peer.sh;",
    )


@needs_drbdadm_84
@pytest.mark.parametrize("variant", ["default", "dual-primary", "ipv6", "port-minor-disk", "tuning"])
def test_fenced_resource_is_accepted_by_the_84_parser_as_measured(tmp_path: Path, variant: str) -> None:
    resource = _resource(**VARIANTS[variant], fencing="resource-and-stonith")
    first = resource.nodes[0].name
    ours = _drbdadm_84_dump(tmp_path, render_resource(resource), resource.name, first)
    measured = _drbdadm_84_dump(tmp_path, (PACEMAKER_FIXTURES / "r0-rs.res").read_text(), "r0", "nodea")
    assert _fencing_parts(ours) == _fencing_parts(measured)
    assert re.search(rf"^resource {resource.name} \{{", ours, re.MULTILINE)
    assert re.search(rf"shared-secret\s+\"?{re.escape(SECRET)}\"?;", ours)
    assert re.search(rf"resync-rate\s+{resource.resync_rate};", ours)


@needs_drbdadm_84
def test_resource_only_is_accepted_by_the_84_parser(tmp_path: Path) -> None:
    dump = _drbdadm_84_dump(tmp_path, render_resource(_resource(fencing="resource-only")), "r0", "nodea")
    assert _fencing_parts(dump)[0] == ["resource-only"]
    assert "crm-fence-peer.sh" in _fencing_parts(dump)[1]


@needs_drbdadm_84
def test_the_84_parser_really_checks_the_handlers(tmp_path: Path) -> None:
    text = render_resource(_resource(fencing="resource-and-stonith"))
    with pytest.raises(CommandError) as info:
        _drbdadm_84_dump(tmp_path, text.replace("fence-peer ", "fence-pier "), "r0", "nodea")
    assert info.value.exit_code == 10


@needs_drbdadm
@needs_drbdadm_84
def test_the_plain_default_resource_parses_with_the_84_parser_too(tmp_path: Path) -> None:
    """The other tests here parse with drbdadm's DRBD 9 parser (no module on this machine); the nodes
    use the 8.4 one: without a cluster manager both accept the same file."""
    dump = _drbdadm_84_dump(tmp_path, render_resource(_resource()), "r0", "nodea")
    assert re.search(r"resync-rate\s+100M;", dump) and "fencing" not in dump


# -- the stacked (three-node) resource -----------------------------------------------------------------

UPPER_SECRET = "upper-Secret_value.0123"


def _stacked(**overrides: Any) -> StackedResource:
    fields: dict[str, Any] = {
        "name": "r0-u",
        "lower": _resource(),
        "address": "10.77.0.10",
        "third": _node("nodec", "10.77.0.14", port=7790, minor=10),
        "shared_secret": UPPER_SECRET,
    }
    fields.update(overrides)
    return StackedResource(**fields)


def test_a_stacked_resource_is_asynchronous_on_drbd10_by_default() -> None:
    upper = _stacked()
    assert (upper.protocol, upper.port, upper.config_path) == ("A", 7790, "/etc/drbd.d/r0-u.res")
    for node in ("nodea", "nodeb"):  # the stacked end, on whichever lower node is Primary
        end = upper.node(node)
        assert (end.device, end.disk, end.endpoint) == ("/dev/drbd10", "/dev/drbd0", "ipv4 10.77.0.10:7790")
        assert upper.stacked_on(node)
    assert upper.node("nodec") == upper.third and not upper.stacked_on("nodec")
    with pytest.raises(ValueError, match="unknown node 'noded'"):
        upper.node("noded")
    assert _stacked(protocol="C").protocol == "C"
    assert UPPER_SECRET not in repr(upper)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"third": _node("nodeb", "10.77.0.14", minor=10)}, "the third node nodeb is a node of r0 already"),
        ({"lower": _resource(dual_primary=True)}, "r0 is dual-primary (OCFS2)"),
        ({"name": "r0"}, "the upper resource needs a name of its own"),
        ({"third": _node("nodec", "10.77.0.14", minor=11)}, "the third node's device is /dev/drbd11"),
        ({"minor": 0, "third": _node("nodec", "10.77.0.14", minor=0)}, "/dev/drbd0 is the lower device"),
        ({"address": "10.77.0.12"}, "the stacked address 10.77.0.12 is nodeb's own"),
        ({"address": "10.77.0.14"}, "the stacked address 10.77.0.14 is nodec's own"),
        ({"address": "fd00::10"}, "mix IPv4 and IPv6"),
        ({"protocol": "B"}, "protocol"),
    ],
)
def test_a_stacked_resource_refuses_what_cannot_work(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=re.escape(message)):
        _stacked(**overrides)


@needs_drbdadm
@pytest.mark.parametrize("protocol", ["A", "C"])
def test_the_stacked_file_beside_the_lower_one_is_accepted_by_drbdadm(tmp_path: Path, protocol: str) -> None:
    """drbdadm reads both files as /etc/drbd.d holds them: the lower nodes see the upper resource stacked,
    the third node sees a plain one."""
    upper = _stacked(protocol=protocol)
    text = render_resource(upper.lower) + render_stacked_resource(upper)
    for node, how in (("nodea", "stacked"), ("nodeb", "stacked"), ("nodec", "not stacked")):
        dump = _drbdadm_dump(tmp_path, text, "r0-u", node)
        assert f"# resource r0-u on {node}: not ignored, {how}" in dump
        assert re.search(r"stacked-on-top-of r0 \{\s+# on nodea nodeb\s", dump)
        assert re.search(r"address\s+ipv4 10\.77\.0\.10:7790;", dump)
        assert re.search(
            r"on nodec \{\s+node-id \d;\s+device\s+/dev/drbd10 minor 10;\s+disk\s+/dev/vdb;", dump
        )
        assert re.search(r"address\s+ipv4 10\.77\.0\.14:7790;", dump)
        assert re.search(rf"protocol\s+{protocol};", dump)
        assert re.search(rf"shared-secret\s+\"?{re.escape(UPPER_SECRET)}\"?;", dump)
        assert re.search(r"resync-rate\s+100M;", dump)


@pytest.mark.parametrize(("al_extents", "accepted"), [(66, False), (67, True), (65534, True), (65535, False)])
def test_the_activity_log_size_is_held_to_the_kernels_bounds(al_extents: int, accepted: bool) -> None:
    if accepted:
        assert _resource(al_extents=al_extents).al_extents == al_extents
    else:
        with pytest.raises(pydantic.ValidationError, match="al_extents"):
            _resource(al_extents=al_extents)
