"""``python -m deployments metrics``: the project's Prometheus metrics, served or written once.

- served (the default): ``/metrics`` on ``metrics.address``:``metrics.port`` (127.0.0.1:9851), every
  scrape probing afresh (``tasks/metrics.py``); SIGTERM or Ctrl-C stops it;
- ``--textfile PATH``: written once into a node_exporter textfile (``*.prom``), atomically (a temporary
  file beside it, then a rename: node_exporter never reads half a file) — for a timer.

The command-line options override the ``[metrics]`` settings and are checked by the same model.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from pydantic import ValidationError

from tasks.cli import EXIT_BAD_SETTINGS, EXIT_COMMAND_FAILED
from tasks.metrics import HsfCollector
from tasks.settings import MetricsSettings, Settings

METRICS_PATH = "/metrics"


class MetricsOptionError(ValueError):
    """A command-line option of ``metrics`` the settings model refused (one line per problem)."""


def metrics_settings(
    settings: Settings, address: str | None = None, port: int | None = None, textfile: Path | None = None
) -> MetricsSettings:
    """``settings.metrics`` with the command line's options over it, validated by the same model."""
    given = {"address": address, "port": port, "textfile": textfile}
    overrides = {name: value for name, value in given.items() if value is not None}
    try:
        return MetricsSettings.model_validate({**settings.metrics.model_dump(), **overrides})
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "metrics"
            where = f"--{field}" if field in overrides else f"setting metrics.{field}"
            lines.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
        raise MetricsOptionError("\n".join(lines)) from None


def registry(settings: Settings) -> CollectorRegistry:
    """A registry of the project's collector alone (no process or platform metrics of the exporter)."""
    own = CollectorRegistry()
    own.register(HsfCollector(settings))
    return own


def write_textfile(settings: Settings, path: Path) -> None:
    """Probe once and write the metrics to ``path``: a temporary file in its directory, then a rename."""
    write_to_textfile(str(path), registry(settings))


def serve(settings: Settings, stop: threading.Event) -> str:
    """Serve ``/metrics`` until ``stop`` is set (or SIGTERM, Ctrl-C); returns the URL it served. Raises
    OSError when it cannot listen."""
    metrics = settings.metrics
    server, thread = start_http_server(metrics.port, addr=str(metrics.address), registry=registry(settings))
    host = f"[{metrics.address}]" if metrics.address.version == 6 else str(metrics.address)
    url = f"http://{host}:{server.server_port}{METRICS_PATH}"

    def stop_serving(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, stop_serving) for sig in (signal.SIGTERM, signal.SIGINT)}
    print(f"serving {url} (every scrape probes: {', '.join(metrics.probes)})", flush=True)
    try:
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    return url


def main(settings: Settings, address: str | None, port: int | None, textfile: Path | None) -> int:
    try:
        metrics = metrics_settings(settings, address, port, textfile)
    except MetricsOptionError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_SETTINGS
    settings = settings.model_copy(update={"metrics": metrics})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if metrics.textfile is not None:
        write_textfile(settings, metrics.textfile)
        print(f"wrote {metrics.textfile}")
        return 0
    try:
        serve(settings, threading.Event())
    except OSError as exc:
        print(f"cannot serve on {metrics.address}:{metrics.port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_COMMAND_FAILED
    return 0
