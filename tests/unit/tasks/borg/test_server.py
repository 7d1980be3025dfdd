"""tasks/borg/server.py: the plan for the backup server, from a probe of what is already there."""

from __future__ import annotations

import pytest

from tasks.borg.remote import authorized_key_line, backup_server
from tasks.borg.server import ServerProbe, plan_server
from tasks.drbd.plan import Refused
from tasks.lab.seed import known_hosts_line
from tasks.settings import load_settings

PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMi3c0IqHjN5yq0a2b4bb6Qb7l2YxjPpC0lJ7lq9T3wK hsf-borg-client@nodea"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyHostKeyHostKeyHostKeyHostKeyHostKey root@backup"


def _probe(**changes: object) -> ServerProbe:
    ready = ServerProbe(
        borg_on_server=True,
        borg_on_client=True,
        account_home="/var/lib/borg",
        authorized_keys="ssh-rsa AAAAB3other admin@laptop\n"
        + authorized_key_line("/var/backups/hsf-borg", True, PUB)
        + "\n",
        repository_owner="borg",
        server_host_key=HOST_KEY,
        client_public_key=PUB,
        client_known_hosts=known_hosts_line("10.77.0.13", 22, HOST_KEY) + "\n",
    )
    return ready.model_copy(update=changes)


def test_plan_for_a_prepared_server_is_empty_and_names_each_missing_piece() -> None:
    settings = load_settings(backup={"client": "nodea", "server": "backup"})
    server = backup_server(settings)
    assert server is not None
    assert plan_server(_probe(), settings.backup, server) == []
    fresh = _probe(
        borg_on_server=False,
        account_home=None,
        authorized_keys="",
        repository_owner=None,
        client_public_key=None,
        client_known_hosts="",
    )
    assert [s.kind for s in plan_server(fresh, settings.backup, server)] == [
        "install_borg_server",
        "create_account",
        "create_repository_dir",
        "generate_client_key",
        "authorize_client_key",
        "pin_server_host_key",
    ]
    # a key authorized without --append-only is replaced; an empty root-owned repository is handed over
    loose = _probe(
        authorized_keys=authorized_key_line("/var/backups/hsf-borg", False, PUB), repository_owner="root"
    )
    assert [s.kind for s in plan_server(loose, settings.backup, server)] == [
        "create_repository_dir",
        "authorize_client_key",
    ]


def test_a_repository_directory_holding_someone_elses_data_is_refused_not_taken_over() -> None:
    settings = load_settings(backup={"client": "nodea", "server": "backup"})
    server = backup_server(settings)
    assert server is not None
    with pytest.raises(Refused, match=r"/var/backups/hsf-borg already holds data owned by root, not by borg"):
        plan_server(_probe(repository_owner="root", repository_empty=False), settings.backup, server)
