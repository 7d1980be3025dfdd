"""flows/orchestration_faults.py: what a re-run must never repeat, read from its recorded commands and from
the device's mounts (tables)."""

from __future__ import annotations

import pytest

from flows.orchestration_faults import mount_problems, once_only
from tasks.executor import RecordedCommand


def ran(target: str, command: str) -> RecordedCommand:
    return RecordedCommand(target=target, command=command, at=0.0, exit_code=0)


def test_metadata_and_a_forced_promotion_are_what_a_re_run_must_never_repeat() -> None:
    resumed = [
        ran("nodea", "drbdadm up r0"),
        ran("nodea", "drbdadm primary r0"),
        ran("nodea", "mount /dev/drbd0 /mnt/r0"),
        ran("nodeb", "echo create-md"),  # not drbdadm: not DRBD's metadata
    ]
    assert once_only(resumed) == []
    again = [
        ran("nodea", "drbdadm create-md hsf-fault"),
        ran("nodeb", "drbdadm --force create-md hsf-fault"),
        ran("nodea", "drbdadm primary --force hsf-fault"),
    ]
    assert once_only(again) == [
        "nodea: metadata created again (`drbdadm create-md hsf-fault`)",
        "nodeb: metadata created again (`drbdadm --force create-md hsf-fault`)",
        "nodea: a promotion forced again (`drbdadm primary --force hsf-fault`)",
    ]


@pytest.mark.parametrize(
    ("mounted", "repeated", "problems"),
    [
        ({"nodea": ["/mnt/r0"], "nodeb": []}, [], []),
        ({"nodea": [], "nodeb": ["/mnt/r0"]}, [], []),
        ({"nodea": ["/mnt/r0", "/mnt/r0"], "nodeb": []}, ["nodea: mounted 2 times (/mnt/r0, /mnt/r0)"], []),
        ({"nodea": [], "nodeb": []}, [], ["the volume is mounted on 0 nodes (none)"]),
        (
            {"nodea": ["/mnt/r0"], "nodeb": ["/mnt/x"]},
            [],
            ["the volume is mounted on 2 nodes (nodea, nodeb)"],
        ),
    ],
)
def test_the_device_is_mounted_once_on_one_node(
    mounted: dict[str, list[str]], repeated: list[str], problems: list[str]
) -> None:
    assert mount_problems(mounted) == (repeated, problems)
