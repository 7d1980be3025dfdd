"""The one way the flows' command lines start: settings, dry run, clear one-line failures, clean exit."""

from __future__ import annotations

import sys
from collections.abc import Callable

from tasks.borg.outcome import BorgError
from tasks.drbd.plan import Refused
from tasks.executor import TransportError, default_executor
from tasks.lab.host import LibvirtUnreachable
from tasks.settings import Settings, SettingsError, load_settings

EXIT_BAD_SETTINGS = 2
EXIT_REFUSED = 3
EXIT_BORG = 4
EXIT_UNREACHABLE = 5


def run_cli(action: Callable[[Settings], int]) -> int:
    """Run ``action`` with the loaded settings; expected failures become one line on stderr.

    Exit codes: 2 = bad settings or an unreachable libvirt, 3 = refused to destroy data, 4 = borg
    failed (wrong passphrase, missing repository, unreachable server), 5 = a host did not answer
    over SSH (after the retries), else the action's own code.
    SSH connections are closed whatever happens.
    """
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_SETTINGS
    default_executor().dry_run = settings.dry_run
    try:
        return action(settings)
    except LibvirtUnreachable as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_SETTINGS
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except BorgError as exc:  # wrong passphrase, missing repository, unreachable server, …
        print(exc, file=sys.stderr)
        return EXIT_BORG
    except TransportError as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        default_executor().close()
