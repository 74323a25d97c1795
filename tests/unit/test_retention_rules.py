"""The retention rules as ``retention_purge`` applies them, on tiny stores built row by row.

Every case is a constructed row with a timestamp a known distance from the logical date, so a
failure names the rule that broke (boundary, hold, customer hold, open ticket, cascade, ...).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from lomevexi_governance import purge
from lomevexi_governance.errors import ConfigurationError, IntegrityError
from lomevexi_governance.ledger import Ledger
from lomevexi_governance.settings import sqlite_target
from lomevexi_governance.storage import storage_for

pytestmark = pytest.mark.unit

D = dt.datetime(2026, 11, 23, 16, 0, tzinfo=dt.UTC)
DDL = (Path(__file__).resolve().parents[2] / "include/lomevexi_governance/sql/store_schema.sql").read_text()


def ts(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class Store:
    """A SQLite store from the contract DDL, filled one row at a time."""

    def __init__(self, path: Path):
        self.path = path
        self.conn = sqlite3.connect(path)
        self.conn.executescript(DDL)
        self._ids: dict[str, int] = {}

    def _next(self, kind: str) -> int:
        self._ids[kind] = self._ids.get(kind, 0) + 1
        return self._ids[kind]

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        self.conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
        self.conn.commit()

    def customer(self, cid: int) -> int:
        self._insert(
            "customers",
            {
                "customer_id": cid,
                "email": f"c{cid}@example.jp",
                "created_at": ts(D - dt.timedelta(days=900)),
                "updated_at": ts(D),
            },
        )
        return cid

    def order(self, oid: int, cid: int, completed_at: dt.datetime | None, *, children: bool = True) -> int:
        ordered = (completed_at or D) - dt.timedelta(days=10)
        self._insert(
            "orders",
            {
                "order_id": oid,
                "order_number": f"LMX-TEST-{oid:06d}",
                "customer_id": cid,
                "status": "completed" if completed_at else "shipped",
                "ordered_at": ts(ordered),
                "completed_at": ts(completed_at),
                "total_amount_jpy": 5000,
                "recipient_name": f"山田 花子{oid}",
                "recipient_phone": "090-1234-5678",
                "postal_code": "100-0001",
                "prefecture": "東京都",
                "city": "千代田区",
                "address_line1": "1-1",
                "address_line2": None,
                "updated_at": ts(ordered),
            },
        )
        if children:
            self._insert(
                "order_items",
                {
                    "order_item_id": oid * 10 + 1,
                    "order_id": oid,
                    "sku": "SKU",
                    "category": "tops",
                    "style": "tee",
                    "size": "M",
                    "color": "red",
                    "quantity": 1,
                    "unit_price_jpy": 5000,
                },
            )
            self._insert(
                "order_items",
                {
                    "order_item_id": oid * 10 + 2,
                    "order_id": oid,
                    "sku": "SKU2",
                    "category": "pants",
                    "style": "chino",
                    "size": "L",
                    "color": "navy",
                    "quantity": 1,
                    "unit_price_jpy": 0,
                },
            )
            self._insert(
                "payments",
                {
                    "payment_id": oid * 10 + 1,
                    "order_id": oid,
                    "method": "konbini",
                    "card_brand": None,
                    "card_last4": None,
                    "amount_jpy": 5000,
                    "status": "captured",
                    "paid_at": ts(ordered),
                    "updated_at": ts(ordered),
                },
            )
            self._insert(
                "shipments",
                {
                    "shipment_id": oid * 10 + 1,
                    "order_id": oid,
                    "carrier": "yamato",
                    "tracking_number": "1234",
                    "status": "delivered",
                    "shipped_at": ts(ordered),
                    "delivered_at": ts(ordered),
                    "updated_at": ts(ordered),
                },
            )
        return oid

    def ticket(self, tid: int, cid: int, oid: int | None, *, closed_at: dt.datetime | None) -> int:
        opened = (closed_at or D) - dt.timedelta(days=3)
        self._insert(
            "service_tickets",
            {
                "ticket_id": tid,
                "customer_id": cid,
                "order_id": oid,
                "kind": "inquiry",
                "status": "closed" if closed_at else "open",
                "subject": "サイズ",
                "body": "交換希望",
                "attachment_count": 0,
                "opened_at": ts(opened),
                "closed_at": ts(closed_at),
                "updated_at": ts(opened),
            },
        )
        return tid

    def hold(
        self,
        subject_type: str,
        subject_id: int,
        placed_at: dt.datetime,
        released_at: dt.datetime | None = None,
    ) -> int:
        hid = self._next("hold")
        self._insert(
            "legal_holds",
            {
                "hold_id": hid,
                "subject_type": subject_type,
                "subject_id": subject_id,
                "reason": "訴訟",
                "placed_at": ts(placed_at),
                "released_at": ts(released_at),
            },
        )
        return hid

    def visit(self, vid: int, visited_at: dt.datetime) -> int:
        self._insert(
            "site_visits",
            {
                "visit_id": vid,
                "session_id": f"s{vid}",
                "customer_id": None,
                "device_type": "mobile",
                "browser": "Safari",
                "page_path": "/",
                "visited_at": ts(visited_at),
            },
        )
        return vid

    def access(self, eid: int, occurred_at: dt.datetime) -> int:
        self._insert(
            "staff_access_log",
            {
                "event_id": eid,
                "occurred_at": ts(occurred_at),
                "staff_id": "s1",
                "staff_role": "finance",
                "action": "view",
                "resource": "orders",
                "record_id": 1,
                "record_count": 1,
                "client_ip": "10.0.0.1",
                "outcome": "allowed",
            },
        )
        return eid

    def ids(self, table: str, pk: str) -> set[int]:
        return {r[0] for r in self.conn.execute(f"SELECT {pk} FROM {table}")}

    @property
    def target(self):
        return sqlite_target(str(self.path), "store_db")


YEAR = dt.timedelta(days=365)
H = dt.timedelta(hours=1)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store.db")


def plan_ids(store: Store, policy, at: dt.datetime = D) -> dict[str, set[int]]:
    plan = purge.compute_plan(policy, store.target, at)
    return {t: {int(x) for x in plan.ids(t)} for t in plan.tables}


def run(store: Store, policy, keyring, tmp_path: Path, *, dry_run: bool = False, at: dt.datetime = D, **kw):
    return purge.run_purge(
        policy=policy,
        target=store.target,
        storage=storage_for(str(tmp_path / "backups")),
        keys=keyring,
        logical_date=at,
        run_id=f"test-{at:%Y%m%d}",
        dry_run=dry_run,
        check_guard=False,
        **kw,
    )


# -- the order rule ------------------------------------------------------------------------------


def test_boundary_is_an_exact_utc_instant(store: Store, policy) -> None:
    store.customer(1)
    store.order(1, 1, D - YEAR - H)  # 365 days and one hour ago: due
    store.order(2, 1, D - YEAR + H)  # 364 days and 23 hours ago: kept
    store.order(3, 1, D - YEAR)  # exactly 365 days: due (<=)
    store.order(4, 1, D - YEAR + dt.timedelta(microseconds=1))  # one microsecond short: kept
    ids = plan_ids(store, policy)
    assert ids["orders"] == {1, 3}
    assert ids["order_items"] == {11, 12, 31, 32}
    assert ids["payments"] == {11, 31} and ids["shipments"] == {11, 31}


def test_boundary_ignores_the_timestamps_text_form(store: Store, policy) -> None:
    """SQLite stores text: a 'T' and an explicit offset mean the same instant."""
    store.customer(1)
    store.order(1, 1, None)
    store.conn.execute(
        "UPDATE orders SET completed_at = ? WHERE order_id = 1",
        ((D - YEAR).astimezone(dt.timezone(dt.timedelta(hours=9))).isoformat(),),
    )
    store.conn.commit()
    assert plan_ids(store, policy)["orders"] == {1}


def test_not_completed_is_never_due(store: Store, policy) -> None:
    store.customer(1)
    store.order(1, 1, None)
    assert plan_ids(store, policy, D + 10 * YEAR)["orders"] == set()


def test_active_hold_protects_released_hold_does_not(store: Store, policy) -> None:
    store.customer(1)
    for oid in (1, 2, 3, 4):
        store.order(oid, 1, D - 2 * YEAR)
    store.hold("order", 1, placed_at=D - YEAR)  # active
    store.hold("order", 2, placed_at=D - YEAR, released_at=D - H)  # released before D: protects nothing
    store.hold("order", 3, placed_at=D - YEAR, released_at=D + H)  # released only after D: still active at D
    ids = plan_ids(store, policy)
    assert ids["orders"] == {2, 4}


def test_customer_hold_protects_every_order_and_ticket_of_the_customer(store: Store, policy, keyring, tmp_path) -> None:
    store.customer(1)
    store.customer(2)
    store.order(1, 1, D - 2 * YEAR)
    store.order(2, 1, D - 3 * YEAR)
    store.order(3, 2, D - 2 * YEAR)
    store.ticket(1, 1, None, closed_at=D - 2 * YEAR)  # unlinked, past its clock, but its customer is held
    store.ticket(2, 1, 1, closed_at=D - 2 * YEAR)
    store.hold("customer", 1, placed_at=D - YEAR)
    ids = plan_ids(store, policy)
    assert ids["orders"] == {3}
    assert ids["service_tickets"] == set()
    out = run(store, policy, keyring, tmp_path)
    assert out.protected == {"legal_hold": 2, "open_ticket": 0}
    assert store.ids("orders", "order_id") == {1, 2}
    assert store.ids("service_tickets", "ticket_id") == {1, 2}


def test_open_ticket_protects_its_order_and_the_orders_closed_tickets(store: Store, policy) -> None:
    store.customer(1)
    store.order(1, 1, D - 2 * YEAR)
    store.ticket(1, 1, 1, closed_at=None)  # open
    store.ticket(2, 1, 1, closed_at=D - 2 * YEAR)  # closed long ago, but its order is protected
    store.order(2, 1, D - 2 * YEAR)
    store.ticket(3, 1, 2, closed_at=D - H)  # closed an hour ago: goes with its due order
    ids = plan_ids(store, policy)
    assert ids["orders"] == {2}
    assert ids["service_tickets"] == {3}


def test_closed_ticket_without_a_due_order_follows_its_own_clock(store: Store, policy) -> None:
    store.customer(1)
    store.order(1, 1, D - 30 * dt.timedelta(days=1))  # recent order, not due
    store.ticket(1, 1, None, closed_at=D - YEAR - H)  # unlinked: due
    store.ticket(2, 1, None, closed_at=D - YEAR + H)  # unlinked: 364 d 23 h: kept
    store.ticket(3, 1, 1, closed_at=D - YEAR - H)  # linked to a not-yet-due order: its own clock
    store.ticket(4, 1, None, closed_at=None)  # open: never
    ids = plan_ids(store, policy)
    assert ids["orders"] == set()
    assert ids["service_tickets"] == {1, 3}


def test_ticket_of_a_held_customer_keeps_another_customers_due_order(store: Store, policy) -> None:
    """An order goes only with all its tickets: a ticket kept for its own customer keeps the order."""
    store.customer(1)
    store.customer(2)
    store.order(1, 1, D - 2 * YEAR)
    store.ticket(1, 2, 1, closed_at=D - 2 * YEAR)
    store.hold("customer", 2, placed_at=D - YEAR)
    plan = purge.compute_plan(policy, store.target, D)
    assert len(plan.orders) == 0
    assert plan.protected["legal_hold"] == 1


def test_site_visits_and_staff_access_log_clocks(store: Store, policy) -> None:
    store.visit(1, D - dt.timedelta(days=90))
    store.visit(2, D - dt.timedelta(days=90) + H)
    store.access(1, D - dt.timedelta(days=1095) - H)
    store.access(2, D - dt.timedelta(days=1095) + H)
    ids = plan_ids(store, policy)
    assert ids["site_visits"] == {1}
    assert ids["staff_access_log"] == {1}


def test_customers_and_holds_are_never_purged(store: Store, policy, keyring, tmp_path) -> None:
    store.customer(1)
    store.order(1, 1, D - 3 * YEAR)
    store.hold("order", 99, placed_at=D - 3 * YEAR, released_at=D - 2 * YEAR)
    out = run(store, policy, keyring, tmp_path)
    assert "customers" not in out.purged and "legal_holds" not in out.purged
    assert store.ids("customers", "customer_id") == {1}
    assert store.ids("legal_holds", "hold_id") == {1}
    assert store.ids("orders", "order_id") == set()


# -- runs ------------------------------------------------------------------------------------------


def test_purge_deletes_exactly_the_plan_and_a_rerun_purges_nothing(store: Store, policy, keyring, tmp_path) -> None:
    store.customer(1)
    store.order(1, 1, D - YEAR - H)
    store.order(2, 1, D - YEAR + H)
    store.ticket(1, 1, 1, closed_at=D - dt.timedelta(days=2))
    store.visit(1, D - dt.timedelta(days=200))
    out = run(store, policy, keyring, tmp_path, batch_size=1)
    assert out.purged == {
        "orders": 1,
        "order_items": 2,
        "payments": 1,
        "shipments": 1,
        "service_tickets": 1,
        "site_visits": 1,
        "staff_access_log": 0,
    }
    assert store.ids("orders", "order_id") == {2}
    assert store.ids("order_items", "order_item_id") == {21, 22}
    again = run(store, policy, keyring, tmp_path)
    assert sum(again.purged.values()) == 0 and sum(again.due.values()) == 0


def test_dry_run_deletes_and_tombstones_nothing(store: Store, policy, keyring, tmp_path) -> None:
    store.customer(1)
    store.order(1, 1, D - 2 * YEAR)
    out = run(store, policy, keyring, tmp_path, dry_run=True)
    assert out.dry_run and out.due["orders"] == 1 and sum(out.purged.values()) == 0
    assert store.ids("orders", "order_id") == {1}
    storage = storage_for(str(tmp_path / "backups"))
    assert purge.load_tombstones(storage, keyring) == {}
    entries = Ledger(storage, purge.LEDGER_REL).entries()
    assert [e["event"] for e in entries] == ["purge_begin", "purge_complete"]
    assert all(e["dry_run"] is True for e in entries)
    assert not storage.exists(purge.TOMBSTONE_DIR)


def test_hold_placed_between_plan_and_delete_keeps_the_order_and_revokes_its_tombstone(
    store: Store, policy, keyring, tmp_path
) -> None:
    store.customer(1)
    store.order(1, 1, D - 2 * YEAR)
    store.order(2, 1, D - 2 * YEAR)

    def place_hold(where: str) -> None:
        if where == "after_begin":  # the plan and the tombstones exist; nothing is deleted yet
            store.hold("order", 1, placed_at=D - H)

    out = run(store, policy, keyring, tmp_path, fault=place_hold)
    assert store.ids("orders", "order_id") == {1}
    assert out.purged["orders"] == 1 and out.skipped["orders"] == 1
    storage = storage_for(str(tmp_path / "backups"))
    hasher = keyring.tombstone_hasher()
    tombs = purge.load_tombstones(storage, keyring)
    assert hasher("orders", 2) in tombs["orders"]
    assert hasher("orders", 1) not in tombs["orders"]
    assert hasher("order_items", 11) not in tombs["order_items"]
    # released later: a later purge tombstones it again
    store.conn.execute("UPDATE legal_holds SET released_at = ?", (ts(D + H),))
    store.conn.commit()
    later = D + dt.timedelta(days=1)
    run(store, policy, keyring, tmp_path, at=later)
    assert store.ids("orders", "order_id") == set()
    assert hasher("orders", 1) in purge.load_tombstones(storage, keyring)["orders"]


def test_child_added_between_plan_and_delete_keeps_the_order_for_the_next_run(
    store: Store, policy, keyring, tmp_path
) -> None:
    store.customer(1)
    store.order(1, 1, D - 2 * YEAR)

    def add_refund(where: str) -> None:
        if where == "after_begin":
            store._insert(
                "payments",
                {
                    "payment_id": 999,
                    "order_id": 1,
                    "method": "konbini",
                    "card_brand": None,
                    "card_last4": None,
                    "amount_jpy": -5000,
                    "status": "refunded",
                    "paid_at": ts(D),
                    "updated_at": ts(D),
                },
            )

    out = run(store, policy, keyring, tmp_path, fault=add_refund)
    assert out.skipped["orders"] == 1 and out.purged["orders"] == 0
    assert store.ids("payments", "payment_id") == {11, 999}
    again = run(store, policy, keyring, tmp_path)
    assert again.purged["orders"] == 1 and again.purged["payments"] == 2
    assert store.ids("payments", "payment_id") == set()


# -- parameters, dates, labels -----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["false", 0, 1, None, "true", [], {}])
def test_dry_run_param_must_be_a_boolean(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="dry_run"):
        purge.validate_params({"dry_run": value})


def test_params_fail_closed() -> None:
    assert purge.validate_params({"dry_run": False}) == {"dry_run": False}
    assert purge.validate_params({"dry_run": True}) == {"dry_run": True}
    with pytest.raises(ConfigurationError, match="missing"):
        purge.validate_params({})
    with pytest.raises(ConfigurationError, match="unknown"):
        purge.validate_params({"dry_run": False, "force": True})


def test_logical_date_comes_from_the_triggering_backup_run() -> None:
    def event(logical, run_after=None, source=True):
        run = SimpleNamespace(logical_date=logical, run_after=run_after) if source else None
        return SimpleNamespace(source_dag_id="order_backup", source_run_id="r", source_dag_run=run)

    run_after = dt.datetime(2026, 11, 24, 0, 5, tzinfo=dt.UTC)
    older, newer = D - dt.timedelta(days=1), D
    ctx = {"triggering_asset_events": {"asset": [event(older), event(newer)]}}
    assert purge.logical_date_for(ctx, run_after) == (newer, "triggering asset event")
    assert purge.logical_date_for({"triggering_asset_events": {}}, D) == (D, "run")
    assert purge.logical_date_for({}, D) == (D, "run")
    # a backup triggered without a logical date took its point for its run_after (run_identity)
    manual = {"triggering_asset_events": {"a": [event(None, run_after=older)]}}
    assert purge.logical_date_for(manual, run_after) == (older, "triggering asset event")
    with pytest.raises(ConfigurationError, match="no source run"):
        purge.logical_date_for({"triggering_asset_events": {"a": [event(None, source=False)]}}, run_after)


@pytest.mark.parametrize(
    ("label", "start", "end"),
    [
        ("2026-11-24", dt.datetime(2026, 11, 24), dt.datetime(2026, 11, 25)),
        ("epoch-2026-W48", dt.datetime(2026, 11, 23), dt.datetime(2026, 11, 30)),
        ("2026-W53", dt.datetime(2026, 12, 28), dt.datetime(2027, 1, 4)),
        ("2026-12", dt.datetime(2026, 12, 1), dt.datetime(2027, 1, 1)),
    ],
)
def test_epoch_label_bounds(label: str, start: dt.datetime, end: dt.datetime) -> None:
    assert purge.epoch_label_bounds(label) == (start.replace(tzinfo=dt.UTC), end.replace(tzinfo=dt.UTC))


def test_epoch_label_bounds_rejects_other_labels() -> None:
    for bad in ("open", "2026-W54", "2026-13", "rp-20261123T160000Z"):
        with pytest.raises(IntegrityError):
            purge.epoch_label_bounds(bad)


def test_tombstone_filter_drops_only_tombstoned_keys(keyring) -> None:
    hasher = keyring.tombstone_hasher()
    tombs = {"orders": {hasher("orders", 2), hasher("orders", 5)}, "payments": {hasher("payments", 3)}}
    mask = purge.tombstone_filter("orders", np.array([1, 2, 3, 5]), tombs, hasher)
    assert mask.tolist() == [False, True, False, True]
    # the table is part of the hash: payment 3 is not order 3
    assert purge.tombstone_filter("orders", np.array([3]), tombs, hasher).tolist() == [False]
    assert purge.tombstone_filter("shipments", np.array([2]), tombs, hasher).tolist() == [False]
    assert purge.tombstone_filter("orders", np.array([], dtype=np.int64), tombs, hasher).tolist() == []
