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
