"""The project's exporter scraped by a real Prometheus (Debian's /usr/bin/prometheus), for the tests: both
started on free ports of 127.0.0.1 with a temporary config and storage (the project's alert rules
loaded), read back through Prometheus' HTTP API, both stopped on the way out whatever happened."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

from tasks.settings import Settings, write_settings_file
from tests.processes import REPO_ROOT, free_port, started, wait_for

PROMETHEUS = Path("/usr/bin/prometheus")
ALERT_RULES = REPO_ROOT / "deployments" / "prometheus" / "hsf-alerts.yml"


def get(url: str) -> bytes | None:
    """The body of a 200 answer, or None while the server is not answering (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return bytes(response.read()) if response.status == 200 else None
    except OSError:
        return None


@dataclass
class Scraped:
    exporter: str  # http://127.0.0.1:<port>
    prometheus: str
    exporter_process: Popen[bytes]
    prometheus_process: Popen[bytes]

    def query(self, promql: str) -> list[dict[str, Any]] | None:
        """Prometheus' instant query: the result vector, or None while it is empty."""
        body = get(f"{self.prometheus}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        if body is None:
            return None
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        return answer["data"]["result"] or None

    def value(self, promql: str, timeout_s: float = 90) -> float:
        """The one sample ``promql`` selects, once Prometheus has scraped it."""
        result = wait_for(f"Prometheus to have {promql}", lambda: self.query(promql), timeout_s)
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Prometheus holds firing (pending ones left out)."""
        body = get(f"{self.prometheus}/api/v1/alerts")
        found = json.loads(body)["data"]["alerts"] if body else []
        return [alert for alert in found if alert["state"] == "firing"]


@contextlib.contextmanager
def scraped(settings: Settings, workdir: Path, prefect_api_url: str) -> Iterator[Scraped]:
    """``python -m deployments metrics`` as an operator starts it (its settings from a file, the Prefect
    server from the environment), and Prometheus scraping it every 5 s; both stopped at the end."""
    config = write_settings_file(settings, workdir / "hsf-metrics.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HSF_", "PREFECT_API_"))}
    env |= {"HSF_CONFIG": str(config), "PREFECT_API_URL": prefect_api_url}
    exporter_port, prometheus_port = free_port(), free_port()
    (workdir / "prometheus.yml").write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "5s", "scrape_timeout": "5s", "evaluation_interval": "5s"},
                "rule_files": [str(ALERT_RULES)],
                "scrape_configs": [
                    {"job_name": "hsf", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}
                ],
            }
        )
    )
    exporter_argv = [sys.executable, "-m", "deployments", "metrics", "--port", str(exporter_port)]
    prometheus_argv = [
        str(PROMETHEUS),
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{prometheus_port}",
    ]
    with (
        started(exporter_argv, env, workdir / "exporter.log") as exporter_process,
        started(prometheus_argv, env, workdir / "prometheus.log") as prometheus_process,
    ):
        scrape = Scraped(
            f"http://127.0.0.1:{exporter_port}",
            f"http://127.0.0.1:{prometheus_port}",
            exporter_process,
            prometheus_process,
        )
        wait_for("the exporter to answer", lambda: get(f"{scrape.exporter}/metrics"), 120)
        wait_for("Prometheus to be ready", lambda: get(f"{scrape.prometheus}/-/ready"), 60)
        yield scrape
