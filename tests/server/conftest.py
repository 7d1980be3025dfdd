"""The team server, run for real: the topology of docker-compose.yml started natively, once per session.

Debian's PostgreSQL in a temporary cluster (its own port on 127.0.0.1; the ``prefect`` role and database
as the compose file makes them), ``prefect server start`` against it with the compose file's argv and
environment (``deployments/team.py``), and a webhook receiver on 127.0.0.1 for the notifications.
Everything is stopped on the way out, whatever happened.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments import team
from tests.postgres import bindir, temporary_cluster
from tests.processes import free_port, started, tail, wait_for

PREFECT = str(Path(sys.executable).with_name("prefect"))
SERVER_START_TIMEOUT_S = 240  # a fresh database's migrations on two busy cores


@dataclass
class TeamServer:
    api: str
    http: httpx.Client
    client_env: dict[str, str] = field(repr=False)  # what a worker or a CLI command on a site gets
    log: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {**self.client_env, **extra}

    def events(self, name: str, resource: str) -> list[dict[str, Any]]:
        """The events ``name`` about ``resource`` the server stored, oldest first."""
        body = {
            "filter": {"event": {"name": [name]}, "resource": {"id": [resource]}, "order": "ASC"},
            "limit": 50,
        }
        return list(self.http.post("/events/filter", json=body).raise_for_status().json()["events"])


def _client_env(home: Path, api: str) -> dict[str, str]:
    """This server only: no Prefect, HSF or Borg variable of the session leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HSF_", "BORG_"))}
    return env | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api,
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
    }


@pytest.fixture(scope="session")
def team_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamServer]:
    if bindir() is None:
        pytest.skip("no PostgreSQL server (scripts/install-host-packages.sh)")
    root = tmp_path_factory.mktemp("team-server")
    password = secrets.token_urlsafe(16)
    started_at = time.monotonic()
    with temporary_cluster() as postgres:
        # What the compose file's postgres service makes from POSTGRES_USER / POSTGRES_DB.
        postgres.psql("postgres", f"CREATE ROLE {team.DATABASE_USER} LOGIN PASSWORD '{password}'")
        postgres.psql("postgres", f"CREATE DATABASE {team.DATABASE} OWNER {team.DATABASE_USER}")
        port = free_port()
        api = f"http://127.0.0.1:{port}/api"
        client_env = _client_env(root / "prefect-home", api)
        server_env = client_env | team.server_env(
            team.database_url(password, postgres.host, postgres.port), "127.0.0.1"
        )
        # Proactive triggers looked at every second (default 5 s): the tests' windows are seconds long.
        server_env["PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY"] = "PT1S"
        server_env.pop("PREFECT_API_URL")
        log = root / "server.log"
        http = httpx.Client(base_url=api, timeout=30)

        with started(team.server_argv("127.0.0.1", port, prefect=PREFECT), server_env, log) as server:

            def healthy() -> bool | None:
                if server.poll() is not None:
                    raise TimeoutError("the server exited")
                with contextlib.suppress(httpx.HTTPError):
                    if http.get("/health").status_code == 200:
                        return True
                return None

            try:
                wait_for("the server's /api/health", healthy, SERVER_START_TIMEOUT_S)
            except TimeoutError:
                pytest.fail(f"server did not start (exit {server.poll()}):\n{tail(log)}")
            print(f"team server on PostgreSQL ready in {time.monotonic() - started_at:.1f} s")
            try:
                yield TeamServer(api=api, http=http, client_env=client_env, log=log)
            finally:
                http.close()
    shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class Received:
    at: float  # time.time() when it arrived
    subject: str
    body: str


class WebhookReceiver:
    """A tiny HTTP endpoint on 127.0.0.1 collecting every JSON notification posted to it."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver._lock:
                    receiver.received.append(Received(time.time(), data["subject"], data["body"]))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def about(self, text: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if text in r.subject]

    def wait_about(self, text: str, timeout_s: float) -> Received:
        found = wait_for(f"a notification about {text}", lambda: self.about(text) or None, timeout_s, 0.2)
        return found[0]


@pytest.fixture(scope="session")
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver
