"""Borg on real local repositories: builders, outcome interpretation, errors, rotation vs borg prune."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from tasks.borg import commands as borg
from tasks.borg.outcome import (
    BorgError,
    RepositoryMissing,
    ServerUnreachable,
    WrongPassphrase,
    interpret,
    status_of,
)
from tasks.borg.rotation import Archive, fifo, gfs, hanoi, hanoi_tape
from tasks.borg.run import run_borg

needs_borg = pytest.mark.skipif(shutil.which("borg") is None, reason="borg is installed by make deps")
PASS = "correct horse battery staple"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Borg's keys, cache and security dirs inside the test's tmp dir, not root's home."""
    return {"BORG_BASE_DIR": str(tmp_path / "borg-base")}


@pytest.fixture
def repo(tmp_path: Path, env: dict[str, str]) -> str:
    path = str(tmp_path / "repo")
    run_borg(borg.init_argv(path), PASS, env=env)
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "home"
    (src / "alice").mkdir(parents=True)
    (src / "alice" / "notes.txt").write_text("hello\n")
    (src / "alice" / "data.bin").write_bytes(bytes(range(256)) * 512)
    return src


@needs_borg
def test_init_create_list_info_check_verify_data(repo: str, source: Path, env: dict[str, str]) -> None:
    created = run_borg(borg.create_argv(repo, "home-1", [str(source)]), PASS, env=env)
    stats = json.loads(created.stdout)["archive"]["stats"]
    assert created.status == "ok" and stats["nfiles"] == 2
    run_borg(borg.create_argv(repo, "home-2", [str(source)]), PASS, env=env)
    names = [a["name"] for a in json.loads(run_borg(borg.list_argv(repo), PASS, env=env).stdout)["archives"]]
    assert names == ["home-1", "home-2"]
    info = json.loads(run_borg(borg.info_argv(repo, "home-2"), PASS, env=env).stdout)
    assert info["archives"][0]["stats"]["deduplicated_size"] < stats["deduplicated_size"]  # unchanged data
    assert run_borg(borg.check_argv(repo, verify_data=True), PASS, env=env).status == "ok"


@needs_borg
def test_passphrase_never_reaches_argv_or_errors(repo: str, env: dict[str, str]) -> None:
    argv = borg.with_passphrase_on_stdin(borg.list_argv(repo))
    assert PASS not in " ".join(argv) and argv[:2] == ["env", "BORG_PASSPHRASE_FD=0"]
    with pytest.raises(WrongPassphrase) as info:
        run_borg(borg.list_argv(repo), "not the passphrase", env=env)
    assert str(info.value) == (
        "borg list failed: passphrase supplied in BORG_PASSPHRASE, by BORG_PASSCOMMAND or via "
        "BORG_PASSPHRASE_FD is incorrect."
    )
    assert "not the passphrase" not in str(info.value)


@needs_borg
def test_missing_repository_is_one_clear_error(tmp_path: Path, env: dict[str, str]) -> None:
    missing = str(tmp_path / "nowhere")
    with pytest.raises(
        RepositoryMissing, match=f"borg list failed: Repository {re.escape(missing)} does not exist"
    ):
        run_borg(borg.list_argv(missing), PASS, env=env)
    assert not Path(missing).exists()  # nothing half-made


@needs_borg
def test_unreachable_server_is_one_clear_error(env: dict[str, str]) -> None:
    # ssh fails before sending a packet: its ProxyCommand exits at once.
    env = {**env, "BORG_RSH": "ssh -o BatchMode=yes -o ProxyCommand=false"}
    with pytest.raises(ServerUnreachable, match="Connection closed by remote host"):
        run_borg(borg.list_argv("ssh://borg@backup.invalid/srv/borg/repo"), PASS, env=env)


@needs_borg
def test_corrupted_repository_fails_verify_data(repo: str, source: Path, env: dict[str, str]) -> None:
    run_borg(borg.create_argv(repo, "home-1", [str(source)], compression="none"), PASS, env=env)
    segment = max((Path(repo) / "data").rglob("[0-9]*"), key=lambda p: p.stat().st_size)
    blob = bytearray(segment.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte inside a data chunk
    segment.write_bytes(bytes(blob))
    with pytest.raises(BorgError, match=r"borg check failed: .*errors found"):
        run_borg(borg.check_argv(repo, verify_data=True), PASS, env=env)


@needs_borg
def test_extract_restores_identical_files(
    repo: str, source: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    run_borg(borg.create_argv(repo, "home-1", [str(source)]), PASS, env=env)
    target = tmp_path / "restore"
    target.mkdir()
    run_borg(borg.extract_argv(repo, "home-1"), PASS, env=env, cwd=str(target))
    restored = target / str(source).lstrip("/")
    for name in ("alice/notes.txt", "alice/data.bin"):
        assert (restored / name).read_bytes() == (source / name).read_bytes()


EXIT_CODES = [(0, "ok"), (1, "warning"), (2, "error"), (3, "error"), (99, "error"), (100, "warning")]
EXIT_CODES += [(107, "warning"), (127, "warning"), (128, "error"), (143, "error")]


@pytest.mark.parametrize(("code", "status"), EXIT_CODES)
def test_exit_codes(code: int, status: str) -> None:
    assert status_of(code) == status


def test_exit_1_with_error_messages_is_an_error() -> None:
    line = {
        "type": "log_message",
        "levelname": "ERROR",
        "message": "Finished full repository check, errors found.",
    }
    with pytest.raises(BorgError, match=r"borg check failed: Finished full repository check, errors found\."):
        interpret(1, "", json.dumps(line), "check")


def test_warnings_are_reported_not_hidden() -> None:
    stderr = json.dumps(
        {"type": "log_message", "levelname": "WARNING", "message": "file changed while we backed it up"}
    )
    outcome = interpret(1, "", stderr, "create")
    assert outcome.status == "warning" and outcome.warnings == ["file changed while we backed it up"]


BUILDERS = [
    (borg.init_argv("/r"), ["borg", "init", "--encryption", "repokey-blake2", "/r"]),
    (
        borg.init_argv("/r", append_only=True),
        ["borg", "init", "--encryption", "repokey-blake2", "--append-only", "/r"],
    ),
    (
        borg.create_argv("/r", "a", ["/home"], excludes=["*.tmp"], remote_path="borg1"),
        [
            *("borg", "create", "--json", "--compression", "lz4", "--one-file-system", "--exclude", "*.tmp"),
            *("--remote-path", "borg1", "--lock-wait", "60", "/r::a", "/home"),
        ],
    ),
    (
        borg.check_argv("/r", archives_only=True, last=3),
        ["borg", "check", "--archives-only", "--last", "3", "/r"],
    ),
    (
        borg.prune_argv("/r", keep_last=5, dry_run=True),
        ["borg", "prune", "--list", "--dry-run", "--keep-last", "5", "/r"],
    ),
    (borg.delete_argv("/r", ["a", "b"]), ["borg", "delete", "/r", "a", "b"]),
    (borg.compact_argv("/r"), ["borg", "compact", "/r"]),
    (borg.key_export_argv("/r", "/k"), ["borg", "key", "export", "/r", "/k"]),
    (borg.serve_restricted_argv("/s", True), ["borg", "serve", "--append-only", "--restrict-to-path", "/s"]),
    (borg.in_directory("/x", ["borg", "extract", "/r::a"]), ["env", "-C", "/x", "borg", "extract", "/r::a"]),
]


@pytest.mark.parametrize(("argv", "expected"), BUILDERS)
def test_builders(argv: list[str], expected: list[str]) -> None:
    assert argv == expected


@pytest.mark.parametrize(
    "call",
    [
        lambda: borg.prune_argv("/r"),
        lambda: borg.delete_argv("/r", []),
        lambda: borg.check_argv("/r", repository_only=True, verify_data=True),
    ],
)
def test_dangerous_builders_refuse(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        call()


# -- rotation schemes --------------------------------------------------------------------------------

# Twenty weeks of backups: most nights, some missed, two on some days — 100 archives.
START = datetime(2026, 1, 1, 3, 0)
TABLE = [START + timedelta(days=d) for d in range(140) if d % 7 not in (2, 5) or d % 3 == 0]
TABLE += [START + timedelta(days=d, hours=9) for d in (40, 41, 100, 139)]
ARCHIVES = [Archive(name=f"home-{t:%Y%m%dT%H%M}", time=t) for t in sorted(TABLE)]
KEPT_LINE = re.compile(r"^Keeping archive \(rule: [^)]*\):\s+(\S+)")


@pytest.fixture(scope="module")
def table_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    """One real repository holding an (empty) archive for every time in the table."""
    base = tmp_path_factory.mktemp("rotation")
    env = {"BORG_BASE_DIR": str(base / "borg-base")}
    repo, empty = str(base / "repo"), base / "empty"
    empty.mkdir()
    run_borg(borg.init_argv(repo, encryption="none"), "", env=env)
    for archive in ARCHIVES:
        argv = borg.create_argv(repo, archive.name, [str(empty)], compression=None)
        run_borg([*argv[:2], "--timestamp", archive.time.isoformat(), *argv[2:]], "", env=env)
    return repo, env


@needs_borg
@pytest.mark.parametrize(
    ("rule", "borg_flags"),
    [
        ({"daily": 7, "weekly": 4, "monthly": 6}, {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6}),
        ({"daily": 3, "weekly": 0, "monthly": 12}, {"keep_daily": 3, "keep_monthly": 12}),
        (
            {"daily": 30, "weekly": 30, "monthly": 30},
            {"keep_daily": 30, "keep_weekly": 30, "keep_monthly": 30},
        ),
        ({"last": 10}, {"keep_last": 10}),
    ],
)
def test_gfs_and_fifo_match_borg_prune(
    table_repo: tuple[str, dict[str, str]], rule: dict, borg_flags: dict
) -> None:
    """Our pure selection equals borg's own on a real repository holding the table's archives."""
    repo, env = table_repo
    listing = run_borg(borg.prune_argv(repo, dry_run=True, **borg_flags), "", env=env)
    kept_by_borg = {m[1] for msg in listing.messages if (m := KEPT_LINE.match(msg.message))}
    assert kept_by_borg, [m.message for m in listing.messages][:5]
    ours = fifo(ARCHIVES, rule["last"]) if "last" in rule else gfs(ARCHIVES, **rule)
    assert ours == kept_by_borg


def test_fifo_keeps_the_newest() -> None:
    assert fifo(ARCHIVES, 3) == {a.name for a in ARCHIVES[-3:]}


@pytest.mark.parametrize(
    ("numbers", "levels", "tapes"),
    [((1, 2, 3, 4, 5, 6, 7, 8), 4, (0, 1, 0, 2, 0, 1, 0, 3)), ((8, 16, 24, 32), 3, (2, 2, 2, 2))],
)
def test_hanoi_tapes(numbers: tuple[int, ...], levels: int, tapes: tuple[int, ...]) -> None:
    assert tuple(hanoi_tape(n, levels) for n in numbers) == tapes


NIGHTLY = [Archive(name=f"n{d:03d}", time=datetime(2026, 1, 1, 3) + timedelta(days=d)) for d in range(365)]


def test_hanoi_keeps_one_archive_per_tape_spaced_exponentially() -> None:
    kept = sorted((a for a in NIGHTLY if a.name in hanoi(NIGHTLY, 5)), key=lambda a: a.time)
    assert len(kept) == 5
    assert kept[-1] == NIGHTLY[-1]  # the newest backup is always the newest on its tape
    ages = [(NIGHTLY[-1].time - a.time).days for a in kept]
    tapes = [hanoi_tape((a.time.date() - date(1970, 1, 1)).days + 1, 5) for a in kept]
    assert sorted(tapes) == [0, 1, 2, 3, 4]
    for age, tape in zip(ages, tapes, strict=True):  # tape t is rewritten every 2**(t+1) days
        assert age < 2 ** (tape + 1) or tape == 4


@pytest.mark.parametrize(
    "select",
    [
        lambda archives: hanoi(archives, 5),
        lambda archives: fifo(archives, 7),
        lambda archives: gfs(archives, 7, 4, 6),
    ],
    ids=["hanoi", "fifo", "gfs"],
)
def test_daily_rotation_keeps_what_one_selection_keeps(select: Callable[[list[Archive]], set[str]]) -> None:
    """Rotating every night (deleting as we go) ends where selecting once from the full history does."""
    repository: list[Archive] = []
    for archive in NIGHTLY:
        repository.append(archive)
        kept = select(repository)
        repository = [a for a in repository if a.name in kept]
    assert {a.name for a in repository} == select(NIGHTLY)


def test_preview_summarises_and_draws_every_scheme(tmp_path: Path) -> None:
    import struct
    import zlib

    from tasks.borg.preview import GAP, preview

    picture = tmp_path / "rotation.png"
    summary = preview(picture, days=120, last=10, levels=6)
    assert "fifo (last 10): 10 archives, ages in days [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" in summary
    assert "hanoi (6 levels): 6 archives" in summary
    data = picture.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (3 * 120 + 2 * GAP, 120)
    idat_length = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41 : 41 + idat_length])
    last_row = raw[-width:]  # the last day: in the fifo panel exactly the newest 10 archives are dark
    fifo_panel = last_row[120 + GAP : 2 * 120 + GAP]
    assert [x for x, value in enumerate(fifo_panel) if value < 0x80] == list(range(110, 120))
