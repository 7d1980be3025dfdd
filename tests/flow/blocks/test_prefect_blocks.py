"""blocks/prefect_blocks.py: the block types register, save and load back to the same settings;
secrets are references."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client

from blocks.prefect_blocks import (
    HsfBackupRepository,
    HsfCluster,
    HsfLab,
    cluster_settings,
    register,
)
from flows.backup import passphrase
from tasks.cluster import borg_passphrase_block_name, secret_block_name, store_secret, stored_secret
from tasks.settings import Settings, SettingsError, load_settings


def test_blocks_round_trip_to_the_same_settings(prefect_harness: None, settings: Settings) -> None:
    name = settings.cluster_name
    store_secret(borg_passphrase_block_name(settings), "stored-by-init-or-adopt")
    assert register(settings) == {
        "hsf-cluster": f"hsf-cluster/{name}",
        "hsf-backup-repository": f"hsf-backup-repository/{name}",
        "hsf-lab": f"hsf-lab/{name}",
    }
    cluster, repo, lab = HsfCluster.load(name), HsfBackupRepository.load(name), HsfLab.load(name)
    assert (cluster.drbd, repo.backup, lab.lab) == (settings.drbd, settings.backup, settings.lab)
    overrides = {**cluster.settings_overrides(), **repo.settings_overrides(), **lab.settings_overrides()}
    assert load_settings(**overrides) == settings


def test_secrets_are_referenced_secret_blocks_generated_once(
    prefect_harness: None, settings: Settings
) -> None:
    assert "hsf-backup-repository" not in register(settings)  # no passphrase generated for a repository
    assert stored_secret(borg_passphrase_block_name(settings)) is None
    store_secret(borg_passphrase_block_name(settings), secrets.token_urlsafe(24))  # what init does
    register(settings)
    drbd = Secret.load(secret_block_name(settings)).get()
    borg = Secret.load(borg_passphrase_block_name(settings)).get()
    assert len(drbd) >= 32 and len(borg) >= 32 and drbd != borg
    # The blocks reference the very Secret blocks the flows read.
    assert passphrase(settings) == borg
    register(settings)  # a second registration keeps the secrets
    cluster, repo = HsfCluster.load(settings.cluster_name), HsfBackupRepository.load(settings.cluster_name)
    assert (cluster.drbd_secret.get(), repo.passphrase.get()) == (drbd, borg)
    with get_client(sync_client=True) as client:
        document = client.read_block_document_by_name(settings.cluster_name, "hsf-cluster")
        secret_doc = client.read_block_document_by_name(secret_block_name(settings), "secret")
    assert document.block_document_references["drbd_secret"]["block_document"]["id"] == str(secret_doc.id)


def test_a_named_cluster_loads_its_saved_blocks_over_the_environment(
    prefect_harness: None, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One server, many clusters: what a deployment's ``cluster`` parameter gives the flow."""
    east = load_settings(
        cluster={"name": "east-" + settings.lab.name},
        backup={"repository": str(tmp_path / "east"), "sources": ["/srv/east"], "archive_prefix": "east"},
    )
    store_secret(borg_passphrase_block_name(east), "east-passphrase")
    register(east)
    # The worker's own settings differ: the cluster's blocks win, the rest stays the environment's.
    monkeypatch.setenv("HSF_BACKUP__REPOSITORY", str(tmp_path / "worker"))
    monkeypatch.setenv("HSF_CLUSTER__LOCK_TIMEOUT_S", "7")
    loaded = cluster_settings(east.cluster_name)
    assert loaded.cluster_name == east.cluster_name
    assert (loaded.backup, loaded.drbd, loaded.lab) == (east.backup, east.drbd, east.lab)
    assert loaded.cluster.lock_timeout_s == 7
    assert passphrase(loaded) == "east-passphrase"  # its secrets are the cluster's own
    assert cluster_settings(None).backup.repository == str(tmp_path / "worker")  # no cluster: as before


def test_a_cluster_with_no_saved_blocks_is_one_line(prefect_harness: None, settings: Settings) -> None:
    with pytest.raises(SettingsError) as refused:
        cluster_settings("nowhere")
    assert str(refused.value) == (
        "no saved cluster named 'nowhere' (block hsf-cluster/nowhere): save it with "
        "HSF_CLUSTER__NAME=nowhere python -m blocks register, run with that cluster's settings"
    )
