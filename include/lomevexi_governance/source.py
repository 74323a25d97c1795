"""Reading the store: one consistent snapshot, streamed as Arrow record batches.

* Only the columns the policy allows are ever selected; extra columns in the store (schema
  drift) are listed, never read.
* PostgreSQL: one ``REPEATABLE READ, READ ONLY`` transaction through the ADBC driver (binary
  COPY, Arrow-native). SQLite: one read transaction through :mod:`sqlite3` with batches built
  against the policy's schema (SQLite has no column types to trust).
* Every batch has the canonical schema of :func:`arrow_schema`: int64, string, and
  ``timestamp[us, UTC]``, whichever database it came from.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lomevexi_governance import db
from lomevexi_governance.errors import SourceSchemaError, SourceUnavailable
from lomevexi_governance.pipeline import prefetched
from lomevexi_governance.policy import Column, Table
from lomevexi_governance.settings import DatabaseTarget

TIMESTAMP = pa.timestamp("us", tz="UTC")
#: the ADBC driver's record batches are about this big. Near ``batch_rows`` rows, so a batch cut
#: from one does not keep a much larger buffer alive: with 16 MB, slices of 65,536 rows held
#: ~4x their size in the writer's buffers (2M orders, one process without GX: 790 -> 716 MB)
ADBC_BATCH_BYTES = 4 << 20
_ARROW_TYPES = {"int64": pa.int64(), "string": pa.string(), "timestamp": TIMESTAMP}


def arrow_type(column: Column) -> pa.DataType:
    return _ARROW_TYPES[column.type]


def arrow_schema(table: Table, columns: Sequence[str] | None = None) -> pa.Schema:
    names = list(columns) if columns is not None else table.column_names
    fields = []
    for name in names:
        col = table.column(name)
        fields.append(pa.field(name, arrow_type(col), nullable=True, metadata={"class": col.sensitivity}))
    return pa.schema(fields, metadata={"table": table.name})


def parse_timestamps(values: pa.Array, where: str) -> pa.Array:
    """ISO-8601 text (SQLite's convention) to ``timestamp[us, UTC]``.

    Accepts ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (UTC by contract) and forms with ``T`` and a zone
    offset or ``Z``. A value that is not a timestamp fails naming ``table.column``.
    """
    if pa.types.is_timestamp(values.type):
        return values.cast(TIMESTAMP)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        raise SourceSchemaError(f"{where}: expected ISO-8601 timestamp text, found {values.type}")
    try:
        return values.cast(pa.timestamp("us")).cast(TIMESTAMP)
    except pa.ArrowInvalid:
        pass
    try:
        return values.cast(TIMESTAMP)
    except pa.ArrowInvalid:
        pass
    out: list[dt.datetime | None] = []
    for v in values.to_pylist():
        if v is None:
            out.append(None)
            continue
        try:
            parsed = dt.datetime.fromisoformat(v)
        except ValueError:
            raise SourceSchemaError(f"{where}: a value is not an ISO-8601 timestamp") from None
        out.append(parsed.replace(tzinfo=dt.timezone.utc) if parsed.tzinfo is None else parsed)
    return pa.array(out, type=TIMESTAMP)


def conform(batch: pa.RecordBatch, table: Table, schema: pa.Schema) -> pa.RecordBatch:
    """Cast a batch to the canonical schema, naming ``table.column`` when a value does not fit."""
    arrays = []
    for f in schema:
        arr = batch.column(f.name)
        where = f"{table.name}.{f.name}"
        if pa.types.is_timestamp(f.type):
            arr = parse_timestamps(arr, where)
        elif not arr.type.equals(f.type):
            try:
                arr = arr.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise SourceSchemaError(
                    f"{where}: values do not fit the policy type {table.column(f.name).type}"
                ) from None
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$")


@dataclass
class SnapshotInfo:
    dialect: str
    started_at: dt.datetime
    #: an opaque position of the snapshot (txid snapshot on PostgreSQL, data_version on SQLite)
    position: str
    extra_columns: dict[str, list[str]] = field(default_factory=dict)


class Snapshot:
    """One consistent read view of the store for the whole backup.

    Use as a context manager; every read happens inside one transaction.
    """

    def __init__(self, target: DatabaseTarget, batch_rows: int = 65536, *, imported: str | None = None):
        """``imported``: a PostgreSQL snapshot id from :meth:`export` of another session (the same
        view of the store, for worker processes)."""
        if imported is not None and not _SNAPSHOT_ID.match(imported):
            raise ValueError("not a PostgreSQL snapshot id")
        self.target = target
        self.batch_rows = batch_rows
        self.imported = imported
        self._conn: Any = None
        self._dbapi: Any = None
        self.info: SnapshotInfo | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> Snapshot:
        started = dt.datetime.now(dt.timezone.utc)
        if self.target.is_sqlite:
            assert self.target.path
            try:
                self._conn = sqlite3.connect(
                    f"file:{self.target.path}?mode=ro", uri=True, timeout=60, isolation_level=None
                )
            except sqlite3.OperationalError as exc:
                raise SourceUnavailable(
                    f"connection {self.target.conn_id!r}: cannot open SQLite store {self.target.path}: {exc}"
                ) from None
            self._conn.execute("BEGIN")  # deferred: the first SELECT pins the snapshot
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            self.info = SnapshotInfo("sqlite", started, f"data_version={version}")
        else:
            self._conn = db.connect_arrow(self.target, autocommit=True)
            cur = self._conn.cursor()
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            if self.imported is not None:
                try:
                    cur.execute(f"SET TRANSACTION SNAPSHOT '{self.imported}'")
                except Exception as exc:  # noqa: BLE001 - the driver raises many types; we rename
                    raise SourceUnavailable(
                        f"connection {self.target.conn_id!r}: the exported snapshot is gone "
                        f"(the backup's leader session ended?) ({type(exc).__name__})"
                    ) from None
            cur.execute("SELECT pg_current_snapshot()::text")
            position = cur.fetchone()[0]
            cur.close()
            self.info = SnapshotInfo("postgresql", started, f"pg_snapshot={position}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            try:
                if self.target.is_sqlite:
                    self._conn.execute("ROLLBACK")
                else:
                    cur = self._conn.cursor()
                    cur.execute("ROLLBACK")
                    cur.close()
            finally:
                self._conn.close()
                self._conn = None

    def export(self) -> str:
        """Export this PostgreSQL snapshot for other sessions (valid while this one is open)."""
        if self.target.is_sqlite:
            raise ValueError("a SQLite read transaction cannot be shared with another connection")
        exported = str(self.scalar("SELECT pg_export_snapshot()"))
        if not _SNAPSHOT_ID.match(exported):
            raise SourceUnavailable(f"connection {self.target.conn_id!r}: unexpected snapshot id format")
        return exported

    # -- schema --------------------------------------------------------------------------
    def columns(self, table: str) -> list[str] | None:
        if self.target.is_sqlite:
            rows = self._conn.execute(f"PRAGMA table_info({db.quote_ident(table)})").fetchall()
            return [r[1] for r in rows] if rows else None
        cur = self._conn.cursor()
        cur.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            parameters=(table,),
        )
        rows = cur.fetchall()
        cur.close()
        return [r[0] for r in rows] if rows else None

    def check_tables(self, tables: Sequence[Table]) -> dict[str, list[str]]:
        """Fail naming every missing table and column; return the extra columns per table."""
        problems = []
        extra: dict[str, list[str]] = {}
        for t in tables:
            present = self.columns(t.name)
            if present is None:
                problems.append(f"table {t.name!r} is missing")
                continue
            missing = [c for c in t.column_names if c not in present]
            if missing:
                problems.append(f"table {t.name!r} lacks column(s) {missing}")
            drift = [c for c in present if c not in t.column_names]
            if drift:
                extra[t.name] = drift
        if problems:
            raise SourceSchemaError(
                f"the store database ({self.target.describe()}) does not match the policy: " + "; ".join(problems)
            )
        assert self.info is not None
        self.info.extra_columns = extra
        return extra

    # -- reading -------------------------------------------------------------------------
    def select_sql(self, table: Table, columns: Sequence[str] | None = None, order: bool = True) -> str:
        cols = ", ".join(db.quote_ident(c) for c in (columns or table.column_names))
        sql = f"SELECT {cols} FROM {db.quote_ident(table.name)}"
        if order:
            sql += f" ORDER BY {db.quote_ident(table.primary_key)}"
        return sql

    def stream(
        self, table: Table, columns: Sequence[str] | None = None, *, ordered: bool = True
    ) -> Iterator[pa.RecordBatch]:
        """The allowed columns of ``table`` as canonical record batches, in primary-key order
        unless ``ordered`` is false (a plain sequential scan: cheaper for the server, and the
        order of rows then means nothing, e.g. ``synchronize_seqscans`` may start mid-table)."""
        schema = arrow_schema(table, columns)
        yield from self.stream_sql(self.select_sql(table, schema.names, order=ordered), table, schema)

    def stream_sql(self, sql: str, table: Table, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        if self.target.is_sqlite:
            yield from self._stream_sqlite(sql, table, schema)
        else:
            yield from self._stream_postgres(sql, table, schema)

    def _stream_sqlite(self, sql: str, table: Table, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        cur = self._conn.execute(sql)
        names = schema.names
        raw_types = [pa.string() if pa.types.is_timestamp(f.type) else f.type for f in schema]
        while True:
            rows = cur.fetchmany(self.batch_rows)
            if not rows:
                return
            cols = list(zip(*rows, strict=True))
            arrays = []
            for name, typ, values in zip(names, raw_types, cols, strict=True):
                try:
                    arrays.append(pa.array(values, type=typ))
                except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                    raise SourceSchemaError(
                        f"{table.name}.{name}: a value does not fit the policy type {table.column(name).type}"
                    ) from None
            raw = pa.RecordBatch.from_arrays(arrays, names=names)
            yield conform(raw, table, schema)

    def _stream_postgres(self, sql: str, table: Table, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        # the COPY, its decoding and the casts run on a reader thread (they release the GIL),
        # overlapping with whatever the caller does with the batches before
        yield from prefetched(self._read_postgres(sql, table, schema), depth=2, name=f"read-{table.name}")

    def _read_postgres(self, sql: str, table: Table, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        cur = self._conn.cursor()
        try:
            cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(ADBC_BATCH_BYTES)})
        except Exception:  # noqa: BLE001, S110 - an older driver without the option still works
            pass
        try:
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            pending: list[pa.RecordBatch] = []
            pending_rows = 0
            for batch in reader:
                pending.append(batch)
                pending_rows += batch.num_rows
                if pending_rows >= self.batch_rows:
                    yield from self._rebatch(pending, table, schema)
                    pending, pending_rows = [], 0
            if pending:
                yield from self._rebatch(pending, table, schema)
        finally:
            cur.close()

    def _rebatch(self, batches: list[pa.RecordBatch], table: Table, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        combined = pa.Table.from_batches(batches).combine_chunks()
        for batch in combined.to_batches(max_chunksize=self.batch_rows):
            yield conform(batch, table, schema)

    def scalar(self, sql: str) -> Any:
        if self.target.is_sqlite:
            row = self._conn.execute(sql).fetchone()
        else:
            cur = self._conn.cursor()
            cur.execute(sql)
            row = cur.fetchone()
            cur.close()
        return row[0] if row else None

    def query(self, sql: str, table: Table, schema: pa.Schema) -> pa.Table:
        """A small query's result as one Arrow table (used for the partition map)."""
        batches = list(self.stream_sql(sql, table, schema))
        return pa.Table.from_batches(batches, schema=schema)

    def max_timestamp(self, table: Table, column: str) -> dt.datetime | None:
        """The newest value of ``column`` (the source watermark)."""
        schema = arrow_schema(table, [column])
        sql = f"SELECT max({db.quote_ident(column)}) AS {db.quote_ident(column)} FROM {db.quote_ident(table.name)}"
        result = self.query(sql, table, schema).column(0)
        value = pc.max(result).as_py() if len(result) else None
        return value
