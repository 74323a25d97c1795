"""Restore drills against a real SQLite store and real recovery points (library level, no Airflow).

One seeded store with the awkward values real stores hold (Japanese, emoji, NULLs, fractional
seconds) is backed up once per module, with the Great Expectations gate; tests that tamper with
something work on a copy of the store, the backups and the keyring.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lomevexi_governance import recovery_points as rp
from lomevexi_governance import restore
from lomevexi_governance.backup import run_backup
from lomevexi_governance.keys import LocalKeyring
from lomevexi_governance.ledger import Ledger
from lomevexi_governance.policy import load_policy
from lomevexi_governance.settings import DatabaseTarget, sqlite_target
from lomevexi_governance.storage import storage_for
from lomevexi_governance.validation import GxValidator

pytestmark = pytest.mark.integration
UTC = dt.UTC
AS_OF = dt.datetime(2026, 11, 24, tzinfo=UTC)
LOGICAL = dt.datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
POINT = rp.point_id_for(LOGICAL)
ROOT_KEY = bytes(range(32))
BIG = 900_000_000  # ids of the hand-made rows, far from the seeded ones

AWKWARD = {
    "customers": [
        {
            "customer_id": BIG + 1,
            "email": "hanako.yamada+test@example.co.jp",
            "created_at": "2024-02-29 23:59:59.999999",
            "updated_at": "2026-11-20 00:00:00.000001",
        },
    ],
    "orders": [
        {
            "order_id": BIG + 1,
            "order_number": "LMX-20261120-900001",
            "customer_id": BIG + 1,
            "status": "placed",
            "ordered_at": "2026-11-20 09:15:30.5",
            "completed_at": None,
            "total_amount_jpy": 12800,
            "recipient_name": "山田 花子🌸",
            "recipient_phone": "090-1234-5678",
            "postal_code": "150-0041",
            "prefecture": "東京都",
            "city": "渋谷区",
            "address_line1": "神南1-2-3 「ビル」\tA棟",
            "address_line2": None,
            "updated_at": "2026-11-20 09:15:30.5",
        },
    ],
    "order_items": [
        {
            "order_item_id": BIG + 1,
            "order_id": BIG + 1,
            "sku": "LMX-TP-0042",
            "category": "tops",
            "style": "リネンシャツ 😀",
            "size": "M",
            "color": "紺 / ネイビー",
            "quantity": 2,
            "unit_price_jpy": 6400,
        },
    ],
    "payments": [
        {
            "payment_id": BIG + 1,
            "order_id": BIG + 1,
            "method": "konbini",
            "card_brand": None,
            "card_last4": None,
            "amount_jpy": 12800,
            "status": "authorized",
            "paid_at": None,
            "updated_at": "2026-11-20 09:15:31",
        },
    ],
    "shipments": [
        {
            "shipment_id": BIG + 1,
            "order_id": BIG + 1,
            "carrier": "japan_post",
            "tracking_number": None,
            "status": "pending",
            "shipped_at": None,
            "delivered_at": None,
            "updated_at": "2026-11-20 09:15:31",
        },
    ],
    "service_tickets": [
        {
            "ticket_id": BIG + 1,
            "customer_id": BIG + 1,
            "order_id": None,
            "kind": "inquiry",
            "status": "open",
            "subject": "サイズについて",
            "body": 'Lサイズはありますか？\n"引用" と \\ バックスラッシュ 🙏',
            "attachment_count": 0,
            "opened_at": "2026-11-21 10:00:00.123456",
            "closed_at": None,
            "updated_at": "2026-11-21 10:00:00.123456",
        },
    ],
}


def insert(path: Path, rows: dict[str, list[dict[str, Any]]]) -> None:
    conn = sqlite3.connect(path)
    for table, data in rows.items():
        cols = list(data[0])
        conn.executemany(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [tuple(r[c] for c in cols) for r in data],
        )
    conn.commit()
    conn.close()


def backup(store: Path, root: Path, keys: LocalKeyring) -> None:
    policy = load_policy()
    run_backup(
        policy=policy,
        target=sqlite_target(str(store), conn_id="store_db"),
        storage=storage_for(str(root)),
        keys=keys,
        logical_date=LOGICAL,
        run_id="scheduled__backup",
        validator_factory=lambda p, t: GxValidator(p, root.parent / "validation", tables=t),
    )


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lomevexi_governance.seed import seed_store

    d = tmp_path_factory.mktemp("restore_base")
    seed_store(sqlite_target(str(d / "store.db")), orders=300, as_of=AS_OF)
    insert(d / "store.db", AWKWARD)
    backup(d / "store.db", d / "backups", LocalKeyring(d / "kms" / "keyring.db", ROOT_KEY))
    return d


@dataclass
class Drill:
    dir: Path
    keys: LocalKeyring

    @property
    def store_path(self) -> Path:
        return self.dir / "store.db"

    @property
    def store(self) -> DatabaseTarget:
        return sqlite_target(str(self.store_path), conn_id="store_db")

    @property
    def storage(self) -> Any:
        return storage_for(str(self.dir / "backups"))

    @property
    def point_dir(self) -> Path:
        return self.dir / "backups" / "recovery_points" / POINT

    def manifest(self) -> dict:
        return json.loads((self.point_dir / "manifest.json").read_text())

    def run(self, params: dict | None = None, run_id: str = "manual__drill", **kwargs: Any) -> dict:
        return restore.run_drill(
            params or {},
            policy=load_policy(),
            storage=self.storage,
            keys=self.keys,
            store=self.store,
            report_root=str(self.dir / "reports"),
            run_id=run_id,
            **kwargs,
        )

    def report_dir(self, run_id: str = "manual__drill") -> Path:
        return self.dir / "reports" / "restore_drill" / run_id


@pytest.fixture
def drill(base: Path, tmp_path: Path) -> Drill:
    shutil.copy(base / "store.db", tmp_path / "store.db")
    shutil.copytree(base / "backups", tmp_path / "backups")
    shutil.copytree(base / "kms", tmp_path / "kms")
    return Drill(tmp_path, LocalKeyring(tmp_path / "kms" / "keyring.db", ROOT_KEY))


TS_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{6})?$")


def all_rows(path: Path | str, table: str, columns: list[str], pk: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {pk}").fetchall()
    finally:
        conn.close()


def instant(text: str | None) -> dt.datetime | None:
    """A stored SQLite timestamp (UTC by contract) as an aware instant."""
    if text is None:
        return None
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def canonical(rows: list[tuple], types: list[str]) -> list[tuple]:
    return [tuple(instant(v) if t == "timestamp" else v for v, t in zip(r, types, strict=True)) for r in rows]


def restored_tables(path: Path) -> list[str]:
    if not path.exists():
        return []
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    finally:
        conn.close()


# -- the promise: it comes back exactly ---------------------------------------------------------


def test_latest_restores_every_row_and_column_exactly(drill: Drill):
    summary = drill.run({"recovery_point": "latest", "keep_restored": True}, triggered_by="oncall")
    assert summary["status"] == "SUCCESSFUL", summary["failure"]
    assert summary["recovery_point_id"] == POINT and summary["triggered_by"] == "oncall"
    restored = Path(summary["restored_to"])
    assert restored.exists() and restored.parent == drill.report_dir()
    policy = load_policy()
    for table in policy.backup_tables:
        types = [c.type for c in table.columns]
        want = all_rows(drill.store_path, table.name, table.column_names, table.primary_key)
        got = all_rows(restored, table.name, table.column_names, table.primary_key)
        # every value equal: text and integers byte for byte, timestamps as the same UTC instant
        assert canonical(got, types) == canonical(want, types), table.name
        for row in got:  # stored the store's way: ISO-8601 UTC text
            assert all(TS_TEXT.match(v) for v, t in zip(row, types, strict=True) if t == "timestamp" and v), row
        t = summary["tables"][table.name]
        assert t["expected_rows"] == t["restored_rows"] == len(want) and t["checksums"] == "ok"
        assert t["live_store"]["mismatched_rows"] == 0
    # awkward values came back as they were
    row = (
        sqlite3.connect(restored)
        .execute(
            f"SELECT recipient_name, address_line2, ordered_at, address_line1 FROM orders WHERE order_id = {BIG + 1}"
        )
        .fetchone()
    )
    assert row == ("山田 花子🌸", None, "2026-11-20 09:15:30.500000", "神南1-2-3 「ビル」\tA棟")
    assert summary["rto_seconds"] > 0 and summary["rpo_seconds"] > 0
    assert summary["shredded_partitions_skipped"] == []
    assert summary["validation"]["ok"] and summary["point"]["files_verified"] > 0
    # evidence: report without customer data, hash-chained history, catalog record, pin released
    page = (drill.report_dir() / "report.html").read_text()
    assert "SUCCESSFUL" in page and "山田" not in page and "example.co.jp" not in page
    history = Ledger(storage_for(str(drill.dir / "reports")), restore.HISTORY_REL)
    assert history.verify()["entries"] == 1 and history.entries()[-1]["status"] == "SUCCESSFUL"
    assert rp.read_record(drill.storage, "drills", POINT)["status"] == "SUCCESSFUL"
    assert rp.active_pins(drill.storage, POINT) == []


def test_by_default_the_scratch_copy_is_removed(drill: Drill):
    summary = drill.run({"recovery_point": POINT, "verification": "sample", "tables": ["orders", "order_items"]})
    assert summary["status"] == "SUCCESSFUL", summary["failure"]
    assert not (drill.report_dir() / restore.SCRATCH_FILE).exists()
    assert "restored_to" not in summary and summary["teardown"]["kept"] is False
    assert set(summary["tables"]) == {"orders", "order_items"}
    live = summary["tables"]["orders"]["live_store"]
    assert live["mode"] == "sample" and 0 < live["rows_checked"] <= load_policy().drill_sample_rows
    refs = {r["column"]: r["status"] for r in summary["tables"]["order_items"]["references"]}
    assert refs == {"order_id": "ok"}


# -- loud, precise failures ---------------------------------------------------------------------


def test_one_flipped_byte_fails_naming_the_file_before_anything_is_loaded(drill: Drill):
    victim = sorted((drill.point_dir / "data" / "orders").glob("*/part-00000.parquet"))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    summary = drill.run({"keep_restored": True})
    assert summary["status"] == "FAILED"
    rel = victim.relative_to(drill.point_dir).as_posix()
    assert summary["failure"]["step"] == "verify_point" and rel in summary["failure"]["error"]
    assert restored_tables(drill.report_dir() / restore.SCRATCH_FILE) == []
    with pytest.raises(restore.DrillFailed, match=rel):
        restore.raise_for_status(summary)


def test_a_destroyed_key_that_retention_did_not_destroy_names_the_key(drill: Drill):
    key_id = f"rp/{POINT}/open/contact"
    drill.keys.destroy(key_id, reason="operator error", run_id="manual__oops")
    summary = drill.run()
    assert summary["status"] == "FAILED" and summary["failure"]["step"] == "verify_point"
    assert repr(key_id) in summary["failure"]["error"] and "operator error" in summary["failure"]["error"]


def test_a_missing_key_names_the_key(drill: Drill):
    key_id = f"rp/{POINT}/open/operational"
    conn = sqlite3.connect(drill.dir / "kms" / "keyring.db")
    conn.execute("DELETE FROM keys WHERE key_id = ?", (key_id,))  # gone without a tombstone
    conn.commit()
    conn.close()
    summary = drill.run()
    assert summary["status"] == "FAILED" and repr(key_id) in summary["failure"]["error"]
    assert "missing" in summary["failure"]["error"]


def test_a_bad_signature_fails_before_anything_is_loaded(drill: Drill):
    manifest = (drill.point_dir / "manifest.json").read_text()
    (drill.point_dir / "manifest.json").write_text(manifest.replace('"rows": 301', '"rows": 300', 1))
    assert (drill.point_dir / "manifest.json").read_text() != manifest
    summary = drill.run({"keep_restored": True})
    assert summary["status"] == "FAILED" and summary["failure"]["step"] == "verify_point"
    assert "signature" in summary["failure"]["error"]
    assert not (drill.report_dir() / "state" / "restore.json").exists()
    assert restored_tables(drill.report_dir() / restore.SCRATCH_FILE) == []


def test_an_unknown_point_lists_the_available_ones(drill: Drill):
    summary = drill.run({"recovery_point": "rp-20200101T000000Z"})
    assert summary["status"] == "FAILED" and summary["failure"]["step"] == "validate_params"
    assert "unknown recovery point 'rp-20200101T000000Z'" in summary["failure"]["error"]
    assert POINT in summary["failure"]["error"]


def test_the_store_itself_is_never_a_target(drill: Drill):
    summary = drill.run({"target_conn_id": "store_copy"}, target=sqlite_target(str(drill.store_path), "store_copy"))
    assert summary["status"] == "FAILED" and "points at the live store" in summary["failure"]["error"]


def test_a_restore_that_changes_a_value_is_caught_naming_the_column(drill: Drill, monkeypatch):
    import pyarrow as pa
    import pyarrow.compute as pc

    write = restore._Loader._write_sqlite

    def corrupt(self, batch):
        if self.table.name == "shipments" and batch.num_rows:
            carrier = pc.if_else(pc.equal(batch.column("carrier"), "yamato"), "sagawa", batch.column("carrier"))
            batch = pa.RecordBatch.from_arrays(
                [carrier if n == "carrier" else batch.column(n) for n in batch.schema.names], schema=batch.schema
            )
        write(self, batch)

    monkeypatch.setattr(restore._Loader, "_write_sqlite", corrupt)
    summary = drill.run({"tables": ["orders", "shipments"]})
    assert summary["status"] == "FAILED" and summary["failure"]["step"] == "verify_restored"
    assert "shipments: checksum mismatch in column(s) ['carrier']" in summary["failure"]["error"]
    assert summary["tables"]["shipments"]["mismatched_columns"] == ["carrier"]


def test_the_time_limit_gives_timed_out(drill: Drill):
    summary = drill.run(timeout=dt.timedelta(0))
    assert summary["status"] == "TIMED_OUT" and "timed out" in summary["failure"]["error"]
    with pytest.raises(restore.DrillTimedOut):
        restore.raise_for_status(summary)
    assert rp.active_pins(drill.storage, POINT) == []


# -- retention: shredding and purge tombstones ----------------------------------------------------


def test_a_partition_shredded_by_retention_is_skipped_and_the_drill_succeeds(drill: Drill):
    from lomevexi_governance.crypto import open_encrypted

    manifest = drill.manifest()
    epochs = sorted(p for p, d in manifest["partitions"].items() if d["kind"] == "epoch")
    label = epochs[0]
    prefix = manifest["partitions"][label]["key_prefix"]
    rows = {t: sum(f["rows"] for f in m["files"] if f["partition"] == label) for t, m in manifest["tables"].items()}
    # what retention_purge does: tombstones for the epoch's orders and every child that goes with
    # them (a closed ticket may sit in another partition: its own clock ends earlier), then shred
    [orders_file] = [f for f in manifest["tables"]["orders"]["files"] if f["partition"] == label]
    order_ids = open_encrypted(str(drill.point_dir / orders_file["path"]), drill.keys).read(["order_id"])
    order_ids = order_ids.column(0).to_pylist()
    conn = sqlite3.connect(drill.store_path)
    marks = ",".join("?" * len(order_ids))
    tickets = [
        r[0] for r in conn.execute(f"SELECT ticket_id FROM service_tickets WHERE order_id IN ({marks})", order_ids)
    ]
    conn.close()
    hasher = drill.keys.tombstone_hasher()
    tombstones = {
        "orders": set(hasher.many("orders", order_ids)),
        "service_tickets": set(hasher.many("service_tickets", tickets)),
    }
    for info in drill.keys.list_keys(prefix + "/"):
        drill.keys.destroy(info.key_id, reason=f"retention: epoch {label} ended", run_id="retention_purge__x")
    summary = drill.run(tombstones=tombstones)
    assert summary["status"] == "SUCCESSFUL", summary["failure"]
    [skipped] = summary["shredded_partitions_skipped"]
    assert skipped["partition"] == label and skipped["erased_by"] == "retention"
    assert skipped["tables"] == {t: n for t, n in rows.items() if n}
    for table, n in rows.items():
        t = summary["tables"][table]
        dropped = t["dropped_by_purge_tombstones"]
        assert t["skipped_shredded_rows"] == n and t["restored_rows"] == t["rows_in_point"] - n - dropped
        assert t["checksums"] == "ok"
    assert summary["tables"]["orders"]["dropped_by_purge_tombstones"] == 0  # all inside the shredded files
    # the store still has those rows (no purge ran here): reported, not a mismatch
    assert summary["tables"]["orders"]["live_store"]["missing_from_restore"] == rows["orders"] > 0


def test_purge_tombstones_are_reapplied_and_checksums_stay_exact(drill: Drill):
    hasher = drill.keys.tombstone_hasher()
    conn = sqlite3.connect(drill.store_path)
    orders = [r[0] for r in conn.execute("SELECT order_id FROM orders ORDER BY order_id LIMIT 5")]
    marks = ",".join("?" * len(orders))
    children = {
        t: [r[0] for r in conn.execute(f"SELECT {pk} FROM {t} WHERE order_id IN ({marks})", orders)]
        for t, pk in (("order_items", "order_item_id"), ("payments", "payment_id"), ("shipments", "shipment_id"))
    }
    for t in children:  # the purge deleted them from the store too
        conn.execute(f"DELETE FROM {t} WHERE order_id IN ({marks})", orders)
    conn.execute(f"UPDATE service_tickets SET order_id = NULL WHERE order_id IN ({marks})", orders)
    conn.execute(f"DELETE FROM orders WHERE order_id IN ({marks})", orders)
    conn.commit()
    conn.close()
    tombstones = {"orders": set(hasher.many("orders", orders))}
    tombstones |= {t: set(hasher.many(t, pks)) for t, pks in children.items()}
    params = {"keep_restored": True, "tables": ["orders", "order_items", "payments", "shipments", "service_tickets"]}
    summary = drill.run(params, tombstones=tombstones)
    assert summary["status"] == "SUCCESSFUL", summary["failure"]
    assert summary["tables"]["orders"]["dropped_by_purge_tombstones"] == 5
    for t, pks in children.items():
        assert summary["tables"][t]["dropped_by_purge_tombstones"] == len(pks)
        assert summary["tables"][t]["checksums"] == "ok"
    restored = sqlite3.connect(summary["restored_to"])
    assert restored.execute(f"SELECT count(*) FROM orders WHERE order_id IN ({marks})", orders).fetchone() == (0,)
    assert summary["tables"]["order_items"]["references"][0]["status"] == "ok"


# -- the live store ---------------------------------------------------------------------------------


def test_live_store_changes_without_trace_fail_and_traced_changes_do_not(drill: Drill):
    conn = sqlite3.connect(drill.store_path)
    # changed since the point, with updated_at moved on: fine
    conn.execute(
        f"UPDATE payments SET status = 'refunded', updated_at = '2030-01-01 00:00:00' WHERE payment_id = {BIG + 1}"
    )
    # deleted since the point: fine
    conn.execute(f"DELETE FROM shipments WHERE shipment_id = {BIG + 1}")
    conn.commit()
    tables = {"tables": ["orders", "payments", "shipments"]}
    summary = drill.run(tables, run_id="manual__traced")
    assert summary["status"] == "SUCCESSFUL", summary["failure"]
    assert summary["tables"]["payments"]["live_store"]["changed_since_point"] == 1
    assert summary["tables"]["shipments"]["live_store"]["absent_from_store"] == 1
    # changed without touching updated_at: the restore and the store disagree on an unchanged row
    conn.execute(f"UPDATE orders SET city = '大阪市' WHERE order_id = {BIG + 1}")
    conn.commit()
    conn.close()
    summary = drill.run(tables, run_id="manual__untraced")
    assert summary["status"] == "FAILED" and summary["failure"]["step"] == "verify_restored"
    live = summary["tables"]["orders"]["live_store"]
    assert live["mismatched_rows"] == 1 and live["mismatched_columns"] == {"city": 1}
    assert live["mismatched_primary_keys"] == [BIG + 1]
    assert "大阪" not in json.dumps(summary, ensure_ascii=False)  # keys and counts, never values


def test_data_quality_problems_already_in_the_store_are_reported_not_failed(tmp_path: Path):
    from tests.conftest import create_sqlite_store
    from tests.integration.storefixtures import PLANTED_CARDS, load_sqlite, store_rows

    store = create_sqlite_store(tmp_path / "store.db")
    load_sqlite(str(store), store_rows(planted=True))  # card numbers, malformed phone, e-mail in a name
    keys = LocalKeyring(tmp_path / "kms" / "keyring.db", ROOT_KEY)
    backup(store, tmp_path / "backups", keys)
    d = Drill(tmp_path, keys)
    assert d.manifest()["validation"]["success"] is False
    summary = d.run({"keep_restored": True, "tables": ["customers", "orders", "payments", "service_tickets"]})
    assert summary["status"] == "SUCCESSFUL", summary["failure"]
    orders = summary["tables"]["orders"]["validation"]
    assert orders["status"] == "match" and "recipient_phone.format_jp_phone" in orders["pre_existing_failures"]
    # card numbers were masked in the backup; the live comparison masks the store the same way
    assert summary["tables"]["service_tickets"]["live_store"]["mismatched_rows"] == 0
    bodies = " ".join(r[0] for r in sqlite3.connect(summary["restored_to"]).execute("SELECT body FROM service_tickets"))
    assert not any(n in bodies.replace(" ", "").replace("-", "") for n in PLANTED_CARDS)


def test_partitions_split_over_several_files_restore_every_row_exactly(tmp_path: Path, monkeypatch):
    """A table with more partitions than open writers: partitions continue in part-00001 ...;
    the point verifies and the drill brings every row back."""
    from lomevexi_governance.seed import seed_store

    monkeypatch.setattr(rp, "MAX_OPEN_FILES", 1)
    monkeypatch.setattr(rp, "BUFFER_BYTES", 1)  # every batch flushed: writers open and close all the time
    seed_store(sqlite_target(str(tmp_path / "store.db")), orders=300, as_of=AS_OF)
    keys = LocalKeyring(tmp_path / "kms" / "keyring.db", ROOT_KEY)
    policy = dataclasses.replace(load_policy(), batch_rows=25)  # many batches, as a big store has
    run_backup(policy=policy, target=sqlite_target(str(tmp_path / "store.db"), conn_id="store_db"),
               storage=storage_for(str(tmp_path / "backups")), keys=keys, logical_date=LOGICAL,
               run_id="scheduled__backup")
    drill = Drill(tmp_path, keys)
    files = drill.manifest()["tables"]["orders"]["files"]
    per_partition: dict[str, int] = {}
    for f in files:
        per_partition[f["partition"]] = per_partition.get(f["partition"], 0) + 1
    assert max(per_partition.values()) > 1, per_partition
    assert any(f["path"].endswith("/part-00001.parquet") for f in files)
    assert rp.verify_point(drill.storage, keys, POINT, by="test")["ok"]
    summary = drill.run({"recovery_point": "latest", "keep_restored": True})
    assert summary["status"] == "SUCCESSFUL", summary["failure"]
    restored = Path(summary["restored_to"])
    for table in load_policy().backup_tables:
        types = [c.type for c in table.columns]
        want = all_rows(drill.store_path, table.name, table.column_names, table.primary_key)
        got = all_rows(restored, table.name, table.column_names, table.primary_key)
        assert canonical(got, types) == canonical(want, types), table.name
        assert summary["tables"][table.name]["checksums"] == "ok"
