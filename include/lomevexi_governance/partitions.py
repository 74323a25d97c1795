"""Partitions of a recovery point, and the retention epochs that make crypto-shredding work.

Every row of a recovery point is written under exactly one partition:

``epoch-<period>``   rows whose retention ends within that calendar period (UTC): a day
                     ``2026-11-24``, an ISO week ``2026-W48`` or a month ``2026-11``
                     (policy ``recovery_points.epoch``). Master keys ``epoch/<period>/*`` are
                     shared by every point and destroyed once the whole period is due.
``open``             rows whose retention clock has not started (order not completed, ticket
                     open) and tables with no retention (customers, legal_holds).
``protected``        rows retention may not touch (legal hold, open ticket).
``pending``          rows already due at the logical date: the same night's purge deletes them.

``open``, ``protected`` and ``pending`` use keys exclusive to the point (``rp/<id>/<label>/*``)
and are destroyed when the point expires; until then restores re-apply purge tombstones.
Children (items, payments, shipments, tickets of an order) follow their order's partition.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lomevexi_governance import db
from lomevexi_governance.errors import IntegrityError
from lomevexi_governance.policy import Policy, Table
from lomevexi_governance.retention import (
    US,
    ActiveHolds,
    OrderRetention,
    clock_due,
    evaluate_order_arrays,
    holds_query_columns,
    ints,
    open_ticket_orders,
    ticket_verdicts,
    to_us,
    ts_us,
)
from lomevexi_governance.source import Snapshot, arrow_schema

OPEN, PROTECTED, PENDING = 0, 1, 2
FIXED_LABELS = {OPEN: "open", PROTECTED: "protected", PENDING: "pending"}
EPOCH = "epoch"
DAY_US = 86400 * US
_EPOCH0 = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class Partition:
    label: str
    kind: str  # "epoch" | "open" | "protected" | "pending"
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def key_prefix(self, recovery_point_id: str) -> str:
        if self.kind == EPOCH:
            return f"epoch/{self.label.removeprefix('epoch-')}"
        return f"rp/{recovery_point_id}/{self.label}"

    def as_dict(self) -> dict[str, str | None]:
        return {
            "kind": self.kind,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
        }


def epoch_bounds(start_us: int, unit: str) -> tuple[dt.datetime, dt.datetime, str]:
    start = _EPOCH0 + dt.timedelta(microseconds=int(start_us))
    if unit == "day":
        return start, start + dt.timedelta(days=1), start.strftime("%Y-%m-%d")
    if unit == "week":
        iso = start.isocalendar()
        return start, start + dt.timedelta(days=7), f"{iso.year}-W{iso.week:02d}"
    nxt = dt.datetime(start.year + (start.month == 12), start.month % 12 + 1, 1, tzinfo=dt.timezone.utc)
    return start, nxt, start.strftime("%Y-%m")


def epoch_starts(due_us: np.ndarray, unit: str) -> np.ndarray:
    """The start (µs) of the epoch containing each due instant."""
    days = np.floor_divide(due_us, DAY_US)
    if unit == "day":
        return days * DAY_US
    if unit == "week":
        # 1970-01-01 was a Thursday: Monday-based weeks start 3 days earlier
        return (days - (days + 3) % 7) * DAY_US
    months = days.astype("datetime64[D]").astype("datetime64[M]")
    return months.astype("datetime64[D]").astype(np.int64) * DAY_US


def epoch_for(instant: dt.datetime, unit: str) -> Partition:
    start = int(epoch_starts(np.array([to_us(instant)], dtype=np.int64), unit)[0])
    s, e, label = epoch_bounds(start, unit)
    return Partition(f"epoch-{label}", EPOCH, s, e)


class PartitionPlanner:
    """Assigns every row of a snapshot to its partition, for one logical date.

    Reads the retention facts (orders, holds, open tickets) once from the snapshot; then
    :meth:`assign` maps each record batch to partition codes without another query.
    """

    def __init__(self, policy: Policy, logical_date: dt.datetime):
        self.policy = policy
        self.logical_date = logical_date
        self.logical_us = to_us(logical_date)
        self.unit = policy.epoch_unit
        self._epochs: dict[int, int] = {}  # epoch start µs -> code
        self.partitions: dict[int, Partition] = {
            code: Partition(label, label) for code, label in FIXED_LABELS.items()
        }
        self.orders: OrderRetention | None = None
        self.holds: ActiveHolds | None = None
        self.customer_ids: np.ndarray = np.array([], dtype=np.int64)

    # -- facts ---------------------------------------------------------------------------
    def load(self, snapshot: Snapshot) -> None:
        p = self.policy
        order_id, customer_id, clock, has_clock = self._order_facts(snapshot)
        holds_t = p.table("legal_holds")
        holds = snapshot.query(
            snapshot.select_sql(holds_t, holds_query_columns(), order=False),
            holds_t,
            arrow_schema(holds_t, holds_query_columns()),
        )
        tickets_t = p.table("service_tickets")
        status = snapshot.query(
            snapshot.select_sql(tickets_t, ["order_id", "status"], order=False)
            + " WHERE status = 'open' AND order_id IS NOT NULL",
            tickets_t,
            arrow_schema(tickets_t, ["order_id", "status"]),
        )
        customers_t = p.table("customers")
        customers = snapshot.query(
            snapshot.select_sql(customers_t, ["customer_id"], order=False),
            customers_t,
            arrow_schema(customers_t, ["customer_id"]),
        )
        self.customer_ids = np.sort(ints(customers.column("customer_id")))
        self.holds = ActiveHolds.from_table(holds, self.logical_date)
        verdicts = evaluate_order_arrays(
            p, self.logical_date, order_id, customer_id, clock, has_clock, self.holds, open_ticket_orders(status)
        )
        # partition codes need the order ids, clocks and protection, not who or why (16 bytes an order)
        self.orders = verdicts.without_reasons()

    def _order_facts(self, snapshot: Snapshot) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """order_id, customer_id and the retention clock (µs, valid mask) of every order, in order_id
        order, filled batch by batch into arrays sized by a count in the same snapshot: memory is
        the arrays themselves (25 bytes an order), never a whole Arrow table of them."""
        orders_t = self.policy.table("orders")
        clock_col = self.policy.retention["orders"].clock
        cols = ["order_id", "customer_id", clock_col]
        n = int(snapshot.scalar(f"SELECT count(*) FROM {db.quote_ident(orders_t.name)}") or 0)
        order_id = np.empty(n, dtype=np.int64)
        customer_id = np.empty(n, dtype=np.int64)
        clock = np.empty(n, dtype=np.int64)
        has_clock = np.empty(n, dtype=bool)
        i = 0
        for batch in snapshot.stream(orders_t, cols):
            k = batch.num_rows
            if i + k > n:
                raise IntegrityError(f"{orders_t.name}: more rows than counted in the same snapshot")
            order_id[i : i + k] = ints(batch.column("order_id"))
            customer_id[i : i + k] = ints(batch.column("customer_id"))
            clock[i : i + k], has_clock[i : i + k] = ts_us(batch.column(clock_col))
            i += k
        if i != n:
            raise IntegrityError(f"{orders_t.name}: fewer rows than counted in the same snapshot")
        return order_id, customer_id, clock, has_clock

    # -- codes ---------------------------------------------------------------------------
    def _codes_for_due(self, due_us: np.ndarray, has_clock: np.ndarray) -> np.ndarray:
        codes = np.full(len(due_us), OPEN, dtype=np.int32)
        pending = has_clock & (due_us <= self.logical_us)
        codes[pending] = PENDING
        future = has_clock & ~pending
        if future.any():
            starts = epoch_starts(due_us[future], self.unit)
            uniq, inverse = np.unique(starts, return_inverse=True)
            mapped = np.array([self._epoch_code(int(s)) for s in uniq], dtype=np.int32)
            codes[future] = mapped[inverse]
        return codes

    def _epoch_code(self, start_us: int) -> int:
        code = self._epochs.get(start_us)
        if code is None:
            s, e, label = epoch_bounds(start_us, self.unit)
            code = len(self.partitions)
            self._epochs[start_us] = code
            self.partitions[code] = Partition(f"epoch-{label}", EPOCH, s, e)
        return code

    def _order_codes(self, order_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.orders is not None, "call load() first"
        o = self.orders
        idx, found = o.lookup(order_ids)
        gather = OrderRetention.gather
        codes = self._codes_for_due(gather(o.due_at, idx, found, 0), gather(o.has_clock, idx, found, False))
        codes[gather(o.protected, idx, found, False)] = PROTECTED
        codes[~found] = OPEN  # orphans (reported by validation) stay restorable
        return codes, found

    def assign(self, table: Table, batch: pa.RecordBatch) -> np.ndarray:
        """Partition code of every row in ``batch``."""
        n = batch.num_rows
        if table.name == "orders":
            return self._order_codes(ints(batch.column("order_id")))[0]
        if table.name == "service_tickets":
            assert self.orders is not None and self.holds is not None
            tickets = pa.Table.from_batches([batch])
            verdict = ticket_verdicts(self.policy, self.logical_date, tickets, self.orders, self.holds)
            codes = self._codes_for_due(verdict["due_at"], verdict["due_at"] >= 0)
            codes[verdict["protected"] & (verdict["due_at"] >= 0)] = PROTECTED
            return codes
        if table.parent is not None and table.parent.table == "orders":
            return self._order_codes(ints(batch.column(table.parent.column)))[0]
        rule = self.policy.retention.get(table.name)
        if rule is not None:
            due, has_clock = clock_due(self.policy, table.name, batch.column(rule.clock), self.logical_date)
            return self._codes_for_due(due, has_clock)
        return np.full(n, OPEN, dtype=np.int32)

    def known_ids(self, table: str) -> np.ndarray:
        """Sorted primary keys of ``orders`` or ``customers`` in this snapshot (for reference checks)."""
        if table == "orders":
            assert self.orders is not None
            return self.orders.order_id
        if table == "customers":
            return self.customer_ids
        raise KeyError(table)

    def partition(self, code: int) -> Partition:
        return self.partitions[code]
