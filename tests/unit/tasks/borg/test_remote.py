"""tasks/borg/remote.py: the restricted key entry, the client's ssh command, who reaches which repository."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from tasks.borg.remote import (
    authorized_key_line,
    backup_server,
    borg_rsh,
    client_access,
    client_known_hosts,
    repository_url,
    server_access,
)
from tasks.settings import load_settings

PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMi3c0IqHjN5yq0a2b4bb6Qb7l2YxjPpC0lJ7lq9T3wK hsf-borg-client@nodea"


def test_authorized_key_forces_the_restricted_serve() -> None:
    line = authorized_key_line("/var/backups/hsf-borg", True, PUB)
    assert line == (
        'command="borg serve --append-only --restrict-to-path /var/backups/hsf-borg",restrict '
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMi3c0IqHjN5yq0a2b4bb6Qb7l2YxjPpC0lJ7lq9T3wK hsf-borg-client"
    )
    assert "--append-only" not in authorized_key_line("/srv/borg", False, PUB)
    with pytest.raises(ValueError):
        authorized_key_line('/srv/"odd', True, PUB)


def test_client_ssh_is_pinned_and_never_prompts() -> None:
    argv = shlex.split(borg_rsh("/root/.ssh/hsf-borg"))
    assert argv[:3] == ["ssh", "-i", "/root/.ssh/hsf-borg"]
    options = {argv[i + 1] for i, a in enumerate(argv) if a == "-o"}
    assert {"BatchMode=yes", "StrictHostKeyChecking=yes", "IdentitiesOnly=yes"} <= options
    assert "UserKnownHostsFile=/root/.ssh/hsf-borg.known_hosts" in options
    assert client_known_hosts("/root/.ssh/hsf-borg") == "/root/.ssh/hsf-borg.known_hosts"
    assert repository_url("borg", "10.77.0.13", 22, "/var/backups/hsf-borg") == (
        "ssh://borg@10.77.0.13:22/var/backups/hsf-borg"
    )


def test_a_dead_server_is_noticed_within_half_a_minute() -> None:
    """ssh's keepalives end a backup whose server died (the backup-server-down fault hung without them);
    ssh itself accepts the options (-G prints the configuration it would use, connecting nowhere)."""
    argv = shlex.split(borg_rsh("/root/.ssh/hsf-borg"))
    options = {argv[i + 1] for i, a in enumerate(argv) if a == "-o"}
    assert {"ServerAliveInterval=10", "ServerAliveCountMax=3"} <= options
    printed = subprocess.run([*argv, "-G", "backup.invalid"], capture_output=True, text=True, check=True)
    assert {"serveraliveinterval 10", "serveralivecountmax 3"} <= set(printed.stdout.splitlines())


def test_access_in_the_lab_and_locally() -> None:
    lab = load_settings(backup={"client": "nodea", "server": "backup"})
    client = client_access(lab)
    assert client.target.name == "nodea"
    assert client.url == "ssh://borg@10.77.0.13:22/var/backups/hsf-borg"  # the backup VM after two nodes
    assert "BORG_RSH" in client.env and client.account is None
    server = server_access(lab)
    assert (server.target.name, server.url, server.account) == ("backup", "/var/backups/hsf-borg", "borg")
    local = load_settings(target="inventory", inventory=[{"name": "store1", "address": "127.0.0.1"}])
    assert backup_server(local) is None
    assert client_access(local).url == server_access(local).url == "/var/backups/hsf-borg"
    assert client_access(local).target.name == "localhost"
