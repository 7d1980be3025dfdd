"""A temporary PostgreSQL cluster of Debian's own server for the tests: its own data directory, its own
port on 127.0.0.1 and socket directory, stopped and removed afterwards; nothing of the machine's own
clusters is touched. Over its socket the test's role needs no password (the tests' own setup); over
TCP it needs its password (scram-sha-256), as the flows connect."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.processes import free_port

POSTGRES_USER = "postgres"  # the account Debian's package makes; the server refuses to run as root


def bindir() -> Path | None:
    """The newest installed server's binaries (``/usr/lib/postgresql/<major>/bin``), if any."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


@dataclass(frozen=True)
class Cluster:
    host: str
    port: int
    socket_dir: str
    password: str

    def psql(self, database: str, sql: str) -> str:
        """Run ``sql`` as the test's role over the socket; its output."""
        argv = [
            "psql", "--no-psqlrc", "--quiet", "--tuples-only", "--no-align", "--set=ON_ERROR_STOP=1",
            "--host", self.socket_dir, "--port", str(self.port), "--username", POSTGRES_USER,
            f"--dbname={database}", f"--command={sql}",
        ]  # fmt: skip
        return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


def _as_postgres(*argv: str) -> None:
    subprocess.run(
        ["runuser", "-u", POSTGRES_USER, "--", *argv], check=True, capture_output=True, timeout=120
    )


@contextmanager
def temporary_cluster() -> Iterator[Cluster]:
    binaries = bindir()
    assert binaries is not None, "Debian's postgresql is installed by make deps"
    root = Path(tempfile.mkdtemp(prefix="hsf-pg-"))
    shutil.chown(root, POSTGRES_USER, POSTGRES_USER)
    data, port = root / "data", free_port()
    _as_postgres(
        str(binaries / "initdb"), "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
        f"--username={POSTGRES_USER}", "-D", str(data),
    )  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} -c fsync=off"
    _as_postgres(
        str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", options, "-w", "start"
    )
    cluster = Cluster(host="127.0.0.1", port=port, socket_dir=str(root), password=secrets.token_urlsafe(12))
    try:
        cluster.psql("postgres", f"ALTER ROLE {POSTGRES_USER} PASSWORD '{cluster.password}'")
        yield cluster
    finally:
        _as_postgres(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root)
