"""Recovery points from real SQLite and PostgreSQL stores: round trip, secrecy, integrity, atomicity."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.integration.storefixtures import (
    NOW,
    PLANTED_CARDS,
    PLANTED_LAST4,
    load_postgres,
    load_sqlite,
    store_rows,
)

from lomevexi_governance import recovery_points as rp
from lomevexi_governance.backup import run_backup
from lomevexi_governance.crypto import open_encrypted
from lomevexi_governance.errors import IntegrityError, KeyMaterialError, SourceSchemaError
from lomevexi_governance.keys import LocalKeyring
from lomevexi_governance.settings import sqlite_target, target_from_uri
from lomevexi_governance.storage import storage_for
from lomevexi_governance.validation import GxValidator

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    """(target, rows) for a store holding store_rows(), on SQLite or PostgreSQL."""
    rows = store_rows()
    if request.param == "sqlite":
        from tests.conftest import create_sqlite_store

        path = create_sqlite_store(tmp_path / "store.db")
        load_sqlite(str(path), rows)
        return sqlite_target(str(path), "store_db"), rows
    uri = request.getfixturevalue("pg_store")
    load_postgres(uri, rows)
    return target_from_uri(uri, "store_db"), rows


def backup(policy, target, tmp_path, keyring, validator=False, when=NOW):
    storage = storage_for(str(tmp_path / "backups"))
    factory = (lambda p, t: GxValidator(p, tmp_path / "reports" / "validation", tables=t)) if validator else None
    outcome = run_backup(policy=policy, target=target, storage=storage, keys=keyring, logical_date=when,
                         run_id="test-run", validator_factory=factory)
    return storage, outcome


def read_back(storage, keyring, point_id):
    point = rp.load_point(storage, point_id, keyring)
    tables = {}
    for name, t in point.manifest["tables"].items():
        parts = [open_encrypted(storage.full(f"{rp.point_dir(point_id)}/{f['path']}"), keyring).read() for f in t["files"]]
        tables[name] = pa.concat_tables(parts).sort_by(t["primary_key"]) if parts else None
    return point, tables


def test_round_trip_every_row_and_column(policy, store, tmp_path, keyring):
    target, rows = store
    storage, outcome = backup(policy, target, tmp_path, keyring)
    point, tables = read_back(storage, keyring, outcome.recovery_point_id)
    for name, expected in rows.items():
        got = tables[name]
        assert point.manifest["tables"][name]["rows"] == len(expected) == (got.num_rows if got else 0)
        pk = policy.table(name).primary_key
        for want, have in zip(sorted(expected, key=lambda r: r[pk]), got.to_pylist(), strict=True):
            assert have == want, f"{name} row {want[pk]} differs"
    assert rp.verify_point(storage, keyring, outcome.recovery_point_id, by="test")["ok"]


def test_files_are_unreadable_without_keys_and_hold_no_plaintext(policy, store, tmp_path, keyring):
    target, rows = store
    storage, outcome = backup(policy, target, tmp_path, keyring)
    files = [p for p in (tmp_path / "backups").rglob("*") if p.is_file()]
    parquet = [p for p in files if p.suffix == ".parquet"]
    assert parquet
    for path in parquet:
        with pytest.raises(Exception, match="(?i)encrypt|decrypt|key"):
            pq.ParquetFile(path).read()
    secrets = set()
    for name, data in rows.items():
        for col in policy.table(name).columns:
            if col.sensitivity in ("contact", "payment", "communication") and col.type == "string":
                # 6+ bytes: a shorter string turns up in random ciphertext by chance
                secrets |= {r[col.name] for r in data if r[col.name] and len(r[col.name].encode()) >= 6}
    blob = b"".join(p.read_bytes() for p in files)
    leaked = [s for s in secrets if s.encode() in blob]
    assert not leaked, f"{len(leaked)} plaintext value(s) found under the backup root"


def test_rerun_finds_the_published_point(policy, store, tmp_path, keyring):
    target, _ = store
    storage, first = backup(policy, target, tmp_path, keyring)
    _, second = backup(policy, target, tmp_path, keyring)
    assert second.already_published and second.recovery_point_id == first.recovery_point_id
    assert rp.list_points(storage) == [first.recovery_point_id]


def test_flipped_byte_names_the_file(policy, sqlite_store, tmp_path, keyring):
    load_sqlite(str(sqlite_store), store_rows())
    storage, outcome = backup(policy, sqlite_target(str(sqlite_store)), tmp_path, keyring)
    point = rp.load_point(storage, outcome.recovery_point_id, keyring)
    victim = point.manifest["tables"]["orders"]["files"][0]["path"]
    path = Path(storage.full(f"{rp.point_dir(point.point_id)}/{victim}"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=victim):
        rp.verify_point(storage, keyring, point.point_id, by="test")
    assert rp.read_record(storage, "verifications", point.point_id)["ok"] is False


def test_tampered_manifest_fails_signature(policy, sqlite_store, tmp_path, keyring):
    load_sqlite(str(sqlite_store), store_rows())
    storage, outcome = backup(policy, sqlite_target(str(sqlite_store)), tmp_path, keyring)
    manifest = Path(storage.full(f"{rp.point_dir(outcome.recovery_point_id)}/manifest.json"))
    manifest.write_text(manifest.read_text().replace('"rows": 60', '"rows": 61', 1))
    with pytest.raises(IntegrityError, match="signature"):
        rp.load_point(storage, outcome.recovery_point_id, keyring)


def test_wrong_root_key_fails_before_writing(policy, sqlite_store, tmp_path, keyring):
    with pytest.raises(KeyMaterialError, match="root key does not open the keyring"):
        LocalKeyring(keyring.path, os.urandom(32))
    assert not (tmp_path / "backups").exists()


def test_missing_table_and_column_are_named_and_nothing_is_published(policy, sqlite_store, tmp_path, keyring):
    load_sqlite(str(sqlite_store), store_rows())
    conn = sqlite3.connect(sqlite_store)
    conn.execute("ALTER TABLE shipments DROP COLUMN tracking_number")
    conn.execute("DROP TABLE legal_holds")
    conn.commit()
    conn.close()
    with pytest.raises(SourceSchemaError, match=r"'legal_holds' is missing.*'shipments' lacks column\(s\) \['tracking_number'\]|'shipments' lacks column\(s\) \['tracking_number'\].*'legal_holds' is missing"):
        backup(policy, sqlite_target(str(sqlite_store)), tmp_path, keyring)
    assert rp.list_points(storage_for(str(tmp_path / "backups"))) == []


def test_partitions_follow_retention(policy, sqlite_store, tmp_path, keyring):
    load_sqlite(str(sqlite_store), store_rows())
    storage, outcome = backup(policy, sqlite_target(str(sqlite_store)), tmp_path, keyring)
    point = rp.load_point(storage, outcome.recovery_point_id, keyring)
    parts = point.manifest["partitions"]
    assert {"open", "protected", "pending"} <= set(parts)
    epochs = [k for k, v in parts.items() if v["kind"] == "epoch"]
    assert epochs and all(dt.datetime.fromisoformat(parts[e]["end"]) > NOW for e in epochs)
    by_path = {f["path"]: f for f in point.manifest["tables"]["orders"]["files"]}
    protected = next(f for f in by_path.values() if f["partition"] == "protected")
    assert protected["key_ids"]["contact"] == f"rp/{point.point_id}/protected/contact"
    epoch_file = next(f for f in by_path.values() if f["partition"] in epochs)
    assert epoch_file["key_ids"]["footer"].startswith("epoch/")


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, datetime as dt
    from lomevexi_governance.policy import load_policy
    from lomevexi_governance.keys import LocalKeyring
    from lomevexi_governance.settings import sqlite_target
    from lomevexi_governance.storage import storage_for
    from lomevexi_governance import backup as b
    from lomevexi_governance import scan

    class Killer:
        seen = 0
        def __init__(self, table, mask=True):
            self.inner = Original(table, mask=mask)
            self.result = self.inner.result
        def process(self, batch):
            Killer.seen += 1
            if Killer.seen == 4:          # mid-write: some files exist in staging
                os.kill(os.getpid(), signal.SIGKILL)
            return self.inner.process(batch)

    Original = scan.ContentScanner
    b.ContentScanner = Killer
    root_key = bytes.fromhex(sys.argv[3])
    b.run_backup(policy=load_policy(), target=sqlite_target(sys.argv[1]), storage=storage_for(sys.argv[2]),
                 keys=LocalKeyring(sys.argv[4], root_key),
                 logical_date=dt.datetime(2026, 11, 23, 16, tzinfo=dt.timezone.utc), run_id="killed")
    """
)


def test_killed_mid_write_leaves_no_partial_point(policy, sqlite_store, tmp_path, root_key, keyring):
    load_sqlite(str(sqlite_store), store_rows())
    backups = tmp_path / "backups"
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(sqlite_store), str(backups), root_key.hex(), str(keyring.path)],
        capture_output=True, text=True,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    staging = list((backups / "staging").iterdir())
    assert staging and any(staging[0].rglob("*.parquet"))  # the kill really happened mid-write
    assert not (backups / "recovery_points").exists() or not list((backups / "recovery_points").iterdir())
    storage, outcome = backup(policy, sqlite_target(str(sqlite_store)), tmp_path, keyring)
    assert rp.list_points(storage) == [outcome.recovery_point_id]
    assert list((backups / "staging").iterdir()) == []
    assert rp.verify_point(storage, keyring, outcome.recovery_point_id, by="test")["ok"]


# -- the minimization gate (issue 3) -------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def planted_store(request, tmp_path):
    rows = store_rows(planted=True)
    if request.param == "sqlite":
        from tests.conftest import create_sqlite_store

        path = create_sqlite_store(tmp_path / "store.db")
        load_sqlite(str(path), rows, extra_columns=True)
        return sqlite_target(str(path), "store_db")
    uri = request.getfixturevalue("pg_store")
    load_postgres(uri, rows, extra_columns=True)
    return target_from_uri(uri, "store_db")


def _digits(text: str) -> str:
    import unicodedata

    return "".join(str(unicodedata.digit(c)) for c in text if c.isdigit())


def test_planted_problems_are_caught_and_handled(policy, planted_store, tmp_path, keyring):
    storage, outcome = backup(policy, planted_store, tmp_path, keyring, validator=True)
    result = outcome.as_dict()
    assert result["validation"]["success"] is False
    assert result["extraneous_columns"] == {"customers": ["birthday"], "orders": ["marketing_segment"]}
    assert result["masked"] == {"service_tickets.body": 4, "payments.card_last4": 1}
    failed = {(f["table"], f["column"], f["key"], f["stage"]) for f in result["validation"]["failed"]}
    assert ("orders", None, "columns", "source") in failed
    assert ("customers", None, "columns", "source") in failed
    assert ("service_tickets", "body", "body.no_card_number", "source") in failed
    assert ("payments", "card_last4", "card_last4.no_card_number", "source") in failed
    assert ("orders", "recipient_phone", "recipient_phone.format_jp_phone", "backup") in failed
    assert ("orders", "recipient_name", "recipient_name.no_email", "backup") in failed
    # the written data passes the backup-stage card check: masking worked
    assert not any(f[2].endswith("no_card_number") and f[3] == "backup" for f in failed)
    violations = {(v["table"], v["column"], v["rule"]): v["primary_keys"] for v in result["violations"]}
    assert violations[("orders", "recipient_phone", "format_jp_phone")] == [3]
    assert violations[("orders", "recipient_name", "email_outside_customers_email")] == [5]

    # the point was still published, without the extra columns, rows intact
    point, tables = read_back(storage, keyring, outcome.recovery_point_id)
    assert "marketing_segment" not in tables["orders"].column_names
    assert "birthday" not in tables["customers"].column_names
    assert tables["orders"].num_rows == 60 and tables["payments"].column("card_last4").to_pylist()[0] == "1881"

    # no planted card number anywhere: decrypted backup, manifest, GX results, Data Docs
    numbers = [_digits(t) for t in PLANTED_CARDS] + [PLANTED_LAST4]
    decrypted = json.dumps({n: t.to_pylist() for n, t in tables.items() if t is not None}, default=str, ensure_ascii=False)
    assert not [n for n in numbers if n in _digits(decrypted)]
    for path in list((tmp_path / "backups").rglob("*")) + list((tmp_path / "reports").rglob("*")):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", errors="ignore")
            for number, original in PLANTED_CARDS.items():
                assert number not in _digits(text) or path.suffix == ".parquet", path
                assert original not in text, path
    assert (tmp_path / "reports" / "validation" / "data_docs" / "index.html").exists()


def test_clean_store_passes_validation(policy, store, tmp_path, keyring):
    target, _ = store
    _, outcome = backup(policy, target, tmp_path, keyring, validator=True)
    result = outcome.as_dict()
    assert result["validation"]["success"] is True, result["validation"]["failed"]
    assert result["masked"] == {} and result["extraneous_columns"] == {}


# -- tables written by worker processes from one exported PostgreSQL snapshot ----------------------


@pytest.mark.postgres
def test_worker_processes_write_the_same_point_from_one_snapshot(policy, pg_store, tmp_path, keyring, monkeypatch):
    from lomevexi_governance import backup_workers

    rows = store_rows()
    load_postgres(pg_store, rows)
    target = target_from_uri(pg_store, "store_db")
    factory = lambda p, t: GxValidator(p, tmp_path / "validation", tables=t)  # noqa: E731

    def run(root, workers):
        return run_backup(policy=policy, target=target, storage=storage_for(str(tmp_path / root)), keys=keyring,
                          logical_date=NOW, run_id="test-run", validator_factory=factory, workers=workers)

    one = run("one", 1)
    monkeypatch.setattr(backup_workers, "LEADER_WRITES", False)  # every table through a worker
    # a write that lands after the snapshot was exported must not reach the workers
    exported = backup_workers.Snapshot.export

    def export_then_write(snapshot):
        snapshot_id = exported(snapshot)
        import psycopg

        with psycopg.connect(pg_store, autocommit=True) as conn:
            conn.execute("UPDATE orders SET status = 'cancelled' WHERE order_id = (SELECT min(order_id) FROM orders)")
            conn.execute("DELETE FROM service_tickets")
        return snapshot_id

    monkeypatch.setattr(backup_workers.Snapshot, "export", export_then_write)
    two = run("two", 3)
    a = rp.load_point(storage_for(str(tmp_path / "one")), one.recovery_point_id, keyring).manifest
    b = rp.load_point(storage_for(str(tmp_path / "two")), two.recovery_point_id, keyring).manifest
    for name in a["tables"]:
        assert b["tables"][name]["rows"] == a["tables"][name]["rows"] == len(rows[name]), name
        assert b["tables"][name]["checksums"] == a["tables"][name]["checksums"], name
    assert a["partitions"] == b["partitions"]
    assert one.validation["success"] and two.validation["success"]
    assert one.validation["tables"] == two.validation["tables"]
    assert one.masked == two.masked and one.violations == two.violations


@pytest.mark.postgres
def test_a_failing_worker_names_its_table_and_nothing_is_published(policy, pg_store, tmp_path, keyring, monkeypatch):
    import psycopg

    from lomevexi_governance import backup_workers

    load_postgres(pg_store, store_rows())
    with psycopg.connect(pg_store, autocommit=True) as conn:  # a value the policy type cannot hold
        conn.execute("ALTER TABLE payments ALTER COLUMN amount_jpy TYPE text")
        conn.execute("UPDATE payments SET amount_jpy = 'twelve' WHERE payment_id = (SELECT min(payment_id) FROM payments)")
    monkeypatch.setattr(backup_workers, "LEADER_WRITES", False)
    storage = storage_for(str(tmp_path / "backups"))
    with pytest.raises(SourceSchemaError, match=r"payments\.amount_jpy.*backup worker, table 'payments'"):
        run_backup(policy=policy, target=target_from_uri(pg_store, "store_db"), storage=storage, keys=keyring,
                   logical_date=NOW, run_id="test-run", workers=2)
    assert rp.list_points(storage) == []


def test_a_worker_that_dies_before_taking_its_work_is_named(monkeypatch):
    from lomevexi_governance import backup_workers

    # an interpreter that exits at once: the pickled work (more than a pipe holds) meets a closed pipe
    monkeypatch.setattr(backup_workers.sys, "executable", "/bin/false")
    with pytest.raises(backup_workers.WorkerFailed, match=r"backup worker \(pid \d+\) exited with code 1 before"):
        backup_workers._start(2, b"x" * (4 << 20))


def test_postgres_reads_run_on_a_reader_thread_that_an_early_stop_ends(policy, pg_store):
    import threading

    from lomevexi_governance.source import Snapshot

    rows = store_rows()
    load_postgres(pg_store, rows)
    orders = policy.table("orders")
    with Snapshot(target_from_uri(pg_store, "store_db"), batch_rows=2) as snapshot:
        stream = snapshot.stream(orders, ordered=False)
        first = next(stream)
        assert first.num_rows == 2
        assert "read-orders" in {t.name for t in threading.enumerate()}  # the COPY runs ahead on its thread
        stream.close()
        assert "read-orders" not in {t.name for t in threading.enumerate()}
        # the stopped COPY's cursor is closed: the same snapshot answers the next query in full
        assert sum(b.num_rows for b in snapshot.stream(orders)) == len(rows["orders"])
        assert snapshot.scalar("SELECT count(*) FROM customers") == len(rows["customers"])
