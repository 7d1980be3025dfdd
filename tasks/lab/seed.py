"""SSH identities for the lab: one client key per lab, one host key per VM, a pinned known_hosts.

A VM's host key and the lab's client public key reach the guest on a small ext4 "seed" disk that the
guest's ``lab-seed.service`` installs before sshd starts; the shared image carries no keys at all.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tasks.executor import Executor
from tasks.lab.image import mkfs_from_dir_argv, qemu_img_raw_argv

SEED_LABEL = "labseed"
SEED_SIZE = "4M"


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


def build_seed_disk(seed: Path, host_key: Path, client_pub_key: Path, executor: Executor) -> None:
    """The per-VM seed disk: host key pair and authorized_keys, in an ext4 image labelled ``labseed``."""
    with tempfile.TemporaryDirectory(prefix="hsf-seed-") as stage_dir:
        stage = Path(stage_dir)
        shutil.copyfile(host_key, stage / "ssh_host_ed25519_key")
        shutil.copyfile(host_key.with_name(host_key.name + ".pub"), stage / "ssh_host_ed25519_key.pub")
        shutil.copyfile(client_pub_key, stage / "authorized_keys")
        seed.unlink(missing_ok=True)
        executor.run(qemu_img_raw_argv(seed, SEED_SIZE), timeout=30)
        executor.run(mkfs_from_dir_argv(stage, seed, SEED_SIZE, label=SEED_LABEL), timeout=30)
