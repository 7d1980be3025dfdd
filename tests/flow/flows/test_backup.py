"""Backup flows on real borg with local repositories, under the Prefect harness."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest
from prefect import flow

from flows.backup import (
    RestoreReport,
    _restore_in_place,
    adopt,
    backup,
    extract,
    init,
    list_archives,
    passphrase,
    restore_drill,
    rotate,
    spot_check,
    verify,
)
from tasks.borg import commands as borg
from tasks.borg.hooks import HookFailed
from tasks.borg.outcome import BorgError, PassphraseMissing, RepositoryMissing, SourceMissing, WrongPassphrase
from tasks.borg.preview import preview
from tasks.borg.remote import client_access
from tasks.borg.rotation import Rotation, Scheme, archive_name, is_ours
from tasks.borg.run import run_borg
from tasks.borg.steps import archived_files
from tasks.cli import EXIT_COMMAND_FAILED, failure_line
from tasks.cluster import borg_passphrase_block_name, store_secret, stored_secret
from tasks.context import run_context
from tasks.drbd.plan import Refused
from tasks.events import BACKUP_FAILED, BACKUP_VERIFIED
from tasks.executor import LOCAL, MASK
from tasks.manifest import differences, tree_manifest
from tasks.postgres import DumpFailed, dump_databases, postgres_access, prove_dump_restores, remove_dumps
from tasks.settings import BackupHooks, PostgresDump, Settings, load_settings
from tests.postgres import Cluster, bindir, temporary_cluster

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "borg"], capture_output=True).returncode, reason="no borg"
)
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("BORG_BASE_DIR", str(tmp_path / "borg-base"))
    home = tmp_path / "home"
    (home / "alice" / "docs").mkdir(parents=True)
    (home / "alice" / "docs" / "report.txt").write_text("quarterly numbers\n")
    (home / "alice" / "photo.raw").write_bytes(os.urandom(300_000))
    (home / "alice" / "link").symlink_to("docs/report.txt")
    (home / "alice" / "docs" / "report.txt").chmod(0o640)
    return load_settings(
        cluster={"lock_dir": str(tmp_path / "locks")},  # apart from any lab flow running on this machine
        backup={
            "repository": str(tmp_path / "repo"),
            "sources": [str(home)],
            "key_export_path": str(tmp_path / "repo.key"),
            "scratch_dir": str(tmp_path / "scratch"),
            "safety_dir": str(tmp_path / "safety"),
            "passphrase_block": f"test-borg-{tmp_path.name}".lower().replace("_", "-"),
        },
    )


def test_init_backup_verify_and_dedup(prefect_harness: None, settings: Settings) -> None:
    key = init(settings)
    assert Path(key).read_text().startswith("BORG_KEY ")
    assert oct(Path(key).stat().st_mode)[-3:] == "600"
    first = backup(settings, verify_data=True)
    assert first.files == 2  # regular files; the symlink is archived but not counted
    assert first.checked == ["repository", "newest archive (data verified)"]
    second = backup(settings)
    assert second.deduplicated_bytes < first.deduplicated_bytes / 10  # nothing changed: almost nothing stored
    assert second.archive != first.archive and is_ours("home", second.archive)
    with pytest.raises(Refused, match="a borg repository already exists"):
        init(settings)  # never over an existing repository


def test_the_default_restore_drill_restores_into_scratch_and_never_touches_the_sources(
    prefect_harness: None, settings: Settings
) -> None:
    init(settings)
    root = settings.backup.sources[0]
    before = tree_manifest.fn(LOCAL, root)
    report = restore_drill(settings)
    assert report.mode == "scratch" and report.problems == [] and report.entries == 5 and report.editable
    assert tree_manifest.fn(LOCAL, root) == before
    assert list(Path(settings.backup.scratch_dir).iterdir()) == []  # the scratch copy is gone


@pytest.mark.parametrize("damage", ["remove", "encrypt"])
def test_the_in_place_drill_damages_restores_and_verifies(
    prefect_harness: None, settings: Settings, damage: Literal["remove", "encrypt"]
) -> None:
    in_place = _with(settings, restore_drill="in-place")
    init(in_place)
    before = tree_manifest.fn(LOCAL, settings.backup.sources[0])
    report = restore_drill(in_place, damage=damage)
    assert (report.mode, report.damage, report.problems, report.entries) == ("in-place", damage, [], 5)
    assert report.editable and report.sources_put_back is None
    assert tree_manifest.fn(LOCAL, settings.backup.sources[0]) == before
    assert list(Path(settings.backup.safety_dir).iterdir()) == []  # the safety copy is gone


def test_a_corrupted_segment_is_reported_and_the_sources_stay_byte_identical(
    prefect_harness: None, settings: Settings
) -> None:
    init(settings)
    backup(settings)
    _flip_a_byte_in_the_largest_segment(settings.backup.repository)
    root = settings.backup.sources[0]
    before = tree_manifest.fn(LOCAL, root)

    report = restore_drill(settings)  # the default drill: the fresh archive shares the damaged chunks
    assert not report.ok
    assert report.problems[0].startswith("the archive could not be restored: borg extract failed: ")
    assert "segment" in report.problems[0] and "offset" in report.problems[0]
    assert tree_manifest.fn(LOCAL, root) == before

    with pytest.raises(Refused, match=r"did not restore intact into .*the sources were not touched"):
        restore_drill(_with(settings, restore_drill="in-place"), damage="remove")
    assert tree_manifest.fn(LOCAL, root) == before
    with pytest.raises(BorgError, match=r"(?s)borg check failed: .*segment \d+, offset \d+"):
        verify(settings)  # says what is damaged, not only "errors found"


def test_a_corrupted_restore_is_detected(prefect_harness: None, settings: Settings) -> None:
    init(settings)
    backup(settings)
    root = settings.backup.sources[0]
    before = tree_manifest.fn(LOCAL, root)
    access = client_access(settings)
    newest = max(list_archives.fn(access, passphrase(settings)), key=lambda a: a.time)
    extract.fn(access, passphrase(settings), newest.name)
    with (Path(root) / "alice" / "photo.raw").open("r+b") as photo:  # a restore that went wrong
        photo.seek(1000)
        photo.write(b"\0")
    problems = differences(before, tree_manifest.fn(LOCAL, root))
    assert (
        len(problems) == 1
        and problems[0].startswith("differs: alice/photo.raw (")
        and "sha256" in problems[0]
    )


HAND_MADE = ("before-upgrade-KEEP-ME", "home-before-upgrade", "home-2026-03-05T02:00:00.000000.checkpoint")


@pytest.mark.parametrize("scheme", ["gfs", "fifo", "hanoi"])
def test_rotation_deletes_only_this_projects_archives_and_its_dry_run_lists_exactly_that(
    prefect_harness: None, settings: Settings, scheme: Scheme
) -> None:
    init(settings)
    secret, repo = passphrase(settings), settings.backup.repository
    start = datetime(2026, 3, 1, 2, 0)
    for day in range(12):
        when = start + timedelta(days=day)
        _archive(repo, archive_name("home", when), when, settings, secret)
    for name in HAND_MADE:  # same day as one of ours, our prefix, a checkpoint
        _archive(repo, name, start + timedelta(days=4), settings, secret)
    archives = list_archives.fn(client_access(settings), secret, checkpoints=True)
    ours = [a for a in archives if is_ours("home", a.name)]
    rotation = Rotation(daily=2, weekly=1, monthly=1, last=3, levels=3)
    small = _with(settings, rotation=rotation.model_dump())

    preview_run = rotate(_with(small, dry_run=True), scheme=scheme)
    listed = list_archives.fn(client_access(settings), secret, checkpoints=True)
    assert preview_run.dry_run and {a.name for a in listed} == {a.name for a in archives}  # none deleted
    real = rotate(small, scheme=scheme)
    assert real.deleted == preview_run.deleted and real.kept == preview_run.kept
    assert set(real.kept) == rotation.keep(ours, scheme) and real.deleted
    remaining = {a.name for a in list_archives.fn(client_access(settings), secret, checkpoints=True)}
    assert remaining == set(real.kept) | set(HAND_MADE)
    assert sorted(real.untouched) == sorted(HAND_MADE)


def test_rotation_counts_are_settings_that_preview_shows_too(tmp_path: Path, settings: Settings) -> None:
    rotation = Rotation(levels=5, last=4)
    summary = preview(tmp_path / "p.png", rotation, days=60)
    assert "hanoi (5 levels)" in summary and "fifo (last 4): 4 archives" in summary


def test_a_missing_source_fails_the_backup_and_stores_nothing(
    prefect_harness: None, settings: Settings
) -> None:
    init(settings)
    missing = _with(settings, sources=[*settings.backup.sources, "/nonexistent/hsf-source"])
    with pytest.raises(
        SourceMissing, match="backup source /nonexistent/hsf-source on localhost does not exist"
    ):
        backup(missing)
    assert list_archives.fn(client_access(settings), passphrase(settings)) == []


def test_an_adopted_hand_made_repository_is_verified_backed_up_rotated_and_drilled(
    prefect_harness: None, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, mine = settings.backup.repository, "correct horse battery staple"
    run_borg(borg.init_argv(repo, "repokey-blake2"), mine)  # made by hand, not by this project
    run_borg(borg.create_argv(repo, "handmade-1", settings.backup.sources), mine)
    block = borg_passphrase_block_name(settings)
    with pytest.raises(PassphraseMissing, match="no passphrase is stored for"):
        verify(settings)  # nothing is generated for a repository that exists
    with pytest.raises(Refused, match="a borg repository already exists"):
        init(settings)
    assert stored_secret(block) is None

    monkeypatch.setenv("BORG_TEST_WRONG", "not it")
    with pytest.raises(WrongPassphrase):
        adopt(settings, passphrase_env="BORG_TEST_WRONG")
    assert stored_secret(block) is None
    monkeypatch.setenv("BORG_TEST_PASSPHRASE", mine)
    assert adopt(settings, passphrase_env="BORG_TEST_PASSPHRASE") == ["handmade-1"]
    assert stored_secret(block) == mine

    assert verify(settings)[0] == "repository"
    backup(settings)
    assert restore_drill(settings).ok
    report = rotate(_with(settings, rotation={"last": 1}), scheme="fifo")
    assert report.untouched == ["handmade-1"] and len(report.kept) == 1 and len(report.deleted) == 1
    assert stored_secret(block) == mine  # never replaced by a generated one

    # A stale passphrase in the block (one the old code generated, say) is replaced only when asked.
    store_secret(block, "generated by an older version", replace=True)
    with pytest.raises(Refused, match="already holds a different passphrase"):
        adopt(settings, passphrase_env="BORG_TEST_PASSPHRASE")
    assert stored_secret(block) == "generated by an older version"
    adopt(settings, passphrase_env="BORG_TEST_PASSPHRASE", replace=True)
    assert stored_secret(block) == mine


def test_every_backup_subcommand_dry_runs_printing_its_commands_and_changing_nothing(
    prefect_harness: None, settings: Settings
) -> None:
    dry = _with(settings, dry_run=True)
    init(dry)
    assert (
        not Path(settings.backup.repository).exists()
        and stored_secret(borg_passphrase_block_name(settings)) is None
    )
    init(settings)
    before = tree_manifest.fn(LOCAL, settings.backup.sources[0])
    assert backup(dry).dry_run
    assert restore_drill(dry).dry_run and restore_drill(_with(dry, restore_drill="in-place")).dry_run
    assert rotate(dry).dry_run
    assert verify(dry) == ["repository", "every archive (data verified)"]
    assert list_archives.fn(client_access(settings), passphrase(settings)) == []  # nothing was archived
    assert tree_manifest.fn(LOCAL, settings.backup.sources[0]) == before


def test_a_missing_passphrase_is_one_line(tmp_path: Path, settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSF_")}
    env |= {
        "HSF_BACKUP__REPOSITORY": str(tmp_path / "missing"),
        "HSF_BACKUP__PASSPHRASE_BLOCK": "test-borg-missing",
    }
    argv = [sys.executable, "-m", "flows.backup", "backup"]
    result = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 4, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"no passphrase is stored for {tmp_path / 'missing'} (Secret block test-borg-missing)"
    )
    assert not (tmp_path / "missing").exists()


def test_a_missing_repository_is_one_line(prefect_harness: None, settings: Settings) -> None:
    store_secret(borg_passphrase_block_name(settings), "stored before the repository vanished")
    with pytest.raises(RepositoryMissing) as missing:
        verify(settings)
    assert str(missing.value) == f"borg check failed: Repository {settings.backup.repository} does not exist."


def _with(settings: Settings, dry_run: bool | None = None, **backup: object) -> Settings:
    """The same settings with some backup fields (and dry run) changed."""
    changed = {**settings.backup.model_dump(), **backup}
    return load_settings(
        cluster=settings.cluster.model_dump(),
        backup=changed,
        dry_run=settings.dry_run if dry_run is None else dry_run,
    )


def _archive(repo: str, name: str, when: datetime, settings: Settings, secret: str) -> None:
    argv = borg.create_argv(repo, name, settings.backup.sources)
    run_borg([*argv[:2], "--timestamp", when.isoformat(), *argv[2:]], secret)


def _flip_a_byte_in_the_largest_segment(repo: str) -> None:
    segment = max((Path(repo) / "data").rglob("[0-9]*"), key=lambda p: p.stat().st_size)
    blob = bytearray(segment.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte inside a data chunk
    segment.write_bytes(bytes(blob))


def test_an_unreachable_backup_server_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    """The server's SSH port is closed (loopback): init stops before touching the client."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSF_")}
    client_key = tmp_path / "client-key"
    env |= {
        "HSF_TARGET": "inventory",
        "HSF_INVENTORY": '[{"name": "vault", "address": "127.0.0.1", "port": 1}]',
        "HSF_BACKUP__SERVER": "vault",
        "HSF_BACKUP__CLIENT_KEY": str(client_key),
        "HSF_BACKUP__KEY_EXPORT_PATH": str(tmp_path / "repo.key"),
        "HSF_BACKUP__PASSPHRASE_BLOCK": "test-borg-unreachable",
    }
    result = subprocess.run(
        [sys.executable, "-m", "flows.backup", "init"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 5, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("[vault] SSH transport error running `getent passwd borg`"), last
    assert "Unable to connect to port 1 on 127.0.0.1" in last, last
    assert not client_key.exists() and not (tmp_path / "repo.key").exists()


def test_killing_the_cli_mid_backup_leaves_no_borg_and_the_next_run_reports_it(tmp_path: Path) -> None:
    source = tmp_path / "big"
    source.mkdir()
    with (source / "data.bin").open("wb") as out:  # big enough that borg is still at work when killed
        for _ in range(48):
            out.write(os.urandom(8 * 1024 * 1024))
    repo = tmp_path / "repo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSF_")}
    env |= {
        "BORG_BASE_DIR": str(tmp_path / "borg-base"),
        "HSF_BACKUP__REPOSITORY": str(repo),
        "HSF_BACKUP__SOURCES": json.dumps([str(source)]),
        "HSF_BACKUP__KEY_EXPORT_PATH": str(tmp_path / "repo.key"),
        "HSF_BACKUP__PASSPHRASE_BLOCK": f"test-borg-killed-{tmp_path.name}".lower().replace("_", "-"),
        "HSF_CLUSTER__LOCK_DIR": str(tmp_path / "locks"),
    }

    def cli(command: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "flows.backup", command]
        return subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)

    assert cli("init").returncode == 0
    doomed = subprocess.Popen(
        [sys.executable, "-m", "flows.backup", "backup"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: what it leaves behind can be removed at the end
    )  # fmt: skip

    def borg_running() -> bool:
        return bool(subprocess.run(["pgrep", "-f", f"borg .*create.*{repo}"], capture_output=True).stdout)

    try:
        deadline = time.monotonic() + 120
        while not borg_running():
            assert doomed.poll() is None and time.monotonic() < deadline, "borg create never started"
            time.sleep(0.1)
        doomed.kill()  # SIGKILL: the CLI gets no chance to clean up
        doomed.wait()
        deadline = time.monotonic() + 20
        while borg_running():
            assert time.monotonic() < deadline, "borg outlived the killed CLI"
            time.sleep(0.2)

        after = cli("backup")
        assert after.returncode == 0, after.stderr[-2000:]
        assert "the previous state-changing run on cluster hsf did not finish: flow run" in after.stderr
        assert "(borg-backup)" in after.stderr and "marked Crashed" in after.stderr
    finally:
        # The killed CLI's temporary Prefect server (its child) outlives it: measured, one orphaned
        # uvicorn per run. Nothing of the test may stay running.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(doomed.pid, signal.SIGKILL)


def test_a_failed_in_place_restore_puts_the_sources_back_and_says_so(
    prefect_harness: None, settings: Settings
) -> None:
    """The in-place phase itself, given an archive that cannot be extracted (a real borg failure)."""
    in_place = _with(settings, restore_drill="in-place")
    init(in_place)
    root = settings.backup.sources[0]
    before = tree_manifest.fn(LOCAL, root)

    @flow
    def restore_a_missing_archive() -> RestoreReport:
        with run_context(in_place, changes_state=True):
            secret, access = passphrase(in_place), client_access(in_place)
            return _restore_in_place(
                in_place, access, secret, "home-2000-01-01T00:00:00.000000", before, "remove"
            )

    report = restore_a_missing_archive()
    assert report.sources_put_back is True and not report.ok
    assert report.problems[0].startswith("the in-place restore failed: borg extract failed: Archive")
    assert tree_manifest.fn(LOCAL, root) == before  # removed by the drill, put back byte for byte
    assert list(Path(settings.backup.safety_dir).iterdir()) == []


def _spot_tree(settings: Settings, files: int) -> Path:
    many = Path(settings.backup.sources[0]) / "many"
    many.mkdir()
    for i in range(files):
        (many / f"f{i:02}.txt").write_text(f"file {i}\n")
    return many


def test_a_spot_check_passes_as_archived_and_names_a_file_that_differs_behind_its_time(
    prefect_harness: None, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = _spot_tree(settings, 40)
    init(settings)
    with pytest.raises(Refused, match=r"holds no archive made by this project \(prefix home\) to compare"):
        spot_check(settings)
    backup(settings)
    events: list[tuple[str, dict[str, object]]] = []
    monkeypatch.setattr("flows.backup.emit", lambda event, resource, payload: events.append((event, payload)))
    share = spot_check(settings)  # the default share: a tenth, at least one file
    assert share.ok and len(share.sampled) == 5 and share.source_files == share.archive_files == 42
    whole = _with(settings, spot_check_share=1.0)
    clean = spot_check(whole)
    assert (clean.problems, clean.changed_since, len(clean.sampled)) == ([], [], 42)
    # one file's content changed behind its modification time: what a spot check is for
    victim = many / "f17.txt"
    stat = victim.stat()
    victim.write_text("file 71\n")
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # one file edited since, one made since: counted, never a problem
    edited, made = many / "f03.txt", many / "new.txt"
    edited.write_text("edited\n")
    made.write_text("new\n")
    later = time.time() + 10
    for path in (edited, made):
        os.utime(path, (later, later))
    found = spot_check(whole)
    assert found.problems == [f"differs from the archive with the same modification time: {victim}"]
    assert found.changed_since == sorted(str(p).lstrip("/") for p in (edited, made))
    assert (found.source_files, found.archive_files) == (43, 42)  # within the 5 % tolerance
    assert [event for event, _ in events] == [BACKUP_VERIFIED, BACKUP_VERIFIED, BACKUP_FAILED]
    assert events[-1][1]["problems"] == found.problems and events[-1][1]["check"] == "spot"


def test_a_spot_check_finds_files_missing_from_the_archive_and_counts_beyond_the_tolerance(
    prefect_harness: None, settings: Settings
) -> None:
    many = _spot_tree(settings, 40)
    init(settings)
    backup(settings)
    old = many / "old.txt"  # appears with a time before the archive: the backup should hold it
    old.write_text("restored from somewhere\n")
    os.utime(old, (1_000_000_000, 1_000_000_000))
    for i in range(5):
        (many / f"f{i:02}.txt").unlink()
    found = spot_check(_with(settings, spot_check_share=1.0))
    assert found.problems == [
        f"missing from the archive: {old}",
        "the archive holds 42 files and the sources 38 now (10.5 % apart, the tolerance is 5 %)",
    ]
    tolerant = spot_check(_with(settings, spot_check_share=1.0, spot_check_count_tolerance_pct=11))
    assert tolerant.problems == [f"missing from the archive: {old}"]


# -- hooks: prefect-shell ShellOperation blocks around a backup and a restore drill -----------------


@pytest.fixture
def hook_blocks(tmp_path: Path) -> Callable[[str, list[str], dict[str, str]], str]:
    """``save(stage, commands, env)``: a ShellOperation block of this test; returns its name."""
    from prefect_shell import ShellOperation

    def save(stage: str, commands: list[str], env: dict[str, str]) -> str:
        name = f"test-{stage}-{tmp_path.name}".lower().replace("_", "-")[:90]
        ShellOperation(commands=commands, env=env).save(name, overwrite=True)
        return name

    return save


def _hooked(settings: Settings, **hooks: object) -> Settings:
    return settings.model_copy(
        update={"backup": settings.backup.model_copy(update={"hooks": BackupHooks.model_validate(hooks)})}
    )


@contextlib.contextmanager
def _prefect_log() -> Iterator[list[str]]:
    """Every message the flow runs log at INFO and above (the tests' Prefect logging level is WARNING)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler, logger = Collect(logging.INFO), logging.getLogger("prefect")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_before_hook_s_dump_is_backed_up_its_secret_masked_and_the_drill_hooks_run(
    prefect_harness: None, settings: Settings, tmp_path: Path, hook_blocks: Callable[..., str]
) -> None:
    init(settings)
    dumps, token = Path(settings.backup.sources[0]) / "dumps", "t0ken-" + os.urandom(6).hex()
    secret_block = f"test-hook-token-{tmp_path.name}".lower().replace("_", "-")[:90]
    store_secret(secret_block, token)
    marks = tmp_path / "marks"
    hooked = _hooked(
        settings,
        before_backup=hook_blocks(
            "dump",
            [
                "set -e",
                'mkdir -p "$DUMPS"',
                'printf "orders: 42 rows\\n" > "$DUMPS/orders.sql"',
                'echo "dumped orders as $DB_USER with $DB_TOKEN"',
            ],
            {"DUMPS": str(dumps), "DB_USER": "backup"},
        ),
        after_backup=hook_blocks("clean", ['rm -rf -- "$DUMPS"'], {"DUMPS": str(dumps)}),
        before_restore=hook_blocks(
            "pre", ['mkdir -p "$MARKS" && : > "$MARKS/before_restore"'], {"MARKS": str(marks)}
        ),
        after_restore=hook_blocks("post", [': > "$MARKS/after_restore"'], {"MARKS": str(marks)}),
        secret_env={"DB_TOKEN": secret_block},
    )
    with _prefect_log() as logged:
        report = backup(hooked)
    assert report.hooks == ["before_backup", "after_backup"]
    assert not dumps.exists()  # the after hook removed the dump: it lives on only in the archive
    with run_context(settings, changes_state=False):
        archived = archived_files(
            client_access(settings), passphrase(settings), report.archive,
            [f"{str(dumps).lstrip('/')}"], with_content=True,
        )  # fmt: skip
    [(path, entry)] = archived.items()
    assert path.endswith("dumps/orders.sql")
    assert entry.sha256 == hashlib.sha256(b"orders: 42 rows\n").hexdigest()
    assert any(m.startswith("before_backup hook test-dump-") for m in logged)  # its commands, logged
    assert any(m.endswith(f"dumped orders as backup with {MASK}") for m in logged), logged
    assert not [m for m in logged if token in m]

    drill = restore_drill(hooked)
    assert drill.ok
    assert sorted(p.name for p in marks.iterdir()) == ["after_restore", "before_restore"]


def test_a_failing_before_hook_stops_the_backup_in_one_line_and_the_on_error_hook_runs(
    prefect_harness: None, settings: Settings, tmp_path: Path, hook_blocks: Callable[..., str]
) -> None:
    init(settings)
    ran_on_error = tmp_path / "on-error-ran"
    hooked = _hooked(
        settings,
        before_backup=hook_blocks(
            "dump", ["echo starting", "echo 'pg_dump: connection to server refused' >&2", "exit 3"], {}
        ),
        after_backup=hook_blocks("never", [f": > {tmp_path}/after-ran"], {}),
        on_error=hook_blocks("alert", ['echo "$0" > "$MARK"'], {"MARK": str(ran_on_error)}),
    )
    with pytest.raises(HookFailed) as failed:
        backup(hooked)
    line = str(failed.value)
    assert "\n" not in line
    assert line.startswith("before_backup hook test-dump-") and "(exit 3)" in line
    assert line.endswith("pg_dump: connection to server refused")
    assert failure_line(failed.value) == (EXIT_COMMAND_FAILED, line)
    assert ran_on_error.exists() and not (tmp_path / "after-ran").exists()
    with run_context(settings, changes_state=False):
        assert list_archives(client_access(settings), passphrase(settings)) == []  # nothing was archived


def test_a_hook_block_that_does_not_exist_refuses_before_anything_runs(
    prefect_harness: None, settings: Settings, tmp_path: Path, hook_blocks: Callable[..., str]
) -> None:
    init(settings)
    ran = tmp_path / "before-ran"
    hooked = _hooked(
        settings, before_backup=hook_blocks("dump", [f": > {ran}"], {}), after_backup="no-such-hook-block"
    )
    with pytest.raises(
        Refused, match=r"^after_backup hook: ShellOperation block 'no-such-hook-block' does not"
    ):
        backup(hooked)
    assert not ran.exists()
    with run_context(settings, changes_state=False):
        assert list_archives(client_access(settings), passphrase(settings)) == []


# -- PostgreSQL: dumped into the archive, restored into a scratch database by the drill ---------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[Cluster]:
    if bindir() is None:
        pytest.skip("Debian's postgresql is installed by make deps")
    with temporary_cluster() as cluster:
        cluster.psql("postgres", "CREATE DATABASE orders")
        cluster.psql(
            "orders",
            "CREATE TABLE items (id int PRIMARY KEY, name text); "
            "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 42) g; "
            "CREATE SCHEMA ops; CREATE TABLE ops.events (at timestamptz DEFAULT now(), what text); "
            "INSERT INTO ops.events (what) VALUES ('a'), ('b'), ('c')",
        )
        yield cluster


def _dumping(
    settings: Settings, cluster: Cluster, tmp_path: Path, *databases: str, password: bool = True
) -> Settings:
    block = None
    if password:
        block = f"test-pg-{tmp_path.name}".lower().replace("_", "-")[:90]
        store_secret(block, cluster.password, replace=True)
    dump = PostgresDump(databases=databases, host=cluster.host, port=cluster.port, password_block=block)
    return settings.model_copy(update={"backup": settings.backup.model_copy(update={"postgresql": dump})})


def test_databases_are_dumped_into_the_archive_and_the_drill_restores_them_row_for_row(
    prefect_harness: None, settings: Settings, tmp_path: Path, postgres: Cluster
) -> None:
    init(settings)
    dumping = _dumping(settings, postgres, tmp_path, "orders")
    dump_dir = Path(dumping.backup.dump_dir)
    with _prefect_log() as logged:
        report = backup(dumping)
    [line] = report.databases
    assert line.startswith("orders (") and line.endswith(" bytes, 2 tables, 45 rows)")
    assert not dump_dir.exists()  # the dump lives on in the archive only
    with run_context(settings, changes_state=False):
        archived = archived_files(
            client_access(settings), passphrase(settings), report.archive, [str(dump_dir).lstrip("/")]
        )
    assert [Path(p).name for p in archived] == ["orders.dump"]  # the password file never is archived
    assert not [m for m in logged if postgres.password in m]

    drill = restore_drill(dumping)
    assert drill.ok, drill.problems
    assert drill.databases == [f"{line} restored into hsf_drill_orders: every table's rows match"]
    assert (
        postgres.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'hsf_drill_%'")
        == "0\n"
    )
    assert not dump_dir.exists()


def test_a_dump_is_never_world_readable_and_a_restore_that_differs_is_named(
    prefect_harness: None, settings: Settings, tmp_path: Path, postgres: Cluster
) -> None:
    dumping = _dumping(settings, postgres, tmp_path, "orders")

    @flow
    def dump_and_look() -> tuple[list[str], list[str]]:
        with run_context(dumping, changes_state=True):
            databases = postgres_access(dumping.backup, LOCAL)
            assert databases is not None
            [dump] = dump_databases(databases)
            modes = [oct(Path(p).stat().st_mode & 0o777) for p in (dumping.backup.dump_dir, dump.path)]
            # as if the dump had held one more item than it does: the restore must say which table differs
            claimed = dump.model_copy(update={"rows": {**(dump.rows or {}), "public.items": 43}})
            problems = prove_dump_restores(databases, claimed, dump.path, "hsf_drill_orders")
            remove_dumps(databases)
            return modes, problems

    Path(dumping.backup.dump_dir).mkdir(parents=True)
    (Path(dumping.backup.dump_dir) / "notes.txt").write_text("the user's own file\n")
    modes, problems = dump_and_look()
    assert modes == ["0o700", "0o600"]
    assert [p.name for p in Path(dumping.backup.dump_dir).iterdir()] == ["notes.txt"]  # only the dump went
    (Path(dumping.backup.dump_dir) / "notes.txt").unlink()
    Path(dumping.backup.dump_dir).rmdir()
    assert problems == ["orders: table public.items has 42 rows restored, 43 dumped"]


def test_a_database_that_cannot_be_dumped_stops_the_backup_in_one_line_and_on_error_runs(
    prefect_harness: None,
    settings: Settings,
    tmp_path: Path,
    postgres: Cluster,
    hook_blocks: Callable[..., str],
) -> None:
    init(settings)
    ran_on_error = tmp_path / "on-error-ran"
    no_password = _dumping(settings, postgres, tmp_path, "orders", password=False)
    hooked = _hooked(no_password, on_error=hook_blocks("alert", [f": > {ran_on_error}"], {}))
    with pytest.raises(DumpFailed) as failed:
        backup(hooked)
    line = str(failed.value)
    assert line.startswith("database orders could not be dumped on localhost: ")
    assert "\n" not in line and line.endswith("no password supplied")
    assert failure_line(failed.value) == (EXIT_COMMAND_FAILED, line)
    assert ran_on_error.exists() and not Path(hooked.backup.dump_dir).exists()
    with run_context(settings, changes_state=False):
        assert list_archives(client_access(settings), passphrase(settings)) == []
