"""deployments/metrics.py: ``python -m deployments metrics`` — options checked by the settings model (one
line each), and a textfile written once, atomically, that promtool accepts, with a failed probe in it."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from deployments.__main__ import main


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--address", "localhost"],
            "--address: 'localhost' is not an IP address (e.g. 127.0.0.1, or 0.0.0.0 for every interface)",
        ),
        (["--port", "70000"], "--port: Input should be less than or equal to 65535"),
        (
            ["--textfile", "/nonexistent/hsf.prom"],
            "--textfile: the directory of /nonexistent/hsf.prom does not exist",
        ),
    ],
)
def test_a_bad_option_is_one_line(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metrics", *argv]) == 2
    assert capsys.readouterr().err == expected + "\n"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_textfile_is_written_atomically_with_the_failed_probe_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # a node that refuses SSH: its probe fails, the file is still written and says so
    node = {"name": "nodea", "address": "127.0.0.1", "port": _closed_port(), "connect_timeout_s": 5}
    monkeypatch.setenv("HSF_TARGET", "inventory")
    monkeypatch.setenv("HSF_INVENTORY", json.dumps([node]))
    monkeypatch.setenv("HSF_METRICS__PROBES", '["drbd"]')
    path = tmp_path / "hsf.prom"
    assert main(["metrics", "--textfile", str(path)]) == 0
    assert capsys.readouterr().out == f"wrote {path}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["hsf.prom"]  # the temporary file was renamed
    text = path.read_text()
    assert 'hsf_probe_success{probe="drbd",target="nodea"} 0.0' in text
    assert "# HELP hsf_probe_success " in text and "hsf_drbd_" not in text
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


def test_a_port_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["metrics", "--port", str(port)]) == 4
    assert capsys.readouterr().err == f"cannot serve on 127.0.0.1:{port}: Address already in use\n"
