"""The embedded lab as Prefect flows: ``python -m flows.lab up|status|down``.

``up`` is idempotent: it probes, plans only what is missing (a second call plans nothing and says so),
and waits for every VM to answer SSH. ``down`` removes every VM, disk, network, namespace and daemon
the lab created, and nothing else. Both recover from the leftovers of a killed run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from prefect import flow, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from tasks.cli import run_cli
from tasks.context import run_context
from tasks.lab import host, steps
from tasks.lab.state import Action, LabLayout, LabProbe, in_netns, lab_targets, plan_down, plan_up
from tasks.lab.xml import DomainSpec
from tasks.nodes import answers_ssh
from tasks.plan import Handler, PlannedStep, apply
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
    dry_run: bool = Field(False, description="The actions were planned, not applied.")
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
            ssh = answers_ssh(targets[node])
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
def lab_up(settings: Settings | None = None) -> LabStatus:
    """Bring the lab to 'every VM running and answering SSH', doing only what is missing."""
    settings = settings or load_settings()
    with run_context(settings, changes_state=True):
        return _up(settings.lab, settings.dry_run)


def _up(lab: LabSettings, dry_run: bool) -> LabStatus:
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

    def lab_step(apply_step: Callable[[PlannedStep], object]) -> Handler:
        return Handler(apply_step, commands_only=False)  # libvirt and local files: only logged in a dry run

    handlers = {
        "create_netns": lab_step(lambda _: steps.create_namespace(lab)),
        "start_daemons": lab_step(lambda _: steps.start_libvirt(lab, mask_kvm)),
        "define_network": lab_step(lambda _: steps.ensure_network(lab)),
        "start_network": lab_step(lambda _: steps.ensure_network(lab)),
        "remove_vm": lab_step(lambda a: steps.remove_vm(lab, _domain(layout, a.node or ""))),
        "prepare_vm_files": lab_step(lambda a: steps.prepare_vm_files(lab, a.node or "", image)),
        "define_vm": lab_step(lambda a: steps.define_vm(lab, specs[a.node or ""])),
        "attach_data_disk": lab_step(lambda a: steps.attach_data_disk(lab, a.node or "", _disk_of(a))),
        "start_vm": lab_step(lambda a: steps.start_vm(lab, a.node or "")),
    }
    actions = plan_up(layout, probe, specs, lab.embedded)
    daemons = [a for a in actions if a.kind in DAEMON_ACTIONS]
    if daemons:
        # libvirt objects are only visible once the daemon answers: start it, then probe and plan again.
        done = apply(daemons, handlers, nothing_to_do="libvirtd answers")
        rest = actions if dry_run else plan_up(layout, steps.probe(lab), specs, lab.embedded)
        rest = [a for a in rest if a.kind not in DAEMON_ACTIONS]
        done += apply(rest, handlers, nothing_to_do=f"{', '.join(lab.machines)} already run as specified")
    else:
        done = apply(actions, handlers, nothing_to_do=f"{', '.join(lab.machines)} already run as specified")
    status = _status(lab, steps.probe(lab), check_ssh=False)
    status.actions, status.dry_run = done, dry_run
    if dry_run and done:
        log.info("dry run: the lab is not up; %d steps would bring it up", len(done))
    else:
        inside = in_netns(lab)
        waits = steps.wait_for_ssh.map(
            lab=unmapped(lab), node=list(lab.machines), in_netns=unmapped(inside)
        ).result()
        for vm in status.vms:
            vm.ssh = True
        log.info("SSH waits: %s", ", ".join(f"{w:.0f} s" for w in waits))
    status.seconds = round(time.monotonic() - started, 1)
    log.info("lab up in %.1f s", status.seconds)
    _publish(status, "Lab up")
    return status


def _disk_of(step: PlannedStep) -> int:
    assert isinstance(step, Action) and step.disk is not None  # plan_up names the disk it attaches
    return step.disk


def _domain(layout: LabLayout, node: str) -> str:
    """A node of the lab is removed by its domain name; a stray domain is named as it is."""
    return layout.domain(node) if node in layout.lab.machines else node


@flow(name="lab-status")
def lab_status(settings: Settings | None = None) -> LabStatus:
    """What runs now, with an SSH check of every running VM."""
    settings = settings or load_settings()
    with run_context(settings, changes_state=False):
        status = _status(settings.lab, steps.probe(settings.lab), check_ssh=True)
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
def lab_down(settings: Settings | None = None) -> list[str]:
    """Remove every VM, disk, network, namespace and daemon the lab created; return what was removed."""
    settings = settings or load_settings()
    with run_context(settings, changes_state=True):
        return _down(settings.lab, settings.dry_run)


def _down(lab: LabSettings, dry_run: bool) -> list[str]:
    log = get_run_logger()
    layout = LabLayout(lab)
    probe = steps.probe(lab)
    if lab.embedded and not probe.libvirt_reachable and _libvirt_has_lab_definitions(layout):
        if dry_run:
            log.info("(dry run; not starting libvirtd) lab definitions remain but libvirtd is not running")
        else:
            log.info("libvirtd is not running but lab definitions remain: starting it to remove them")
            steps.start_libvirt(lab, mask_kvm=lab.accel != "kvm")  # removing VMs never needs KVM
            probe = steps.probe(lab)
    stopped: list[str] = []

    def delete_netns(_: PlannedStep) -> None:
        if probe.own_daemons == {}:
            steps.stop_libvirt(lab)  # processes left in the namespace by a killed run
        steps.delete_namespace(lab)

    def lab_step(apply_step: Callable[[PlannedStep], object]) -> Handler:
        return Handler(apply_step, commands_only=False)

    handlers: dict[str, Handler | Callable[[PlannedStep], object]] = {
        "destroy_vm": lambda _: None,  # undefine_vm destroys and undefines in one step
        "undefine_vm": lab_step(lambda a: steps.remove_vm(lab, layout.domain(a.node or ""))),
        "remove_vm": lab_step(lambda a: steps.remove_vm(lab, a.node or "")),
        "remove_network": lab_step(lambda _: steps.remove_network(lab)),
        "stop_daemons": lab_step(lambda _: stopped.extend(steps.stop_libvirt(lab))),
        "delete_netns": lab_step(delete_netns),
        "remove_state_dir": lab_step(lambda _: steps.remove_state_dir(lab)),
    }
    actions = plan_down(layout, probe, lab.embedded)
    done = apply(
        actions,
        handlers,
        nothing_to_do=f"no VM, network, daemon, namespace or state of lab {lab.name} exists",
    )
    removed = [line for line in done if not line.startswith(("destroy_vm", "stop_daemons"))]
    return [f"stopped {p}" for p in stopped] + removed if not dry_run else done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.lab", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "status", "down"])
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks of failures")
    args = parser.parse_args(argv)
    command = args.command

    def act(settings: Settings) -> int:
        lab = settings.lab
        if not lab.embedded:
            host.open_libvirt(lab.libvirt_uri).close()  # one clear line before any flow starts
        if command == "up":
            status = lab_up(settings)
            print(status.render())
            print(f"lab up in {status.seconds:.1f} s; changes: {len(status.actions) or 'none'}")
        elif command == "status":
            print(lab_status(settings).render())
        else:
            removed = lab_down(settings)
            print("\n".join(removed) if removed else "nothing to remove")
        return 0

    return run_cli(act, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
