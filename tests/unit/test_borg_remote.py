"""The backup server's pure parts: restricted key entry, client ssh command, repository access, plan."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

from tasks.borg import commands as borg
from tasks.borg.commands import as_account_argv, serve_restricted_argv
from tasks.borg.outcome import BorgError, RepositoryMissing
from tasks.borg.remote import (
    authorized_key_line,
    backup_server,
    borg_rsh,
    client_access,
    client_known_hosts,
    repository_url,
    server_access,
)
from tasks.borg.run import run_borg
from tasks.borg.server import ServerProbe, plan_server
from tasks.lab.seed import known_hosts_line
from tasks.settings import SettingsError, load_settings

needs_borg = pytest.mark.skipif(shutil.which("borg") is None, reason="borg is installed by make deps")
PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMi3c0IqHjN5yq0a2b4bb6Qb7l2YxjPpC0lJ7lq9T3wK hsf-borg-client@nodea"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyHostKeyHostKeyHostKeyHostKeyHostKey root@backup"


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
    assert repository_url("borg", "10.77.0.13", 22, "/var/backups/hsf-borg") == (
        "ssh://borg@10.77.0.13:22/var/backups/hsf-borg"
    )


def test_server_side_borg_runs_as_the_repository_owner() -> None:
    argv = ["env", "BORG_PASSPHRASE_FD=0", "borg", "compact", "/r"]
    assert as_account_argv("borg", "/var/lib/borg", argv) == [
        "runuser", "-u", "borg", "--", "env", "HOME=/var/lib/borg",
        "env", "BORG_PASSPHRASE_FD=0", "borg", "compact", "/r",
    ]  # fmt: skip


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
    # a key authorized without --append-only is replaced; a root-owned repository is handed over
    loose = _probe(
        authorized_keys=authorized_key_line("/var/backups/hsf-borg", False, PUB), repository_owner="root"
    )
    assert [s.kind for s in plan_server(loose, settings.backup, server)] == [
        "create_repository_dir",
        "authorize_client_key",
    ]
    assert client_known_hosts(settings.backup.client_key) == "/root/.ssh/hsf-borg.known_hosts"


@pytest.fixture
def restricted_serve(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A local stand-in for the server's forced command: what the restricted key runs, without a network."""
    allowed = tmp_path / "srv" / "repo"
    allowed.mkdir(parents=True)
    fake_ssh = tmp_path / "fake-ssh"
    serve = shlex.join(serve_restricted_argv(str(allowed), append_only=True))
    fake_ssh.write_text(f"#!/bin/sh\nexec {serve}\n")
    fake_ssh.chmod(0o755)
    return allowed, {"BORG_RSH": str(fake_ssh), "BORG_BASE_DIR": str(tmp_path / "base")}


@needs_borg
def test_through_the_forced_serve_an_empty_directory_is_a_missing_repository(
    restricted_serve: tuple[Path, dict[str, str]],
) -> None:
    allowed, env = restricted_serve
    url = repository_url("borg", "127.0.0.1", 22, str(allowed))
    with pytest.raises(RepositoryMissing, match="not a valid repository"):
        run_borg(borg.info_argv(url), "pw", env=env, read_only=True)
    with pytest.raises(BorgError, match="path not allowed"):
        run_borg(borg.info_argv(url.replace("/srv/repo", "/srv")), "pw", env=env, read_only=True)
    run_borg(borg.init_argv(url), "pw", env=env)  # the prepared, empty directory is where init goes
    assert (allowed / "config").exists()


def test_the_lab_without_a_backup_server() -> None:
    lab = load_settings(lab={"backup_server": ""}).lab
    assert lab.backup_server is None and lab.machines == ("nodea", "nodeb")
    with pytest.raises(SettingsError, match="also a storage node"):
        load_settings(lab={"backup_server": "nodeb"})
    with pytest.raises(SettingsError, match=r"backup\.server: unknown node 'backup'"):
        load_settings(lab={"backup_server": ""}, backup={"client": "nodea", "server": "backup"})
