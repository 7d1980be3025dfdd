"""The embedded lab as Prefect flows: ``python -m flows.lab up|status|down``.

``up`` is idempotent: it probes, plans only what is missing (a second call plans nothing and says so),
and waits for every VM to answer SSH. ``down`` removes every VM, disk, network, namespace and daemon
the lab created, and nothing else. Both recover from the leftovers of a killed run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from prefect import flow, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from flows.cli import run_cli
from tasks.executor import TransportError, default_executor
from tasks.lab import host, steps
from tasks.lab.image import GuestImage
from tasks.lab.state import Action, LabLayout, LabProbe, in_netns, lab_targets, plan_down, plan_up
from tasks.lab.xml import DomainSpec
from tasks.settings import LabSettings, Settings, load_settings

DAEMON_ACTIONS = ("create_netns", "start_daemons")


class VmStatus(BaseModel):
    node: str
    domain: str
    state: str = Field(description="running / defined (not running) / absent")
    address: str
    ssh: bool | None = Field(None, description="Answered a command over SSH (None: not checked).")


class LabStatus(BaseModel):
    lab: str
    libvirt_uri: str
    netns: str | None = Field(description="Namespace the lab runs in (None: host namespace).")
    daemons: dict[str, int]
    network: str
    vms: list[VmStatus]
    actions: list[str] = Field(default_factory=list, description="What this run changed.")
    seconds: float = 0.0

    @property
    def running(self) -> list[str]:
        return [vm.node for vm in self.vms if vm.state == "running"]

    def render(self) -> str:
        where = f"namespace {self.netns}" if self.netns else "host namespace"
        daemons = ", ".join(f"{n} {p}" for n, p in sorted(self.daemons.items())) or "none of ours"
        lines = [
            f"lab {self.lab}: libvirt {self.libvirt_uri} ({where}; daemons: {daemons})",
            f"network {self.network}",
            f"{'NODE':<10} {'DOMAIN':<16} {'STATE':<12} {'ADDRESS':<16} SSH",
        ]
        for vm in self.vms:
            ssh = {True: "ok", False: "no answer", None: "-"}[vm.ssh]
            lines.append(f"{vm.node:<10} {vm.domain:<16} {vm.state:<12} {vm.address:<16} {ssh}")
        return "\n".join(lines)


def _status(lab: LabSettings, probe: LabProbe, check_ssh: bool) -> LabStatus:
    layout = LabLayout(lab)
    targets = lab_targets(lab)
    vms = []
    for node, vm in probe.vms.items():
        state = "running" if vm.active else ("defined" if vm.defined else "absent")
        ssh = None
        if check_ssh and vm.active:
            try:
                default_executor().run(["true"], targets[node], timeout=15, read_only=True, quiet=True)
                ssh = True
            except TransportError:
                ssh = False
        vms.append(
            VmStatus(node=node, domain=vm.domain, state=state, address=str(lab.address_of(node)), ssh=ssh)
        )
    return LabStatus(
        lab=lab.name,
        libvirt_uri=steps.libvirt_uri(lab)
        if probe.libvirt_reachable
        else f"{steps.libvirt_uri(lab)} (not answering)",
        netns=layout.netns if in_netns(lab) else None,
        daemons=probe.own_daemons,
        network=f"{layout.network} {lab.subnet} ({'active' if probe.network_active else 'inactive'})",
        vms=vms,
    )


def _publish(status: LabStatus, title: str) -> None:
    create_table_artifact(
        key=f"lab-{status.lab}",
        table=[vm.model_dump() for vm in status.vms],
        description=f"{title}: lab {status.lab}",
    )
    changes = "\n".join(f"- {a}" for a in status.actions) or "- nothing: the lab was already in that state"
    create_markdown_artifact(
        key=f"lab-{status.lab}-report",
        markdown="\n\n".join(
            (
                f"# {title}",
                f"```\n{status.render()}\n```",
                f"## Changes\n{changes}",
                f"Took {status.seconds:.1f} s.",
            )
        ),
        description=title,
    )


@flow(name="lab-up", log_prints=True)
def lab_up(lab: LabSettings | None = None) -> LabStatus:
    """Bring the lab to 'every VM running and answering SSH', doing only what is missing."""
    lab = lab or load_settings().lab
    log = get_run_logger()
    started = time.monotonic()
    layout = LabLayout(lab)
    image = steps.build_guest_image(lab)
    domain_type = steps.choose_accelerator(lab, image)
    specs: dict[str, DomainSpec] = {
        node: layout.domain_spec(node, image, domain_type) for node in lab.machines
    }
    probe = steps.probe(lab)
    if not lab.embedded and not probe.libvirt_reachable:
        host.open_libvirt(lab.libvirt_uri)  # raises LibvirtUnreachable with libvirt's own reason
    mask_kvm = domain_type == "qemu"
    actions = plan_up(layout, probe, specs, lab.embedded)
    daemon_actions = [a for a in actions if a.kind in DAEMON_ACTIONS]
    if daemon_actions:
        # libvirt objects are only visible once the daemon answers: start it, then probe and plan again.
        for action in daemon_actions:
            log.info("%s", action)
            _execute_up(lab, action, image, specs, mask_kvm)
        actions = daemon_actions + plan_up(layout, steps.probe(lab), specs, lab.embedded)
    if not actions:
        log.info("nothing to do: %s already run as specified", ", ".join(lab.machines))
    for action in actions:
        if action.kind not in DAEMON_ACTIONS:
            log.info("%s", action)
            _execute_up(lab, action, image, specs, mask_kvm)
    inside = in_netns(lab)
    waits = steps.wait_for_ssh.map(
        lab=unmapped(lab), node=list(lab.machines), in_netns=unmapped(inside)
    ).result()
    status = _status(lab, steps.probe(lab), check_ssh=False)
    for vm in status.vms:
        vm.ssh = True
    status.actions = [str(a) for a in actions]
    status.seconds = round(time.monotonic() - started, 1)
    log.info("lab up in %.1f s (SSH waits: %s)", status.seconds, ", ".join(f"{w:.0f} s" for w in waits))
    _publish(status, "Lab up")
    return status


def _execute_up(
    lab: LabSettings, action: Action, image: GuestImage, specs: dict[str, DomainSpec], mask_kvm: bool
) -> None:
    node = action.node or ""
    match action.kind:
        case "create_netns":
            steps.create_namespace(lab)
        case "start_daemons":
            steps.start_libvirt(lab, mask_kvm)
        case "define_network" | "start_network":
            steps.ensure_network(lab)
        case "remove_vm":
            steps.remove_vm(lab, LabLayout(lab).domain(node) if node in lab.machines else node)
        case "prepare_vm_files":
            steps.prepare_vm_files(lab, node, image)
        case "define_vm":
            steps.define_vm(lab, specs[node])
        case "attach_data_disk":
            steps.attach_data_disk(lab, node)
        case "start_vm":
            steps.start_vm(lab, node)
        case _:
            raise ValueError(f"not an 'up' action: {action.kind}")


@flow(name="lab-status")
def lab_status(lab: LabSettings | None = None) -> LabStatus:
    """What runs now, with an SSH check of every running VM."""
    lab = lab or load_settings().lab
    status = _status(lab, steps.probe(lab), check_ssh=True)
    _publish(status, "Lab status")
    return status


def _libvirt_has_lab_definitions(layout: LabLayout) -> bool:
    """Persistent libvirt definitions of this lab exist on disk (so a stopped libvirtd must be started)."""
    config = Path("/etc/libvirt/qemu")
    return (
        any(config.glob(f"{layout.lab.name}-*.xml"))
        or (config / "networks" / f"{layout.network}.xml").exists()
    )


@flow(name="lab-down")
def lab_down(lab: LabSettings | None = None) -> list[str]:
    """Remove every VM, disk, network, namespace and daemon the lab created; return what was removed."""
    lab = lab or load_settings().lab
    log = get_run_logger()
    layout = LabLayout(lab)
    probe = steps.probe(lab)
    if lab.embedded and not probe.libvirt_reachable and _libvirt_has_lab_definitions(layout):
        log.info("libvirtd is not running but lab definitions remain: starting it to remove them")
        steps.start_libvirt(lab, mask_kvm=lab.accel != "kvm")  # removing VMs never needs KVM
        probe = steps.probe(lab)
    actions = plan_down(layout, probe, lab.embedded)
    if not actions:
        log.info("nothing to do: no VM, network, daemon, namespace or state of lab %s exists", lab.name)
    done: list[str] = []
    for action in actions:
        log.info("%s", action)
        node = action.node or ""
        match action.kind:
            case "destroy_vm":
                continue  # remove_vm destroys and undefines in one step
            case "undefine_vm":
                steps.remove_vm(lab, layout.domain(node))
            case "remove_vm":
                steps.remove_vm(lab, node)
            case "remove_network":
                steps.remove_network(lab)
            case "stop_daemons":
                done.extend(f"stopped {p}" for p in steps.stop_libvirt(lab))
                continue
            case "delete_netns":
                if probe.own_daemons == {}:
                    steps.stop_libvirt(lab)  # processes left in the namespace by a killed run
                steps.delete_namespace(lab)
            case "remove_state_dir":
                steps.remove_state_dir(lab)
        done.append(str(action))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.lab", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "status", "down"])
    command = parser.parse_args(argv).command

    def act(settings: Settings) -> int:
        lab = settings.lab
        if not lab.embedded:
            host.open_libvirt(lab.libvirt_uri).close()  # one clear line before any flow starts
        if command == "up":
            status = lab_up(lab)
            print(status.render())
            print(f"lab up in {status.seconds:.1f} s; changes: {len(status.actions) or 'none'}")
        elif command == "status":
            print(lab_status(lab).render())
        else:
            removed = lab_down(lab)
            print("\n".join(removed) if removed else "nothing to remove")
        return 0

    return run_cli(act)


if __name__ == "__main__":
    sys.exit(main())
