"""Settings: defaults, environment and TOML sources, and one clear line per bad value."""

from __future__ import annotations

import ipaddress
import re
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
    write_settings_file,
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


def test_a_run_hands_its_exact_settings_to_a_process_as_a_json_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Whatever they were loaded from (here init overrides, which no environment carries)."""
    settings = load_settings(
        primary_node="nodeb", drbd={"resource": "hsf-fault", "minor": 99}, faults={"away_mib": 8}
    )
    path = write_settings_file(settings, tmp_path / "child" / "settings.json")
    assert path.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("HSF_CONFIG", str(path))
    assert load_settings() == settings
    path.write_text('{"drbd": {"resource": ')
    with pytest.raises(SettingsError, match=rf"^settings file {path} is not valid JSON: Expecting value"):
        load_settings()


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


# -- the cluster manager and its fencing ([cluster], [cluster.fencing]) ---------------------------------

STORES = [{"name": "store1", "address": "192.0.2.10"}, {"name": "store2", "address": "192.0.2.11"}]
BMC_PASSWORD = "Bmc-secret 42"


def _ipmi_fencing(**extra: object) -> dict[str, object]:
    return {
        "agent": "fence_ipmilan",
        "params": {"username": "admin", "lanplus": "1"},
        "nodes": {
            "store1": {"params": {"ip": "10.0.9.101"}, "secret_params": {"password": BMC_PASSWORD}},
            "store2": {"params": {"ip": "10.0.9.102"}, "secret_params": {"password": BMC_PASSWORD}},
        },
        **extra,
    }


def test_every_cluster_and_fencing_field_has_a_description() -> None:
    from tasks.pacemaker.model import FenceParams, Sbd
    from tasks.settings import ClusterSettings, FencingSettings

    for model in (ClusterSettings, FencingSettings, FenceParams, Sbd):
        missing = [name for name, field in model.model_fields.items() if not field.description]
        assert not missing, f"{model.__name__}: {missing}"


def test_cluster_manager_defaults_keep_todays_behaviour() -> None:
    cluster = load_settings().cluster
    assert (cluster.manager, cluster.token_ms, cluster.service_ip) == ("none", 3000, None)
    fencing = cluster.fencing
    assert (fencing.stonith, fencing.agent, fencing.effective_agent) == (True, None, "fence_sbd")
    assert (fencing.sbd.device, fencing.sbd.watchdog_timeout_s, fencing.sbd.msgwait_s) == (
        "/dev/disk/by-id/virtio-sbd",
        5,
        10,
    )
    assert fencing.stonith_timeout_s is None and fencing.timeout_s == 60
    assert cluster.drbd_fencing is None and cluster.stonith_warning is None


def test_the_lab_fences_with_sbd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HSF_CLUSTER__MANAGER", "pacemaker")
    monkeypatch.setenv("HSF_CLUSTER__FENCING__SBD__MSGWAIT_S", "20")
    monkeypatch.setenv("HSF_CLUSTER__FENCING__SBD__WATCHDOG_TIMEOUT_S", "10")
    settings = load_settings()
    cluster = settings.cluster
    assert cluster.drbd_fencing == "resource-and-stonith" and cluster.stonith_warning is None
    (device,) = cluster.fencing.devices(settings.node_names)
    assert (device.name, device.agent, device.targets) == ("st_sbd", "fence_sbd", ("nodea", "nodeb"))
    assert device.params.params == {"devices": "/dev/disk/by-id/virtio-sbd"}
    assert device.fence_duration_s == 24 and cluster.fencing.timeout_s == 60


def test_real_hosts_fence_with_the_named_agent() -> None:
    settings = load_settings(
        target="inventory", inventory=STORES, cluster={"manager": "pacemaker", "fencing": _ipmi_fencing()}
    )
    devices = settings.cluster.fencing.devices(settings.node_names)
    assert [(d.name, d.targets, d.params.params) for d in devices] == [
        ("st_ipmilan_store1", ("store1",), {"username": "admin", "lanplus": "1", "ip": "10.0.9.101"}),
        ("st_ipmilan_store2", ("store2",), {"username": "admin", "lanplus": "1", "ip": "10.0.9.102"}),
    ]
    assert all(d.params.secret_params["password"].get_secret_value() == BMC_PASSWORD for d in devices)
    assert settings.cluster.fencing.timeout_s == 60
    for shown in (repr(settings), str(settings.cluster), settings.model_dump_json()):
        assert BMC_PASSWORD not in shown


def test_the_stonith_opt_out_is_explicit_and_loud() -> None:
    settings = load_settings(
        target="inventory", inventory=STORES, cluster={"manager": "pacemaker", "fencing": {"stonith": False}}
    )
    cluster = settings.cluster
    assert cluster.fencing.devices(settings.node_names) == ()
    assert cluster.drbd_fencing == "resource-only"
    assert cluster.stonith_warning is not None and cluster.stonith_warning.startswith("STONITH IS DISABLED")
    description = type(cluster.fencing).model_fields["stonith"].description or ""
    assert "DISABLES NODE FENCING" in description and "split-brain" in description


def test_pacemaker_on_real_hosts_without_a_fence_agent_is_one_line_naming_the_setting() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(target="inventory", inventory=STORES, cluster={"manager": "pacemaker"})
    message = str(error.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(
        "settings: cluster.fencing.agent [HSF_CLUSTER__FENCING__AGENT] is not set: with cluster.manager "
        "'pacemaker' on real hosts name the fence agent"
    )
    assert "cluster.fencing.stonith = false" in message
    # Without the cluster manager nothing fences, so nothing is missing.
    assert load_settings(target="inventory", inventory=STORES).cluster.manager == "none"


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        (
            {"manager": "corosync"},
            "setting cluster.manager [HSF_CLUSTER__MANAGER]: Input should be 'none' or",
        ),
        ({"token_ms": 500}, "setting cluster.token_ms [HSF_CLUSTER__TOKEN_MS]: Input should be greater than"),
        ({"fencing": {"agent": "ipmilan"}}, "'ipmilan' is not a fence agent name such as 'fence_ipmilan'"),
        ({"fencing": {"agent": "fence-ipmilan"}}, "'fence-ipmilan' is not a fence agent name"),
        ({"fencing": {"agent": "fence_IPMI"}}, "'fence_IPMI' is not a fence agent name"),
        (
            {"manager": "pacemaker", "fencing": {"stonith_timeout_s": 19}},
            "setting cluster.fencing [HSF_CLUSTER__FENCING]: stonith_timeout_s 19 must exceed 19 s: a "
            "fencing takes up to 14 s (fence_sbd: msgwait + 4 s) and priority-fencing-delay adds 5 s",
        ),
        (
            {"fencing": {"stonith_timeout_s": 25, "sbd": {"watchdog_timeout_s": 10, "msgwait_s": 20}}},
            "stonith_timeout_s 25 must exceed 29 s",
        ),
        (
            {"fencing": {"sbd": {"watchdog_timeout_s": 5, "msgwait_s": 8}}},
            "setting cluster.fencing.sbd [HSF_CLUSTER__FENCING__SBD]: msgwait_s 8 must be at least twice",
        ),
        (
            {"fencing": {"params": {"password": "x"}}},
            "params password look like secrets: put them in secret_params",
        ),
        ({"fencing": {"stonith": False, "agent": "fence_ipmilan"}}, "stonith is false but a fence agent"),
        (
            {"manager": "pacemaker", "fencing": {"nodes": {"nodea": {"params": {"ip": "10.0.9.1"}}}}},
            "nodes (per-node fence parameters) need an agent that fences one node per device",
        ),
        (
            {"manager": "pacemaker", "service_ip": "10.77.0.50"},
            "setting cluster.service_ip [HSF_CLUSTER__SERVICE_IP]: '10.77.0.50' has no prefix length",
        ),
        ({"service_ip": "10.77.0.50/24"}, "service_ip is set but manager is 'none'"),
        (
            {"manager": "pacemaker", "service_ip": "10.77.0.12/24"},
            "cluster.service_ip 10.77.0.12 is nodeb's own",
        ),
        (
            {"manager": "pacemaker", "fencing": {"agent": "fence_ipmilan", "nodes": {"nodez": {}}}},
            "cluster.fencing.nodes: unknown node 'nodez' (known: nodea, nodeb)",
        ),
        (
            {"manager": "pacemaker", "fencing": {"agent": "fence_ipmilan", "nodes": {"nodea": {}}}},
            "cluster.fencing.nodes has no entry for nodeb",
        ),
    ],
)
def test_bad_cluster_settings_are_one_clear_line(cluster: dict[str, object], expected: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(cluster=cluster)
    message = str(error.value)
    assert len(message.splitlines()) == 1, message
    assert expected in message


@pytest.mark.parametrize(
    "secret_params",
    [{"password": 'has"quote ' + BMC_PASSWORD}, {"password": 4242424242}],
    ids=["unsafe-character", "not-a-string"],
)
def test_a_rejected_fence_password_is_never_echoed(secret_params: dict[str, object]) -> None:
    fencing = _ipmi_fencing()
    fencing["secret_params"] = secret_params
    with pytest.raises(SettingsError) as error:
        load_settings(
            target="inventory", inventory=STORES, cluster={"manager": "pacemaker", "fencing": fencing}
        )
    message = str(error.value)
    assert len(message.splitlines()) == 1, message
    assert "cluster.fencing.secret_params.password" in message
    assert BMC_PASSWORD not in message and "4242424242" not in message


def test_the_fencing_settings_have_variables() -> None:
    from tasks.settings import setting_variables

    assert {
        "HSF_CLUSTER__MANAGER",
        "HSF_CLUSTER__TOKEN_MS",
        "HSF_CLUSTER__SERVICE_IP",
        "HSF_CLUSTER__FENCING__AGENT",
        "HSF_CLUSTER__FENCING__STONITH",
        "HSF_CLUSTER__FENCING__SECRET_PARAMS",
        "HSF_CLUSTER__FENCING__NODES",
        "HSF_CLUSTER__FENCING__SBD__MSGWAIT_S",
    } <= setting_variables()


def test_fencing_from_a_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "hsf.toml"
    config.write_text(
        'target = "inventory"\n'
        "inventory = [\n"
        '  { name = "store1", address = "192.0.2.10" },\n'
        '  { name = "store2", address = "192.0.2.11" },\n'
        "]\n"
        "[cluster]\n"
        'manager = "pacemaker"\n'
        'service_ip = "192.0.2.50/24"\n'
        "[cluster.fencing]\n"
        'agent = "fence_ipmilan"\n'
        'params = { username = "admin", lanplus = "1" }\n'
        f'secret_params = {{ password = "{BMC_PASSWORD}" }}\n'
        "[cluster.fencing.nodes.store1]\n"
        'params = { ip = "10.0.9.101" }\n'
        "[cluster.fencing.nodes.store2]\n"
        'params = { ip = "10.0.9.102" }\n'
    )
    monkeypatch.setenv("HSF_CONFIG", str(config))
    settings = load_settings()
    assert str(settings.cluster.service_ip) == "192.0.2.50/24"
    devices = settings.cluster.fencing.devices(settings.node_names)
    assert [d.params.params["ip"] for d in devices] == ["10.0.9.101", "10.0.9.102"]
    assert [d.params.secret_params["password"].get_secret_value() for d in devices] == [BMC_PASSWORD] * 2


# -- the stacked (three-node) volume -------------------------------------------------------------------


def test_a_stacked_volume_in_the_lab_boots_its_third_vm_after_the_backup_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No address moves: nodea .11, nodeb .12, backup .13 as before, the third VM .14; the two-node
    resource keeps its two nodes."""
    two_node = load_settings()
    assert two_node.lab.third_node is None and two_node.third_node is None
    monkeypatch.setenv("HSF_DRBD__TOPOLOGY", "stacked")
    settings = load_settings()
    assert settings.lab.machines == ("nodea", "nodeb", "backup", "nodec")
    addresses = [str(settings.lab.address_of(m)) for m in settings.lab.machines]
    assert addresses == ["10.77.0.11", "10.77.0.12", "10.77.0.13", "10.77.0.14"]
    assert settings.node_names == ("nodea", "nodeb") and settings.third_node == "nodec"
    assert settings.host_names == ("nodea", "nodeb", "backup", "nodec")
    assert (settings.drbd.upper_resource, settings.drbd.upper_protocol, settings.drbd.upper_minor) == (
        "r0-u", "A", 10,
    )  # fmt: skip
    named = load_settings(drbd={"topology": "stacked", "third_node": "site2"})
    assert named.lab.machines[-1] == "site2"


def test_a_stacked_volume_on_real_hosts_takes_its_third_node_from_the_inventory() -> None:
    hosts = [{"name": n, "address": f"192.0.2.{i}"} for i, n in enumerate(("store1", "store2", "far"), 1)]
    settings = load_settings(
        target="inventory",
        inventory=hosts,
        drbd={"topology": "stacked", "third_node": "far", "stacked_address": "192.0.2.10/24"},
    )
    assert settings.node_names == ("store1", "store2") and settings.third_node == "far"
    assert settings.host_names == ("store1", "store2", "far")
    assert str(settings.drbd.stacked_address) == "192.0.2.10/24"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"drbd": {"topology": "stacked", "third_node": "nodeb"}},
            "the third node 'nodeb' is a lab VM already",
        ),
        (
            {"drbd": {"topology": "stacked", "third_node": "backup"}},
            "the third node 'backup' is a lab VM already",
        ),
        (
            {"drbd": {"topology": "stacked"}, "cluster": {"manager": "pacemaker"}},
            "not by Pacemaker yet: set cluster.manager = 'none'",
        ),
        ({"drbd": {"topology": "stacked", "upper_minor": 0}}, "drbd.upper_minor 0 is drbd.minor"),
        ({"drbd": {"topology": "stacked", "upper_protocol": "B"}}, "drbd.upper_protocol"),
        ({"drbd": {"topology": "stacked", "resource": "r" * 31}}, "must fit DRBD's 32 characters"),
        (
            {"drbd": {"topology": "stacked"}, "lab": {"nodes": ["nodea", "nodeb", "noded"]}},
            "two-node resource",
        ),
        (
            {"drbd": {"topology": "stacked"}, "backup": {"client": "nodec", "server": "backup"}},
            "the third node nodec is the backup client or server",
        ),
    ],
)
def test_a_bad_stacked_volume_is_one_clear_line(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)) as error:
        load_settings(**overrides)
    assert len(str(error.value).splitlines()) == 1


@pytest.mark.parametrize(
    ("hosts", "drbd", "message"),
    [
        (("store1", "store2", "far"), {"third_node": "away"}, "drbd.third_node: unknown node 'away'"),
        (("store1", "far"), {"third_node": "far"}, "is one of the inventory's 2 hosts"),
        (
            ("store1", "store2", "far"),
            {"third_node": "far", "stacked_address": None},
            "drbd.stacked_address is not set",
        ),
    ],
)
def test_a_bad_stacked_volume_on_real_hosts_is_one_clear_line(
    hosts: tuple[str, ...], drbd: dict[str, object], message: str
) -> None:
    inventory = [{"name": n, "address": f"192.0.2.{i}"} for i, n in enumerate(hosts, 1)]
    wanted = {"topology": "stacked", "stacked_address": "192.0.2.10/24", **drbd}
    with pytest.raises(SettingsError, match=re.escape(message)) as error:
        load_settings(target="inventory", inventory=inventory, drbd=wanted)
    assert len(str(error.value).splitlines()) == 1


def test_the_exporter_listens_on_this_machine_by_default() -> None:
    metrics = load_settings().metrics
    assert (str(metrics.address), metrics.port, metrics.textfile) == ("127.0.0.1", 9851, None)
    assert metrics.probes == ("backup", "drills", "drbd", "pacemaker")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "HSF_METRICS__ADDRESS",
            "localhost",
            "setting metrics.address [HSF_METRICS__ADDRESS]: 'localhost' is not an IP address (e.g. "
            "127.0.0.1, or 0.0.0.0 for every interface)",
        ),
        (
            "HSF_METRICS__PORT",
            "0",
            "setting metrics.port [HSF_METRICS__PORT]: Input should be greater than or",
        ),
        (
            "HSF_METRICS__TEXTFILE",
            "/var/lib/node_exporter/hsf.txt",
            "setting metrics.textfile [HSF_METRICS__TEXTFILE]: /var/lib/node_exporter/hsf.txt does not end "
            "in .prom (node_exporter's textfile collector reads only those)",
        ),
        (
            "HSF_METRICS__TEXTFILE",
            "/nonexistent/hsf.prom",
            "setting metrics.textfile [HSF_METRICS__TEXTFILE]: the directory of /nonexistent/hsf.prom does "
            "not exist",
        ),
        (
            "HSF_METRICS__PROBES",
            '["drbd", "backup", "drbd"]',
            "setting metrics.probes [HSF_METRICS__PROBES]: probes listed twice: drbd",
        ),
        (
            "HSF_METRICS__PROBES",
            "[]",
            "setting metrics.probes [HSF_METRICS__PROBES]: Tuple should have at least 1 item",
        ),
    ],
)
def test_bad_exporter_settings_are_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert str(raised.value).startswith(expected) and "\n" not in str(raised.value)


R1 = {"resource": "r1", "port": 7790, "disk": "/dev/vdc", "minor": 1, "mountpoint": "/mnt/r1"}


def test_further_volumes_each_get_settings_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[[drbd.volumes]] from TOML: each volume's settings are the first's with its own five fields."""
    (tmp_path / "hsf.toml").write_text(
        "[drbd]\nresync_rate = '40M'\n\n"
        "[[drbd.volumes]]\nresource = 'r1'\nport = 7790\ndisk = '/dev/vdc'\n"
        "minor = 1\nmountpoint = '/mnt/r1'\n"
    )
    settings = load_settings()
    first, second = settings.each_volume()
    assert (first.drbd.resource, first.drbd.disk, first.drbd.volumes) == ("r0", "/dev/vdb", ())
    assert second.drbd.volume.model_dump() == R1 and second.drbd.volumes == ()
    assert second.drbd.resync_rate == "40M" and second.lab == settings.lab  # the rest is the first's
    assert [v.drbd.resource for v in load_settings(drbd={"volumes": []}).each_volume()] == ["r0"]


def test_an_inventory_hosts_replication_port_is_the_first_volumes() -> None:
    settings = load_settings(
        target="inventory",
        inventory=[
            {"name": "store1", "address": "192.0.2.10", "replication_port": 7800},
            {"name": "store2", "address": "192.0.2.11"},
        ],
        drbd={"volumes": [{**R1, "disk": "/dev/sdc"}]},
    )
    first, second = settings.each_volume()
    assert [h.replication_port for h in first.inventory] == [7800, None]
    assert [h.replication_port for h in second.inventory] == [None, None]
    assert second.inventory[0].replication_ip == ipaddress.IPv4Address("192.0.2.10")  # resolved once, kept


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"drbd": {"volumes": [{**R1, "resource": "r0"}]}}, "drbd.volumes: resource r0 is named twice"),
        ({"drbd": {"volumes": [{**R1, "port": 7789}]}}, "r1 has the port of r0 (7789)"),
        ({"drbd": {"volumes": [{**R1, "minor": 0}]}}, "r1 has the minor of r0 (0)"),
        ({"drbd": {"volumes": [{**R1, "disk": "/dev/vdb"}]}}, "r1 has the disk of r0 (/dev/vdb)"),
        ({"drbd": {"volumes": [{**R1, "mountpoint": "/mnt/r0"}]}}, "r1 has the mountpoint of r0 (/mnt/r0)"),
        (
            {"drbd": {"volumes": [R1, {**R1, "resource": "r2", "disk": "/dev/vdd"}]}},
            "r2 has the port of r1 (7790)",
        ),
        (
            {"drbd": {"volumes": [{**R1, "disk": "/dev/vdd"}]}},
            "r1's disk /dev/vdd is not one of the lab's data disks (/dev/vdb, /dev/vdc): "
            "set lab.data_disks = 2",
        ),
        (
            {"drbd": {"volumes": [R1]}, "cluster": {"manager": "pacemaker"}},
            "Pacemaker runs one volume here",
        ),
        ({"drbd": {"volumes": [R1], "topology": "stacked"}}, "a stacked volume is built alone"),
        ({"drbd": {"volumes": [{**R1, "minor": -1}]}}, "drbd.volumes.0.minor"),
    ],
)
def test_bad_further_volumes_are_one_clear_line(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)) as error:
        load_settings(**overrides)
    assert len(str(error.value).splitlines()) == 1


def test_the_lab_has_a_data_disk_for_each_volume() -> None:
    assert LabSettings().data_disk_devices == ("/dev/vdb", "/dev/vdc")
    four = load_settings(
        lab={"data_disks": 4},
        drbd={
            "volumes": [
                {
                    **R1,
                    "resource": f"r{i}",
                    "port": 7789 + i,
                    "minor": i,
                    "disk": f"/dev/vd{'bcde'[i]}",
                    "mountpoint": f"/mnt/r{i}",
                }
                for i in (1, 2, 3)
            ]
        },
    )
    assert [v.drbd.disk for v in four.each_volume()] == ["/dev/vdb", "/dev/vdc", "/dev/vdd", "/dev/vde"]
