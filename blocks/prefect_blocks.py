"""The project's Prefect block types: the cluster, the backup repository, the lab.

Settings (``tasks/settings.py``) stay the source the flows read; these blocks publish the same
configuration to the Prefect server, so the team sees and edits it in the UI (Blocks) and any process
can turn a saved block back into settings overrides. Each block holds the settings model itself, so
its fields, descriptions and validation are exactly the settings'. Secrets are Prefect ``Secret``
blocks (the DRBD shared secret, the Borg passphrase), generated once and referenced, never copied.

``python -m blocks register`` (or ``make blocks``) registers the types and saves one block of each,
named after the cluster, from the current settings. :func:`cluster_settings` turns the blocks saved
under a cluster's name back into the settings a flow acts with: how one Prefect server runs the flows
of many clusters (each deployment names its cluster).
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar, Literal, TypeVar

from prefect.blocks.core import Block
from prefect.blocks.system import Secret
from pydantic import Field

from tasks.cluster import borg_passphrase_block_name, secret_block, secret_block_name, stored_secret
from tasks.settings import (
    BackupSettings,
    DrbdSettings,
    InventoryHost,
    LabSettings,
    Settings,
    SettingsError,
    load_settings,
)


class HsfCluster(Block):
    """The storage cluster the flows act on: which hosts, the DRBD volume and its shared secret."""

    _block_type_name: ClassVar[str] = "HSF Cluster"
    _block_type_slug: ClassVar[str] = "hsf-cluster"
    _description: ClassVar[str] = "Nodes (lab or inventory), DRBD volume and its shared secret."

    target: Literal["lab", "inventory"] = Field(description="The embedded lab, or the inventory hosts.")
    inventory: tuple[InventoryHost, ...] = Field((), description="Real hosts, when target = 'inventory'.")
    primary_node: str | None = Field(None, description="Node that starts as DRBD primary.")
    drbd: DrbdSettings = Field(description="The replicated volume.")
    # Bare ``Secret`` (not ``Secret[str]``): pydantic keeps the loaded block itself, so saving stores
    # a reference to the named Secret block rather than an anonymous copy of its value.
    drbd_secret: Secret = Field(description="DRBD's cram-hmac shared secret (a Secret block).")

    def settings_overrides(self) -> dict[str, Any]:
        """What to pass to ``load_settings(**...)`` to act on this cluster."""
        return {
            "target": self.target,
            "inventory": [h.model_dump() for h in self.inventory],
            "primary_node": self.primary_node,
            "drbd": self.drbd.model_dump(),
        }


class HsfBackupRepository(Block):
    """A Borg repository: where it is, what goes in, and its passphrase (a Secret block)."""

    _block_type_name: ClassVar[str] = "HSF Backup Repository"
    _block_type_slug: ClassVar[str] = "hsf-backup-repository"
    _description: ClassVar[str] = "Borg repository, sources, encryption; passphrase in a Secret block."

    backup: BackupSettings = Field(description="The repository and what goes into it.")
    passphrase: Secret = Field(  # bare, as HsfCluster.drbd_secret
        description="The repository passphrase (a Secret block)."
    )

    def settings_overrides(self) -> dict[str, Any]:
        return {"backup": self.backup.model_dump(mode="json")}


class HsfLab(Block):
    """The embedded lab: its VMs, network and where it keeps images and state."""

    _block_type_name: ClassVar[str] = "HSF Lab"
    _block_type_slug: ClassVar[str] = "hsf-lab"
    _description: ClassVar[str] = "The embedded libvirt lab: nodes, memory, network, image cache."

    lab: LabSettings = Field(description="The embedded lab's settings.")

    def settings_overrides(self) -> dict[str, Any]:
        return {"lab": self.lab.model_dump(mode="json")}


BLOCK_TYPES: tuple[type[Block], ...] = (HsfCluster, HsfBackupRepository, HsfLab)
B = TypeVar("B", HsfCluster, HsfBackupRepository, HsfLab)


def register(settings: Settings) -> dict[str, str]:
    """Register the block types and save one block of each from ``settings``; returns slug → name.

    The backup repository's block is saved only once its passphrase is stored (by ``flows.backup
    init`` or ``adopt``): a passphrase is never generated for a repository that may already exist.
    """
    for block_type in BLOCK_TYPES:
        block_type.register_type_and_schema()
    name = settings.cluster_name
    saved: dict[str, Block] = {
        "hsf-cluster": HsfCluster(
            target=settings.target,
            inventory=settings.inventory,
            primary_node=settings.primary_node,
            drbd=settings.drbd,
            drbd_secret=secret_block(secret_block_name(settings)),
        ),
        "hsf-lab": HsfLab(lab=settings.lab),
    }
    if stored_secret(borg_passphrase_block_name(settings)) is not None:
        saved["hsf-backup-repository"] = HsfBackupRepository(
            backup=settings.backup, passphrase=Secret.load(borg_passphrase_block_name(settings))
        )
    for block in saved.values():
        block.save(name, overwrite=True)
    return {slug: f"{slug}/{name}" for slug in saved}


def cluster_settings(cluster: str | None) -> Settings:
    """The settings a flow acts with: the environment / ``hsf.toml`` when ``cluster`` is None, else the
    blocks saved under that name over them — ``hsf-cluster/<cluster>`` (it must exist) and the backup
    repository's and the lab's when saved — with ``cluster.name`` set to it, so the secrets and events
    are the cluster's own."""
    if cluster is None:
        return load_settings()
    overrides: dict[str, Any] = {"cluster": {"name": cluster}}
    try:
        overrides |= _load(HsfCluster, cluster).settings_overrides()
    except ValueError:
        raise SettingsError(
            f"no saved cluster named {cluster!r} (block hsf-cluster/{cluster}): save it with "
            f"HSF_CLUSTER__NAME={cluster} python -m blocks register, run with that cluster's settings"
        ) from None
    # Not saved: that part of the settings stays the environment's / hsf.toml's.
    with contextlib.suppress(ValueError):
        overrides |= _load(HsfBackupRepository, cluster).settings_overrides()
    with contextlib.suppress(ValueError):
        overrides |= _load(HsfLab, cluster).settings_overrides()
    return load_settings(**overrides)


def _load(block_type: type[B], name: str) -> B:
    """The block ``name`` of ``block_type``; ValueError when there is none."""
    block = block_type.load(name)
    assert isinstance(block, block_type)  # sync context: never a coroutine
    return block
