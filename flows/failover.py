"""The main job: ``python -m flows.failover``.

Until the DRBD failover drill lands (the failover issue), this runs the lab smoke job the foundation
issue asks for: bring the embedded lab up, show its status (each VM answering over SSH, its data disk,
the DRBD tools), then take the lab down again.
"""

from __future__ import annotations

import sys

from prefect import flow

from blocks.settings import SettingsError, load_settings
from flows.lab import lab_down, lab_status, lab_up
from tasks.executor import default_executor
from tasks.lab import host


@flow(name="lab-smoke")
def lab_smoke() -> str:
    lab = load_settings().lab
    try:
        up = lab_up(lab)
        status = lab_status(lab)
        return f"{status.render()}\nlab up in {up.seconds:.1f} s ({len(up.actions)} changes)"
    finally:
        default_executor().close()
        lab_down(lab)


def main() -> int:
    try:
        load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        print(lab_smoke())
    except host.LibvirtUnreachable as exc:
        print(exc, file=sys.stderr)
        return 2
    print("lab taken down again: nothing of the lab is left running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
