"""Shared fixtures: isolated Prefect home, one Prefect test harness, one booted lab per session."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

# Before Prefect is imported anywhere: results and the test database live in a fresh directory, so
# cached task results of an earlier session can never leak into this one.
_PREFECT_HOME = tempfile.mkdtemp(prefix="hsf-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield
