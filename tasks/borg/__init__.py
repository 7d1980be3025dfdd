"""Borg: argv builders, exit-code interpretation, rotation schemes, and the backup tasks."""
