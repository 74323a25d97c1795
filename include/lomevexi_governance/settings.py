"""Runtime settings: the store connection, the KMS connection and the storage roots.

The DAGs read Airflow Connections and Variables by id at run time (never at parse time) and
hand plain values to the library. Everything here is a plain dataclass so the library and the
tests work without Airflow.

Contracts (DESIGN.md): connection ``store_db`` (the store), connection ``governance_kms`` (root
key or KMS settings), variables ``governance_backup_root`` and ``governance_report_root``; all
overridable with the standard ``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*`` environment variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from lomevexi_governance.errors import ConfigurationError

STORE_CONN_ID = "store_db"
KMS_CONN_ID = "governance_kms"
BACKUP_ROOT_VAR = "governance_backup_root"
REPORT_ROOT_VAR = "governance_report_root"

SQLITE_TYPES = {"sqlite"}
POSTGRES_TYPES = {"postgres", "postgresql"}


class ConnectionLike(Protocol):
    """The attributes of an Airflow Connection this module reads."""

    conn_id: str
    conn_type: str | None
    host: str | None
    schema: str | None
    login: str | None
    password: str | None
    port: int | None

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class DatabaseTarget:
    """Where a relational database is: a SQLite file or a PostgreSQL server.

    ``repr`` never shows the password, so a target can appear in logs and reports.
    """

    dialect: str  # "sqlite" | "postgresql"
    conn_id: str
    path: str | None = None  # sqlite
    host: str | None = None
    port: int | None = None
    database: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    options: dict[str, str] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def postgres_uri(self) -> str:
        """A libpq URI (contains the password: never log it)."""
        if not self.is_postgres:
            raise ConfigurationError(f"connection {self.conn_id!r} is not a PostgreSQL connection")
        auth = ""
        if self.user:
            auth = quote(self.user, safe="")
            if self.password:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        host = self.host or "localhost"
        port = f":{self.port}" if self.port else ""
        query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in sorted(self.options.items()))
        return f"postgresql://{auth}{host}{port}/{quote(self.database or '', safe='')}" + (
            f"?{query}" if query else ""
        )

    def describe(self) -> str:
        """Human-readable location without secrets (for logs and reports)."""
        if self.is_sqlite:
            return f"sqlite:{self.path}"
        return f"postgresql://{self.user + '@' if self.user else ''}{self.host}:{self.port or 5432}/{self.database}"


_PG_OPTION_KEYS = {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "options"}


def database_target(conn: ConnectionLike) -> DatabaseTarget:
    """Turn an Airflow Connection into a :class:`DatabaseTarget`.

    Accepts both SQLite forms (``sqlite:////abs/path.db``, which Airflow parses into ``schema``,
    and ``{"conn_type": "sqlite", "host": "/abs/path.db"}``) and PostgreSQL URIs or JSON.
    """
    ctype = (conn.conn_type or "").lower()
    if ctype in SQLITE_TYPES:
        path = conn.host or conn.schema
        if not path:
            raise ConfigurationError(
                f"connection {conn.conn_id!r}: a SQLite connection needs the database file path "
                "(sqlite:////abs/path.db or host=/abs/path.db)"
            )
        if not os.path.isabs(path):
            raise ConfigurationError(
                f"connection {conn.conn_id!r}: the SQLite path {path!r} must be absolute"
            )
        return DatabaseTarget(dialect="sqlite", conn_id=conn.conn_id, path=path)
    if ctype in POSTGRES_TYPES:
        extra = conn.extra_dejson or {}
        options = {k: str(v) for k, v in extra.items() if k in _PG_OPTION_KEYS}
        if not conn.schema:
            raise ConfigurationError(f"connection {conn.conn_id!r}: the PostgreSQL database name is missing")
        return DatabaseTarget(
            dialect="postgresql",
            conn_id=conn.conn_id,
            host=conn.host or "localhost",
            port=int(conn.port) if conn.port else None,
            database=conn.schema,
            user=conn.login,
            password=conn.password,
            options=options,
        )
    raise ConfigurationError(
        f"connection {conn.conn_id!r} has type {conn.conn_type!r}; expected sqlite or postgres"
    )


def sqlite_target(path: str, conn_id: str = "scratch") -> DatabaseTarget:
    return DatabaseTarget(dialect="sqlite", conn_id=conn_id, path=os.path.abspath(path))


def target_from_uri(uri: str, conn_id: str = "adhoc") -> DatabaseTarget:
    """Parse a connection URI the way Airflow does (used by tools and tests)."""
    from airflow.models.connection import Connection

    return database_target(Connection(conn_id=conn_id, uri=uri))


@dataclass(frozen=True)
class Roots:
    """Where recovery points and reports live (local path or object-store URL)."""

    backup_root: str
    report_root: str


def check_root(value: str | None, variable: str) -> str:
    if not value:
        raise ConfigurationError(f"Airflow variable {variable!r} is not set")
    if "://" not in value and not os.path.isabs(value):
        raise ConfigurationError(f"Airflow variable {variable!r} must be an absolute path or a URL")
    return value.rstrip("/") if value != "/" else value
