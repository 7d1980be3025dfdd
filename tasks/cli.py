"""The one way the flows' command lines start: settings, dry run, clear one-line failures, clean exit."""

from __future__ import annotations

import sys
from collections.abc import Callable

from tasks.borg.outcome import BorgError
from tasks.context import ClusterBusy, DryRunRefused, close_standalone
from tasks.drbd.plan import Refused
from tasks.executor import CommandError, HostKeyRejected, TransportError
from tasks.lab.host import LibvirtUnreachable
from tasks.settings import Settings, SettingsError, load_settings

EXIT_BAD_SETTINGS = 2
EXIT_REFUSED = 3
EXIT_COMMAND_FAILED = 4
EXIT_UNREACHABLE = 5


def run_cli(action: Callable[[Settings], int]) -> int:
    """Run ``action`` with the loaded settings; expected failures become one line on stderr.

    Exit codes: 2 = bad settings or an unreachable libvirt, 3 = refused (to destroy data, to fake a
    dry run, or because another flow held the cluster for too long), 4 = a command failed (borg:
    wrong passphrase, missing repository or source, unreachable server; or any command on a host,
    with its stderr tail), 5 = a host did not answer over SSH (after the retries) or its host key is
    not the pinned one, else the action's own code (1 = data lost, drills only).
    Dry run, masking and SSH connections belong to each flow run (``tasks.context``), which closes them.
    """
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_SETTINGS
    try:
        return action(settings)
    except LibvirtUnreachable as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_SETTINGS
    except (Refused, DryRunRefused, ClusterBusy) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except BorgError as exc:  # wrong passphrase, missing repository, unreachable server, …
        print(exc, file=sys.stderr)
        return EXIT_COMMAND_FAILED
    except (TransportError, HostKeyRejected) as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNREACHABLE
    except CommandError as exc:  # a command on a host failed: its line and the tail of its stderr
        print(exc, file=sys.stderr)
        return EXIT_COMMAND_FAILED
    finally:
        close_standalone()
