"""The synthetic store on PostgreSQL: COPY load, contract schema, same rows as on SQLite."""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lomevexi_governance import seed
from lomevexi_governance.errors import ConfigurationError
from lomevexi_governance.settings import DatabaseTarget, sqlite_target

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

ADMIN_URI = "postgresql://postgres@127.0.0.1:5432/postgres"
AS_OF = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
ORDERS = 2000


def _admin():
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect(ADMIN_URI, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {exc}")


@pytest.fixture
def pg_target() -> Iterator[DatabaseTarget]:
    """A fresh, uniquely named database, dropped afterwards."""
    name = f"seed_test_{uuid.uuid4().hex[:12]}"
    admin = _admin()
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield DatabaseTarget(
            dialect="postgresql", conn_id="seed_test", host="127.0.0.1", port=5432, database=name,
            user="postgres",
        )
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_seed_postgres_matches_contract_and_sqlite(pg_target: DatabaseTarget, tmp_path: Path) -> None:
    import psycopg

    counts = seed.seed_store(pg_target, orders=ORDERS, as_of=AS_OF, seed=11)
    assert counts["orders"] == ORDERS
    with psycopg.connect(pg_target.postgres_uri()) as conn:
        for table, count in counts.items():
            assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == count, table
        assert counts["legal_holds"] >= 3 and counts["service_tickets"] > ORDERS * 0.04

        # the schema is the contract's: foreign keys (with PostgreSQL's default names), indexes, types
        fkeys = {
            r[0]
            for r in conn.execute(
                "SELECT conname FROM pg_constraint "
                "WHERE contype = 'f' AND connamespace = 'public'::regnamespace"
            )
        }
        assert fkeys == {
            "orders_customer_id_fkey", "order_items_order_id_fkey", "payments_order_id_fkey",
            "shipments_order_id_fkey", "service_tickets_customer_id_fkey", "service_tickets_order_id_fkey",
        }
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
        assert {
            "orders_pkey", "orders_order_number_key", "orders_completed_at", "orders_updated_at",
            "order_items_order_id", "staff_access_log_occurred_at", "site_visits_visited_at",
        } <= indexes
        kind = conn.execute(
            "SELECT data_type FROM information_schema.columns "
            "WHERE table_name = 'orders' AND column_name = 'completed_at'"
        ).fetchone()[0]
        assert kind == "timestamp with time zone"
        past = conn.execute(
            "SELECT COUNT(*) FILTER (WHERE completed_at + interval '365 days' <= %s), COUNT(completed_at) "
            "FROM orders",
            (AS_OF,),
        ).fetchone()
        assert 0.35 < past[0] / past[1] < 0.65
        pg_orders = conn.execute(
            "SELECT order_id, order_number, status, ordered_at, completed_at, recipient_name, address_line2 "
            "FROM orders ORDER BY order_id"
        ).fetchall()
        pg_tickets = conn.execute(
            "SELECT ticket_id, body, closed_at FROM service_tickets ORDER BY 1"
        ).fetchall()

    # the same arguments give the same rows on SQLite (COPY escaping and timestamps round-trip)
    lite = tmp_path / "same.db"
    seed.seed_store(sqlite_target(str(lite)), orders=ORDERS, as_of=AS_OF, seed=11)
    db = sqlite3.connect(lite)
    try:
        lite_orders = db.execute(
            "SELECT order_id, order_number, status, ordered_at, completed_at, recipient_name, address_line2 "
            "FROM orders ORDER BY order_id"
        ).fetchall()
        lite_tickets = db.execute(
            "SELECT ticket_id, body, closed_at FROM service_tickets ORDER BY 1"
        ).fetchall()
    finally:
        db.close()

    def ts(value: str | None) -> dt.datetime | None:
        return None if value is None else dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)

    assert len(pg_orders) == len(lite_orders)
    for pg_row, lite_row in zip(pg_orders, lite_orders, strict=True):
        assert pg_row[:3] == lite_row[:3]
        assert pg_row[3] == ts(lite_row[3]) and pg_row[4] == ts(lite_row[4])
        assert pg_row[5:] == lite_row[5:]
    assert [(t[0], t[1], t[2]) for t in pg_tickets] == [(t[0], t[1], ts(t[2])) for t in lite_tickets]
    assert any("\n" in t[1] for t in pg_tickets)


def test_create_schema_then_fill_on_postgres(pg_target: DatabaseTarget) -> None:
    seed.create_schema(pg_target)
    with pytest.raises(ConfigurationError, match="already has the table"):
        seed.create_schema(pg_target)
    counts = seed.seed_store(pg_target, orders=120, as_of=AS_OF, create=False)
    assert counts["orders"] == 120
    with pytest.raises(ConfigurationError, match="already has rows"):
        seed.seed_store(pg_target, orders=10, as_of=AS_OF, create=False)
