"""tasks/postgres.py: the client tools' argvs, the .pgpass line and the row-count parser."""

from __future__ import annotations

import pytest

from tasks.postgres import (
    ROW_COUNTS_SQL,
    createdb_argv,
    dropdb_argv,
    parse_row_counts,
    pg_dump_argv,
    pg_restore_argv,
    pgpass_line,
    psql_argv,
)
from tasks.settings import PostgresDump, load_settings

PG = PostgresDump(databases=("orders",), host="db.example", port=5433, user="backup")
CONNECTION = ["--no-password", "--host", "db.example", "--port", "5433", "--username", "backup"]


def test_every_tool_connects_the_same_way_and_never_asks_for_a_password() -> None:
    """A prompt would hang a flow: --no-password everywhere; names travel as --opt=value, so a database
    named like an option can never become one."""
    assert pg_dump_argv(PG, "orders", "/home/.hsf-postgresql/orders.dump") == [
        "pg_dump", *CONNECTION, "--format=custom", "--file=/home/.hsf-postgresql/orders.dump",
        "--dbname=orders",
    ]  # fmt: skip
    assert pg_restore_argv(PG, "hsf_drill_orders", "/s/orders.dump") == [
        "pg_restore", *CONNECTION, "--exit-on-error", "--no-owner", "--no-privileges",
        "--dbname=hsf_drill_orders", "/s/orders.dump",
    ]  # fmt: skip
    assert psql_argv(PG, "orders", ROW_COUNTS_SQL)[-2:] == ["--dbname=orders", f"--command={ROW_COUNTS_SQL}"]
    assert "--set=ON_ERROR_STOP=1" in psql_argv(PG, "orders", "SELECT 1")
    assert createdb_argv(PG, "x") == ["createdb", *CONNECTION, "x"]
    assert dropdb_argv(PG, "x") == ["dropdb", *CONNECTION, "--if-exists", "x"]


def test_the_pgpass_line_escapes_what_libpq_would_split_on() -> None:
    assert pgpass_line(PG, r"pa:ss\word") == "db.example:5433:*:backup:pa\\:ss\\\\word\n"


def test_row_counts_are_read_from_psql_s_unaligned_output() -> None:
    captured = "ops.events\t3\npublic.items\t42\n"  # psql --tuples-only --no-align, tab-separated
    assert parse_row_counts(captured) == {"ops.events": 3, "public.items": 42}
    assert parse_row_counts("") == {}


def test_the_dumps_go_inside_the_sources_or_the_settings_refuse() -> None:
    assert load_settings(backup={"sources": ["/srv/data"]}).backup.dump_dir == "/srv/data/.hsf-postgresql"
    inside = {"sources": ["/srv/data"], "postgresql": {"dump_dir": "/srv/data/dumps"}}
    assert load_settings(backup=inside).backup.dump_dir == "/srv/data/dumps"
    with pytest.raises(
        Exception, match=r"postgresql.dump_dir /srv/dumps is not inside the sources \(/srv/data\)"
    ):
        load_settings(backup={"sources": ["/srv/data"], "postgresql": {"dump_dir": "/srv/dumps"}})
