"""DB-API connections to the store (or a restore target), SQLite and PostgreSQL alike.

Bulk reads that feed backups go through :mod:`lomevexi_governance.source` (Arrow record
batches); this module is for DML, small queries and DDL.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from lomevexi_governance.errors import ConfigurationError, SourceSchemaError, SourceUnavailable
from lomevexi_governance.settings import DatabaseTarget

SQLITE_TIMEOUT_S = 60.0


def connect(target: DatabaseTarget, *, autocommit: bool = False) -> Any:
    """Open a DB-API connection. The caller owns transactions (``with conn:`` or commit)."""
    if target.is_sqlite:
        assert target.path
        try:
            conn = sqlite3.connect(
                target.path,
                timeout=SQLITE_TIMEOUT_S,
                isolation_level=None if autocommit else "DEFERRED",
            )
        except sqlite3.OperationalError as exc:
            raise SourceUnavailable(
                f"connection {target.conn_id!r}: cannot open SQLite database {target.path}: {exc}"
            ) from None
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 60000")
        return conn
    if target.is_postgres:
        import psycopg

        try:
            return psycopg.connect(target.postgres_uri(), autocommit=autocommit, connect_timeout=15)
        except psycopg.OperationalError as exc:
            # libpq messages name host and database, never the password
            raise SourceUnavailable(
                f"connection {target.conn_id!r}: cannot reach PostgreSQL at {target.describe()}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
            ) from None
    raise ConfigurationError(f"connection {target.conn_id!r}: unsupported dialect {target.dialect!r}")


def connect_arrow(target: DatabaseTarget, *, autocommit: bool = False) -> Any:
    """An ADBC (Arrow-native) connection to a PostgreSQL target: COPY-speed record batches."""
    import adbc_driver_postgresql.dbapi as pg

    try:
        return pg.connect(target.postgres_uri(), autocommit=autocommit)
    except Exception as exc:  # noqa: BLE001 - the driver raises many types; we rename
        raise SourceUnavailable(
            f"connection {target.conn_id!r}: cannot reach PostgreSQL at {target.describe()} ({type(exc).__name__})"
        ) from None


@contextlib.contextmanager
def connection(target: DatabaseTarget, *, autocommit: bool = False) -> Iterator[Any]:
    conn = connect(target, autocommit=autocommit)
    try:
        yield conn
    finally:
        conn.close()


def placeholder(target: DatabaseTarget) -> str:
    """The DB-API parameter marker: ``?`` for sqlite3, ``%s`` for psycopg."""
    return "?" if target.is_sqlite else "%s"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def source_columns(conn: Any, target: DatabaseTarget, table: str) -> list[str] | None:
    """The columns a table has in the database, in order; ``None`` when the table is missing."""
    if target.is_sqlite:
        rows = conn.execute(f"PRAGMA table_info({quote_ident(table)})").fetchall()
        return [r[1] for r in rows] if rows else None
    cur = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    )
    rows = cur.fetchall()
    return [r[0] for r in rows] if rows else None


def require_columns(conn: Any, target: DatabaseTarget, table: str, required: Sequence[str]) -> list[str]:
    """Fail naming the table or columns when the store lacks what the policy needs.

    Returns the columns present in the store but not in ``required`` (schema drift).
    """
    present = source_columns(conn, target, table)
    if present is None:
        raise SourceSchemaError(f"table {table!r} is missing from the store database ({target.describe()})")
    missing = [c for c in required if c not in present]
    if missing:
        raise SourceSchemaError(
            f"table {table!r} in the store database lacks the column(s) {missing} that the policy requires"
        )
    return [c for c in present if c not in required]
