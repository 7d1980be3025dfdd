"""Settings: defaults, environment and TOML sources, and one clear line per bad value."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from tasks.settings import (
    DeploymentSettings,
    DrbdSettings,
    FailoverSettings,
    InventoryHost,
    LabSettings,
    Settings,
    SettingsError,
    load_settings,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("HSF_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray hsf.toml


def test_defaults_describe_a_two_node_lab() -> None:
    settings = load_settings()
    assert settings.lab.nodes == ("nodea", "nodeb")
    assert settings.lab.embedded
    assert str(settings.lab.address_of("nodeb")) == "10.77.0.12"
    assert settings.node_names == ("nodea", "nodeb")


def test_every_field_has_a_description() -> None:
    for model in (Settings, LabSettings, DrbdSettings, FailoverSettings, InventoryHost, DeploymentSettings):
        missing = [name for name, field in model.model_fields.items() if not field.description]
        assert not missing, f"{model.__name__}: {missing}"


def test_environment_overrides_nested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HSF_LAB__MEMORY_MIB", "768")
    monkeypatch.setenv("HSF_LAB__NODES", '["alpha", "beta", "gamma"]')
    lab = load_settings().lab
    assert lab.memory_mib == 768 and lab.nodes == ("alpha", "beta", "gamma")


def test_toml_file_is_read_and_env_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "custom.toml"
    config.write_text('primary_node = "nodeb"\n[lab]\nmemory_mib = 1024\nsubnet = "10.99.0.0/24"\n')
    monkeypatch.setenv("HSF_CONFIG", str(config))
    monkeypatch.setenv("HSF_LAB__MEMORY_MIB", "640")
    settings = load_settings()
    assert settings.primary_node == "nodeb"
    assert settings.lab.subnet == ipaddress.IPv4Network("10.99.0.0/24")
    assert settings.lab.memory_mib == 640


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"HSF_LAB__MEMORY_MIB": "-5"},
            "setting lab.memory_mib [HSF_LAB__MEMORY_MIB]: Input should be greater than or equal to 256",
        ),
        ({"HSF_PRIMARY_NODE": "nodex"}, "primary_node: unknown node 'nodex' (known: nodea, nodeb)"),
        (
            {"HSF_LAB__NODES": '["nodea", "nodea"]'},
            "setting lab.nodes [HSF_LAB__NODES]: duplicate node names: nodea",
        ),
        ({"HSF_LAB__NODES": '["Node_A"]'}, "'Node_A' is not a valid node name"),
        ({"HSF_LAB__LIBVIRT_URI": "localhost"}, "'localhost' is neither 'embedded' nor a libvirt URI"),
        ({"HSF_LAB__SUBNET": "10.1.2.0/29"}, "10.1.2.0/29 is too small"),
        ({"HSF_TARGET": "inventory"}, "target is 'inventory' but no inventory hosts are listed"),
        ({"HSF_LAB__BOGUS": "1"}, "environment variable HSF_LAB__BOGUS names no setting"),
    ],
)
def test_bad_values_give_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    assert expected in message


def test_unknown_node_lookup_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown node 'nodez' \(known: nodea, nodeb, backup\)"):
        LabSettings().address_of("nodez")


def test_inventory_hosts_are_the_nodes_when_targeted() -> None:
    settings = load_settings(
        target="inventory",
        inventory=[{"name": "store1", "address": "192.0.2.10"}, {"name": "store2", "address": "192.0.2.11"}],
        primary_node="store2",
    )
    assert settings.node_names == ("store1", "store2")


def test_failover_fault_is_off_for_real_hosts_unless_chosen() -> None:
    inventory = [{"name": "store1", "address": "192.0.2.10"}, {"name": "store2", "address": "192.0.2.11"}]
    assert load_settings().fault == "destroy"
    assert load_settings(target="inventory", inventory=inventory).fault == "none"
    chosen = load_settings(target="inventory", inventory=inventory, failover={"fault": "sysrq-poweroff"})
    assert chosen.fault == "sysrq-poweroff"
    with pytest.raises(SettingsError, match="'destroy' only applies to lab VMs"):
        load_settings(target="inventory", inventory=inventory, failover={"fault": "destroy"})


def test_primary_defaults_to_the_first_node(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().primary == "nodea"
    monkeypatch.setenv("HSF_PRIMARY_NODE", "nodeb")
    assert load_settings().primary == "nodeb"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"HSF_DRBD__FSTYPE": "btrfs"},
            "setting drbd.fstype [HSF_DRBD__FSTYPE]: Input should be 'ext4' or 'xfs'",
        ),
        ({"HSF_DRBD__DISK": "vdb"}, "setting drbd.disk [HSF_DRBD__DISK]: String should match pattern"),
        ({"HSF_DRBD__INITIAL_SYNC": "maybe"}, "setting drbd.initial_sync [HSF_DRBD__INITIAL_SYNC]"),
    ],
)
def test_bad_drbd_values(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert expected in str(info.value) and len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize(
    ("backup", "message"),
    [
        ({"client": "nodez", "server": "backup"}, "backup.client: unknown node"),
        ({"client": "nodea", "server": "nodez"}, "backup.server: unknown node"),
        ({"client": "nodea", "server": "nodea"}, "the backup client itself"),
        ({"client": "local", "server": "backup"}, "must be a lab VM"),
        ({"repository": "relative/path"}, "backup.repository"),
    ],
)
def test_bad_backup_topology_is_one_clear_line(backup: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as error:
        load_settings(backup=backup)
    assert len(str(error.value).splitlines()) == 1


def test_the_lab_without_a_backup_server() -> None:
    lab = load_settings(lab={"backup_server": ""}).lab
    assert lab.backup_server is None and lab.machines == ("nodea", "nodeb")
    with pytest.raises(SettingsError, match="also a storage node"):
        load_settings(lab={"backup_server": "nodeb"})
    with pytest.raises(SettingsError, match=r"backup\.server: unknown node 'backup'"):
        load_settings(lab={"backup_server": ""}, backup={"client": "nodea", "server": "backup"})


def test_every_setting_has_a_variable_and_others_are_named_with_a_hint() -> None:
    from tasks.settings import setting_variables, unknown_variables

    known = setting_variables()
    assert {"HSF_DRY_RUN", "HSF_LAB__MEMORY_MIB", "HSF_BACKUP__ROTATION__LEVELS", "HSF_INVENTORY"} <= known
    environ = {"HSF_LAB__MEMORY_MIB": "768", "hsf_dry_run": "true", "HSF_CONFIG": "x", "PATH": "/bin"}
    assert unknown_variables(environ) == []
    assert unknown_variables({"HSF_LAB__MEMORY": "768", "HSF_NOPE_AT_ALL_XYZ": "1"}) == [
        "environment variable HSF_LAB__MEMORY names no setting (did you mean HSF_LAB__MEMORY_MIB?)",
        "environment variable HSF_NOPE_AT_ALL_XYZ names no setting",
    ]


# Replication addresses. No DNS query may leave this machine: the only name resolved for real is
# "localhost" (answered by /etc/hosts); every other lookup is a monkeypatched socket.getaddrinfo.


def _inventory(*hosts: dict[str, object]) -> Settings:
    return load_settings(target="inventory", inventory=list(hosts))


def _no_lookup(*args: object, **kwargs: object) -> object:
    raise AssertionError(f"an IP literal was looked up: {args}")


def _fake_resolver(answers: dict[str, list[str]]) -> object:
    """A getaddrinfo that answers from ``answers`` and refuses the rest as a resolver would."""
    import socket

    def getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> list[tuple[object, ...]]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 0))
            for ip in answers[host]
        ]

    return getaddrinfo


def test_the_ssh_address_replicates_by_default_and_literals_are_never_looked_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("socket.getaddrinfo", _no_lookup)
    settings = _inventory(
        {"name": "store1", "address": "192.0.2.10"},
        {
            "name": "store2",
            "address": "192.0.2.11",
            "replication_address": "10.0.9.2",
            "replication_port": 7790,
        },
    )
    store1, store2 = settings.inventory
    assert store1.replication_ip == ipaddress.IPv4Address("192.0.2.10")
    assert (store1.replication_address, store1.replication_port) == (None, None)
    assert store2.replication_ip == ipaddress.IPv4Address("10.0.9.2") and store2.replication_port == 7790


def test_ipv6_replication_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.getaddrinfo", _no_lookup)
    settings = _inventory(
        {"name": "store1", "address": "192.0.2.10", "replication_address": "fd00::1"},
        {"name": "store2", "address": "2001:db8::2"},
    )
    assert [h.replication_ip for h in settings.inventory] == [
        ipaddress.IPv6Address("fd00::1"),
        ipaddress.IPv6Address("2001:db8::2"),
    ]


def test_a_name_is_resolved_once_when_the_settings_load(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    calls = []
    real = socket.getaddrinfo

    def counting(host: str, *args: object, **kwargs: object) -> object:
        assert host == "localhost", f"only /etc/hosts may answer here, not {host!r}"
        calls.append(host)
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("socket.getaddrinfo", counting)
    settings = _inventory(
        {"name": "store1", "address": "192.0.2.10", "replication_address": "localhost"},
    )
    host = settings.inventory[0]
    assert host.replication_ip in (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))
    assert host.replication_ip == host.replication_ip and calls == ["localhost"]  # read, never re-resolved


def test_a_name_with_both_families_gives_its_ipv4_address(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake resolver: no DNS query may leave this machine.
    monkeypatch.setattr(
        "socket.getaddrinfo",
        _fake_resolver({"store1.lan": ["2001:db8::10", "192.0.2.10"], "store2.lan": ["2001:db8::11"]}),
    )
    settings = _inventory({"name": "store1", "address": "store1.lan"})
    assert settings.inventory[0].replication_ip == ipaddress.IPv4Address("192.0.2.10")
    with pytest.raises(SettingsError) as error:
        _inventory({"name": "store1", "address": "store1.lan"}, {"name": "store2", "address": "store2.lan"})
    assert str(error.value) == (
        "settings: inventory: replication addresses mix IPv4 and IPv6 (store1 192.0.2.10, store2 "
        "2001:db8::11): DRBD replicates within one address family, so give every host a "
        "replication_address of the same family"
    )


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (
            {"address": "192.0.2.10", "replication_address": "store1.lan"},
            "inventory host store1: replication address 'store1.lan' does not resolve "
            "(Name or service not known): give an IP address",
        ),
        (
            {"address": "store1.lan"},
            "inventory host store1: address 'store1.lan' does not resolve (Name or service not known): "
            "give an IP address, or set replication_address",
        ),
        (
            {"address": "10.0.0.256"},
            "inventory host store1: address '10.0.0.256' is neither an IP address nor a DNS name",
        ),
        (
            {"address": "192.0.2.10", "replication_address": "[fd00::1]"},
            "setting inventory.0.replication_address [HSF_INVENTORY__0__REPLICATION_ADDRESS]: "
            "'[fd00::1]' is neither an IP address nor a DNS name",
        ),
        (
            {"address": "192.0.2.10", "replication_port": 0},
            "setting inventory.0.replication_port [HSF_INVENTORY__0__REPLICATION_PORT]: "
            "Input should be greater than or equal to 1",
        ),
    ],
)
def test_a_bad_replication_address_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, host: dict[str, object], expected: str
) -> None:
    # Every lookup fails as for an unknown name: no DNS query may leave this machine.
    monkeypatch.setattr("socket.getaddrinfo", _fake_resolver({}))
    with pytest.raises(SettingsError) as error:
        _inventory({"name": "store1", **host})
    message = str(error.value)
    assert len(message.splitlines()) == 1, message
    assert expected in message


def test_two_hosts_cannot_share_a_replication_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.getaddrinfo", _no_lookup)
    with pytest.raises(SettingsError) as error:
        _inventory(
            {"name": "store1", "address": "192.0.2.10"},
            {"name": "store2", "address": "192.0.2.11", "replication_address": "192.0.2.10"},
        )
    assert str(error.value) == (
        "settings: inventory: hosts store1 and store2 have the same replication address 192.0.2.10: "
        "each node needs its own"
    )


def test_power_commands_placeholders_are_checked_when_the_settings_load() -> None:
    """A typo in power_on_command would otherwise surface only after the node was powered off."""
    ok = FailoverSettings(
        fault="command",
        power_off_command=("ipmitool", "-H", "{node}-bmc", "power", "off"),
        power_on_command=("ssh", "hv", "virsh start {node}", "${HOME}", "{}"),
    )
    assert ok.power_off_command[2] == "{node}-bmc"
    with pytest.raises(
        ValueError, match=r"unknown placeholder \{host\}, \{ip\} in \['off', '\{host\}', '\{ip\}'\]"
    ):
        FailoverSettings(fault="command", power_off_command=("off", "{host}", "{ip}"))
    with pytest.raises(
        ValueError, match=r"failover\.fault is 'command' but failover\.power_off_command is empty"
    ):
        FailoverSettings(fault="command")


def test_real_host_faults_are_refused_in_the_lab() -> None:
    for fault in ("sysrq-poweroff", "sysrq-crash"):
        with pytest.raises(SettingsError, match=f"failover.fault '{fault}' is for real hosts"):
            load_settings(failover={"fault": fault})
