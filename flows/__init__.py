"""Prefect flows. Importing this package sets offline-friendly Prefect defaults (env still wins)."""

import os

# The temporary API server Prefect starts for a local run can take ~30 s on a fresh database on a
# 2-core machine, beyond Prefect's 20 s default; telemetry would only time out on a closed network.
for _name, _value in {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}.items():
    os.environ.setdefault(_name, _value)
