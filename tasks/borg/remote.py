"""Where borg runs and where its repository lives, and the backup server's restricted client key.

Two ways to reach one repository:

- the **client** (where the sources live) names it ``ssh://user@server:port/path`` and reaches the
  server with a key of its own that the server's ``authorized_keys`` forces into
  ``borg serve --append-only --restrict-to-path <repository>``: the client can add archives and read
  them back, but it cannot open a shell, reach another path or remove data;
- the **server side** (pruning, compaction, deleting by name) runs on the server itself, as the account
  that owns the repository, with the plain path — the only place where data is really removed.

Without a server both are the client, with the repository as a local path.
"""

from __future__ import annotations

import shlex

from pydantic import BaseModel, Field

from tasks.borg.commands import serve_restricted_argv
from tasks.cluster import host_targets
from tasks.executor import LOCAL, LocalTarget, SshTarget
from tasks.settings import Settings

CLIENT_KEY_COMMENT = "hsf-borg-client"  # marks the entry this project manages in authorized_keys


class RepoAccess(BaseModel):
    """How one side runs borg against the repository."""

    target: LocalTarget | SshTarget = Field(description="Where borg runs.")
    url: str = Field(description="The repository as borg on that side names it.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment (BORG_RSH).")
    account: str | None = Field(None, description="Run borg as this account (the repository's owner).")


class BackupServer(BaseModel):
    """The server as the flows reach it (root over SSH) and as the client reaches it (the borg account)."""

    admin: SshTarget = Field(description="Root on the server, for preparing it and server-side borg.")
    address: str = Field(description="Address the client connects to.")
    port: int = 22
    user: str = Field(description="Account that owns the repository; the client logs in as it.")


def repository_url(user: str, address: str, port: int, path: str) -> str:
    return f"ssh://{user}@{address}:{port}{path}"


def client_known_hosts(client_key: str) -> str:
    """The client's pinned known_hosts for the server, beside its key."""
    return f"{client_key}.known_hosts"


# A server that dies mid-backup sends nothing more, not even a reset: without keepalives the client's
# ssh waited on the silent connection until the task's timeout (measured: the backup-server-down fault
# hung). With them ssh gives up after SERVER_ALIVE_INTERVAL_S * SERVER_ALIVE_COUNT and borg fails in one
# line; a live server answers every keepalive, however long a backup runs.
SERVER_ALIVE_INTERVAL_S = 10
SERVER_ALIVE_COUNT = 3


def borg_rsh(client_key: str) -> str:
    """The ssh command borg uses on the client: its own key, the pinned host key, never a prompt, and a
    dead server noticed within half a minute."""
    return shlex.join(
        [
            "ssh", "-i", client_key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={client_known_hosts(client_key)}",
            "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=15",
            "-o", f"ServerAliveInterval={SERVER_ALIVE_INTERVAL_S}",
            "-o", f"ServerAliveCountMax={SERVER_ALIVE_COUNT}",
        ]
    )  # fmt: skip


def authorized_key_line(repository: str, append_only: bool, public_key: str) -> str:
    """One authorized_keys entry: the key may only run the restricted ``borg serve``."""
    command = shlex.join(serve_restricted_argv(repository, append_only))
    if '"' in command:
        raise ValueError(f"repository path {repository!r} cannot be quoted in authorized_keys")
    key_type, key_data = public_key.split()[:2]
    return f'command="{command}",restrict {key_type} {key_data} {CLIENT_KEY_COMMENT}'


def backup_server(settings: Settings) -> BackupServer | None:
    backup = settings.backup
    if backup.server is None:
        return None
    admin = host_targets(settings)[backup.server]
    return BackupServer(admin=admin, address=admin.address, port=admin.port, user=backup.server_user)


def client_target(settings: Settings) -> LocalTarget | SshTarget:
    client = settings.backup.client
    return LOCAL if client == "local" else host_targets(settings)[client]


def client_access(settings: Settings) -> RepoAccess:
    """The client's view: a local path, or the server over SSH with the restricted key."""
    backup, server = settings.backup, backup_server(settings)
    if server is None:
        return RepoAccess(target=client_target(settings), url=backup.repository)
    return RepoAccess(
        target=client_target(settings),
        url=repository_url(server.user, server.address, server.port, backup.repository),
        env={"BORG_RSH": borg_rsh(backup.client_key)},
    )


def server_access(settings: Settings) -> RepoAccess:
    """Where data is really removed: on the server as the repository's owner (or the client's own repo)."""
    backup, server = settings.backup, backup_server(settings)
    if server is None:
        return client_access(settings)
    return RepoAccess(target=server.admin, url=backup.repository, account=server.user)
