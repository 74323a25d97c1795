"""Read ``staff_access_log`` events of ``[start_utc, end_utc)`` from the store, as Arrow batches.

Only the columns the rules need are read: never ``client_ip`` or ``record_id`` (reports carry
no customer identifiers, and the audit does not need them).

Timestamps are compared as instants:

* PostgreSQL: ``occurred_at`` is ``timestamptz``; the bounds are aware datetimes and the
  server returns microseconds since the epoch.
* SQLite: ``occurred_at`` is ISO-8601 UTC text ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (the store
  contract). Text in that form sorts like the instants it names, so an indexed range scan on
  the text returns exactly the period. Rows written in another ISO-8601 form (``T``
  separator, ``Z`` or ``+09:00`` offset) would not sort that way; a second, index-bounded scan
  over a margin of 14 hours (the largest UTC offset) picks those up, they are parsed as
  instants and filtered exactly here. A value that is not a timestamp at all fails the run,
  naming the table, column and event id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

# imported only inside tasks and tests, never at DAG parse time
import pyarrow as pa
import pyarrow.compute as pc

from lomevexi_governance import db
from lomevexi_governance.audit.rules import EVENT_SCHEMA, US
from lomevexi_governance.errors import SourceSchemaError
from lomevexi_governance.settings import DatabaseTarget

TABLE = "staff_access_log"
COLUMNS = (
    "event_id",
    "occurred_at",
    "staff_id",
    "staff_role",
    "action",
    "resource",
    "record_count",
    "outcome",
)
BATCH_ROWS = 65_536
#: The largest UTC offset a non-canonical ISO-8601 value may carry.
MARGIN = dt.timedelta(hours=14)
UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)

# A canonical SQLite value: space separator, only digits and ' :.-', no '-' after the date.
_CANONICAL = (
    "(substr(occurred_at, 11, 1) = ' ' AND occurred_at NOT GLOB '*[^0-9 :.-]*' "
    "AND instr(substr(occurred_at, 11), '-') = 0)"
)


def _sqlite_text(instant: dt.datetime) -> str:
    """The instant in the contract's text form, shortest exact spelling.

    Trailing zeros of the fraction are dropped so that a stored value naming the same instant
    (``...15:00:00`` or ``...15:00:00.5``) never sorts below the bound.
    """
    text = instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return text.rstrip("0").rstrip(".")


def count_events(target: DatabaseTarget, start_utc: dt.datetime, end_utc: dt.datetime) -> int:
    """How many events the period holds (a cheap check for tests and tools)."""
    return sum(b.num_rows for b in read_events(target, start_utc, end_utc))


def read_events(
    target: DatabaseTarget,
    start_utc: dt.datetime,
    end_utc: dt.datetime,
    *,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Yield the events with ``start_utc <= occurred_at < end_utc`` as EVENT_SCHEMA batches."""
    if start_utc.tzinfo is None or end_utc.tzinfo is None:
        raise ValueError("read_events needs aware datetimes (instants)")
    conn = db.connect(target)
    try:
        db.require_columns(conn, target, TABLE, COLUMNS)
        if target.is_sqlite:
            yield from _read_sqlite(conn, start_utc, end_utc, batch_rows)
        else:
            yield from _read_postgres(conn, start_utc, end_utc, batch_rows)
    finally:
        conn.close()


def _read_sqlite(conn: Any, start: dt.datetime, end: dt.datetime, batch_rows: int) -> Iterator[pa.RecordBatch]:
    sel = ", ".join(db.quote_ident(c) for c in COLUMNS)
    lo, hi = _sqlite_text(start), _sqlite_text(end)
    mlo, mhi = _sqlite_text(start - MARGIN), _sqlite_text(end + MARGIN)
    # 1) canonical text in range (index range scan); a non-canonical value that happens to sort
    #    into the range is parsed and filtered exactly below.
    cur = conn.execute(
        f"SELECT {sel} FROM {TABLE} WHERE occurred_at >= ? AND occurred_at < ? ORDER BY occurred_at",
        (lo, hi),
    )
    yield from _sqlite_batches(cur, start, end, batch_rows)
    # 2) non-canonical text anywhere in the margin that the first scan did not return
    cur = conn.execute(
        f"SELECT {sel} FROM {TABLE} WHERE occurred_at >= ? AND occurred_at < ? "
        f"AND NOT (occurred_at >= ? AND occurred_at < ?) AND NOT {_CANONICAL}",
        (mlo[:10], _next_day_text(mhi), lo, hi),
    )
    yield from _sqlite_batches(cur, start, end, batch_rows)


def _next_day_text(text: str) -> str:
    """The date after ``text``'s date, as 'YYYY-MM-DD' (an upper bound for any form of that day)."""
    return (dt.date.fromisoformat(text[:10]) + dt.timedelta(days=1)).isoformat()


def _sqlite_batches(cur: Any, start: dt.datetime, end: dt.datetime, batch_rows: int) -> Iterator[pa.RecordBatch]:
    start_us, end_us = _us(start), _us(end)
    while True:
        rows = cur.fetchmany(batch_rows)
        if not rows:
            return
        cols = list(zip(*rows, strict=True))
        ts = _parse_sqlite_timestamps(cols[1], cols[0])
        batch = _batch(cols, ts)
        ts_int = batch.column("occurred_at").cast(pa.int64())
        keep = pc.and_(pc.greater_equal(ts_int, start_us), pc.less(ts_int, end_us))
        if not pc.all(keep).as_py():
            batch = batch.filter(keep)
        if batch.num_rows:
            yield batch


def _parse_sqlite_timestamps(values: tuple[Any, ...], event_ids: tuple[Any, ...]) -> pa.Array:
    """ISO-8601 text to UTC instants; the contract's form fast, any other ISO form exactly."""
    arr = pa.array(values, type=pa.string()) if all(isinstance(v, str) for v in values) else None
    if arr is not None:
        try:
            return arr.cast(pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
        except pa.ArrowInvalid:
            pass  # some value carries an offset or another form: parse one by one below
    out: list[int] = []
    for eid, v in zip(event_ids, values, strict=True):
        try:
            if not isinstance(v, str):
                raise TypeError
            parsed = dt.datetime.fromisoformat(v)
        except (TypeError, ValueError):
            raise SourceSchemaError(
                f"table {TABLE!r} column 'occurred_at' of event_id {eid} is not an ISO-8601 timestamp"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)  # the contract: UTC text
        out.append(_us(parsed))
    return pa.array(out, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def _read_postgres(conn: Any, start: dt.datetime, end: dt.datetime, batch_rows: int) -> Iterator[pa.RecordBatch]:
    target_sel = ", ".join(
        # exact microseconds since the epoch (extract returns numeric on PostgreSQL 14+)
        "(extract(epoch FROM occurred_at) * 1000000)::bigint AS occurred_at"
        if c == "occurred_at"
        else db.quote_ident(c)
        for c in COLUMNS
    )
    # a server-side cursor keeps a large day out of client memory
    with conn.transaction(), conn.cursor(name="access_audit_events") as cur:
        cur.itersize = batch_rows
        cur.execute(
            f"SELECT {target_sel} FROM {TABLE} WHERE occurred_at >= %s AND occurred_at < %s ORDER BY occurred_at",
            (start.astimezone(UTC), end.astimezone(UTC)),
        )
        while True:
            rows = cur.fetchmany(batch_rows)
            if not rows:
                return
            cols = list(zip(*rows, strict=True))
            if any(v is None for v in cols[1]):
                raise SourceSchemaError(f"table {TABLE!r} column 'occurred_at' has NULL values")
            ts = pa.array(cols[1], type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))
            yield _batch(cols, ts)


def _batch(cols: list[tuple[Any, ...]], ts: pa.Array) -> pa.RecordBatch:
    event_ids = cols[0]
    if any(v is None for v in event_ids):
        raise SourceSchemaError(f"table {TABLE!r} column 'event_id' has NULL values")
    try:
        arrays = [
            pa.array(event_ids, type=pa.int64()),
            ts,
            pa.array(_as_text(cols[2]), type=pa.string()),
            pa.array(_as_text(cols[3]), type=pa.string()),
            pa.array(_as_text(cols[4]), type=pa.string()),
            pa.array(_as_text(cols[5]), type=pa.string()),
            pa.array(cols[6], type=pa.int64()),
            pa.array(_as_text(cols[7]), type=pa.string()),
        ]
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        raise SourceSchemaError(f"table {TABLE!r}: a value of event_id or record_count is not an integer") from None
    return pa.record_batch(arrays, schema=EVENT_SCHEMA)


def _as_text(values: tuple[Any, ...]) -> tuple[Any, ...] | list[Any]:
    if all(v is None or isinstance(v, str) for v in values):
        return values
    return [None if v is None else str(v) for v in values]


def _us(instant: dt.datetime) -> int:
    delta = instant.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds
