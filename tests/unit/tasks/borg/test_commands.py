"""tasks/borg/commands.py on real local repositories: each builder is judged by what borg does with it."""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import pwd
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tasks.borg import commands as borg
from tasks.borg.outcome import BorgError, RepositoryMissing
from tasks.borg.remote import repository_url
from tasks.borg.run import run_borg
from tests.unit.tasks.borg.conftest import PASS, needs_borg


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "home"
    (src / "alice").mkdir(parents=True)
    (src / "alice" / "notes.txt").write_text("hello\n")
    (src / "alice" / "data.bin").write_bytes(bytes(range(256)) * 512)
    return src


def _names(repo: str, env: dict[str, str]) -> list[str]:
    return [a["name"] for a in json.loads(run_borg(borg.list_argv(repo), PASS, env=env).stdout)["archives"]]


def _repository_config(repo: str) -> configparser.SectionProxy:
    config = configparser.ConfigParser()
    config.read(Path(repo) / "config")
    return config["repository"]


def _segments(repo: str) -> set[Path]:
    return {p for p in (Path(repo) / "data").rglob("*") if p.is_file()}


@needs_borg
def test_init_create_list_info_check_verify_data(repo: str, source: Path, env: dict[str, str]) -> None:
    created = run_borg(borg.create_argv(repo, "home-1", [str(source)]), PASS, env=env)
    stats = json.loads(created.stdout)["archive"]["stats"]
    assert created.status == "ok" and stats["nfiles"] == 2
    run_borg(borg.create_argv(repo, "home-2", [str(source)]), PASS, env=env)
    assert _names(repo, env) == ["home-1", "home-2"]
    info = json.loads(run_borg(borg.info_argv(repo, "home-2"), PASS, env=env).stdout)
    assert info["archives"][0]["stats"]["deduplicated_size"] < stats["deduplicated_size"]  # unchanged data
    assert run_borg(borg.check_argv(repo, verify_data=True), PASS, env=env).status == "ok"


@needs_borg
def test_entries_are_listed_as_json_lines_under_whole_path_prefixes_with_asked_keys(
    repo: str, source: Path, env: dict[str, str]
) -> None:
    (source / "alice" / "notes.txt2").write_text("a name that only starts like another\n")
    run_borg(borg.create_argv(repo, "home-1", [str(source)]), PASS, env=env)
    notes = f"{str(source).strip('/')}/alice/notes.txt"
    listed = run_borg(borg.list_entries_argv(repo, "home-1", [notes], ("mtime", "sha256")), PASS, env=env)
    [entry] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert entry["path"] == notes and entry["type"] == "-"  # notes.txt2 is not under notes.txt
    assert entry["sha256"] == hashlib.sha256(b"hello\n").hexdigest()
    assert entry["mtime"].startswith(time.strftime("%Y-"))
    every = run_borg(borg.list_entries_argv(repo, "home-1"), PASS, env=env).stdout.splitlines()
    files = [e for e in map(json.loads, every) if e["type"] == "-"]
    assert len(files) == 3 and "sha256" not in files[0]  # asked for nothing: borg reads no chunk


@needs_borg
def test_init_encrypts_with_an_authenticated_repokey_and_append_only_on_request(
    tmp_path: Path, repo: str, env: dict[str, str]
) -> None:
    info = json.loads(run_borg(borg.info_argv(repo), PASS, env=env).stdout)
    assert info["encryption"]["mode"] == "repokey-blake2"
    assert _repository_config(repo)["append_only"] == "0"
    locked = str(tmp_path / "append-only")
    run_borg(borg.init_argv(locked, append_only=True), PASS, env=env)
    assert _repository_config(locked)["append_only"] == "1"


@needs_borg
def test_the_passphrase_goes_on_stdin_never_on_the_command_line(repo: str, env: dict[str, str]) -> None:
    argv = borg.with_passphrase_on_stdin(["borg", "list", "--json", repo])
    assert PASS not in " ".join(argv)
    listed = subprocess.run(
        argv, input=PASS, capture_output=True, text=True, env={**os.environ, **env}, timeout=60, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["archives"] == []


@needs_borg
def test_create_leaves_out_excluded_patterns_and_compresses(
    tmp_path: Path, repo: str, source: Path, env: dict[str, str]
) -> None:
    (source / "alice" / "scratch.tmp").write_text("throwaway\n")
    (source / "alice" / "text.log").write_text("the same line again\n" * 20_000)
    plain = str(tmp_path / "plain-repo")  # a repository of its own: no chunk deduplicated from the other
    run_borg(borg.init_argv(plain), PASS, env=env)
    run_borg(borg.create_argv(repo, "lz4", [str(source)], excludes=["*.tmp"]), PASS, env=env)
    run_borg(borg.create_argv(plain, "plain", [str(source)], compression="none"), PASS, env=env)
    listing = run_borg(["borg", "list", "--json-lines", f"{repo}::lz4"], PASS, env=env).stdout
    paths = {Path(json.loads(line)["path"]).name for line in listing.splitlines()}
    assert {"notes.txt", "data.bin", "text.log"} <= paths and "scratch.tmp" not in paths

    def stats(repository: str, archive: str) -> dict[str, int]:
        info = run_borg(borg.info_argv(repository, archive), PASS, env=env).stdout
        return json.loads(info)["archives"][0]["stats"]

    assert stats(repo, "lz4")["compressed_size"] < stats(repo, "lz4")["original_size"] / 10
    assert stats(plain, "plain")["compressed_size"] >= stats(plain, "plain")["original_size"]


def test_create_stays_on_one_filesystem_unless_told_otherwise() -> None:
    # The literal is the behaviour: a source tree never pulls in /proc, network or other mounts.
    assert "--one-file-system" in borg.create_argv("/r", "a", ["/home"])
    assert "--one-file-system" not in borg.create_argv("/r", "a", ["/home"], one_file_system=False)


@needs_borg
def test_create_waits_for_a_held_lock_as_long_as_told(repo: str, source: Path, env: dict[str, str]) -> None:
    def hold_lock(seconds: int) -> subprocess.Popen:
        holder = subprocess.Popen(
            borg.with_passphrase_on_stdin(["borg", "with-lock", repo, "sleep", str(seconds)]),
            stdin=subprocess.PIPE,
            env={**os.environ, **env},
            text=True,
        )
        assert holder.stdin is not None
        holder.stdin.write(PASS)
        holder.stdin.close()
        deadline = time.monotonic() + 30
        while not (Path(repo) / "lock.exclusive").exists():
            assert time.monotonic() < deadline and holder.poll() is None, "borg with-lock never took the lock"
            time.sleep(0.05)
        return holder

    holder = hold_lock(10)
    try:
        started = time.monotonic()
        with pytest.raises(BorgError, match="Failed to create/acquire the lock"):
            run_borg(borg.create_argv(repo, "impatient", [str(source)], lock_wait=1), PASS, env=env)
        assert 1 <= time.monotonic() - started < 8
    finally:
        holder.kill()
        holder.wait()
    holder = hold_lock(3)
    try:  # the default waits (60 s) long enough for a short lock holder such as a running check
        run_borg(borg.create_argv(repo, "patient", [str(source)]), PASS, env=env)
    finally:
        holder.wait(timeout=30)
    assert _names(repo, env) == ["patient"]


@pytest.fixture
def plain_ssh(tmp_path: Path) -> dict[str, str]:
    """An ``ssh`` stand-in that runs the remote command locally (borg's RPC then works as over SSH)."""
    fake = tmp_path / "fake-ssh"
    fake.write_text(
        "#!/bin/sh\n"
        'while [ $# -gt 0 ]; do case "$1" in -p) shift 2;; -*) shift;; *) shift; break;; esac; done\n'
        'exec "$@"\n'
    )
    fake.chmod(0o755)
    return {"BORG_RSH": str(fake), "BORG_BASE_DIR": str(tmp_path / "base")}


@needs_borg
def test_remote_path_names_the_borg_run_on_the_server(
    tmp_path: Path, plain_ssh: dict[str, str], source: Path
) -> None:
    used = tmp_path / "remote-borg-used"
    remote_borg = tmp_path / "borg1"
    remote_borg.write_text(f'#!/bin/sh\necho "$@" >> {shlex.quote(str(used))}\nexec borg "$@"\n')
    remote_borg.chmod(0o755)
    url = repository_url("borg", "127.0.0.1", 22, str(tmp_path / "remote-repo"))
    run_borg(borg.init_argv(url, remote_path=str(remote_borg)), PASS, env=plain_ssh)
    run_borg(borg.create_argv(url, "a", [str(source)], remote_path=str(remote_borg)), PASS, env=plain_ssh)
    for argv in (
        borg.list_argv(url, remote_path=str(remote_borg)),
        borg.info_argv(url, "a", remote_path=str(remote_borg)),
        borg.check_argv(url, remote_path=str(remote_borg)),
        borg.compact_argv(url, remote_path=str(remote_borg)),
    ):
        run_borg(argv, PASS, env=plain_ssh)
    calls = used.read_text().splitlines()  # init, create, list, info, check, compact
    assert len(calls) == 6 and all(call.split()[0] == "serve" for call in calls)
    with pytest.raises(BorgError):  # without it, the default `borg` on the "server": not our wrapper
        run_borg(borg.list_argv(url, remote_path="/nonexistent/borg"), PASS, env=plain_ssh)


@needs_borg
def test_check_of_the_last_archives_only_or_of_the_repository_only(
    repo: str, source: Path, env: dict[str, str]
) -> None:
    for n in range(4):
        run_borg(borg.create_argv(repo, f"home-{n}", [str(source)]), PASS, env=env)

    def check(**options: object) -> list[str]:
        argv = borg.check_argv(repo, **options)  # type: ignore[arg-type]
        return [m.message for m in run_borg([*argv[:2], "--info", *argv[2:]], PASS, env=env).messages]

    archives_only = check(archives_only=True, last=3)
    analysed = [m.split()[2] for m in archives_only if m.startswith("Analyzing archive")]
    assert analysed == ["home-1", "home-2", "home-3"]
    assert not any("repository check" in m for m in archives_only)
    repository_only = check(repository_only=True)
    assert any(m.startswith("Starting repository check") for m in repository_only)
    assert not any(m.startswith("Analyzing archive") for m in repository_only)


@needs_borg
def test_prune_dry_run_deletes_nothing_and_keep_last_keeps_the_newest(
    repo: str, source: Path, env: dict[str, str]
) -> None:
    names = [f"home-{n}" for n in range(7)]
    for hour, name in enumerate(names):  # an hour apart: borg's keep-last counts one per second
        argv = borg.create_argv(repo, name, [str(source)])
        run_borg([*argv[:2], "--timestamp", f"2026-01-01T{hour:02d}:00:00", *argv[2:]], PASS, env=env)
    dry = run_borg(borg.prune_argv(repo, keep_last=5, dry_run=True), PASS, env=env)
    assert sum(m.message.startswith("Would prune") for m in dry.messages) == 2  # --list names each
    assert _names(repo, env) == names
    run_borg(borg.prune_argv(repo, keep_last=5), PASS, env=env)
    assert _names(repo, env) == names[2:]


@needs_borg
def test_delete_removes_only_the_named_archives_and_compact_frees_their_space(
    repo: str, source: Path, env: dict[str, str]
) -> None:
    for name in ("a", "b", "c"):
        (source / "alice" / "data.bin").write_bytes(os.urandom(200_000))  # each archive its own data
        run_borg(borg.create_argv(repo, name, [str(source)], compression="none"), PASS, env=env)
    run_borg(borg.delete_argv(repo, ["a", "b"]), PASS, env=env)
    assert _names(repo, env) == ["c"]
    before = sum(p.stat().st_size for p in _segments(repo))
    run_borg(borg.compact_argv(repo), PASS, env=env)
    assert sum(p.stat().st_size for p in _segments(repo)) < before - 300_000


@needs_borg
def test_key_export_writes_the_repository_key(tmp_path: Path, repo: str, env: dict[str, str]) -> None:
    key = tmp_path / "repo.key"
    run_borg(borg.key_export_argv(repo, str(key)), PASS, env=env)
    assert key.read_text().startswith("BORG_KEY ")


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


def test_in_directory_runs_the_command_there(tmp_path: Path) -> None:
    argv = borg.in_directory(str(tmp_path), ["sh", "-c", 'pwd; printf "%s" "$1"', "sh", "a b"])
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout == f"{tmp_path}\na b"  # the command's own arguments arrive intact


@pytest.mark.skipif(os.geteuid() != 0, reason="runuser needs root")
def test_as_account_runs_as_that_account_with_its_home(tmp_path: Path) -> None:
    account = pwd.getpwuid(65534).pw_name  # nobody
    inner = borg.with_passphrase_on_stdin(["sh", "-c", 'id -un; echo "$HOME"; echo "$BORG_PASSPHRASE_FD"'])
    result = subprocess.run(
        borg.as_account_argv(account, str(tmp_path), inner), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [account, str(tmp_path), "0"]


@pytest.fixture
def restricted_serve(tmp_path: Path) -> Callable[[bool], tuple[Path, dict[str, str]]]:
    """A local stand-in for the server's forced command: what the restricted key runs, without a network."""

    def make(append_only: bool) -> tuple[Path, dict[str, str]]:
        allowed = tmp_path / "srv" / "repo"
        allowed.mkdir(parents=True, exist_ok=True)
        fake_ssh = tmp_path / "fake-ssh"
        serve = shlex.join(borg.serve_restricted_argv(str(allowed), append_only=append_only))
        fake_ssh.write_text(f"#!/bin/sh\nexec {serve}\n")
        fake_ssh.chmod(0o755)
        return allowed, {"BORG_RSH": str(fake_ssh), "BORG_BASE_DIR": str(tmp_path / "base")}

    return make


@needs_borg
def test_through_the_forced_serve_an_empty_directory_is_a_missing_repository(
    restricted_serve: Callable[[bool], tuple[Path, dict[str, str]]],
) -> None:
    allowed, env = restricted_serve(True)
    url = repository_url("borg", "127.0.0.1", 22, str(allowed))
    with pytest.raises(RepositoryMissing, match="not a valid repository"):
        run_borg(borg.info_argv(url), "pw", env=env, read_only=True)
    with pytest.raises(BorgError, match="path not allowed"):
        run_borg(borg.info_argv(url.replace("/srv/repo", "/srv")), "pw", env=env, read_only=True)
    run_borg(borg.init_argv(url), "pw", env=env)  # the prepared, empty directory is where init goes
    assert (allowed / "config").exists()


@needs_borg
@pytest.mark.parametrize("append_only", [True, False], ids=["append-only", "not-append-only"])
def test_the_forced_serve_keeps_deleted_data_only_when_append_only(
    restricted_serve: Callable[[bool], tuple[Path, dict[str, str]]], source: Path, append_only: bool
) -> None:
    """A stolen client key cannot destroy data through an append-only serve: delete and compact
    rewrite nothing; the same steps through a plain serve remove the old segments."""
    allowed, env = restricted_serve(append_only)
    url = repository_url("borg", "127.0.0.1", 22, str(allowed))
    run_borg(borg.init_argv(url), "pw", env=env)
    run_borg(borg.create_argv(url, "a", [str(source)]), "pw", env=env)
    before = _segments(str(allowed))
    run_borg(borg.delete_argv(url, ["a"]), "pw", env=env)
    run_borg(borg.compact_argv(url), "pw", env=env)
    assert (before <= _segments(str(allowed))) is append_only


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
