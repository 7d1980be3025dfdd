"""PostgreSQL as a backup source: dumps into the sources before the archive, and the proof that a dump
restores (into a scratch database, every table's row count as it was dumped).

The builders are pure argvs for the PostgreSQL client tools; the steps run them on the backup client
through the executor. ``pg_dump --format=custom`` writes straight into its file (streamed, never held
in memory here) inside a directory of mode 0700, and the file is made 0600: a dump is never
world-readable. A password comes from a Prefect Secret block into a ``.pgpass`` file of mode 0600 in
``/run`` on the client, outside the sources, for as long as a step needs it (written from stdin: never
in argv, an environment or a log).

Row counts are exact (``count(*)`` of every table, in one query) and taken right before and right after
each dump: equal, they are what the dump holds; different, the database changed during the dump and
the drill says so instead of comparing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from tasks.context import current_executor
from tasks.drbd.plan import Refused
from tasks.executor import CommandError, Target
from tasks.settings import BackupSettings, PostgresDump
from tasks.step import step

Argv = list[str]
# Every base table's exact row count in one round trip: query_to_xml runs the count per table.
ROW_COUNTS_SQL = (
    "SELECT format('%I.%I', table_schema, table_name) AS name, "
    "(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', table_schema, "
    "table_name), false, true, '')))[1]::text::bigint AS rows "
    "FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
    "AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
)


def _connection(pg: PostgresDump) -> Argv:
    return ["--no-password", "--host", pg.host, "--port", str(pg.port), "--username", pg.user]


def pg_dump_argv(pg: PostgresDump, database: str, path: str) -> Argv:
    return ["pg_dump", *_connection(pg), "--format=custom", f"--file={path}", f"--dbname={database}"]


def pg_restore_argv(pg: PostgresDump, database: str, path: str) -> Argv:
    """Into an empty scratch database, as the dumping role (no owners, no privileges of the source)."""
    return [
        "pg_restore", *_connection(pg), "--exit-on-error", "--no-owner", "--no-privileges",
        f"--dbname={database}", path,
    ]  # fmt: skip


def psql_argv(pg: PostgresDump, database: str, sql: str) -> Argv:
    return [
        "psql", *_connection(pg), "--no-psqlrc", "--quiet", "--tuples-only", "--no-align",
        "--field-separator=\t", "--set=ON_ERROR_STOP=1", f"--dbname={database}", f"--command={sql}",
    ]  # fmt: skip


def createdb_argv(pg: PostgresDump, database: str) -> Argv:
    return ["createdb", *_connection(pg), database]


def dropdb_argv(pg: PostgresDump, database: str) -> Argv:
    return ["dropdb", *_connection(pg), "--if-exists", database]


def pgpass_line(pg: PostgresDump, password: str) -> str:
    """The ``.pgpass`` line for this server and role (``:`` and ``\\`` escaped as libpq reads them)."""

    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")

    return ":".join((escape(pg.host), str(pg.port), "*", escape(pg.user), escape(password))) + "\n"


def parse_row_counts(text: str) -> dict[str, int]:
    """``psql`` output of :data:`ROW_COUNTS_SQL`: table → rows."""
    counts = {}
    for line in text.splitlines():
        name, _, rows = line.partition("\t")
        if name:
            counts[name] = int(rows)
    return counts


class Dump(BaseModel):
    """One database's dump, as written on the client."""

    database: str
    path: str
    size: int
    rows: dict[str, int] | None = Field(
        description="Each table's rows as dumped; None when they changed during the dump (not comparable)."
    )


class Access(BaseModel):
    """How the steps reach PostgreSQL from the backup client (the password masked in any repr)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    pg: PostgresDump
    target: Target
    dump_dir: str
    password: SecretStr | None = None
    pgpass: str = Field(description="The client's password file while a step runs (outside the sources).")

    def run(self, argv: Argv, read_only: bool = False, timeout: float = 3600) -> str:
        password = self.password.get_secret_value() if self.password else None
        env = {"PGPASSFILE": self.pgpass} if password else None
        return (
            current_executor()
            .run(
                argv,
                self.target,
                env=env,
                read_only=read_only,
                timeout=timeout,
                secrets=[password] if password else [],
            )
            .stdout
        )

    def row_counts(self, database: str) -> dict[str, int]:
        return parse_row_counts(self.run(psql_argv(self.pg, database, ROW_COUNTS_SQL), read_only=True))


def postgres_access(backup: BackupSettings, target: Target) -> Access | None:
    """The databases to dump on ``target``, or None when none are configured; one line when the
    password's Secret block is missing."""
    from tasks.cluster import stored_secret

    pg = backup.postgresql
    if not pg.databases:
        return None
    password = None
    if pg.password_block:
        password = stored_secret(pg.password_block)
        if password is None:
            raise Refused(f"postgresql.password_block: no Secret block named {pg.password_block!r}")
    return Access(
        pg=pg,
        target=target,
        dump_dir=backup.dump_dir,
        password=SecretStr(password) if password else None,
        pgpass=f"/run/hsf-pgpass-{secrets.token_hex(6)}",
    )


@contextmanager
def password_file(access: Access) -> Iterator[None]:
    """The role's password in a 0600 ``.pgpass`` file on the client (from stdin) while a step runs."""
    if access.password is None:
        yield
        return
    password = access.password.get_secret_value()
    current_executor().run(
        ["install", "-m", "600", "/dev/stdin", access.pgpass],
        access.target,
        stdin=pgpass_line(access.pg, password),
        secrets=[password],
    )
    try:
        yield
    finally:
        access.run(["rm", "-f", "--", access.pgpass])


@step(name="dump-databases")
def dump_databases(access: Access) -> list[Dump]:
    """Every configured database dumped into the 0700 dump directory (made here; removed by
    :func:`remove_dumps`). A database that cannot be dumped stops with one line."""
    access.run(["install", "-d", "-m", "700", access.dump_dir])
    with password_file(access):
        return [
            _dump(access, database, f"{access.dump_dir}/{database}.dump") for database in access.pg.databases
        ]


def _dump(access: Access, database: str, path: str) -> Dump:
    try:
        before = access.row_counts(database)
        access.run(pg_dump_argv(access.pg, database, path))
        if current_executor().dry_run:  # nothing was dumped: nothing to measure
            return Dump(database=database, path=path, size=0, rows=before)
        access.run(["chmod", "600", path])
        after = access.row_counts(database)
    except CommandError as exc:
        why = exc.stderr_tail.strip().splitlines()
        raise DumpFailed(
            f"database {database} could not be dumped on {exc.target}: {why[-1] if why else exc}"
        ) from None
    size = int(access.run(["stat", "-c", "%s", path], read_only=True).strip() or 0)
    return Dump(database=database, path=path, size=size, rows=before if before == after else None)


@step(name="remove-dumps")
def remove_dumps(access: Access) -> None:
    """The dumps gone from the client (they live on in the archive only): only the files this project
    wrote, then the directory if nothing else is in it — a dump_dir of the user's keeps its own files."""
    dumps = [f"{access.dump_dir}/{database}.dump" for database in access.pg.databases]
    access.run(["rm", "-f", "--", *dumps])
    access.run(["rmdir", "--ignore-fail-on-non-empty", "--", access.dump_dir], timeout=60)


class DumpFailed(Exception):
    """pg_dump, or the row count around it, failed: one line naming the database and the reason."""


@step(name="prove-dump-restores")
def prove_dump_restores(access: Access, dump: Dump, restored_path: str, scratch_db: str) -> list[str]:
    """Restore ``restored_path`` (the dump as the archive gave it back) into ``scratch_db`` and compare
    every table's rows with the dump's; the scratch database is dropped whatever happens. Problems."""
    pg = access.pg
    if dump.rows is None:
        return [
            f"{dump.database}: the database changed during the dump, so its row counts cannot be compared"
        ]
    with password_file(access):
        access.run(dropdb_argv(pg, scratch_db))  # a scratch database an interrupted drill left
        access.run(createdb_argv(pg, scratch_db))
        try:
            try:
                access.run(pg_restore_argv(pg, scratch_db, restored_path))
            except CommandError as exc:
                why = exc.stderr_tail.strip().splitlines()
                return [f"{dump.database}: the dump did not restore: {why[-1] if why else exc}"]
            restored = access.row_counts(scratch_db)
        finally:
            access.run(dropdb_argv(pg, scratch_db))
    return [
        f"{dump.database}: table {table} has {restored.get(table, 'no')} rows restored, {rows} dumped"
        for table, rows in dump.rows.items()
        if restored.get(table) != rows
    ] + [
        f"{dump.database}: table {table} restored but not dumped"
        for table in restored
        if table not in dump.rows
    ]


def describe(dump: Dump) -> str:
    tables = (
        "rows changed during the dump"
        if dump.rows is None
        else (f"{len(dump.rows)} tables, {sum(dump.rows.values()):,} rows")
    )
    return f"{dump.database} ({dump.size:,} bytes, {tables})"
