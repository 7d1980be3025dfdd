"""Backup faults: ``python -m flows.backup_faults NAME``.

Each fault strikes the Borg repository the backup flows keep (``python -m flows.backup init`` made it)
while they use it, and checks what an operator needs: the failure says what is wrong in one line,
nothing already stored is lost, the sources are never touched, and the next run works without a
command by hand.

- ``backup-server-down`` (lab only: the backup VM is destroyed): the server dies while ``borg create``
  runs. The interrupted backup fails in one line; the server, back, keeps every archive it had; the next
  backup runs without ``borg break-lock`` (borg removes the dead server process's stale lock itself) and
  reports any checkpoint the interrupted one left.
- ``restore-disk-full``: the restore drill extracts onto a filesystem half the size of the sources, at
  most 1 MiB (a tmpfs mounted on the client for the fault; sources under 32 KiB are refused). It fails
  with ENOSPC in one line, its scratch directory is removed, and the sources are untouched.
- ``segment-corrupted`` (lab only): 16 bytes flipped in the segment that holds the newest archive's own
  data (a file made for the fault, backed up, then removed from the sources). The weekly verify fails
  in one line naming the segment; ``borg check --repair``, run on a copy of the repository, says what a
  repair would drop; older archives still restore while the damaged one does not; the bytes written
  back make the repository whole again (verify passes) and the fault's archive is deleted on the server.
- ``wrong-passphrase``: a backup runs with a passphrase that is not the repository's (a Secret block
  made for the fault). It is refused in one line and writes nothing: with the right passphrase the
  repository lists exactly the archives it had.

The fault's own traces (the tmpfs, the Secret block) are removed at the end; an archive a fault made on
purpose (the next backup after the server came back, the restore drill's fresh one) stays, as after
any backup. Exits 1 if an archive was lost or the sources changed, 4 if a fault did not end as
promised.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from flows.backup import backup, restore_drill, verify
from tasks.borg import commands as borg
from tasks.borg.damage import Damage, corrupt_segment, list_segments, undo_damage
from tasks.borg.outcome import BorgError
from tasks.borg.remote import RepoAccess, backup_server, client_access, server_access
from tasks.borg.steps import create_archive, list_archives, passphrase, run_on
from tasks.cli import EXIT_COMMAND_FAILED, EXIT_DATA_LOST, EXIT_OK, run_cli
from tasks.cluster import borg_passphrase_block_name, delete_secret, store_secret, stored_secret
from tasks.context import current_executor, refuse_dry_run, run_context
from tasks.disks import full_filesystem_for, mount_small_filesystem, unmount_small_filesystem
from tasks.drbd.plan import Refused
from tasks.events import BACKUP_FAULT_COMPLETED, backup_resource, emit
from tasks.executor import SshTarget
from tasks.faults import BACKUP_FAULTS, LAB_ONLY_BACKUP_FAULTS, BackupFault
from tasks.lab.host import wait_until
from tasks.manifest import differences, tree_manifest
from tasks.nodes import fire_fault, restart_node
from tasks.settings import Settings, load_settings

FAULT_FILE_MIB = 1  # the file only the damaged archive holds
RESTORE_CHECKED = 2  # the newest older archives read back with extract --dry-run after the damage


class BackupFaultReport(BaseModel):
    fault: BackupFault
    repository: str
    client: str
    started_at: str
    observed: list[str] = Field(description="What the fault saw, in order, seconds from the fault.")
    error: str = Field(description="The one line the struck run failed with ('': it did not fail).")
    error_details: list[str] = Field(
        default_factory=list, description="borg's further lines under it (what else a check found)."
    )
    archives_before: list[str]
    archives_after: list[str]
    sources_changed: list[str] = Field(description="Differences in the sources afterwards (none expected).")
    recovered_s: float | None = Field(
        description="The fault → a backup that works again (server down); None where nothing had stopped."
    )
    checkpoints: list[str] = Field(default_factory=list, description="Checkpoint archives reported after it.")
    repair: list[str] = Field(
        default_factory=list, description="What borg check --repair said it did, on a copy of the repository."
    )
    restores: dict[str, bool] = Field(
        default_factory=dict, description="Archive → it still restores (extract --dry-run) after the damage."
    )
    damaged_archive: str = Field("", description="The archive whose own data was damaged.")
    manual_commands: list[str] = Field(default_factory=list)

    @property
    def archives_lost(self) -> list[str]:
        return [name for name in self.archives_before if name not in self.archives_after]

    @property
    def data_lost(self) -> bool:
        return bool(self.archives_lost or self.sources_changed)

    def problems(self) -> list[str]:
        """Promises the fault broke (its own; the matrix adds the catalogue's)."""
        found = []
        if not self.error:
            found.append(f"the struck run did not fail ({self.fault}): the fault was not felt")
        elif self.fault == "restore-disk-full" and "No space left" not in self.error:
            # borg stops with an error, or warns per file it could not write and goes on: either names it
            found.append(f"the restore failed, but not for want of space: {self.error}")
        others = [name for name, ok in self.restores.items() if name != self.damaged_archive and not ok]
        if others:
            found.append(f"archives that the damage did not touch no longer restore: {', '.join(others)}")
        if self.damaged_archive and self.restores.get(self.damaged_archive):
            found.append(
                f"the damaged archive {self.damaged_archive} still restores: the damage was not felt"
            )
        return found

    def render(self) -> str:
        rows = [
            ("fault", f"{self.fault} at {self.started_at} on {self.repository} (client {self.client})"),
            ("failed with", self.error or "NOTHING: it did not fail"),
            ("archives", f"{len(self.archives_before)} before, {len(self.archives_after)} after"),
            ("archives lost", ", ".join(self.archives_lost) or "none"),
            ("sources", "; ".join(self.sources_changed[:5]) or "untouched"),
            ("working again after", f"{self.recovered_s:.1f} s" if self.recovered_s is not None else "—"),
            ("checkpoints reported", ", ".join(self.checkpoints) or "none"),
            *(
                [
                    (
                        "restores after it",
                        ", ".join(f"{n}: {'yes' if ok else 'NO'}" for n, ok in self.restores.items()),
                    )
                ]
                if self.restores
                else []
            ),
            *(
                [("a repair would", "; ".join(self.repair) or "say nothing")]
                if self.fault == "segment-corrupted"
                else []
            ),
            ("commands by hand", "; ".join(f"`{c}`" for c in self.manual_commands) or "none"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(
            [
                f"Backup fault {self.fault}",
                *(f"  {k:<{width}}  {v}" for k, v in rows),
                *(f"  {line}" for line in self.observed),
            ]
        )


@flow(name="backup-fault")
def backup_fault(
    settings: Settings | None = None, fault: BackupFault = "wrong-passphrase"
) -> BackupFaultReport:
    """One backup fault (``fault``) against the configured repository, observed and undone."""
    settings = settings or load_settings()
    if fault not in BACKUP_FAULTS:
        raise Refused(f"unknown backup fault {fault!r}; the faults are: {', '.join(BACKUP_FAULTS)}")
    refuse_dry_run(settings, f"the {fault} fault", "its proof is a real fault")
    if fault in LAB_ONLY_BACKUP_FAULTS and (settings.target != "lab" or settings.backup.server is None):
        raise Refused(
            f"{fault} strikes the backup server (its VM, its segment files): it runs on the lab with "
            "backup.server set, never on a server of yours"
        )
    with run_context(settings, changes_state=True):
        return _fault(settings, fault)


class _Fault:
    """One fault's run: the repository as the client sees it and what was seen since the fault."""

    def __init__(self, settings: Settings, fault: BackupFault) -> None:
        self.settings, self.fault = settings, fault
        self.access = client_access(settings)
        self.secret = passphrase(settings)
        self.started = time.monotonic()
        self.observed: list[str] = []
        self.error = ""
        self.error_details: list[str] = []
        self.recovered_s: float | None = None
        self.checkpoints: list[str] = []
        self.repair: list[str] = []
        self.restores: dict[str, bool] = {}
        self.damaged_archive = ""

    def note(self, what: str) -> None:
        line = f"{time.monotonic() - self.started:+.1f} s: {what}"
        self.observed.append(line)
        get_run_logger().info("%s", line)

    def failed(self, exc: BaseException) -> None:
        self.error, *self.error_details = str(exc).strip().splitlines() or [""]
        self.note(
            f"failed as it should: {type(exc).__name__}: {self.error.splitlines()[0] if self.error else ''}"
        )

    def archives(self) -> list[str]:
        return [a.name for a in list_archives(self.access, self.secret, checkpoints=True)]


def _server_down(f: _Fault) -> None:
    """borg create runs in the task runner while this thread watches the server and pulls its plug."""
    settings = f.settings
    server = backup_server(settings)
    assert server is not None  # refused above
    run = current_executor().run
    creating = create_archive.submit(settings.backup, f.access, f.secret)

    def serving() -> bool:
        if creating.state.is_final():
            raise Refused("the backup ended before the server could be struck (nothing was killed)")
        # [b]: the pattern does not match the shell that runs pgrep, whose command line holds it
        found = run(["pgrep", "-f", "[b]org serve"], server.admin, read_only=True, ok_codes=(0, 1))
        return found.exit_code == 0

    wait_until(serving, 300, "borg serve to run on the backup server", interval_s=0.2)
    f.started = time.monotonic()
    fire_fault(settings, server.admin)
    f.note(f"{server.admin.name} destroyed while borg create ran")
    back = restart_node.submit(settings, server.admin)  # powered on at once: the backup still fails
    try:
        creating.result()
    except BorgError as exc:
        f.failed(exc)
    back.result()
    f.note(f"{server.admin.name} answers SSH again")
    after = backup(settings)  # the next scheduled run: it must work as it is
    f.recovered_s = round(time.monotonic() - f.started, 1)
    f.checkpoints = [w.split()[2] for w in after.warnings if w.startswith("checkpoint archive ")]
    f.note(f"the next backup stored {after.archive} and checked it")


def _restore_disk_full(f: _Fault) -> None:
    settings, client = f.settings, f.access.target
    scratch = f"{settings.backup.scratch_dir}-full"
    size_kib = full_filesystem_for(client, settings.backup.sources)
    mount_small_filesystem(client, scratch, size_kib)
    f.started = time.monotonic()
    f.note(f"a {size_kib} KiB filesystem mounted at {client.name}:{scratch} for the restore")
    try:
        full = settings.model_copy(
            # scratch mode whatever the settings say: an in-place drill must never follow a failed restore
            update={
                "backup": settings.backup.model_copy(
                    update={"scratch_dir": scratch, "restore_drill": "scratch"}
                )
            }
        )
        report = restore_drill(full)
        if report.problems:
            f.error = next((p for p in report.problems if "No space left" in p), report.problems[0])
            f.note(f"the restore drill failed as it should: {f.error}")
        left = current_executor().run(["ls", "-A", scratch], client, read_only=True).stdout.split()
        if left:
            raise Refused(f"the failed restore left {', '.join(left)} in {scratch}")
    finally:
        unmount_small_filesystem(client, scratch)


def _wrong_passphrase(f: _Fault) -> None:
    settings = f.settings
    block = f"{borg_passphrase_block_name(settings)}-fault-wrong"
    if stored_secret(block) is not None:
        raise Refused(
            f"the Secret block {block} exists already; the fault makes (and deletes) one of its own"
        )
    store_secret(block, secrets.token_urlsafe(24))
    f.started = time.monotonic()
    f.note(f"a wrong passphrase stored in the Secret block {block}")
    wrong = settings.model_copy(
        update={"backup": settings.backup.model_copy(update={"passphrase_block": block})}
    )
    try:
        backup(wrong)
    except BorgError as exc:
        f.failed(exc)
    finally:
        delete_secret(block)


def _segment_corrupted(f: _Fault) -> None:
    settings, run = f.settings, current_executor().run
    server = backup_server(settings)
    assert server is not None  # refused above
    client, owner = f.access.target, server_access(settings)
    repository = settings.backup.repository
    before = {s.path for s in list_segments(server.admin, repository)}
    unique = f"{settings.backup.sources[0].rstrip('/')}/.hsf-fault-segment.bin"
    run(["dd", "if=/dev/urandom", f"of={unique}", "bs=1M", f"count={FAULT_FILE_MIB}", "status=none"], client)
    try:
        made = backup(settings)
    finally:
        run(["rm", "-f", unique], client)  # the sources as they were
    f.damaged_archive = made.archive
    new = [s for s in list_segments(server.admin, repository) if s.path not in before]
    segment = max(new, key=lambda s: s.size)  # the archive's own data: the bulk of what it wrote
    damage = corrupt_segment(server.admin, segment, segment.size // 2)
    f.started = time.monotonic()
    f.note(
        f"16 bytes flipped in segment {segment.number} ({segment.size:,} bytes), which holds {made.archive}"
    )
    try:
        try:
            verify(settings)
        except BorgError as exc:
            f.failed(exc)
        f.repair = _repair_on_a_copy(owner, f.secret, repository)
        f.note(f"a repair, tried on a copy: {'; '.join(f.repair) or 'nothing said'}")
        others = [name for name in f.archives() if name != made.archive][-RESTORE_CHECKED:]
        for name in [*others, made.archive]:
            f.restores[name] = _restores(f, name)
        f.note("still restore: " + ", ".join(f"{n} {'yes' if ok else 'NO'}" for n, ok in f.restores.items()))
    finally:
        _undo(f, owner, server.admin, damage, made.archive)


def _repair_on_a_copy(owner: RepoAccess, secret: str, repository: str) -> list[str]:
    """What ``borg check --repair`` does to this damage, on a copy (removed afterwards)."""
    run, copy = current_executor().run, f"{repository}.hsf-fault-copy"
    run(["rm", "-rf", "--one-file-system", copy], owner.target, timeout=600)  # a copy an earlier run left
    run(["cp", "-a", repository, copy], owner.target, timeout=600)
    try:
        env = {
            **owner.env,
            "BORG_CHECK_I_KNOW_WHAT_I_AM_DOING": "YES",
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        }
        copied = owner.model_copy(update={"url": copy, "env": env})
        try:
            outcome = run_on(copied, borg.repair_argv(copy), secret, timeout=1800)
        except BorgError as exc:
            return [f"the repair failed: {str(exc).splitlines()[0]}"]
        return [m.message for m in outcome.messages if m.level in ("WARNING", "ERROR")]
    finally:
        run(["rm", "-rf", "--one-file-system", copy], owner.target, timeout=600)


def _restores(f: _Fault, archive: str) -> bool:
    try:
        run_on(f.access, borg.extract_argv(f.access.url, archive, dry_run=True), f.secret, timeout=1800)
    except BorgError:
        return False
    return True


def _undo(f: _Fault, owner: RepoAccess, server: SshTarget, damage: Damage, archive: str) -> None:
    """The bytes back, the repository proved whole, the fault's archive deleted on the server."""
    undo_damage(server, damage)
    verify(f.settings)
    run_on(owner, borg.delete_argv(owner.url, [archive]), f.secret)
    run_on(owner, borg.compact_argv(owner.url), f.secret)
    f.note(f"the bytes written back, verify passed, {archive} deleted on the server")


FAULTS: Mapping[BackupFault, Callable[[_Fault], None]] = {
    "backup-server-down": _server_down,
    "restore-disk-full": _restore_disk_full,
    "segment-corrupted": _segment_corrupted,
    "wrong-passphrase": _wrong_passphrase,
}


def _fault(settings: Settings, fault: BackupFault) -> BackupFaultReport:
    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    f = _Fault(settings, fault)
    client, root = f.access.target, settings.backup.sources[0]
    before_tree = tree_manifest(client, root)
    archives_before = f.archives()
    FAULTS[fault](f)
    report = BackupFaultReport(
        fault=fault,
        repository=f.access.url,
        client=client.name,
        started_at=started_at,
        observed=f.observed,
        error=f.error,
        error_details=f.error_details,
        archives_before=archives_before,
        archives_after=f.archives(),
        sources_changed=differences(before_tree, tree_manifest(client, root)),
        recovered_s=f.recovered_s,
        checkpoints=f.checkpoints,
        repair=f.repair,
        restores=f.restores,
        damaged_archive=f.damaged_archive,
    )
    _publish(report)
    return report


def _publish(report: BackupFaultReport) -> None:
    create_markdown_artifact(
        key=f"backup-fault-{report.fault}",
        markdown=f"# Backup fault {report.fault}\n\n```\n{report.render()}\n```",
        description=f"{report.fault}: {len(report.archives_lost)} archives lost",
    )
    emit(
        BACKUP_FAULT_COMPLETED,
        resource=backup_resource(report.repository),
        payload={
            "fault": report.fault,
            "error": report.error,
            "archives_lost": report.archives_lost,
            "sources_changed": len(report.sources_changed),
            "recovered_s": report.recovered_s,
            "problems": report.problems(),
        },
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.backup_faults", description=__doc__.splitlines()[0]
    )
    parser.add_argument("fault", choices=BACKUP_FAULTS, help="the fault to inject")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks of failures")
    args = parser.parse_args(argv)

    def act(settings: Settings) -> int:
        report = backup_fault(settings, fault=args.fault)
        print(report.render())
        if report.data_lost:
            return EXIT_DATA_LOST
        return EXIT_COMMAND_FAILED if report.problems() else EXIT_OK

    return run_cli(act, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
