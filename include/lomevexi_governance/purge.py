"""``retention_purge``: delete what retention says is due, crypto-shred whole epochs, leave evidence.

One run, for one logical date ``D`` (issue 4, DESIGN.md "Recovery points and keys"):

1. **Guard** (:func:`guard`): a verified recovery point for ``D`` exists and is the newest
   verified point, so the backups already reflect the holds and open tickets of ``D``. A
   non-dry run fails closed otherwise.
2. **Plan** (:func:`compute_plan`): one consistent read of the store; the rules of
   :mod:`lomevexi_governance.retention` (shared with ``order_backup``'s partitioning) give the
   due primary keys of every table, kept in numpy arrays.
3. **Write-ahead evidence**: the keyed hashes (HMAC-SHA256, :class:`keys.TombstoneHasher`) of
   every primary key about to be deleted go to immutable tombstone files, and a ``purge_begin``
   entry referencing them (path and SHA-256) is appended to the hash-chained ledger
   ``ledger/purge.jsonl`` *before* anything is deleted.
4. **Delete** in batches, one transaction per batch. An order batch re-checks, inside its
   transaction and with the order rows locked (``FOR UPDATE`` on PostgreSQL, ``BEGIN
   IMMEDIATE`` on SQLite), that every order is still due and unprotected and has no child the
   plan did not see; then deletes items, payments, shipments and tickets first and the orders
   last. A crash leaves whole orders either purged or untouched, never an orphan; a rerun
   recomputes the plan (rows already gone are simply not due) and finishes the job. Rows that
   changed since the plan are skipped and their tombstones *revoked* in the ledger.
5. **Crypto-shred** every retention epoch that has ended by ``D``: all its master keys
   (``epoch/<label>/*``) are destroyed, which erases its rows from every recovery point at once.
   A ``shred`` ledger entry precedes the destruction; ``purge_complete`` closes the run.

A dry run does steps 1-2, writes a ``dry_run: true`` ledger entry with the counts and deletes,
tombstones and shreds nothing.

Restores call :func:`load_tombstones` and :func:`tombstone_filter` so that a purged row never
comes back from a point taken before its purge; :func:`verify_ledger` (also
``python -m lomevexi_governance.purge verify-ledger``) detects an edited or removed ledger entry
or tombstone file.

Nothing here logs, reports or raises with a purged value: evidence holds counts, rules, key ids
and keyed hashes only.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import html
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lomevexi_governance import db
from lomevexi_governance import recovery_points as rp
from lomevexi_governance.errors import ConfigurationError, IntegrityError, NotFound
from lomevexi_governance.keys import TOMBSTONE_HMAC_KEY_ID, KeyService
from lomevexi_governance.ledger import Head, Ledger
from lomevexi_governance.partitions import EPOCH, epoch_bounds
from lomevexi_governance.policy import Policy, Table
from lomevexi_governance.retention import (
    LEGAL_HOLD,
    OPEN_TICKET,
    ActiveHolds,
    OrderRetention,
    clock_due,
    evaluate_orders,
    holds_query_columns,
    ints,
    open_ticket_orders,
    ticket_verdicts,
    to_us,
)
from lomevexi_governance.settings import DatabaseTarget
from lomevexi_governance.source import TIMESTAMP, Snapshot, arrow_schema, conform
from lomevexi_governance.storage import Storage, storage_for

log = logging.getLogger(__name__)

LEDGER_REL = "ledger/purge.jsonl"
TOMBSTONE_DIR = "ledger/tombstones"
TOMBSTONE_FORMAT = "lomevexi-purge-tombstones/1"
#: ids per DELETE statement (and per transaction for order batches: one batch of orders with all
#: their children). 5000 keeps SQLite's write lock short and PostgreSQL's arrays small.
DEFAULT_BATCH_SIZE = 5000
ORDERS = "orders"
TICKETS = "service_tickets"
EVENT_BEGIN = "purge_begin"
EVENT_COMPLETE = "purge_complete"
EVENT_SHRED = "shred"

Fault = Callable[[str], None]


def _no_fault(_where: str) -> None:
    return None


# -- parameters and the logical date ----------------------------------------------------------


def validate_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Re-validate the run's params (fail closed): ``dry_run`` must be a real boolean."""
    if "dry_run" not in params:
        raise ConfigurationError("param 'dry_run' is missing (true to preview, false to purge)")
    value = params["dry_run"]
    if not isinstance(value, bool):
        raise ConfigurationError(f"param 'dry_run' must be a JSON boolean (true or false), not {type(value).__name__}")
    unknown = sorted(set(params) - {"dry_run"})
    if unknown:
        raise ConfigurationError(f"unknown param(s) {unknown}; retention_purge takes only 'dry_run'")
    return {"dry_run": value}


def logical_date_for(context: Mapping[str, Any], fallback: dt.datetime) -> tuple[dt.datetime, str]:
    """The logical date a run purges for, and where it came from.

    An asset-triggered run (``order_backup`` verified a recovery point) has no logical date of
    its own in Airflow 3: it purges for the logical date of the backup run that emitted the
    newest triggering event. A manual run or ``airflow dags test`` uses its own logical date.
    """
    events = context.get("triggering_asset_events") or {}
    dates = []
    for asset in list(events):
        for event in events[asset]:
            source = getattr(event, "source_dag_run", None)
            # the backup computed its point id the same way (airflow_glue.run_identity)
            logical = (getattr(source, "logical_date", None) or getattr(source, "run_after", None)) if source else None
            if logical is None:
                dag_id, run_id = getattr(event, "source_dag_id", "?"), getattr(event, "source_run_id", "?")
                source_id = f"{dag_id}/{run_id}"
                raise ConfigurationError(
                    f"asset event of {source_id} has no source run with a logical date; "
                    "trigger retention_purge manually for that date"
                )
            dates.append(logical.astimezone(dt.UTC))
    if dates:
        return max(dates), "triggering asset event"
    return fallback.astimezone(dt.UTC), "run"


def env_for_run(env: Any, context: Mapping[str, Any]) -> Any:
    """``env`` with the logical date this run purges for (see :func:`logical_date_for`)."""
    logical, _source = logical_date_for(context, env.logical_date)
    return dataclasses.replace(env, logical_date=logical) if logical != env.logical_date else env


# -- guard --------------------------------------------------------------------------------------


def guard(storage: Storage, keys: KeyService, policy: Policy, logical_date: dt.datetime) -> dict[str, Any]:
    """Check that the newest verified recovery point is the one for ``logical_date``.

    Returns the facts; raises :class:`IntegrityError` / :class:`NotFound` when the purge must not
    run (keys are never shredded unless the newest point reflects the current holds).
    """
    point_id = rp.point_id_for(logical_date)
    if point_id not in rp.list_points(storage):
        raise NotFound(
            f"no recovery point {point_id} for logical date {logical_date.isoformat()}: "
            "order_backup must succeed for this date before retention_purge runs"
        )
    record = rp.read_record(storage, "verifications", point_id)
    if not record or not record.get("ok"):
        raise IntegrityError(
            f"recovery point {point_id} is not verified (verification record "
            f"{'failed' if record else 'missing'}): refusing to purge"
        )
    newest = rp.newest_verified(storage)
    if newest != point_id:
        raise IntegrityError(
            f"the newest verified recovery point is {newest}, not {point_id}: purging for "
            f"{logical_date.isoformat()} is refused (run retention_purge for the newest point's date)"
        )
    point = rp.load_point(storage, point_id, keys)  # signature check
    if point.logical_date != logical_date:
        raise IntegrityError(f"recovery point {point_id}: manifest logical date {point.logical_date} differs")
    return {
        "ok": True,
        "recovery_point_id": point_id,
        "verified_at": record.get("verified_at"),
        "point_policy_sha256": point.manifest.get("policy_sha256"),
        "policy_sha256": policy.sha256,
        "same_policy": point.manifest.get("policy_sha256") == policy.sha256,
    }


# -- the plan -----------------------------------------------------------------------------------


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``np.isin`` for a sorted, unique ``sorted_set`` (binary search; bounded memory)."""
    if len(sorted_set) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=bool)
    idx = np.clip(np.searchsorted(sorted_set, values), 0, len(sorted_set) - 1)
    return sorted_set[idx] == values


def _empty() -> np.ndarray:
    return np.array([], dtype=np.int64)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64, copy=False) if parts else _empty()


@dataclass
class PurgePlan:
    """What is due at ``logical_date``: primary keys per table, in numpy arrays (no values)."""

    logical_date: dt.datetime
    #: due orders, sorted, with the customer of each (aligned)
    orders: np.ndarray
    order_customers: np.ndarray
    #: children of due orders per table: (primary keys, order ids), sorted by order id
    children: dict[str, tuple[np.ndarray, np.ndarray]]
    #: tables purged on their own clock (tickets not going with an order, site visits, ...)
    standalone: dict[str, np.ndarray]
    #: rules per table, for the evidence
    rules: dict[str, list[str]]
    #: orders past retention that are kept, by reason (OrderRetention.protected_counts)
    protected: dict[str, int]
    #: past-retention rows kept (protected): their tombstones, if any, must not apply
    kept_past: dict[str, np.ndarray]
    seconds: float = 0.0

    def ids(self, table: str) -> np.ndarray:
        parts = []
        if table == ORDERS:
            parts.append(self.orders)
        if table in self.children:
            parts.append(self.children[table][0])
        if table in self.standalone:
            parts.append(self.standalone[table])
        return np.unique(_concat(parts))

    @property
    def tables(self) -> list[str]:
        names = [ORDERS, *self.children, *self.standalone]
        return list(dict.fromkeys(names))

    def counts(self) -> dict[str, int]:
        return {t: len(self.ids(t)) for t in self.tables}

    def items(self) -> list[dict[str, Any]]:
        """(rule, table, count) for the ledger."""
        out = [{"rule": self.rules[ORDERS][0], "table": ORDERS, "count": len(self.orders)}]
        for table, (pks, _oids) in self.children.items():
            out.append({"rule": f"cascade of {ORDERS}", "table": table, "count": len(pks)})
        for table, pks in self.standalone.items():
            out.append({"rule": self.rules[table][0], "table": table, "count": len(pks)})
        return out


def _rule_text(policy: Policy, table: str) -> str:
    r = policy.retention[table]
    return f"{table}: {r.clock} + {r.days} days <= logical date"


def rules_evidence(policy: Policy) -> dict[str, Any]:
    return {
        name: {
            "clock": r.clock,
            "days": r.days,
            "cascade": list(r.cascade),
            "protected_by": list(r.protected_by),
        }
        for name, r in policy.retention.items()
    }


def _cascade_tables(policy: Policy) -> list[Table]:
    """Tables purged with their order (parent ``orders``), except tickets (own verdicts)."""
    out = []
    for name in policy.retention[ORDERS].cascade:
        t = policy.table(name)
        if name == TICKETS:
            continue
        if t.parent is None or t.parent.table != ORDERS:
            raise ConfigurationError(f"policy: retention.orders.cascade names {name!r}, which has no parent orders")
        out.append(t)
    return out


def _clock_tables(policy: Policy) -> list[Table]:
    cascade = set(policy.retention[ORDERS].cascade)
    return [policy.table(n) for n in policy.retention if n != ORDERS and n not in cascade]


def compute_plan(policy: Policy, target: DatabaseTarget, logical_date: dt.datetime) -> PurgePlan:
    """Due primary keys per table from one consistent snapshot of the store."""
    started = time.monotonic()
    at = to_us(logical_date)
    orders_t, tickets_t, holds_t = policy.table(ORDERS), policy.table(TICKETS), policy.table("legal_holds")
    cascade, clocked = _cascade_tables(policy), _clock_tables(policy)
    with Snapshot(target, batch_rows=policy.batch_rows) as snap:
        snap.check_tables([orders_t, tickets_t, holds_t, *cascade, *clocked])

        def q(table: Table, cols: list[str], where: str = "") -> pa.Table:
            return snap.query(snap.select_sql(table, cols, order=False) + where, table, arrow_schema(table, cols))

        facts = q(orders_t, ["order_id", "customer_id", "completed_at"])
        holds = ActiveHolds.from_table(q(holds_t, holds_query_columns()), logical_date)
        tickets = q(tickets_t, ["ticket_id", "customer_id", "order_id", "status", "closed_at"])
        ret = evaluate_orders(policy, logical_date, facts, holds, open_ticket_orders(tickets))
        verdict = ticket_verdicts(policy, logical_date, tickets, ret, holds)

        t_ids = ints(tickets.column("ticket_id"))
        t_orders = ints(tickets.column("order_id"))
        linked = t_orders >= 0
        idx, found = ret.lookup(t_orders)
        with_due_order = linked & found & ret.is_due[idx]
        # an order goes only with all its tickets: a closed ticket kept on its own account (its
        # customer is under hold although the order's customer is not) keeps the order too
        blocked = np.unique(t_orders[with_due_order & ~verdict["is_due"]])
        due_mask = ret.is_due & ~_member(ret.order_id, blocked)
        due_orders = ret.order_id[due_mask]
        due_customers = ret.customer_id[due_mask]
        protected = ret.protected_counts()
        protected[LEGAL_HOLD] += len(blocked)
        kept_orders = ret.order_id[ret.has_clock & (ret.due_at <= at) & ~due_mask]

        goes_with_order = linked & _member(t_orders, due_orders)
        ticket_children = (t_ids[goes_with_order], t_orders[goes_with_order])
        standalone_tickets = np.sort(t_ids[verdict["is_due"] & ~goes_with_order])
        kept_tickets = t_ids[
            ~goes_with_order
            & ~verdict["is_due"]
            & (((verdict["due_at"] >= 0) & (verdict["due_at"] <= at)) | (linked & _member(t_orders, kept_orders)))
        ]

        children: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        kept_past: dict[str, np.ndarray] = {ORDERS: kept_orders, TICKETS: kept_tickets}
        for table in cascade:
            parent_col = table.parent.column if table.parent else "order_id"
            pk_parts, oid_parts, kept_parts = [], [], []
            for batch in snap.stream(table, [table.primary_key, parent_col]):
                pks, oids = ints(batch.column(0)), ints(batch.column(1))
                due = _member(oids, due_orders)
                pk_parts.append(pks[due])
                oid_parts.append(oids[due])
                kept_parts.append(pks[_member(oids, kept_orders)])
            children[table.name] = _sorted_by_order(_concat(pk_parts), _concat(oid_parts))
            kept_past[table.name] = _concat(kept_parts)
        children[TICKETS] = _sorted_by_order(*ticket_children)

        standalone: dict[str, np.ndarray] = {TICKETS: standalone_tickets}
        rules = {
            ORDERS: [_rule_text(policy, ORDERS)],
            TICKETS: [_rule_text(policy, TICKETS), f"closed tickets of a due order: cascade of {ORDERS}"],
        }
        for table in clocked:  # site_visits, staff_access_log: their own clock, no protection
            rule = policy.retention[table.name]
            parts = []
            for batch in snap.stream(table, [table.primary_key, rule.clock]):
                due_at, has_clock = clock_due(policy, table.name, batch.column(1), logical_date)
                parts.append(ints(batch.column(0))[has_clock & (due_at <= at)])
            standalone[table.name] = np.sort(_concat(parts))
            rules[table.name] = [_rule_text(policy, table.name)]
    for name in children:
        rules.setdefault(name, [f"cascade of {ORDERS}"])
    return PurgePlan(
        logical_date=logical_date,
        orders=due_orders,
        order_customers=due_customers,
        children=children,
        standalone=standalone,
        rules=rules,
        protected=protected,
        kept_past=kept_past,
        seconds=time.monotonic() - started,
    )


def _sorted_by_order(pks: np.ndarray, oids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((pks, oids))
    return pks[order], oids[order]


# -- tombstones -----------------------------------------------------------------------------------


def _attempt_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def write_tombstone_file(
    storage: Storage,
    rel: str,
    *,
    table: str,
    hashes: Iterable[str],
    kind: str,
    run_id: str,
    logical_date: dt.datetime,
) -> dict[str, Any]:
    """Write one immutable tombstone file (atomically); returns its ledger reference."""
    values = sorted(set(hashes))
    doc = {
        "format": TOMBSTONE_FORMAT,
        "kind": kind,  # "purged" | "revoked"
        "table": table,
        "hmac": "HMAC-SHA256 of '<table>:<primary key>'",
        "hmac_key_id": TOMBSTONE_HMAC_KEY_ID,
        "logical_date": logical_date.isoformat(),
        "run_id": run_id,
        "count": len(values),
        "hashes": values,
    }
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    storage.write_bytes(rel, body)
    return {"path": rel, "sha256": hashlib.sha256(body).hexdigest(), "count": len(values)}


def _read_tombstone_file(storage: Storage, ref: Mapping[str, Any]) -> dict[str, Any]:
    rel = ref["path"]
    try:
        body = storage.read_bytes(rel)
    except NotFound:
        raise IntegrityError(f"tombstone file {storage.describe(rel)} named by the purge ledger is missing") from None
    if hashlib.sha256(body).hexdigest() != ref["sha256"]:
        raise IntegrityError(f"tombstone file {storage.describe(rel)} was altered (SHA-256 differs from the ledger)")
    doc = json.loads(body)
    if doc.get("format") != TOMBSTONE_FORMAT or doc.get("count") != len(doc.get("hashes", [])):
        raise IntegrityError(f"tombstone file {storage.describe(rel)} is malformed")
    return doc


def _tombstone_ops(storage: Storage) -> Iterator[tuple[str, str, list[str]]]:
    """("add" | "revoke", table, hashes) in ledger order, after verifying the whole chain."""
    ledger = Ledger(storage, LEDGER_REL)
    ledger.verify()
    for entry in ledger.entries():
        if entry.get("dry_run"):
            continue
        for op, key in (("revoke", "revoked"), ("add", "tombstones")):
            for table, ref in sorted((entry.get(key) or {}).items()):
                yield op, table, _read_tombstone_file(storage, ref)["hashes"]


def load_tombstones(storage: Storage, keys: KeyService | None = None) -> dict[str, set[str]]:
    """Every purge tombstone in force: ``{table: {HMAC hex of '<table>:<pk>'}}``.

    Verifies the ledger's hash chain and each tombstone file's SHA-256 first and raises
    :class:`IntegrityError` when either was tampered with: a restore must then stop, since it
    could not prove that purged rows stay purged. With ``keys``, also checks that the tombstone
    HMAC key is still available (without it a restore cannot recognise purged rows).
    Later revocations (rows that turned out protected after their tombstone was written) win
    over earlier tombstones; a later purge of the same row wins over the revocation.
    """
    if keys is not None:
        keys.tombstone_hasher()
    out: dict[str, set[str]] = {}
    for op, table, hashes in _tombstone_ops(storage):
        current = out.setdefault(table, set())
        if op == "add":
            current.update(hashes)
        else:
            current.difference_update(hashes)
    return {t: s for t, s in out.items() if s}


def tombstone_filter(table_name: str, pk_array: Any, tombstones: Mapping[str, set[str]], hasher: Any) -> np.ndarray:
    """Mask (True = drop) of the rows of ``table_name`` whose primary key is tombstoned.

    ``pk_array`` is a numpy array, a pyarrow array or a list of primary keys; ``hasher`` is
    ``keys.tombstone_hasher()``.
    """
    if isinstance(pk_array, pa.ChunkedArray | pa.Array):
        pk_array = pk_array.to_numpy(zero_copy_only=False)
    pks = np.asarray(pk_array)
    wanted = tombstones.get(table_name)
    if not wanted or len(pks) == 0:
        return np.zeros(len(pks), dtype=bool)
    hashes = hasher.many(table_name, (int(v) for v in pks.tolist()))
    return np.fromiter((h in wanted for h in hashes), dtype=bool, count=len(hashes))


def _hashes(hasher: Any, table: str, pks: np.ndarray) -> list[str]:
    return hasher.many(table, pks.tolist()) if len(pks) else []


def _revocations(storage: Storage, hasher: Any, candidates: Mapping[str, np.ndarray]) -> dict[str, set[str]]:
    """Tombstones in force for rows that are still in the store and kept (protected)."""
    wanted = {t: set(_hashes(hasher, t, pks)) for t, pks in candidates.items() if len(pks)}
    if not any(wanted.values()):
        return {}
    in_force: dict[str, set[str]] = {}
    for op, table, hashes in _tombstone_ops(storage):
        if table not in wanted:
            continue
        hit = wanted[table].intersection(hashes)
        current = in_force.setdefault(table, set())
        if op == "add":
            current.update(hit)
        else:
            current.difference_update(hit)
    return {t: s for t, s in in_force.items() if s}


# -- deleting -------------------------------------------------------------------------------------


class _Writer:
    """One DB-API connection to the store, with explicit transactions on both dialects."""

    def __init__(self, target: DatabaseTarget):
        self.target = target
        self.sqlite = target.is_sqlite
        self.conn = db.connect(target, autocommit=True)

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if self.sqlite:
            self.conn.execute("BEGIN IMMEDIATE")  # the write lock first: the re-check is exact
            try:
                yield
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        else:
            with self.conn.transaction():
                yield

    def in_ids(self, column: str, ids: np.ndarray) -> tuple[str, list[Any]]:
        values = [int(v) for v in ids.tolist()]
        if self.sqlite:
            return f"{db.quote_ident(column)} IN ({', '.join('?' * len(values))})", values
        return f"{db.quote_ident(column)} = ANY(%s::bigint[])", [values]

    @property
    def lock(self) -> str:
        return "" if self.sqlite else " FOR UPDATE"

    def fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(sql, params)
        return list(cur.fetchall())

    def execute(self, sql: str, params: Sequence[Any]) -> int:
        cur = self.conn.execute(sql, params)
        return int(cur.rowcount or 0)

    def arrow(self, table: Table, cols: list[str], rows: list[tuple[Any, ...]]) -> pa.Table:
        """Rows of a small query as an Arrow table with the canonical types (both dialects)."""
        schema = arrow_schema(table, cols)
        arrays = []
        for i, f in enumerate(schema):
            values = [r[i] for r in rows]
            if pa.types.is_timestamp(f.type):
                if all(v is None for v in values):
                    arrays.append(pa.nulls(len(values), TIMESTAMP))
                elif any(isinstance(v, str) for v in values):
                    arrays.append(pa.array(values, type=pa.string()))
                else:
                    arrays.append(pa.array(values).cast(TIMESTAMP))
            else:
                arrays.append(pa.array(values, type=f.type))
        batch = pa.RecordBatch.from_arrays(arrays, names=cols)
        return pa.Table.from_batches([conform(batch, table, schema)])


def _batches(ids: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


@dataclass
class _Recheck:
    """Verdicts of the retention rules for a few orders and tickets, read inside a transaction."""

    orders: OrderRetention
    holds: ActiveHolds


def _recheck(
    w: _Writer,
    policy: Policy,
    logical_date: dt.datetime,
    *,
    order_ids: np.ndarray,
    tickets: pa.Table,
    lock: bool,
) -> _Recheck:
    orders_t, holds_t = policy.table(ORDERS), policy.table("legal_holds")
    cols = ["order_id", "customer_id", "completed_at"]
    if len(order_ids):
        clause, params = w.in_ids("order_id", order_ids)
        rows = w.fetch(
            f"SELECT order_id, customer_id, completed_at FROM orders WHERE {clause}{w.lock if lock else ''}",
            params,
        )
    else:
        rows = []
    facts = w.arrow(orders_t, cols, rows)
    customers = np.unique(np.concatenate([ints(facts.column("customer_id")), ints(tickets.column("customer_id"))]))
    hold_rows: list[tuple[Any, ...]] = []
    hcols = holds_query_columns()
    sel = f"SELECT {', '.join(hcols)} FROM legal_holds WHERE "
    if len(order_ids):
        clause, params = w.in_ids("subject_id", order_ids)
        hold_rows += w.fetch(sel + f"subject_type = 'order' AND {clause}", params)
    if len(customers):
        clause, params = w.in_ids("subject_id", customers)
        hold_rows += w.fetch(sel + f"subject_type = 'customer' AND {clause}", params)
    holds = ActiveHolds.from_table(w.arrow(holds_t, hcols, hold_rows), logical_date)
    if len(order_ids):
        clause, params = w.in_ids("order_id", order_ids)
        open_rows = w.fetch(f"SELECT order_id FROM service_tickets WHERE status = 'open' AND {clause}", params)
    else:
        open_rows = []
    open_orders = np.unique(np.array([r[0] for r in open_rows], dtype=np.int64))
    return _Recheck(evaluate_orders(policy, logical_date, facts, holds, open_orders), holds)


_TICKET_COLS = ["ticket_id", "customer_id", "order_id", "status", "closed_at"]


@dataclass
class _BatchResult:
    deleted: dict[str, int] = field(default_factory=dict)
    #: rows planned but kept because they changed since the plan (their tombstones are revoked)
    skipped: dict[str, np.ndarray] = field(default_factory=dict)


def _delete_order_batch(
    w: _Writer,
    policy: Policy,
    plan: PurgePlan,
    batch: np.ndarray,
    *,
    cascade: list[Table],
    planned: Mapping[str, np.ndarray],
    fault: Fault,
) -> _BatchResult:
    """Purge one batch of orders with all their children, in one transaction.

    ``planned`` holds the sorted primary keys of the plan's children per table.
    """
    out = _BatchResult()
    tickets_t = policy.table(TICKETS)
    with w.transaction():
        # lock the order rows first (PostgreSQL: no child can be added to them until we commit)
        clause, params = w.in_ids("order_id", batch)
        w.fetch(f"SELECT order_id FROM orders WHERE {clause}{w.lock}", params)
        trows = w.fetch(f"SELECT {', '.join(_TICKET_COLS)} FROM service_tickets WHERE {clause}{w.lock}", params)
        tickets = w.arrow(tickets_t, _TICKET_COLS, trows)
        check = _recheck(w, policy, plan.logical_date, order_ids=batch, tickets=tickets, lock=False)
        ret = check.orders
        still = ret.order_id  # planned orders still in the store (sorted)
        ok = ret.is_due.copy()
        # every ticket of the order must itself be due (closed, not kept for its customer)
        if tickets.num_rows:
            verdict = ticket_verdicts(policy, plan.logical_date, tickets, ret, check.holds)
            t_orders = ints(tickets.column("order_id"))
            ok &= ~_member(still, np.unique(t_orders[~verdict["is_due"]]))
        # children the plan did not see (added since): keep the order for the next run
        actual: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for table in [*cascade, tickets_t]:
            if table.name == TICKETS:
                pks, oids = ints(tickets.column("ticket_id")), ints(tickets.column("order_id"))
            else:
                col = table.parent.column if table.parent else "order_id"
                c, p = w.in_ids(col, batch)
                rows = w.fetch(
                    f"SELECT {db.quote_ident(table.primary_key)}, {db.quote_ident(col)} "
                    f"FROM {db.quote_ident(table.name)} WHERE {c}",
                    p,
                )
                pks = np.array([r[0] for r in rows], dtype=np.int64)
                oids = np.array([r[1] for r in rows], dtype=np.int64)
            actual[table.name] = (pks, oids)
            extra = ~_member(pks, planned.get(table.name, _empty()))
            if extra.any():
                ok &= ~_member(still, np.unique(oids[extra]))
        final, kept = still[ok], still[~ok]
        if len(kept):
            out.skipped[ORDERS] = kept
            for name, (pks, oids) in actual.items():
                out.skipped[name] = pks[_member(oids, kept)]
        if len(final):
            for table in [tickets_t, *cascade]:
                col = table.parent.column if table.parent else "order_id"
                c, p = w.in_ids(col, final)
                out.deleted[table.name] = w.execute(f"DELETE FROM {db.quote_ident(table.name)} WHERE {c}", p)
            fault("order_batch_children_deleted")
            c, p = w.in_ids("order_id", final)
            out.deleted[ORDERS] = w.execute(f"DELETE FROM orders WHERE {c}", p)
    fault("order_batch_committed")
    return out


def _delete_ticket_batch(w: _Writer, policy: Policy, plan: PurgePlan, batch: np.ndarray, fault: Fault) -> _BatchResult:
    """Purge closed tickets due on their own clock, re-checking them in the transaction."""
    out = _BatchResult()
    tickets_t = policy.table(TICKETS)
    with w.transaction():
        clause, params = w.in_ids("ticket_id", batch)
        rows = w.fetch(f"SELECT {', '.join(_TICKET_COLS)} FROM service_tickets WHERE {clause}{w.lock}", params)
        tickets = w.arrow(tickets_t, _TICKET_COLS, rows)
        t_orders = ints(tickets.column("order_id"))
        check = _recheck(
            w,
            policy,
            plan.logical_date,
            order_ids=np.unique(t_orders[t_orders >= 0]),
            tickets=tickets,
            lock=True,
        )
        verdict = ticket_verdicts(policy, plan.logical_date, tickets, check.orders, check.holds)
        t_ids = ints(tickets.column("ticket_id"))
        # a ticket whose order became due meanwhile goes with its order in a later run
        idx, found = check.orders.lookup(t_orders)
        ok = verdict["is_due"] & ~((t_orders >= 0) & found & check.orders.is_due[idx])
        if (~ok).any():
            out.skipped[TICKETS] = t_ids[~ok]
        final = t_ids[ok]
        if len(final):
            c, p = w.in_ids("ticket_id", final)
            out.deleted[TICKETS] = w.execute(f"DELETE FROM service_tickets WHERE {c} AND status = 'closed'", p)
    fault("ticket_batch_committed")
    return out


def _delete_clock_batch(w: _Writer, table: Table, batch: np.ndarray, fault: Fault) -> _BatchResult:
    """Rows with no protection rule (site visits, staff access log): delete by primary key."""
    with w.transaction():
        c, p = w.in_ids(table.primary_key, batch)
        n = w.execute(f"DELETE FROM {db.quote_ident(table.name)} WHERE {c}", p)
    fault(f"{table.name}_batch_committed")
    return _BatchResult(deleted={table.name: n})


def delete_plan(
    policy: Policy,
    target: DatabaseTarget,
    plan: PurgePlan,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    fault: Fault = _no_fault,
) -> tuple[dict[str, int], dict[str, np.ndarray], int]:
    """Delete the plan's rows in batches; returns (deleted per table, skipped ids, batches)."""
    if batch_size < 1:
        raise ConfigurationError("batch_size must be at least 1")
    cascade = _cascade_tables(policy)
    deleted: dict[str, int] = dict.fromkeys(plan.tables, 0)
    skipped: dict[str, list[np.ndarray]] = {}
    batches = 0

    def merge(res: _BatchResult) -> None:
        for t, n in res.deleted.items():
            deleted[t] = deleted.get(t, 0) + n
        for t, ids in res.skipped.items():
            skipped.setdefault(t, []).append(ids)

    planned = {t: np.sort(pks) for t, (pks, _oids) in plan.children.items()}
    w = _Writer(target)
    try:
        for batch in _batches(plan.orders, batch_size):
            merge(_delete_order_batch(w, policy, plan, batch, cascade=cascade, planned=planned, fault=fault))
            batches += 1
        for batch in _batches(plan.standalone.get(TICKETS, _empty()), batch_size):
            merge(_delete_ticket_batch(w, policy, plan, batch, fault))
            batches += 1
        for table in _clock_tables(policy):
            for batch in _batches(plan.standalone.get(table.name, _empty()), batch_size):
                merge(_delete_clock_batch(w, table, batch, fault))
                batches += 1
    finally:
        w.close()
    return deleted, {t: _concat(v) for t, v in skipped.items() if sum(len(x) for x in v)}, batches


# -- crypto-shredding ---------------------------------------------------------------------------

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")


def epoch_label_bounds(label: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of an epoch label (``2026-11-24``, ``2026-W48`` or ``2026-11``), UTC."""
    label = label.removeprefix("epoch-")
    try:
        if _DAY.match(label):
            start, unit = dt.datetime.strptime(label, "%Y-%m-%d"), "day"
        elif m := _WEEK.match(label):
            start = dt.datetime.combine(dt.date.fromisocalendar(int(m[1]), int(m[2]), 1), dt.time())
            unit = "week"
        elif _MONTH.match(label):
            start, unit = dt.datetime.strptime(label + "-01", "%Y-%m-%d"), "month"
        else:
            raise ValueError(label)
    except ValueError:
        raise IntegrityError(f"key label {label!r} is not a retention epoch (day, ISO week or month)") from None
    s, e, again = epoch_bounds(to_us(start.replace(tzinfo=dt.UTC)), unit)
    if again != label:
        raise IntegrityError(f"epoch label {label!r} does not round-trip ({again!r})")
    return s, e


@dataclass
class ShredPlan:
    #: epoch label -> active master key ids under ``epoch/<label>/``
    epochs: dict[str, list[str]]
    bounds: dict[str, tuple[dt.datetime, dt.datetime]]
    #: ended epochs left for a later run because a running drill pinned a point that uses them
    deferred: dict[str, list[str]] = field(default_factory=dict)

    @property
    def key_ids(self) -> list[str]:
        return sorted(k for ids in self.epochs.values() for k in ids)


def plan_shred(storage: Storage, keys: KeyService, logical_date: dt.datetime) -> ShredPlan:
    """Epochs whose end is at or before ``logical_date``: every row under their keys is due.

    Refuses (IntegrityError) when the recovery point for ``logical_date`` still holds rows under
    such an epoch: by construction it puts rows due at its logical date in ``pending``, so that
    would mean the point was not partitioned for this date.
    """
    epochs: dict[str, list[str]] = {}
    bounds: dict[str, tuple[dt.datetime, dt.datetime]] = {}
    for info in keys.list_keys(f"{EPOCH}/"):
        if info.state != "active":
            continue
        parts = info.key_id.split("/")
        if len(parts) != 3:
            continue
        label = parts[1]
        if label not in bounds:
            bounds[label] = epoch_label_bounds(label)
        if bounds[label][1] <= logical_date:
            epochs.setdefault(label, []).append(info.key_id)
    deferred: dict[str, list[str]] = {}
    if epochs:
        # a drill pins the point it restores: its epochs stay readable until the pin is released
        for pinned in rp.list_points(storage):
            if not rp.active_pins(storage, pinned):
                continue
            manifest = rp.load_point(storage, pinned, keys).manifest
            for label, part in manifest["partitions"].items():
                name = label.removeprefix("epoch-")
                if part["kind"] == EPOCH and name in epochs:
                    deferred.setdefault(name, []).append(pinned)
        for name, points in deferred.items():
            log.info("epoch %s is used by pinned point(s) %s: shredding it on a later run", name, points)
            epochs.pop(name)
    if epochs:
        point_id = rp.point_id_for(logical_date)
        if point_id in rp.list_points(storage):
            point = rp.load_point(storage, point_id, keys)
            used = {p.removeprefix("epoch-") for p, d in point.manifest["partitions"].items() if d["kind"] == EPOCH}
            clash = sorted(used & set(epochs))
            if clash:
                raise IntegrityError(
                    f"recovery point {point_id} still holds rows under epoch(s) {clash} that ended by its "
                    "logical date: refusing to shred them"
                )
    return ShredPlan(
        {k: sorted(v) for k, v in sorted(epochs.items())},
        {k: bounds[k] for k in epochs},
        {k: sorted(v) for k, v in sorted(deferred.items())},
    )


def shred(storage: Storage, keys: KeyService, plan: ShredPlan, *, logical_date: dt.datetime, run_id: str) -> list[str]:
    """Record the intent in the ledger, then destroy the keys (idempotent). Returns the key ids."""
    if not plan.epochs:
        return []
    ledger = Ledger(storage, LEDGER_REL)
    ledger.append(
        {
            "event": EVENT_SHRED,
            "run_id": run_id,
            "logical_date": logical_date.isoformat(),
            "dry_run": False,
            "reason": "retention epoch ended at or before the logical date: every row under its keys is due",
            "epochs": [
                {
                    "label": label,
                    "start": plan.bounds[label][0].isoformat(),
                    "end": plan.bounds[label][1].isoformat(),
                    "key_ids": ids,
                }
                for label, ids in plan.epochs.items()
            ],
        }
    )
    destroyed = []
    for label, ids in plan.epochs.items():
        end = plan.bounds[label][1].isoformat()
        for key_id in ids:
            keys.destroy(
                key_id,
                reason=f"retention: epoch {label} ended {end} <= logical date {logical_date.isoformat()}",
                run_id=run_id,
            )
            destroyed.append(key_id)
    return destroyed


def erased_by_retention(keys: KeyService, key_ids: Iterable[str]) -> bool:
    """True when every one of ``key_ids`` (a file's master keys) was destroyed by retention.

    A restore drill uses it to report a partition as *erased by retention* (a success) rather
    than as a missing key (a failure).
    """
    ids = list(key_ids)
    for key_id in ids:
        info = keys.info(key_id)
        if info is None or info.state != "destroyed" or not (info.reason or "").startswith("retention:"):
            return False
    return bool(ids)


# -- one run ------------------------------------------------------------------------------------


@dataclass
class PurgeOutcome:
    run_id: str
    logical_date: dt.datetime
    recovery_point_id: str
    dry_run: bool
    due: dict[str, int]
    purged: dict[str, int]
    skipped: dict[str, int]
    revoked: dict[str, int]
    protected: dict[str, int]
    shredded_keys: list[str]
    shred_epochs: list[str]
    would_shred: list[str]
    batches: int
    plan_seconds: float
    delete_seconds: float
    seconds: float
    ledger_head: dict[str, Any] | None
    guard: dict[str, Any]
    tombstones: dict[str, Any] = field(default_factory=dict)
    rules: dict[str, list[str]] = field(default_factory=dict)
    #: ended epochs not shredded because a running drill pinned a point using them
    shred_deferred: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["logical_date"] = self.logical_date.isoformat()
        rows = sum(self.purged.values())
        d["rows_per_second"] = round(rows / self.delete_seconds, 1) if self.delete_seconds > 0 and rows else None
        return d


def _key_ids_destroyed_by(keys: KeyService, run_id: str) -> list[str]:
    return sorted(k.key_id for k in keys.list_keys(f"{EPOCH}/") if k.state == "destroyed" and k.run_id == run_id)


def run_purge(
    *,
    policy: Policy,
    target: DatabaseTarget,
    storage: Storage,
    keys: KeyService,
    logical_date: dt.datetime,
    run_id: str,
    dry_run: bool,
    batch_size: int = DEFAULT_BATCH_SIZE,
    check_guard: bool = True,
    fault: Fault = _no_fault,
) -> PurgeOutcome:
    """One retention purge for ``logical_date`` (see the module docstring). Idempotent."""
    started = time.monotonic()
    logical_date = logical_date.astimezone(dt.UTC)
    point_id = rp.point_id_for(logical_date)
    guard_facts: dict[str, Any] = {"checked": False}
    if check_guard:
        try:
            guard_facts = guard(storage, keys, policy, logical_date)
        except (IntegrityError, NotFound) as exc:
            if not dry_run:
                raise
            guard_facts = {"ok": False, "error": str(exc)}  # a preview still shows what is due
    ledger = Ledger(storage, LEDGER_REL)
    ledger.verify()  # fail closed on broken evidence before adding to it
    plan = compute_plan(policy, target, logical_date)
    counts = plan.counts()
    base = {
        "run_id": run_id,
        "logical_date": logical_date.isoformat(),
        "recovery_point_id": point_id,
        "dry_run": dry_run,
    }
    log.info("purge plan for %s: %s (%.1fs)", logical_date.isoformat(), counts, plan.seconds)

    if dry_run:
        would = plan_shred(storage, keys, logical_date)
        ledger.append(
            base
            | {
                "event": EVENT_BEGIN,
                "policy_sha256": policy.sha256,
                "rules": rules_evidence(policy),
                "items": plan.items(),
                "counts": counts,
                "protected": plan.protected,
                "tombstones": {},
            }
        )
        head = ledger.append(
            base
            | {
                "event": EVENT_COMPLETE,
                "deleted": dict.fromkeys(counts, 0),
                "shredded_keys": [],
                "would_shred": would.key_ids,
            }
        )
        return PurgeOutcome(
            run_id=run_id,
            logical_date=logical_date,
            recovery_point_id=point_id,
            dry_run=True,
            due=counts,
            purged=dict.fromkeys(counts, 0),
            skipped={},
            revoked={},
            protected=plan.protected,
            shredded_keys=[],
            shred_epochs=[],
            would_shred=would.key_ids,
            batches=0,
            plan_seconds=plan.seconds,
            delete_seconds=0.0,
            seconds=time.monotonic() - started,
            ledger_head={"seq": head["seq"], "hash": head["hash"]},
            guard=guard_facts,
            rules=plan.rules,
        )

    hasher = keys.tombstone_hasher()
    attempt = _attempt_id()
    folder = f"{TOMBSTONE_DIR}/{point_id}/{attempt}"
    # rows kept although past retention must not stay tombstoned by an earlier, interrupted run
    revoke = _revocations(storage, hasher, plan.kept_past)
    revoked_refs = {
        t: write_tombstone_file(
            storage,
            f"{folder}/revoked-{t}.json",
            table=t,
            hashes=h,
            kind="revoked",
            run_id=run_id,
            logical_date=logical_date,
        )
        for t, h in sorted(revoke.items())
    }
    tomb_refs = {}
    for table in plan.tables:
        ids = plan.ids(table)
        if len(ids):
            tomb_refs[table] = write_tombstone_file(
                storage,
                f"{folder}/{table}.json",
                table=table,
                hashes=_hashes(hasher, table, ids),
                kind="purged",
                run_id=run_id,
                logical_date=logical_date,
            )
    ledger.append(
        base
        | {
            "event": EVENT_BEGIN,
            "attempt": attempt,
            "policy_sha256": policy.sha256,
            "rules": rules_evidence(policy),
            "items": plan.items(),
            "counts": counts,
            "protected": plan.protected,
            "tombstones": tomb_refs,
            "revoked": revoked_refs,
        }
    )
    fault("after_begin")

    t0 = time.monotonic()
    deleted, skipped, batches = delete_plan(policy, target, plan, batch_size=batch_size, fault=fault)
    delete_seconds = time.monotonic() - t0
    late_revoked = {}
    for table, ids in sorted(skipped.items()):
        if len(ids):
            late_revoked[table] = write_tombstone_file(
                storage,
                f"{folder}/revoked-late-{table}.json",
                table=table,
                hashes=_hashes(hasher, table, ids),
                kind="revoked",
                run_id=run_id,
                logical_date=logical_date,
            )
    if skipped:
        log.warning(
            "rows changed since the plan were kept for the next run: %s",
            {t: len(v) for t, v in skipped.items()},
        )

    shred_plan = plan_shred(storage, keys, logical_date)
    fault("before_shred")
    shred(storage, keys, shred_plan, logical_date=logical_date, run_id=run_id)
    shredded = _key_ids_destroyed_by(keys, run_id)
    head = ledger.append(
        base
        | {
            "event": EVENT_COMPLETE,
            "attempt": attempt,
            "deleted": deleted,
            "skipped": {t: len(v) for t, v in skipped.items()},
            "revoked": late_revoked,
            "shredded_keys": shredded,
            "shredded_epochs": sorted({k.split("/")[1] for k in shredded}),
            "shred_deferred": shred_plan.deferred,
        }
    )
    return PurgeOutcome(
        run_id=run_id,
        logical_date=logical_date,
        recovery_point_id=point_id,
        dry_run=False,
        due=counts,
        purged=deleted,
        skipped={t: len(v) for t, v in skipped.items()},
        revoked={t: len(h) for t, h in revoke.items()} | {t: r["count"] for t, r in late_revoked.items()},
        protected=plan.protected,
        shredded_keys=shredded,
        shred_epochs=sorted({k.split("/")[1] for k in shredded}),
        shred_deferred=shred_plan.deferred,
        would_shred=[],
        batches=batches,
        plan_seconds=plan.seconds,
        delete_seconds=delete_seconds,
        seconds=time.monotonic() - started,
        ledger_head={"seq": head["seq"], "hash": head["hash"]},
        guard=guard_facts,
        tombstones={"folder": folder, "files": len(tomb_refs) + len(revoked_refs) + len(late_revoked)},
        rules=plan.rules,
    )


# -- ledger verification ------------------------------------------------------------------------


def verify_ledger(storage: Storage, anchors: Iterable[Head] = ()) -> dict[str, Any]:
    """Verify the purge ledger: hash chain, recorded heads (``anchors``) and every tombstone file.

    Raises :class:`IntegrityError` naming the first problem (an edited, removed, inserted or
    reordered entry; a chain truncated below a head a run recorded; a missing or altered
    tombstone file). Also lists attempts that began but never completed (a crashed run; its
    rerun finishes the job), which is not tampering.
    """
    ledger = Ledger(storage, LEDGER_REL)
    result = ledger.verify()
    anchors = list(anchors)
    for anchor in anchors:
        ledger.verify(anchor)
    files = 0
    open_attempts: dict[str, dict[str, Any]] = {}
    for entry in ledger.entries():
        for key in ("tombstones", "revoked"):
            for ref in (entry.get(key) or {}).values():
                _read_tombstone_file(storage, ref)
                files += 1
        if entry.get("dry_run") or "attempt" not in entry:
            continue
        if entry.get("event") == EVENT_BEGIN:
            open_attempts[entry["attempt"]] = {
                "seq": entry["seq"],
                "run_id": entry["run_id"],
                "logical_date": entry["logical_date"],
            }
        elif entry.get("event") == EVENT_COMPLETE:
            open_attempts.pop(entry["attempt"], None)
    return result | {
        "tombstone_files": files,
        "anchors": len(anchors),
        "incomplete_attempts": list(open_attempts.values()),
    }


def anchors_from_reports(report_root: str | Path, dag_id: str = "retention_purge") -> list[Head]:
    """Ledger heads recorded in the runs' summary.json files (they detect a truncated tail)."""
    heads = []
    for path in sorted(Path(report_root).glob(f"{dag_id}/*/summary.json")):
        try:
            head = json.loads(path.read_text(encoding="utf-8")).get("ledger", {}).get("head")
        except (OSError, json.JSONDecodeError):
            raise IntegrityError(f"{path} is not readable JSON") from None
        if head:
            heads.append(Head(int(head["seq"]), str(head["hash"])))
    return heads


# -- reports ------------------------------------------------------------------------------------


def summary(outcome: PurgeOutcome, *, dag_id: str, verification: dict[str, Any]) -> dict[str, Any]:
    d = outcome.as_dict()
    return {
        "dag_id": dag_id,
        "run_id": outcome.run_id,
        "logical_date": d["logical_date"],
        "recovery_point_id": outcome.recovery_point_id,
        "dry_run": outcome.dry_run,
        "rules": outcome.rules,
        "due": outcome.due,
        "purged": outcome.purged,
        "protected": {
            LEGAL_HOLD: outcome.protected.get(LEGAL_HOLD, 0),
            OPEN_TICKET: outcome.protected.get(OPEN_TICKET, 0),
        },
        "skipped_changed_since_plan": outcome.skipped,
        "revoked_tombstones": outcome.revoked,
        "shredded_keys": outcome.shredded_keys,
        "shredded_epochs": outcome.shred_epochs,
        "would_shred": outcome.would_shred,
        "batches": outcome.batches,
        "duration_seconds": round(outcome.seconds, 3),
        "plan_seconds": round(outcome.plan_seconds, 3),
        "delete_seconds": round(outcome.delete_seconds, 3),
        "rows_per_second": d["rows_per_second"],
        "guard": outcome.guard,
        "tombstones": outcome.tombstones,
        "ledger": {"path": LEDGER_REL, "head": outcome.ledger_head, "verification": verification},
    }


def render_html(s: dict[str, Any]) -> str:
    """A small, self-contained report for compliance: counts, rules, key ids, ledger head."""
    e = html.escape

    def rows(mapping: Mapping[str, Any]) -> str:
        return "".join(f"<tr><td>{e(str(k))}</td><td>{e(str(v))}</td></tr>" for k, v in mapping.items())

    tables = sorted(set(s["due"]) | set(s["purged"]))
    counts = "".join(
        f"<tr><td>{e(t)}</td><td>{s['due'].get(t, 0)}</td><td>{s['purged'].get(t, 0)}</td></tr>" for t in tables
    )
    keys_list = (
        "".join(f"<li><code>{e(k)}</code></li>" for k in s["shredded_keys"] or s["would_shred"]) or "<li>none</li>"
    )
    rules = "".join(f"<li>{e(t)}: {e('; '.join(r))}</li>" for t, r in sorted(s.get("rules", {}).items()))
    head = s["ledger"]["head"] or {}
    mode = "DRY RUN (nothing deleted, nothing shredded)" if s["dry_run"] else "purge"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>retention_purge {e(s["logical_date"])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .8em;text-align:left}}code{{font-size:.9em}}</style></head>
<body>
<h1>Retention purge, logical date {e(s["logical_date"])}</h1>
<p>Mode: <strong>{e(mode)}</strong>. Run <code>{e(s["run_id"])}</code>; recovery point
<code>{e(s["recovery_point_id"])}</code>.</p>
<h2>Rows</h2>
<table><tr><th>table</th><th>due</th><th>purged</th></tr>{counts}</table>
<h2>Rules (policy.yaml)</h2>
<ul>{rules}</ul>
<h2>Kept although past retention (orders)</h2>
<table>{rows(s["protected"])}</table>
<p>Rows that changed between plan and delete (kept for the next run):
{e(json.dumps(s["skipped_changed_since_plan"]))}</p>
<h2>{"Keys that would be shredded" if s["dry_run"] else "Keys shredded (crypto-erasure)"}</h2>
<ul>{keys_list}</ul>
<h2>Evidence</h2>
<p>Ledger <code>{e(s["ledger"]["path"])}</code>, head seq {e(str(head.get("seq")))}
<code>{e(str(head.get("hash")))}</code>; verification:
{e(json.dumps(s["ledger"]["verification"].get("ok")))}.</p>
<p>Duration {s["duration_seconds"]} s ({s["batches"]} batches). Tombstones are keyed hashes (HMAC-SHA256);
this report holds no purged value.</p>
</body></html>
"""


# -- task entry points (called by dags/retention_purge.py) --------------------------------------


def validate_task(params: Mapping[str, Any]) -> dict[str, Any]:
    return validate_params(params)


def guard_task(env: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    """Fail closed unless the newest verified point is the one for this run's logical date."""
    dry_run = validate_params(params)["dry_run"]
    try:
        facts = guard(env.storage, env.keys, env.policy, env.logical_date)
    except (IntegrityError, NotFound) as exc:
        if not dry_run:
            raise
        log.warning("dry run without a verified recovery point for this date: %s", exc)
        facts = {"ok": False, "error": str(exc)}
    return {"dry_run": dry_run, "logical_date": env.logical_date.isoformat()} | facts


def purge_task(env: Any, params: Mapping[str, Any]) -> dict[str, Any]:
    from lomevexi_governance.reports import write_json_atomic

    dry_run = validate_params(params)["dry_run"]
    outcome = run_purge(
        policy=env.policy,
        target=env.require_store(),
        storage=env.storage,
        keys=env.keys,
        logical_date=env.logical_date,
        run_id=env.run_id,
        dry_run=dry_run,
    )
    path = env.report_dir / "purge_outcome.json"
    write_json_atomic(path, outcome.as_dict())
    return {
        "dry_run": dry_run,
        "logical_date": outcome.logical_date.isoformat(),
        "purged": outcome.purged,
        "shredded_keys": len(outcome.shredded_keys),
        "outcome_path": str(path),
    }


def report_task(env: Any, outcome: Mapping[str, Any]) -> str:
    """summary.json and report.html; fails (after writing both) when the ledger does not verify."""
    from lomevexi_governance.reports import read_json, write_json_atomic, write_text_atomic

    full = read_json(outcome["outcome_path"])
    names = {f.name for f in dataclasses.fields(PurgeOutcome)}
    out = PurgeOutcome(**{k: v for k, v in full.items() if k in names})
    out.logical_date = dt.datetime.fromisoformat(full["logical_date"])
    head = out.ledger_head
    failure: IntegrityError | None = None
    try:
        verification = verify_ledger(env.storage, [Head(head["seq"], head["hash"])] if head else [])
    except IntegrityError as exc:
        failure = exc
        verification = {"ok": False, "error": str(exc)}
    s = summary(out, dag_id=env.dag_id, verification=verification)
    write_text_atomic(env.report_dir / "report.html", render_html(s))
    path = env.report_dir / "summary.json"
    write_json_atomic(path, s)
    if failure is not None:
        raise IntegrityError(f"the purge ledger does not verify (see {path}): {failure}")
    return str(path)


# -- command line -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lomevexi_governance.purge", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify-ledger", help="verify the purge ledger's hash chain and tombstone files")
    v.add_argument("--backup-root", required=True, help="the governance_backup_root (path or URL)")
    v.add_argument(
        "--report-root",
        default=None,
        help="also check that the chain still reaches every head recorded in retention_purge reports",
    )
    args = parser.parse_args(argv)
    storage = storage_for(args.backup_root)
    try:
        anchors = anchors_from_reports(args.report_root) if args.report_root else []
        result = verify_ledger(storage, anchors)
    except IntegrityError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}), file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
