"""Prepare a backup server and its client: probe → plan → execute, idempotent.

The server gets an account that owns the repository directory; the client gets a key of its own, which
the server's ``authorized_keys`` forces into ``borg serve --append-only --restrict-to-path``, and a
known_hosts file pinning the server's host key as read over the flows' own (already pinned) SSH
connection — never trust on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from tasks.borg.remote import CLIENT_KEY_COMMENT, BackupServer, authorized_key_line, client_known_hosts
from tasks.cli import CheckFailed
from tasks.context import current_executor
from tasks.drbd.plan import Refused
from tasks.executor import LocalTarget, SshTarget
from tasks.lab.seed import known_hosts_line, ssh_keygen_argv
from tasks.plan import PlannedStep, apply
from tasks.settings import BackupSettings
from tasks.step import step

SERVER_HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub"


class ServerProbe(BaseModel):
    """What the server and the client hold now."""

    borg_on_server: bool
    borg_on_client: bool
    account_home: str | None = Field(None, description="None: the account does not exist.")
    authorized_keys: str = ""
    repository_owner: str | None = Field(None, description="None: the repository directory is missing.")
    repository_empty: bool = Field(
        True, description="The repository directory holds nothing (or is missing)."
    )
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


class Step(PlannedStep):
    kind: StepKind


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
        if not probe.repository_empty:  # someone else's data: never chown or chmod it
            raise Refused(
                f"{server.admin.name}: {backup.repository} already holds data owned by "
                f"{probe.repository_owner}, not by {server.user}; nothing was changed. This project does not "
                "take over a repository directory it did not make (set backup.repository to a new path)"
            )
        why = "missing" if probe.repository_owner is None else f"empty and owned by {probe.repository_owner}"
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
    result = current_executor().run(["cat", path], target, read_only=True, ok_codes=(0, 1))
    return result.stdout if result.exit_code == 0 else None


def _has_borg(target: LocalTarget | SshTarget) -> bool:
    run = current_executor().run
    return run(["which", "borg"], target, read_only=True, ok_codes=(0, 1)).exit_code == 0


def probe_server(
    backup: BackupSettings, server: BackupServer, client: LocalTarget | SshTarget
) -> ServerProbe:
    run = current_executor().run
    admin = server.admin
    entry = run(["getent", "passwd", server.user], admin, read_only=True, ok_codes=(0, 2)).stdout
    home = entry.split(":")[5] if entry.strip() else None
    owner = run(["stat", "-c", "%U", backup.repository], admin, read_only=True, ok_codes=(0, 1))
    anything = ["find", backup.repository, "-mindepth", "1", "-maxdepth", "1", "-print", "-quit"]
    holds = (
        run(anything, admin, read_only=True, ok_codes=(0, 1)).stdout.strip() if owner.exit_code == 0 else ""
    )
    host_key = _cat(admin, SERVER_HOST_KEY)
    if host_key is None:
        raise Refused(  # the client trusts no server key but this one, read over a pinned connection
            f"{admin.name}: no {SERVER_HOST_KEY} to pin for the backup client; nothing was changed "
            "(`ssh-keygen -A` on the server makes one)"
        )
    return ServerProbe(
        borg_on_server=_has_borg(admin),
        borg_on_client=_has_borg(client),
        account_home=home,
        authorized_keys=(_cat(admin, f"{home}/.ssh/authorized_keys") or "") if home else "",
        repository_owner=owner.stdout.strip() if owner.exit_code == 0 else None,
        repository_empty=not holds,
        server_host_key=host_key.strip(),
        client_public_key=(_cat(client, f"{backup.client_key}.pub") or "").strip() or None,
        client_known_hosts=_cat(client, client_known_hosts(backup.client_key)) or "",
    )


def _write(
    target: LocalTarget | SshTarget, path: str, text: str, mode: str, owner: str | None = None
) -> None:
    run = current_executor().run
    run(["dd", f"of={path}", "status=none"], target, stdin=text)
    run(["chmod", mode, path], target)
    if owner:
        run(["chown", f"{owner}:", path], target)


@step(name="prepare-backup-server", timeout_seconds=900, retries=1)
def prepare_backup_server(
    backup: BackupSettings, server: BackupServer, client: LocalTarget | SshTarget
) -> list[str]:
    """Make the server accept the client's restricted key for the repository; return what was done."""
    run = current_executor().run
    probe = probe_server(backup, server, client)
    admin = server.admin
    home = probe.account_home or account_home_for(server.user)
    public_key = probe.client_public_key

    def install_borg(step: PlannedStep) -> None:
        where = admin if step.kind == "install_borg_server" else client
        run(["apt-get", "install", "-y", "-q", "borgbackup"], where, timeout=600,
            env={"DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip

    def generate_client_key(_: PlannedStep) -> None:
        nonlocal public_key
        run(["mkdir", "-p", "-m", "700", backup.client_key.rsplit("/", 1)[0]], client)
        run(ssh_keygen_argv(Path(backup.client_key), f"{CLIENT_KEY_COMMENT}@{client.name}"), client)
        public_key = (_cat(client, f"{backup.client_key}.pub") or "").strip()

    def authorize_client_key(_: PlannedStep) -> None:
        if not public_key:
            if current_executor().dry_run:  # the key was not generated: nothing to authorize
                return
            raise CheckFailed(
                f"{client.name}: no public key at {backup.client_key}.pub; nothing was authorized"
            )
        run(["install", "-d", "-m", "700", "-o", server.user, f"{home}/.ssh"], admin)
        line = authorized_key_line(backup.repository, backup.append_only, public_key)
        others = [k for k in probe.authorized_keys.splitlines() if not k.endswith(CLIENT_KEY_COMMENT)]
        text = "\n".join([*others, line]) + "\n"  # other keys of the account stay
        _write(admin, f"{home}/.ssh/authorized_keys", text, "600", owner=server.user)

    def pin_server_host_key(_: PlannedStep) -> None:
        pinned = known_hosts_line(server.address, server.port, probe.server_host_key)
        _write(client, client_known_hosts(backup.client_key), pinned + "\n", "644")

    return apply(
        plan_server(probe, backup, server),
        {
            "install_borg_server": install_borg,
            "install_borg_client": install_borg,
            "create_account": lambda _: run(useradd_argv(server.user, home), admin),
            # borg init accepts an empty directory
            "create_repository_dir": lambda _: run(
                ["install", "-d", "-m", "700", "-o", server.user, backup.repository], admin
            ),
            "generate_client_key": generate_client_key,
            "authorize_client_key": authorize_client_key,
            "pin_server_host_key": pin_server_host_key,
        },
        nothing_to_do=f"backup server {admin.name} already accepts {client.name}'s restricted key",
    )
