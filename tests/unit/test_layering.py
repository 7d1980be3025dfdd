"""The house's layers, read from the source: settings and models at the bottom (tasks), Prefect block
types on them, flows on both (a deployment's flow loads its cluster's saved blocks), deployments on top
— no import cycle among the top-level packages, and a flow module borrows nothing from another flow module
but the flow itself (a subflow)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from prefect import Flow

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("tasks", "blocks", "flows", "deployments")
# Which package may import which: a DAG, bottom first.
ALLOWED = {
    "tasks": set(),
    "blocks": {"tasks"},
    "flows": {"tasks", "blocks"},
    "deployments": {"tasks", "flows", "blocks"},
}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every absolute import in ``path``, including those inside functions."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_the_layers_below_it(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in _sources(package)
        for module, _ in _imports(path)
        if (top := module.split(".")[0]) in PACKAGES and top != package and top not in ALLOWED[package]
    ]
    assert not wrong, "\n".join(wrong)


def test_the_allowed_layers_have_no_cycle() -> None:
    remaining = {package: set(below) for package, below in ALLOWED.items()}
    while remaining:
        bottom = [package for package, below in remaining.items() if not below]
        assert bottom, f"cycle among {sorted(remaining)}"
        for package in bottom:
            del remaining[package]
        for below in remaining.values():
            below.difference_update(bottom)


def test_flow_modules_take_only_flows_from_each_other() -> None:
    borrowed = []
    for path in _sources("flows"):
        for module, names in _imports(path):
            if module.startswith("flows.") and module != "flows":
                imported = importlib.import_module(module)
                borrowed += [
                    f"{path.relative_to(ROOT)}: {module}.{name}"
                    for name in names
                    if not isinstance(getattr(imported, name), Flow)
                ]
    assert not borrowed, "flow modules borrowing helpers:\n" + "\n".join(borrowed)
