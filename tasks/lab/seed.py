"""SSH identities for the lab: one client key per lab, one host key per VM, a pinned known_hosts.

A VM's host key and the lab's client public key reach the guest in its own initrd: the image's
initramfs with a small cpio appended (the kernel unpacks both). The image's init-bottom script keeps them
in ``/run/lab-seed`` and ``lab-seed.service`` installs them before sshd starts; the shared image carries
no keys at all. (They came on a seed disk on IDE before: under TCG on a busy host its probe took up to
30 s, and SSH waited for it on every boot.)
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tasks.executor import Executor

SEED_DIR = "lab-seed"  # in the initramfs; the guest's init-bottom script copies it to /run/lab-seed
HOST_KEY = "ssh_host_ed25519_key"
AUTHORIZED_KEYS = "authorized_keys"


def ssh_keygen_argv(key_file: Path, comment: str) -> list[str]:
    """A new ed25519 key pair without passphrase (lab-only credentials)."""
    return ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key_file)]


def ensure_key(key_file: Path, comment: str, executor: Executor) -> Path:
    """Generate ``key_file`` (and ``.pub``) unless the pair already exists."""
    pub = key_file.with_name(key_file.name + ".pub")
    if key_file.exists() and pub.exists():
        return key_file
    key_file.unlink(missing_ok=True)
    pub.unlink(missing_ok=True)
    key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    executor.run(ssh_keygen_argv(key_file, comment), timeout=30)
    return key_file


def known_hosts_line(address: str, port: int, host_pub_key: str) -> str:
    """One known_hosts entry pinning ``host_pub_key`` ("ssh-ed25519 AAAA... comment") to the address."""
    key_type, key_data = host_pub_key.split()[:2]
    host = address if port == 22 else f"[{address}]:{port}"
    return f"{host} {key_type} {key_data}"


def cpio_newc_argv(archive: Path, directory: Path) -> list[str]:
    """GNU cpio writing the names read on stdin (relative to ``directory``) as a newc archive, the
    kernel's initramfs format, every entry owned by root."""
    return [
        "cpio", "--create", "--quiet", "--format=newc", "--owner=0:0",
        f"--directory={directory}", f"--file={archive}",
    ]  # fmt: skip


def build_seed_initrd(
    initrd: Path, image_initrd: Path, host_key: Path, client_pub_key: Path, executor: Executor
) -> None:
    """The VM's initrd: the image's initramfs, zero-padded to 4 bytes, then a cpio of ``lab-seed/`` (0700)
    with the VM's host key pair and the lab's client key as ``authorized_keys``."""
    with tempfile.TemporaryDirectory(prefix="hsf-seed-") as stage_dir:
        stage = Path(stage_dir)
        seed = stage / SEED_DIR
        seed.mkdir(mode=0o700)
        files = {
            HOST_KEY: host_key,
            f"{HOST_KEY}.pub": host_key.with_name(host_key.name + ".pub"),
            AUTHORIZED_KEYS: client_pub_key,
        }
        for name, source in files.items():
            shutil.copyfile(source, seed / name)
            (seed / name).chmod(0o600)
        archive = stage / "seed.cpio"
        names = [SEED_DIR, *(f"{SEED_DIR}/{name}" for name in files)]
        executor.run(cpio_newc_argv(archive, stage), stdin="".join(f"{n}\n" for n in names), timeout=30)
        base = image_initrd.read_bytes()
        partial = initrd.with_name(initrd.name + ".partial")
        partial.write_bytes(base + b"\0" * (-len(base) % 4) + archive.read_bytes())
        partial.replace(initrd)
