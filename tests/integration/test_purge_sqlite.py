"""retention_purge against a real SQLite store: backup, purge, crash, rerun, restore, shred.

The expected result comes from :func:`oracle`, an independent, row-by-row reading of the rules
in plain Python (no numpy, no shared code with the library), so the library is checked against
the issue's text rather than against itself. The scenario helpers are shared with
``test_purge_postgres.py``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lomevexi_governance import backup, purge, seed
from lomevexi_governance import recovery_points as rp
from lomevexi_governance.crypto import open_encrypted
from lomevexi_governance.errors import IntegrityError, KeyMaterialError, NotFound
from lomevexi_governance.settings import DatabaseTarget, sqlite_target
from lomevexi_governance.storage import Storage, storage_for

pytestmark = pytest.mark.integration

#: order_backup's logical date for the night of 2026-11-24 (01:00 Asia/Tokyo)
D1 = dt.datetime(2026, 11, 23, 16, 0, tzinfo=dt.UTC)
YEAR = dt.timedelta(days=365)
CHILDREN = {"order_items": "order_item_id", "payments": "payment_id", "shipments": "shipment_id"}
PKS = {
    "orders": "order_id",
    **CHILDREN,
    "service_tickets": "ticket_id",
    "site_visits": "visit_id",
    "staff_access_log": "event_id",
    "customers": "customer_id",
    "legal_holds": "hold_id",
}
ORDERS = 3000


# -- an independent reading of the rules --------------------------------------------------------


def parse_ts(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    parsed = dt.datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def read_store(conn: Any) -> dict[str, Any]:
    """Every row's primary key and retention facts, read with plain SQL."""

    def q(sql: str) -> list[tuple]:
        return list(conn.execute(sql).fetchall())

    s: dict[str, Any] = {
        "customers": {r[0] for r in q("SELECT customer_id FROM customers")},
        "legal_holds": [
            (r[0], r[1], r[2], parse_ts(r[3]), parse_ts(r[4]))
            for r in q("SELECT hold_id, subject_type, subject_id, placed_at, released_at FROM legal_holds")
        ],
        "orders": {r[0]: (r[1], parse_ts(r[2])) for r in q("SELECT order_id, customer_id, completed_at FROM orders")},
        "service_tickets": {
            r[0]: (r[1], r[2], r[3], parse_ts(r[4]))
            for r in q("SELECT ticket_id, customer_id, order_id, status, closed_at FROM service_tickets")
        },
        "site_visits": {r[0]: parse_ts(r[1]) for r in q("SELECT visit_id, visited_at FROM site_visits")},
        "staff_access_log": {r[0]: parse_ts(r[1]) for r in q("SELECT event_id, occurred_at FROM staff_access_log")},
    }
    for table, pk in CHILDREN.items():
        s[table] = {r[0]: r[1] for r in q(f"SELECT {pk}, order_id FROM {table}")}
    return s


def ids(s: dict[str, Any], table: str) -> set[int]:
    value = s[table]
    return {r[0] for r in value} if table == "legal_holds" else set(value)


def oracle(s: dict[str, Any], at: dt.datetime) -> tuple[dict[str, set[int]], dict[int, str]]:
    """(due primary keys per table, {past-retention order kept: reason}) at ``at``."""
    active = [
        (typ, sid)
        for _h, typ, sid, placed, released in s["legal_holds"]
        if placed <= at and (released is None or released > at)
    ]
    held_orders = {sid for typ, sid in active if typ == "order"}
    held_customers = {sid for typ, sid in active if typ == "customer"}
    tickets = s["service_tickets"]
    open_orders = {oid for _c, oid, status, _cl in tickets.values() if status == "open" and oid is not None}

    def protection(oid: int) -> str | None:
        cid, _done = s["orders"][oid]
        if oid in held_orders or cid in held_customers:
            return "legal_hold"
        return "open_ticket" if oid in open_orders else None

    past = {oid for oid, (_c, done) in s["orders"].items() if done is not None and done + YEAR <= at}
    due = {oid for oid in past if protection(oid) is None}
    # an order goes only with all of its tickets
    due -= {oid for cid, oid, _st, _cl in tickets.values() if oid in due and cid in held_customers}
    out: dict[str, set[int]] = {"orders": due}
    for table in CHILDREN:
        out[table] = {pk for pk, oid in s[table].items() if oid in due}
    due_tickets = set()
    for tid, (cid, oid, status, closed) in tickets.items():
        if oid is not None and oid in due:
            due_tickets.add(tid)
        elif status == "closed" and closed is not None and closed + YEAR <= at and cid not in held_customers:
            if oid is None or oid not in s["orders"] or protection(oid) is None:
                due_tickets.add(tid)
    out["service_tickets"] = due_tickets
    out["site_visits"] = {v for v, t in s["site_visits"].items() if t + dt.timedelta(days=90) <= at}
    out["staff_access_log"] = {e for e, t in s["staff_access_log"].items() if t + dt.timedelta(days=1095) <= at}
    kept = {oid: protection(oid) or "legal_hold" for oid in past - due}
    return out, kept


def orphans(conn: Any) -> dict[str, int]:
    out = {}
    for table in (*CHILDREN, "service_tickets"):
        sql = (
            f"SELECT count(*) FROM {table} c WHERE c.order_id IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM orders o WHERE o.order_id = c.order_id)"
        )
        out[table] = conn.execute(sql).fetchone()[0]
    return out


# -- reading a recovery point like a restore does -------------------------------------------------


def restore_ids(storage: Storage, keys: Any, point_id: str, table: str) -> tuple[set[int], set[int], list[str]]:
    """(restorable ids after tombstones, tombstoned ids dropped, partitions erased by retention)."""
    point = rp.load_point(storage, point_id, keys)
    pk = point.manifest["tables"][table]["primary_key"]
    tombstones = purge.load_tombstones(storage, keys)
    hasher = keys.tombstone_hasher()
    kept: set[int] = set()
    dropped: set[int] = set()
    erased: list[str] = []
    for _name, f in point.files([table]):
        path = storage.full(f"{rp.point_dir(point_id)}/{f['path']}")
        try:
            pf = open_encrypted(path, keys)
        except KeyMaterialError as exc:
            assert "epoch/" in str(exc), str(exc)  # names the destroyed key
            assert purge.erased_by_retention(keys, f["key_ids"].values()), f["partition"]
            erased.append(f["partition"])
            continue
        values = pf.read(columns=[pk]).column(pk).to_pylist()
        mask = purge.tombstone_filter(table, values, tombstones, hasher)
        kept.update(v for v, drop in zip(values, mask, strict=True) if not drop)
        dropped.update(v for v, drop in zip(values, mask, strict=True) if drop)
    return kept, dropped, erased


# -- scenario ---------------------------------------------------------------------------------------


def take_point(policy, target: DatabaseTarget, storage: Storage, keys: Any, at: dt.datetime) -> str:
    out = backup.run_backup(
        policy=policy, target=target, storage=storage, keys=keys, logical_date=at, run_id=f"backup-{at:%Y%m%d}"
    )
    rp.verify_point(storage, keys, out.recovery_point_id, by="test")
    return out.recovery_point_id


def run_purge(policy, target, storage, keys, at: dt.datetime = D1, **kw) -> purge.PurgeOutcome:
    return purge.run_purge(
        policy=policy,
        target=target,
        storage=storage,
        keys=keys,
        logical_date=at,
        run_id=kw.pop("run_id", f"purge-{at:%Y%m%d}"),
        dry_run=kw.pop("dry_run", False),
        **kw,
    )


def check_purge_is_exact(connect, policy, target, storage, keys) -> dict[str, Any]:
    """Backup, dry run, purge, second run; the store loses exactly the due rows. Returns the facts."""
    point_id = take_point(policy, target, storage, keys, D1)
    with connect() as conn:
        before = read_store(conn)
    expected, kept = oracle(before, D1)
    assert len(expected["orders"]) > 100 and kept, "the seed must exercise due and protected orders"
    assert {r for r in kept.values()} == {"legal_hold", "open_ticket"}

    preview = run_purge(policy, target, storage, keys, dry_run=True, run_id="preview")
    assert preview.due == {t: len(v) for t, v in expected.items()}
    with connect() as conn:
        assert read_store(conn) == before

    out = run_purge(policy, target, storage, keys, batch_size=500)
    assert out.purged == {t: len(v) for t, v in expected.items()}
    assert out.protected == {
        "legal_hold": sum(r == "legal_hold" for r in kept.values()),
        "open_ticket": sum(r == "open_ticket" for r in kept.values()),
    }
    with connect() as conn:
        after = read_store(conn)
        assert orphans(conn) == dict.fromkeys((*CHILDREN, "service_tickets"), 0)
    for table, due in expected.items():
        assert ids(before, table) - ids(after, table) == due, table
    assert ids(after, "customers") == ids(before, "customers")
    assert ids(after, "legal_holds") == ids(before, "legal_holds")
    assert set(kept) <= ids(after, "orders")

    again = run_purge(policy, target, storage, keys, run_id="again")
    assert sum(again.purged.values()) == 0 and sum(again.due.values()) == 0

    # a restore of the point taken before the purge: none of the purged, all of the protected
    restored, dropped, erased = restore_ids(storage, keys, point_id, "orders")
    assert erased == []
    assert restored.isdisjoint(expected["orders"])
    assert dropped == expected["orders"]
    assert set(kept) <= restored
    items, dropped_items, _ = restore_ids(storage, keys, point_id, "order_items")
    assert dropped_items == expected["order_items"] and items.isdisjoint(expected["order_items"])
    return {"point_id": point_id, "before": before, "expected": expected, "kept": kept}


def crash_in_the_middle(env: dict[str, str], connect, policy, target, storage, keys, where: str) -> None:
    """Kill the purging process (os._exit, no cleanup) inside the second order batch; rerun."""
    take_point(policy, target, storage, keys, D1)
    with connect() as conn:
        before = read_store(conn)
    expected, _kept = oracle(before, D1)
    script = f"""
import datetime as dt, os, sys
from lomevexi_governance import purge
from lomevexi_governance.keys import LocalKeyring
from lomevexi_governance.policy import load_policy
from lomevexi_governance.settings import target_from_uri, sqlite_target
from lomevexi_governance.storage import storage_for
seen = []
def fault(where):
    seen.append(where)
    if where == {where!r} and seen.count(where) == 2:
        os._exit(137)
uri = os.environ["STORE"]
target = sqlite_target(uri) if not uri.startswith("postgresql") else target_from_uri(uri)
purge.run_purge(policy=load_policy(), target=target, storage=storage_for(os.environ["BACKUPS"]),
                keys=LocalKeyring(os.environ["KEYRING"], bytes.fromhex(os.environ["ROOT_KEY"])),
                logical_date=dt.datetime.fromisoformat({D1.isoformat()!r}), run_id="crashing",
                dry_run=False, batch_size=200, fault=fault)
sys.exit(3)
"""
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 137, proc.stderr[-3000:]
    with connect() as conn:
        middle = read_store(conn)
        assert orphans(conn) == dict.fromkeys((*CHILDREN, "service_tickets"), 0)
    gone = ids(before, "orders") - ids(middle, "orders")
    assert len(gone) == 200 and gone <= expected["orders"]  # exactly the first, committed batch
    gone_items = ids(before, "order_items") - ids(middle, "order_items")
    assert gone_items == {pk for pk, oid in before["order_items"].items() if oid in gone}
    # the tombstones were written before anything was deleted: they already cover every due row
    tombs = purge.load_tombstones(storage, keys)
    assert len(tombs["orders"]) == len(expected["orders"])
    verification = purge.verify_ledger(storage)
    assert [a["run_id"] for a in verification["incomplete_attempts"]] == ["crashing"]

    out = run_purge(policy, target, storage, keys, run_id="crashing")  # Airflow's retry: same run id
    assert out.purged["orders"] == len(expected["orders"]) - 200
    with connect() as conn:
        after = read_store(conn)
        assert orphans(conn) == dict.fromkeys((*CHILDREN, "service_tickets"), 0)
    for table, due in expected.items():
        assert ids(before, table) - ids(after, table) == due, table
    assert len(purge.load_tombstones(storage, keys)["orders"]) == len(expected["orders"])


# -- SQLite ------------------------------------------------------------------------------------------


@pytest.fixture
def seeded(tmp_path: Path) -> DatabaseTarget:
    target = sqlite_target(str(tmp_path / "store.db"), "store_db")
    seed.seed_store(target, orders=ORDERS, as_of=D1 - dt.timedelta(hours=1))
    return target


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return storage_for(str(tmp_path / "backups"))


def _connect(target: DatabaseTarget):
    return lambda: sqlite3.connect(target.path)


def test_purge_removes_exactly_the_due_rows_and_restores_never_bring_them_back(seeded, storage, keyring, policy):
    check_purge_is_exact(_connect(seeded), policy, seeded, storage, keyring)


def test_shredded_epochs_are_unreadable_in_older_points_and_the_rest_restores(seeded, storage, keyring, policy):
    facts = check_purge_is_exact(_connect(seeded), policy, seeded, storage, keyring)
    old_point = facts["point_id"]
    d2 = D1 + dt.timedelta(days=21)
    with sqlite3.connect(seeded.path) as conn:
        before2 = read_store(conn)
    expected2, kept2 = oracle(before2, d2)
    new_point = take_point(policy, seeded, storage, keyring, d2)
    out = run_purge(policy, seeded, storage, keyring, at=d2)
    assert out.purged["orders"] == len(expected2["orders"]) > 0
    # every week that ended by d2 is shredded; only epoch keys, never a point's own keys
    assert out.shred_epochs == ["2026-W48", "2026-W49", "2026-W50"]
    assert out.shredded_keys and all(k.startswith("epoch/") for k in out.shredded_keys)
    assert {k.key_id for k in keyring.list_keys("rp/") if k.state == "destroyed"} == set()
    # the older point: shredded partitions erased by retention, the others restore
    restored, _dropped, erased = restore_ids(storage, keyring, old_point, "orders")
    assert sorted(erased) == ["epoch-2026-W48", "epoch-2026-W49", "epoch-2026-W50"]
    purged_ever = facts["expected"]["orders"] | expected2["orders"]
    assert restored.isdisjoint(purged_ever)
    assert set(kept2) <= restored and set(facts["kept"]) <= restored
    assert restored  # open, protected and later epochs still decrypt
    # the newest point is untouched: every file decrypts, its pending rows are tombstoned
    new_restored, new_dropped, new_erased = restore_ids(storage, keyring, new_point, "orders")
    assert new_erased == [] and new_dropped == expected2["orders"]
    assert set(kept2) <= new_restored
    # shredding is idempotent: a rerun destroys nothing more and the run id is the same
    again = run_purge(policy, seeded, storage, keyring, at=d2, run_id="later")
    assert again.shredded_keys == [] and sum(again.purged.values()) == 0
    ledger_text = storage.read_bytes(purge.LEDGER_REL).decode()
    assert ledger_text.count('"event":"shred"') == 1 and "epoch/2026-W48/footer" in ledger_text


def test_guard_fails_closed_without_a_fresh_verified_point(seeded, storage, keyring, policy):
    with pytest.raises(NotFound, match="order_backup must succeed"):
        run_purge(policy, seeded, storage, keyring)
    preview = run_purge(policy, seeded, storage, keyring, dry_run=True)  # a preview still works
    assert preview.guard["ok"] is False and preview.due["orders"] > 0
    point_id = take_point(policy, seeded, storage, keyring, D1)
    rp.record(storage, "verifications", point_id, {"ok": False, "error": "tampered"})
    with pytest.raises(IntegrityError, match="not verified"):
        run_purge(policy, seeded, storage, keyring)
    rp.verify_point(storage, keyring, point_id, by="test")
    take_point(policy, seeded, storage, keyring, D1 + dt.timedelta(days=1))
    with pytest.raises(IntegrityError, match="newest verified recovery point is rp-20261124T160000Z"):
        run_purge(policy, seeded, storage, keyring)
    with sqlite3.connect(seeded.path) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == ORDERS


def test_a_killed_purge_leaves_no_orphans_and_the_rerun_finishes(seeded, storage, keyring, policy, root_key, tmp_path):
    env = dict(
        os.environ,
        STORE=seeded.path,
        BACKUPS=str(tmp_path / "backups"),
        KEYRING=str(keyring.path),
        ROOT_KEY=root_key.hex(),
    )
    crash_in_the_middle(env, _connect(seeded), policy, seeded, storage, keyring, "order_batch_children_deleted")


def test_summary_and_report_hold_counts_not_values(seeded, storage, keyring, policy, tmp_path):
    take_point(policy, seeded, storage, keyring, D1)
    with sqlite3.connect(seeded.path) as conn:
        expected, _kept = oracle(read_store(conn), D1)
        values = [
            v
            for r in conn.execute("SELECT order_id, order_number, recipient_name, city FROM orders")
            if r[0] in expected["orders"]
            for v in r[1:]
        ]
    out = run_purge(policy, seeded, storage, keyring)
    s = purge.summary(out, dag_id="retention_purge", verification=purge.verify_ledger(storage))
    assert s["dry_run"] is False and s["purged"]["orders"] > 0
    assert set(s["protected"]) == {"legal_hold", "open_ticket"}
    assert s["shredded_keys"] == [] and s["ledger"]["head"]["seq"] == 2
    evidence = [json.dumps(s, ensure_ascii=False), purge.render_html(s), storage.read_bytes(purge.LEDGER_REL).decode()]
    assert values and not any(v in text for v in values for text in evidence)


def test_a_point_pinned_by_a_running_drill_defers_shredding_its_epochs(seeded, storage, keyring, policy):
    facts = check_purge_is_exact(_connect(seeded), policy, seeded, storage, keyring)
    old_point = facts["point_id"]
    d2 = D1 + dt.timedelta(days=21)
    take_point(policy, seeded, storage, keyring, d2)
    rp.pin(storage, old_point, "restore_drill/manual__drill", expires_at=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
    out = run_purge(policy, seeded, storage, keyring, at=d2)
    assert out.shredded_keys == [] and out.purged["orders"] > 0  # the store is purged all the same
    assert set(out.shred_deferred) == {"2026-W48", "2026-W49", "2026-W50"}
    assert all(points == [old_point] for points in out.shred_deferred.values())
    _restored, _dropped, erased = restore_ids(storage, keyring, old_point, "orders")
    assert erased == []  # the drill can still read every partition
    rp.unpin(storage, old_point, "restore_drill/manual__drill")
    later = run_purge(policy, seeded, storage, keyring, at=d2, run_id="after-the-drill")
    assert later.shred_epochs == ["2026-W48", "2026-W49", "2026-W50"] and later.shred_deferred == {}
