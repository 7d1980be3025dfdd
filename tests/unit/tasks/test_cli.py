"""The lab CLI refuses bad settings with one line each, before any flow or VM starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HSF_")}
    return subprocess.run(
        [sys.executable, "-m", "flows.lab", *args],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"HSF_LAB__MEMORY_MIB": "-512"},
            "setting lab.memory_mib [HSF_LAB__MEMORY_MIB]: Input should be greater",
        ),
        ({"HSF_PRIMARY_NODE": "nodez"}, "primary_node: unknown node 'nodez' (known: nodea, nodeb)"),
        (
            {"HSF_LAB__LIBVIRT_URI": "qemu:///system?socket=/nonexistent/hsf-libvirt-sock"},
            "libvirt URI 'qemu:///system?socket=/nonexistent/hsf-libvirt-sock' is unreachable: ",
        ),
        # A typo never runs the real thing: HSF_DRYRUN=true would otherwise run every command.
        (
            {"HSF_DRYRUN": "true"},
            "environment variable HSF_DRYRUN names no setting (did you mean HSF_DRY_RUN?)",
        ),
        (
            {"HSF_CONFIG": "/nonexistent/hsf.toml"},
            "HSF_CONFIG names /nonexistent/hsf.toml, which does not exist",
        ),
        (
            {
                "HSF_TARGET": "inventory",
                "HSF_INVENTORY": '[{"name": "store1", "address": "192.0.2.10", '
                '"key_file": "/nonexistent/id_ed25519"}]',
            },
            "setting inventory.0.key_file [HSF_INVENTORY__0__KEY_FILE]: "
            "key_file /nonexistent/id_ed25519 does not exist",
        ),
    ],
)
def test_bad_settings_one_line_and_exit_2(env: dict[str, str], expected: str) -> None:
    result = cli("status", env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_a_settings_file_that_is_not_toml_is_one_line_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "hsf.toml"
    config.write_text('target = "inventory\n[lab\n')
    result = cli("status", env={"HSF_CONFIG": str(config)})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"settings file {config} is not valid TOML: Illegal character '\\n' (at line 1, column 20)"
    ]
