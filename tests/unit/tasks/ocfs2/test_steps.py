"""tasks/ocfs2/steps.py: the argv builders (mkfs.ocfs2 and rsync are not on the test host, so
these stay literal)."""

from __future__ import annotations

import pytest

from tasks.ocfs2.model import O2cbCluster, O2cbNode
from tasks.ocfs2.steps import mkfs_ocfs2_argv, sync_tree_argv


def _cluster(**overrides: object) -> O2cbCluster:
    nodes = (
        O2cbNode(name="nodea", address="10.77.0.11", number=0),
        O2cbNode(name="nodeb", address="10.77.0.12", number=1),
    )
    return O2cbCluster(**{"name": "hsfcl", "nodes": nodes, **overrides})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overwrite", "expected"),
    [
        (
            False,
            [
                "mkfs.ocfs2",
                "-q",
                "-N",
                "2",
                "-L",
                "r0",
                "--cluster-stack=o2cb",
                "--cluster-name=hsfcl",
                "/dev/drbd0",
            ],
        ),
        (
            True,
            [
                "mkfs.ocfs2",
                "-q",
                "-F",
                "-N",
                "2",
                "-L",
                "r0",
                "--cluster-stack=o2cb",
                "--cluster-name=hsfcl",
                "/dev/drbd0",
            ],
        ),
    ],
)
def test_mkfs_ocfs2_argv(overwrite: bool, expected: list[str]) -> None:
    assert mkfs_ocfs2_argv("/dev/drbd0", _cluster(), "r0", overwrite) == expected


def test_sync_tree_argv_keeps_everything_but_lost_found() -> None:
    assert sync_tree_argv("/mnt/r0", "/stage", delete=True) == [
        "rsync", "-aHAX", "--exclude=/lost+found", "--delete", "/mnt/r0/", "/stage/",
    ]  # fmt: skip
