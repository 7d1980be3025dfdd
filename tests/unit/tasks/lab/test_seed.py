"""Unit tests for tasks/lab/seed.py: key generation, known_hosts lines and a real seeded initrd."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tasks.executor import Executor
from tasks.lab.seed import (
    SEED_DIR,
    build_seed_initrd,
    ensure_key,
    known_hosts_line,
    ssh_keygen_argv,
)

KEY_DATA = "AAAAC3NzaC1lZDI1NTE5AAAAIGq8tJ6V1yXkzI2vKQpq8Tz0l8wH0m5qH2S8o1a4b5cd"
PUB_KEY = f"ssh-ed25519 {KEY_DATA} root@nodea"


def _pub(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + ".pub")


def test_ssh_keygen_argv_makes_an_unencrypted_ed25519_pair_quietly(tmp_path: Path) -> None:
    key_file = tmp_path / "id_ed25519"
    made = Executor().run(ssh_keygen_argv(key_file, "hsf-lab"), timeout=30, stdin="")
    assert (made.stdout, made.stderr) == ("", "")  # -q
    assert _pub(key_file).read_text().split()[::2] == ["ssh-ed25519", "hsf-lab"]  # type and comment
    # no passphrase: the public key can be derived with an empty one, without a prompt
    derived = Executor().run(["ssh-keygen", "-y", "-P", "", "-f", str(key_file)], timeout=30, stdin="")
    assert derived.stdout.split()[:2] == _pub(key_file).read_text().split()[:2]


@pytest.mark.parametrize(
    ("address", "port", "expected"),
    [
        pytest.param("10.77.0.11", 22, f"10.77.0.11 ssh-ed25519 {KEY_DATA}", id="port-22"),
        pytest.param("10.77.0.11", 2222, f"[10.77.0.11]:2222 ssh-ed25519 {KEY_DATA}", id="port-2222"),
        pytest.param("nodea.example", 8022, f"[nodea.example]:8022 ssh-ed25519 {KEY_DATA}", id="name"),
    ],
)
def test_known_hosts_line(address: str, port: int, expected: str) -> None:
    # exactly host, type and key: the comment ("root@nodea") is dropped
    assert known_hosts_line(address, port, PUB_KEY) == expected


def test_known_hosts_line_without_comment() -> None:
    key = " ".join(PUB_KEY.split()[:2]) + "\n"
    assert known_hosts_line("10.77.0.12", 22, key) == f"10.77.0.12 {key.strip()}"


def test_ensure_key_generates_a_key_pair(tmp_path: Path) -> None:
    key_file = tmp_path / "ssh" / "id_ed25519"

    assert ensure_key(key_file, "hsf-test", Executor()) == key_file

    assert key_file.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    pub = _pub(key_file).read_text().split()
    assert pub[0] == "ssh-ed25519"
    assert pub[2] == "hsf-test"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700


def test_ensure_key_is_idempotent(tmp_path: Path) -> None:
    key_file = tmp_path / "id_ed25519"
    executor = Executor()
    ensure_key(key_file, "hsf-test", executor)
    before = (key_file.read_bytes(), _pub(key_file).read_bytes())

    ensure_key(key_file, "hsf-test", executor)

    assert (key_file.read_bytes(), _pub(key_file).read_bytes()) == before


@pytest.mark.parametrize("remove", ["public", "private"])
def test_ensure_key_regenerates_an_incomplete_pair(tmp_path: Path, remove: str) -> None:
    key_file = tmp_path / "id_ed25519"
    executor = Executor()
    ensure_key(key_file, "hsf-test", executor)
    old_pub = _pub(key_file).read_text()
    old_private = key_file.read_text()
    (_pub(key_file) if remove == "public" else key_file).unlink()

    ensure_key(key_file, "hsf-test", executor)

    assert key_file.exists()
    assert _pub(key_file).exists()
    assert _pub(key_file).read_text() != old_pub
    assert key_file.read_text() != old_private


def test_build_seed_initrd_appends_the_identity_to_the_image_initrd(tmp_path: Path) -> None:
    executor = Executor()
    host_key = ensure_key(tmp_path / "vm" / "ssh_host_ed25519_key", "nodea", executor)
    client_key = ensure_key(tmp_path / "ssh" / "id_ed25519", "hsf-lab", executor)
    image_initrd = tmp_path / "image" / "initrd.img"
    image_initrd.parent.mkdir()
    image_initrd.write_bytes(b"\x28\xb5\x2f\xfd" + b"x" * 4093)  # any length: the cpio starts 4-aligned
    initrd = tmp_path / "vm" / "initrd.img"
    initrd.write_bytes(b"stale initrd from an earlier run")

    build_seed_initrd(initrd, image_initrd, host_key, _pub(client_key), executor)

    data = initrd.read_bytes()
    assert data.startswith(image_initrd.read_bytes() + b"\0\0\0")
    appended = data[4100:]
    assert appended.startswith(b"070701")  # newc, where the kernel looks for the next archive
    seed = tmp_path / "seed.cpio"
    seed.write_bytes(appended)
    listing = executor.run(["cpio", "-itv", f"--file={seed}"], timeout=30).stdout.splitlines()
    entries = {line.split()[-1]: (line.split()[0], line.split()[2:4]) for line in listing}
    assert entries == {
        SEED_DIR: ("drwx------", ["root", "root"]),
        **{
            f"{SEED_DIR}/{name}": ("-rw-------", ["root", "root"])
            for name in ("ssh_host_ed25519_key", "ssh_host_ed25519_key.pub", "authorized_keys")
        },
    }
    expected = {
        "authorized_keys": _pub(client_key).read_text(),
        "ssh_host_ed25519_key": host_key.read_text(),
        "ssh_host_ed25519_key.pub": _pub(host_key).read_text(),
    }
    for name, content in expected.items():
        extract = ["cpio", "-i", "--to-stdout", f"--file={seed}", f"{SEED_DIR}/{name}"]
        assert executor.run(extract, timeout=30).stdout == content, name
    assert not list(initrd.parent.glob("*.partial"))
