"""Prepare a backup server and its client: probe → plan → execute, idempotent.

The server gets an account that owns the repository directory; the client gets a key of its own, which
the server's ``authorized_keys`` forces into ``borg serve --append-only --restrict-to-path``, and a
known_hosts file pinning the server's host key as read over the flows' own (already pinned) SSH
connection — never trust on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from tasks.borg.remote import CLIENT_KEY_COMMENT, BackupServer, authorized_key_line, client_known_hosts
from tasks.executor import LocalTarget, SshTarget, default_executor
from tasks.lab.seed import known_hosts_line, ssh_keygen_argv
from tasks.settings import BackupSettings

SERVER_HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub"


class ServerProbe(BaseModel):
    """What the server and the client hold now."""

    borg_on_server: bool
    borg_on_client: bool
    account_home: str | None = Field(None, description="None: the account does not exist.")
    authorized_keys: str = ""
    repository_owner: str | None = Field(None, description="None: the repository directory is missing.")
    server_host_key: str
    client_public_key: str | None = None
    client_known_hosts: str = ""


StepKind = Literal[
    "install_borg_server",
    "install_borg_client",
    "create_account",
    "create_repository_dir",
    "generate_client_key",
    "authorize_client_key",
    "pin_server_host_key",
]


class Step(BaseModel):
    kind: StepKind
    reason: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.reason}"


def useradd_argv(account: str, home: str) -> list[str]:
    return ["useradd", "--system", "--create-home", "--home-dir", home, "--shell", "/bin/sh", account]


def account_home_for(account: str) -> str:
    return f"/var/lib/{account}"


def plan_server(probe: ServerProbe, backup: BackupSettings, server: BackupServer) -> list[Step]:
    """Pure: the steps from ``probe`` to a server that accepts only the restricted client key."""
    steps: list[Step] = []
    if not probe.borg_on_server:
        steps.append(Step(kind="install_borg_server", reason="borg is not installed on the server"))
    if not probe.borg_on_client:
        steps.append(Step(kind="install_borg_client", reason="borg is not installed on the client"))
    if probe.account_home is None:
        steps.append(Step(kind="create_account", reason=f"no account {server.user!r} on the server"))
    if probe.repository_owner != server.user:
        why = "missing" if probe.repository_owner is None else f"owned by {probe.repository_owner}"
        steps.append(Step(kind="create_repository_dir", reason=f"{backup.repository} is {why}"))
    if probe.client_public_key is None:
        steps.append(Step(kind="generate_client_key", reason=f"no key {backup.client_key} on the client"))
    wanted = (
        authorized_key_line(backup.repository, backup.append_only, probe.client_public_key)
        if probe.client_public_key
        else None
    )
    if wanted is None or wanted not in probe.authorized_keys.splitlines():
        steps.append(
            Step(kind="authorize_client_key", reason="the client's restricted key is not authorized")
        )
    pinned = known_hosts_line(server.address, server.port, probe.server_host_key)
    if pinned not in probe.client_known_hosts.splitlines():
        steps.append(
            Step(kind="pin_server_host_key", reason="the client does not know the server's host key")
        )
    return steps


def _cat(target: LocalTarget | SshTarget, path: str) -> str | None:
    """A file's text, or None when it does not exist."""
    result = default_executor().run(["cat", path], target, read_only=True, ok_codes=(0, 1))
    return result.stdout if result.exit_code == 0 else None


def _has_borg(target: LocalTarget | SshTarget) -> bool:
    run = default_executor().run
    return run(["which", "borg"], target, read_only=True, ok_codes=(0, 1)).exit_code == 0


def probe_server(
    backup: BackupSettings, server: BackupServer, client: LocalTarget | SshTarget
) -> ServerProbe:
    run = default_executor().run
    admin = server.admin
    entry = run(["getent", "passwd", server.user], admin, read_only=True, ok_codes=(0, 2)).stdout
    home = entry.split(":")[5] if entry.strip() else None
    owner = run(["stat", "-c", "%U", backup.repository], admin, read_only=True, ok_codes=(0, 1))
    host_key = _cat(admin, SERVER_HOST_KEY)
    if host_key is None:
        raise RuntimeError(f"{admin.name}: no {SERVER_HOST_KEY} to pin for the backup client")
    return ServerProbe(
        borg_on_server=_has_borg(admin),
        borg_on_client=_has_borg(client),
        account_home=home,
        authorized_keys=(_cat(admin, f"{home}/.ssh/authorized_keys") or "") if home else "",
        repository_owner=owner.stdout.strip() if owner.exit_code == 0 else None,
        server_host_key=host_key.strip(),
        client_public_key=(_cat(client, f"{backup.client_key}.pub") or "").strip() or None,
        client_known_hosts=_cat(client, client_known_hosts(backup.client_key)) or "",
    )


def _write(
    target: LocalTarget | SshTarget, path: str, text: str, mode: str, owner: str | None = None
) -> None:
    run = default_executor().run
    run(["dd", f"of={path}", "status=none"], target, stdin=text)
    run(["chmod", mode, path], target)
    if owner:
        run(["chown", f"{owner}:", path], target)


@task(name="prepare-backup-server", cache_policy=NO_CACHE, timeout_seconds=900, retries=1)
def prepare_backup_server(
    backup: BackupSettings, server: BackupServer, client: LocalTarget | SshTarget
) -> list[str]:
    """Make the server accept the client's restricted key for the repository; return what was done."""
    log = get_run_logger()
    run = default_executor().run
    probe = probe_server(backup, server, client)
    steps = plan_server(probe, backup, server)
    if not steps:
        log.info(
            "backup server %s already accepts %s's restricted key: nothing to do",
            server.admin.name,
            client.name,
        )
    admin = server.admin
    home = probe.account_home or account_home_for(server.user)
    public_key = probe.client_public_key
    for step in steps:
        log.info("%s", step)
        match step.kind:
            case "install_borg_server" | "install_borg_client":
                where = admin if step.kind == "install_borg_server" else client
                run(["apt-get", "install", "-y", "-q", "borgbackup"], where, timeout=600,
                    env={"DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
            case "create_account":
                run(useradd_argv(server.user, home), admin)
            case "create_repository_dir":  # borg init accepts an empty directory
                run(["install", "-d", "-m", "700", "-o", server.user, backup.repository], admin)
            case "generate_client_key":
                run(["mkdir", "-p", "-m", "700", backup.client_key.rsplit("/", 1)[0]], client)
                run(ssh_keygen_argv(Path(backup.client_key), f"{CLIENT_KEY_COMMENT}@{client.name}"), client)
                public_key = (_cat(client, f"{backup.client_key}.pub") or "").strip()
            case "authorize_client_key":
                if not public_key:
                    if default_executor().dry_run:  # the key was not generated: nothing to authorize
                        continue
                    raise RuntimeError(f"{client.name}: no public key at {backup.client_key}.pub")
                run(["install", "-d", "-m", "700", "-o", server.user, f"{home}/.ssh"], admin)
                line = authorized_key_line(backup.repository, backup.append_only, public_key)
                others = [k for k in probe.authorized_keys.splitlines() if not k.endswith(CLIENT_KEY_COMMENT)]
                text = "\n".join([*others, line]) + "\n"  # other keys of the account stay
                _write(admin, f"{home}/.ssh/authorized_keys", text, "600", owner=server.user)
            case "pin_server_host_key":
                pinned = known_hosts_line(server.address, server.port, probe.server_host_key)
                _write(client, client_known_hosts(backup.client_key), pinned + "\n", "644")
    return [str(step) for step in steps]
