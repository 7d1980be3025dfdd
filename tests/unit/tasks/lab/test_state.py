"""Unit tests for the pure planning in tasks/lab/state.py (plan_up, plan_down) and LabLayout."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from tasks.lab.image import GuestImage
from tasks.lab.state import Action, LabLayout, LabProbe, VmProbe, plan_down, plan_up
from tasks.lab.xml import DomainSpec
from tasks.settings import LabSettings

NODES = ("nodea", "nodeb")
PER_NODE_CREATE = ["prepare_vm_files", "define_vm", "attach_data_disk", "attach_data_disk", "start_vm"]


def _settings(tmp_path: Path, **overrides: object) -> LabSettings:
    return LabSettings(state_dir=tmp_path / "state", nodes=NODES, **overrides)  # type: ignore[arg-type]


def _image(tmp_path: Path, digest: str = "0123456789abcdef") -> GuestImage:
    directory = tmp_path / "images" / digest
    return GuestImage(
        directory=directory,
        base=directory / "base.qcow2",
        kernel=directory / "vmlinuz",
        initrd=directory / "initrd.img",
        digest=digest,
    )


@pytest.fixture
def layout(tmp_path: Path) -> LabLayout:
    return LabLayout(_settings(tmp_path))


@pytest.fixture
def specs(tmp_path: Path, layout: LabLayout) -> dict[str, DomainSpec]:
    return {node: layout.domain_spec(node, _image(tmp_path), "qemu") for node in NODES}


def _vm(layout: LabLayout, node: str, **state: object) -> VmProbe:
    return VmProbe(node=node, domain=layout.domain(node), **state)  # type: ignore[arg-type]


def _running_vm(layout: LabLayout, spec: DomainSpec, **overrides: object) -> VmProbe:
    state: dict[str, object] = {
        "defined": True,
        "active": True,
        "spec_id": spec.spec_id,
        "data_disks_attached": 2,
        "files_present": True,
    }
    return _vm(layout, spec.hostname, **{**state, **overrides})


def _fresh_probe(layout: LabLayout) -> LabProbe:
    return LabProbe(netns_exists=False, libvirt_reachable=False, vms={n: _vm(layout, n) for n in NODES})


def _running_probe(layout: LabLayout, specs: dict[str, DomainSpec], **vm_overrides: object) -> LabProbe:
    return LabProbe(
        netns_exists=True,
        own_daemons={"libvirtd": 4242, "virtlogd": 4241},
        libvirt_reachable=True,
        network_defined=True,
        network_active=True,
        vms={node: _running_vm(layout, spec, **vm_overrides) for node, spec in specs.items()},
        state_dir_exists=True,
    )


def _steps(actions: list[Action]) -> list[tuple[str, str | None]]:
    return [(a.kind, a.node) for a in actions]


# -- plan_up -----------------------------------------------------------------------------------------


def test_plan_up_fresh_embedded_host(layout: LabLayout, specs: dict[str, DomainSpec]) -> None:
    actions = plan_up(layout, _fresh_probe(layout), specs, embedded=True)
    assert _steps(actions) == [
        ("create_netns", None),
        ("start_daemons", None),
        ("define_network", None),
        ("start_network", None),
        *[(kind, "nodea") for kind in PER_NODE_CREATE],
        *[(kind, "nodeb") for kind in PER_NODE_CREATE],
    ]
    assert all(a.reason for a in actions)


def test_plan_up_fresh_host_with_existing_netns(layout: LabLayout, specs: dict[str, DomainSpec]) -> None:
    probe = _fresh_probe(layout).model_copy(update={"netns_exists": True})
    kinds = [a.kind for a in plan_up(layout, probe, specs, embedded=True)]
    assert "create_netns" not in kinds
    assert kinds[:3] == ["start_daemons", "define_network", "start_network"]


def test_plan_up_running_lab_plans_nothing(layout: LabLayout, specs: dict[str, DomainSpec]) -> None:
    assert plan_up(layout, _running_probe(layout, specs), specs, embedded=True) == []


def test_plan_up_stopped_domains_only_start(layout: LabLayout, specs: dict[str, DomainSpec]) -> None:
    probe = _running_probe(layout, specs, active=False)
    assert _steps(plan_up(layout, probe, specs, embedded=True)) == [
        ("start_vm", "nodea"),
        ("start_vm", "nodeb"),
    ]


def test_plan_up_stopped_network_only_starts_it(layout: LabLayout, specs: dict[str, DomainSpec]) -> None:
    probe = _running_probe(layout, specs).model_copy(update={"network_active": False})
    assert _steps(plan_up(layout, probe, specs, embedded=True)) == [("start_network", None)]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"spec_id": "0000000000000000"}, "settings or image changed", id="spec-id-mismatch"),
        pytest.param({"files_present": False}, "its disks are missing", id="files-missing"),
        pytest.param({"spec_id": None, "active": False}, "settings or image changed", id="no-spec-stopped"),
    ],
)
def test_plan_up_stale_vm_is_recreated(
    layout: LabLayout, specs: dict[str, DomainSpec], overrides: dict[str, object], reason: str
) -> None:
    probe = _running_probe(layout, specs)
    probe.vms["nodeb"] = _running_vm(layout, specs["nodeb"], **overrides)

    actions = plan_up(layout, probe, specs, embedded=True)

    assert _steps(actions) == [("remove_vm", "nodeb"), *[(kind, "nodeb") for kind in PER_NODE_CREATE]]
    assert reason in actions[0].reason


def test_plan_up_image_change_recreates_every_vm(tmp_path: Path, layout: LabLayout) -> None:
    old = {node: layout.domain_spec(node, _image(tmp_path, "aaaaaaaaaaaaaaaa"), "qemu") for node in NODES}
    new = {node: layout.domain_spec(node, _image(tmp_path, "bbbbbbbbbbbbbbbb"), "qemu") for node in NODES}
    actions = plan_up(layout, _running_probe(layout, old), new, embedded=True)
    assert _steps(actions) == [
        ("remove_vm", "nodea"),
        *[(kind, "nodea") for kind in PER_NODE_CREATE],
        ("remove_vm", "nodeb"),
        *[(kind, "nodeb") for kind in PER_NODE_CREATE],
    ]


def test_plan_up_undefined_vm_with_files_keeps_them(layout: LabLayout, specs: dict[str, DomainSpec]) -> None:
    probe = _running_probe(layout, specs)
    probe.vms["nodea"] = _vm(layout, "nodea", files_present=True)
    assert _steps(plan_up(layout, probe, specs, embedded=True)) == [
        ("define_vm", "nodea"),
        ("attach_data_disk", "nodea"),
        ("attach_data_disk", "nodea"),
        ("start_vm", "nodea"),
    ]


@pytest.mark.parametrize(
    ("active", "attached", "expected"),
    [
        pytest.param(True, 1, [("attach_data_disk", "nodea", 1)], id="running, the second missing"),
        pytest.param(
            False,
            0,
            [("attach_data_disk", "nodea", 0), ("attach_data_disk", "nodea", 1), ("start_vm", "nodea", None)],
            id="stopped, both missing",
        ),
    ],
)
def test_plan_up_missing_data_disks_are_attached_in_order(
    layout: LabLayout,
    specs: dict[str, DomainSpec],
    active: bool,
    attached: int,
    expected: list[tuple[str, str, int | None]],
) -> None:
    probe = _running_probe(layout, specs)
    probe.vms["nodea"] = _running_vm(layout, specs["nodea"], data_disks_attached=attached, active=active)
    actions = plan_up(layout, probe, specs, embedded=True)
    assert [(a.kind, a.node, a.disk) for a in actions] == expected


def test_plan_up_removes_stray_domain(layout: LabLayout, specs: dict[str, DomainSpec]) -> None:
    probe = _running_probe(layout, specs).model_copy(update={"stray_domains": ["hsf-nodec"]})
    actions = plan_up(layout, probe, specs, embedded=True)
    assert _steps(actions) == [("remove_vm", "hsf-nodec")]
    assert "no longer in the settings" in actions[0].reason


@pytest.mark.parametrize(
    "probe_kind",
    ["fresh", "running", "unreachable-running"],
)
def test_plan_up_not_embedded_never_touches_netns_or_daemons(tmp_path: Path, probe_kind: str) -> None:
    lab = _settings(tmp_path, libvirt_uri="qemu+ssh://root@virthost.example/system")
    assert not lab.embedded
    layout = LabLayout(lab)
    specs = {node: layout.domain_spec(node, _image(tmp_path), "kvm") for node in NODES}
    probe = {
        "fresh": _fresh_probe(layout),
        "running": _running_probe(layout, specs),
        "unreachable-running": _running_probe(layout, specs).model_copy(
            update={"libvirt_reachable": False, "netns_exists": False}
        ),
    }[probe_kind]

    kinds = {a.kind for a in plan_up(layout, probe, specs, embedded=lab.embedded)}

    assert not kinds & {"create_netns", "start_daemons"}
    if probe_kind == "fresh":
        assert {"define_network", "start_network", *PER_NODE_CREATE} <= kinds


# -- plan_down ---------------------------------------------------------------------------------------


def test_plan_down_running_lab(layout: LabLayout, specs: dict[str, DomainSpec]) -> None:
    actions = plan_down(layout, _running_probe(layout, specs), embedded=True)
    assert _steps(actions) == [
        ("destroy_vm", "nodea"),
        ("undefine_vm", "nodea"),
        ("destroy_vm", "nodeb"),
        ("undefine_vm", "nodeb"),
        ("remove_network", None),
        ("stop_daemons", None),
        ("delete_netns", None),
        ("remove_state_dir", None),
    ]
    assert "libvirtd (4242)" in actions[5].reason
    assert "virtlogd (4241)" in actions[5].reason


def test_plan_down_stopped_vm_is_only_undefined(layout: LabLayout, specs: dict[str, DomainSpec]) -> None:
    probe = _running_probe(layout, specs)
    probe.vms["nodea"] = _running_vm(layout, specs["nodea"], active=False)
    kinds = _steps(plan_down(layout, probe, embedded=True))
    assert ("destroy_vm", "nodea") not in kinds
    assert ("undefine_vm", "nodea") in kinds
    assert ("destroy_vm", "nodeb") in kinds


def test_plan_down_removes_stray_domains(layout: LabLayout, specs: dict[str, DomainSpec]) -> None:
    probe = _running_probe(layout, specs).model_copy(update={"stray_domains": ["hsf-old"]})
    assert ("remove_vm", "hsf-old") in _steps(plan_down(layout, probe, embedded=True))


def test_plan_down_nothing_exists(layout: LabLayout) -> None:
    assert plan_down(layout, _fresh_probe(layout), embedded=True) == []


def test_plan_down_not_embedded(layout: LabLayout, specs: dict[str, DomainSpec]) -> None:
    actions = plan_down(layout, _running_probe(layout, specs), embedded=False)
    kinds = [a.kind for a in actions]
    assert "stop_daemons" not in kinds
    assert "delete_netns" not in kinds
    assert kinds == [
        "destroy_vm",
        "undefine_vm",
        "destroy_vm",
        "undefine_vm",
        "remove_network",
        "remove_state_dir",
    ]


# -- LabLayout ---------------------------------------------------------------------------------------


def test_layout_names(tmp_path: Path) -> None:
    layout = LabLayout(_settings(tmp_path, name="lab2"))
    assert [layout.domain(n) for n in NODES] == ["lab2-nodea", "lab2-nodeb"]
    assert (layout.netns, layout.network, layout.bridge) == ("lab2-lab", "lab2-net", "lab2br0")
    assert layout.overlay("nodea") == tmp_path / "state" / "vms" / "nodea" / "root.qcow2"


def test_layout_addresses(tmp_path: Path) -> None:
    layout = LabLayout(_settings(tmp_path, subnet="10.99.0.0/24"))
    assert layout.address("nodea") == ipaddress.IPv4Interface("10.99.0.11/24")
    assert layout.address("nodeb") == ipaddress.IPv4Interface("10.99.0.12/24")
    assert layout.bridge_interface() == ipaddress.IPv4Interface("10.99.0.1/24")


def test_domain_spec_fields(tmp_path: Path, layout: LabLayout) -> None:
    image = _image(tmp_path)
    spec = layout.domain_spec("nodeb", image, "kvm")
    assert spec.name == "hsf-nodeb"
    assert spec.hostname == "nodeb"
    assert spec.domain_type == "kvm"
    assert (spec.kernel, spec.initrd) == (image.kernel, layout.initrd("nodeb"))  # its own: it holds its keys
    assert spec.mac == "52:54:00:4d:00:0c"
    assert spec.network == layout.network
    assert spec.root_disk == layout.overlay("nodeb")


def test_domain_spec_id_equal_for_equal_settings(tmp_path: Path) -> None:
    first = LabLayout(_settings(tmp_path)).domain_spec("nodea", _image(tmp_path), "qemu")
    second = LabLayout(_settings(tmp_path)).domain_spec("nodea", _image(tmp_path), "qemu")
    assert first.spec_id == second.spec_id
    assert first == second


@pytest.mark.parametrize(
    ("overrides", "digest", "domain_type"),
    [
        pytest.param({"memory_mib": 1024}, "0123456789abcdef", "qemu", id="memory"),
        pytest.param({"vcpus": 2}, "0123456789abcdef", "qemu", id="vcpus"),
        pytest.param({"data_disk_gib": 2}, "0123456789abcdef", "qemu", id="data-disk"),
        pytest.param({"tcg_tb_cache_mib": 64}, "0123456789abcdef", "qemu", id="tb-cache"),
        pytest.param({"subnet": "10.99.0.0/24"}, "0123456789abcdef", "qemu", id="subnet"),
        pytest.param({}, "fedcba9876543210", "qemu", id="image"),
        pytest.param({}, "0123456789abcdef", "kvm", id="accel"),
    ],
)
def test_domain_spec_id_changes_with_settings(
    tmp_path: Path, overrides: dict[str, object], digest: str, domain_type: str
) -> None:
    base = LabLayout(_settings(tmp_path)).domain_spec("nodea", _image(tmp_path), "qemu")
    changed = LabLayout(_settings(tmp_path, **overrides)).domain_spec(
        "nodea",
        _image(tmp_path, digest),
        domain_type,  # type: ignore[arg-type]
    )
    assert changed.spec_id != base.spec_id
