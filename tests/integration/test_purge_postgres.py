"""retention_purge against a real PostgreSQL store (fresh database per test; fails if PG is down)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from test_purge_sqlite import D1, ORDERS, check_purge_is_exact, crash_in_the_middle, run_purge, take_point

from lomevexi_governance import purge, seed
from lomevexi_governance.settings import DatabaseTarget, sqlite_target, target_from_uri
from lomevexi_governance.storage import Storage, storage_for

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def pg_seeded(pg_store: str) -> tuple[str, DatabaseTarget]:
    target = target_from_uri(pg_store, "store_db")
    seed.seed_store(target, orders=ORDERS, as_of=D1 - dt.timedelta(hours=1), create=False)
    return pg_store, target


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return storage_for(str(tmp_path / "backups"))


def _connect(uri: str):
    import psycopg

    return lambda: psycopg.connect(uri)


def test_purge_removes_exactly_the_due_rows_on_postgres(pg_seeded, storage, keyring, policy) -> None:
    uri, target = pg_seeded
    check_purge_is_exact(_connect(uri), policy, target, storage, keyring)


def test_a_killed_purge_rolls_back_its_batch_on_postgres(pg_seeded, storage, keyring, policy, root_key, tmp_path):
    uri, target = pg_seeded
    env = dict(
        os.environ, STORE=uri, BACKUPS=str(tmp_path / "backups"), KEYRING=str(keyring.path), ROOT_KEY=root_key.hex()
    )
    crash_in_the_middle(env, _connect(uri), policy, target, storage, keyring, "order_batch_children_deleted")


def test_both_dialects_agree_on_what_is_due(pg_seeded, policy, tmp_path) -> None:
    _uri, pg_target = pg_seeded
    lite = sqlite_target(str(tmp_path / "store.db"))
    seed.seed_store(lite, orders=ORDERS, as_of=D1 - dt.timedelta(hours=1))
    for at in (D1, D1 + dt.timedelta(days=40)):
        on_pg, on_lite = purge.compute_plan(policy, pg_target, at), purge.compute_plan(policy, lite, at)
        assert on_pg.counts() == on_lite.counts()
        assert on_pg.protected == on_lite.protected
        for table in on_pg.tables:
            assert on_pg.ids(table).tolist() == on_lite.ids(table).tolist(), table


def test_a_hold_committed_by_another_session_before_the_delete_is_respected(pg_seeded, storage, keyring, policy):
    import psycopg

    uri, target = pg_seeded
    take_point(policy, target, storage, keyring, D1)
    plan = purge.compute_plan(policy, target, D1)
    victim = int(plan.orders[0])

    def hold(where: str) -> None:
        if where == "after_begin":
            with psycopg.connect(uri, autocommit=True) as other:
                other.execute(
                    "INSERT INTO legal_holds VALUES (990001, 'order', %s, 'late hold', %s, NULL)",
                    (victim, D1 - dt.timedelta(minutes=5)),
                )

    out = run_purge(policy, target, storage, keyring, fault=hold)
    assert out.skipped["orders"] == 1 and out.purged["orders"] == len(plan.orders) - 1
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT count(*) FROM orders WHERE order_id = %s", (victim,)).fetchone()[0] == 1
        children = conn.execute("SELECT count(*) FROM order_items WHERE order_id = %s", (victim,)).fetchone()[0]
    assert children == int((plan.children["order_items"][1] == victim).sum())
    hasher = keyring.tombstone_hasher()
    assert hasher("orders", victim) not in purge.load_tombstones(storage, keyring)["orders"]
