"""``python -m blocks register``: the project's block types and one block of each, from the settings."""

from __future__ import annotations

import argparse
import sys

from tasks.settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m blocks", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["register"])
    parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    from blocks.prefect_blocks import register
    from tasks.cluster import borg_passphrase_block_name, secret_block_name

    saved = register(settings)
    for slug, name in saved.items():
        print(f"saved {name}  ({slug} block)")
    print(f"secret/{secret_block_name(settings)}: the DRBD secret (generated once, never overwritten)")
    if "hsf-backup-repository" in saved:
        print(f"secret/{borg_passphrase_block_name(settings)}: the Borg passphrase (stored by init or adopt)")
    else:
        print(
            f"no hsf-backup-repository block: no passphrase is stored yet (secret/"
            f"{borg_passphrase_block_name(settings)}); `python -m flows.backup init` or `adopt` stores it"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
