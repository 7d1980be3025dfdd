"""Borg on the lab: nodea's /home backed up to the backup VM over SSH with a restricted key.

The key may add archives and read them back; it cannot open a shell, reach another path, delete the
repository or remove a byte of data — only the server itself prunes and compacts.
"""

from __future__ import annotations

from typing import Literal

import pytest
from prefect_shell import ShellOperation

from flows.backup import backup, init, list_archives, passphrase, restore_drill, rotate, spot_check
from flows.lab import LabStatus
from tasks.borg import commands as borg
from tasks.borg.outcome import BorgError
from tasks.borg.remote import backup_server, client_access, client_known_hosts
from tasks.borg.run import run_borg
from tasks.borg.server import prepare_backup_server
from tasks.context import current_executor
from tasks.executor import SshTarget
from tasks.manifest import tree_manifest
from tasks.settings import BackupHooks, Settings, load_settings

pytestmark = pytest.mark.lab

CLIENT, SERVER = "nodea", "backup"


def run(target: SshTarget, *argv: str, ok: tuple[int, ...] = (0,), stdin: str | None = None) -> str:
    return current_executor().run(list(argv), target, timeout=120, ok_codes=ok, stdin=stdin).stdout


@pytest.fixture(scope="module")
def borg_lab(lab: LabStatus, machines: dict[str, SshTarget]) -> Settings:
    """A /home with files, a symlink, modes and owners on the client; a fresh repository on the server."""
    client = machines[CLIENT]
    run(client, "rm", "-rf", "/home/alice", "/home/bob")
    run(client, "mkdir", "-p", "/home/alice/docs", "/home/bob")
    run(client, "dd", "if=/dev/urandom", "of=/home/alice/photo.raw", "bs=1M", "count=4", "status=none")
    run(client, "dd", "of=/home/alice/docs/report.txt", "status=none", stdin="quarterly numbers\n")
    run(client, "dd", "of=/home/bob/notes.md", "status=none", stdin="# notes\n" * 500)
    run(client, "ln", "-s", "docs/report.txt", "/home/alice/link")
    run(client, "chmod", "640", "/home/alice/docs/report.txt")
    run(client, "chown", "-R", "1000:1000", "/home/alice")
    return load_settings(backup={"client": CLIENT, "server": SERVER})


def segments(settings: Settings, machines: dict[str, SshTarget]) -> dict[str, str]:
    """Every repository data file on the server with its sha256."""
    listing = run(
        machines[SERVER], "find", f"{settings.backup.repository}/data", "-type", "f",
        "-exec", "sha256sum", "{}", "+",
    )  # fmt: skip
    return {path: digest for digest, path in (line.split() for line in listing.splitlines())}


def test_init_prepares_the_server_and_backs_up_home(
    borg_lab: Settings, machines: dict[str, SshTarget]
) -> None:
    settings = borg_lab
    key = init(settings)
    client, server = machines[CLIENT], machines[SERVER]
    assert run(client, "stat", "-c", "%a", key).strip() == "600"
    assert run(client, "head", "-c", "9", key) == "BORG_KEY "
    authorized = run(server, "cat", "/var/lib/borg/.ssh/authorized_keys")
    assert (
        'command="borg serve --append-only --restrict-to-path /var/backups/hsf-borg",restrict ssh-ed25519 '
        in authorized
    )
    assert run(server, "stat", "-c", "%U %a", "/var/backups/hsf-borg").split() == ["borg", "700"]
    pinned = run(client, "cat", client_known_hosts(settings.backup.client_key))
    assert pinned.split()[2] == run(server, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").split()[1]
    server_info = backup_server(settings)
    assert server_info is not None
    again = prepare_backup_server(settings.backup, server_info, client)
    assert again == []  # idempotent: a second preparation changes nothing

    report = backup(settings, verify_data=True)
    assert report.files == 3
    assert report.original_bytes > 4 * 1024**2
    assert report.checked == ["repository", "newest archive (data verified)"]
    # the daily spot check through the restricted key: every file read back and compared on the client
    whole = settings.model_copy(
        update={"backup": settings.backup.model_copy(update={"spot_check_share": 1.0})}
    )
    spot = spot_check(whole)
    assert spot.archive == report.archive and spot.problems == [] and spot.changed_since == []
    assert spot.sampled == ["home/alice/docs/report.txt", "home/alice/photo.raw", "home/bob/notes.md"]


def test_the_restricted_key_cannot_remove_data(borg_lab: Settings, machines: dict[str, SshTarget]) -> None:
    settings = borg_lab
    client, secret = machines[CLIENT], passphrase(settings)
    access = client_access(settings)
    # No shell: whatever the client asks for, the server runs only `borg serve`.
    address = str(settings.lab.address_of(SERVER))
    ssh = borg_ssh_argv(settings, address)
    shell = current_executor().run([*ssh, "id; cat /etc/shadow"], client, ok_codes=range(256), stdin="")
    assert "uid=" not in shell.stdout and "root:" not in shell.stdout
    # No other path than the repository.
    with pytest.raises(BorgError, match=r"not inside|not allowed|restrict"):
        run_borg(
            borg.list_argv(access.url.replace("/var/backups/hsf-borg", "/var/backups")),
            secret,
            client,
            env=access.env,
        )
    # Append-only: the repository cannot be deleted, and deleting an archive removes no data. (The backup
    # runs a before-hook, a ShellOperation block whose commands run on the client over SSH.)
    ShellOperation(commands=["hostname > /root/hsf-hook-ran"]).save("lab-hook-before", overwrite=True)
    hooked = settings.model_copy(
        update={
            "backup": settings.backup.model_copy(
                update={"hooks": BackupHooks(before_backup="lab-hook-before")}
            )
        }
    )
    second = backup(hooked)
    assert second.hooks == ["before_backup"]
    assert run(client, "cat", "/root/hsf-hook-ran") == f"{CLIENT}\n"
    run(client, "rm", "/root/hsf-hook-ran")
    before = segments(settings, machines)
    with pytest.raises(BorgError):
        run_borg(
            ["borg", "delete", access.url],
            secret,
            client,
            env={**access.env, "BORG_DELETE_I_KNOW_WHAT_I_AM_DOING": "YES"},
        )
    run_borg(borg.delete_argv(access.url, [second.archive]), secret, client, env=access.env)
    run_borg(borg.compact_argv(access.url), secret, client, env=access.env)
    after = segments(settings, machines)
    assert {path: after.get(path) for path in before} == before  # every byte still on the server
    assert second.archive not in {a.name for a in list_archives(access, secret)}  # hidden, not removed

    # The server itself removes data: rotation keeps one archive and compaction frees the rest.
    keep_one = load_settings(backup={"client": CLIENT, "server": SERVER, "rotation": {"last": 1}})
    rotation = rotate(keep_one, scheme="fifo")
    assert len(rotation.kept) == 1  # the other was deleted (hidden) through the append-only key above
    compacted = segments(settings, machines)
    assert set(before) - set(compacted), "server-side compaction removed no segment"


def test_restore_drill_restores_into_scratch_and_leaves_home_alone(
    borg_lab: Settings, machines: dict[str, SshTarget]
) -> None:
    client = machines[CLIENT]
    before = tree_manifest.fn(client, "/home")
    report = restore_drill(borg_lab)
    assert report.mode == "scratch" and report.problems == [] and report.editable
    assert report.entries == 7  # alice, alice/docs, report.txt, photo.raw, link, bob, notes.md
    assert tree_manifest.fn(client, "/home") == before  # the sources were never touched
    assert run(client, "find", borg_lab.backup.scratch_dir, "-mindepth", "1") == ""  # cleaned up


# Both kinds of damage run in the flow tier on real borg (tests/flow/flows/test_backup.py); here the one
# that removes everything proves the drill over SSH against the backup VM.
@pytest.mark.parametrize("damage", ["remove"])
def test_in_place_restore_drill_recovers_home_from_the_server(
    borg_lab: Settings, damage: Literal["encrypt", "remove"]
) -> None:
    settings = load_settings(backup={"client": CLIENT, "server": SERVER, "restore_drill": "in-place"})
    report = restore_drill(settings, damage=damage)
    assert report.mode == "in-place" and report.damage == damage
    assert report.problems == [] and report.entries == 7 and report.editable
    assert report.sources_put_back is None  # nothing had to be undone


def borg_ssh_argv(settings: Settings, address: str) -> list[str]:
    """The client's own ssh command to the server (as borg uses it), for probing the forced command."""
    key = settings.backup.client_key
    return [
        "ssh", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={client_known_hosts(key)}", f"{settings.backup.server_user}@{address}",
    ]  # fmt: skip
