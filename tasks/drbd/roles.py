"""The two role changes every drill makes on a DRBD resource, written once.

- :func:`switch_primary`: the controlled switch an operator makes (unmount, demote, promote, mount);
- :func:`rejoin`: a node that was lost comes back (power, module, attach) and resyncs as secondary.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from tasks.drbd import steps
from tasks.drbd.model import DrbdResource
from tasks.executor import SshTarget
from tasks.nodes import restart_node
from tasks.settings import Settings


def switch_primary(
    targets: Mapping[str, SshTarget], resource: DrbdResource, mountpoint: str, old: str, new: str
) -> None:
    """Make ``new`` the primary with the volume mounted, in place of ``old`` (single-primary)."""
    device = resource.node(new).device
    steps.umount(targets[old], mountpoint)
    steps.demote(targets[old], resource)
    steps.promote(targets[new], resource)
    steps.mount(targets[new], device, mountpoint)


class Rejoined(BaseModel):
    returned_s: float
    resync_s: float


def rejoin(
    settings: Settings, targets: Mapping[str, SshTarget], resource: DrbdResource, node: str
) -> Rejoined:
    """Bring ``node`` back after a loss and wait until its disk is UpToDate again (as secondary)."""
    survivor = targets[resource.peer_of(node).name]
    returned_s = restart_node(settings, targets[node])
    steps.load_module(targets[node])
    steps.up(targets[node], resource)
    steps.wait_connected(survivor, resource, settings.drbd.connect_timeout_s)
    resync_s = steps.wait_synced(survivor, resource, settings.drbd.sync_timeout_s)
    return Rejoined(returned_s=returned_s, resync_s=resync_s)
