"""Restore drills with PostgreSQL: a PostgreSQL store, PostgreSQL and SQLite targets.

The local PostgreSQL at 127.0.0.1:5432 is required: a test fails (never skips) when it is down.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import PG_ADMIN

from lomevexi_governance import recovery_points as rp
from lomevexi_governance import restore
from lomevexi_governance.backup import run_backup
from lomevexi_governance.keys import LocalKeyring
from lomevexi_governance.policy import load_policy
from lomevexi_governance.settings import DatabaseTarget
from lomevexi_governance.storage import storage_for
from lomevexi_governance.validation import GxValidator

pytestmark = [pytest.mark.integration, pytest.mark.postgres]
UTC = dt.UTC
AS_OF = dt.datetime(2026, 11, 24, tzinfo=UTC)
LOGICAL = dt.datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
POINT = rp.point_id_for(LOGICAL)
ROOT_KEY = bytes(range(1, 33))
BIG = 900_000_000
TS_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{6})?$")


def _admin():
    import psycopg

    try:
        return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # fail, never skip
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN}: {exc}")


@pytest.fixture(scope="module")
def databases() -> Iterator[dict[str, str]]:
    """Two fresh databases: the store and a separate restore target; dropped afterwards."""
    admin = _admin()
    names = {role: f"gov_restore_{role}_{uuid.uuid4().hex[:8]}" for role in ("store", "target")}
    for name in names.values():
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield names
    finally:
        for name in names.values():
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def pg_target(database: str, conn_id: str) -> DatabaseTarget:
    return DatabaseTarget("postgresql", conn_id, host="127.0.0.1", port=5432, database=database, user="postgres")


def uri(database: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"


@pytest.fixture(scope="module")
def base(databases: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    import psycopg

    from lomevexi_governance.seed import seed_store

    d = tmp_path_factory.mktemp("restore_pg")
    store = pg_target(databases["store"], "store_db")
    seed_store(store, orders=300, as_of=AS_OF)
    with psycopg.connect(uri(databases["store"])) as conn:
        conn.execute(
            "INSERT INTO customers VALUES (%s, %s, %s, %s)",
            (
                BIG + 1,
                "hanako+pg@example.co.jp",
                dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
                dt.datetime(2026, 11, 20, 0, 0, 0, 1, tzinfo=UTC),
            ),
        )
        conn.execute(
            "INSERT INTO orders VALUES (%s, %s, %s, 'placed', %s, NULL, 12800, %s, '090-1234-5678', '150-0041', "
            "'東京都', '渋谷区', %s, NULL, %s)",
            (
                BIG + 1,
                "LMX-20261120-900001",
                BIG + 1,
                dt.datetime(2026, 11, 20, 9, 15, 30, 500000, tzinfo=UTC),
                "山田 花子🌸",
                "神南1-2-3 「ビル」\tA棟",
                dt.datetime(2026, 11, 20, 9, 15, 30, 500000, tzinfo=UTC),
            ),
        )
        conn.execute(
            "INSERT INTO service_tickets VALUES (%s, %s, NULL, 'inquiry', 'open', 'サイズ', %s, 0, %s, NULL, %s)",
            (
                BIG + 1,
                BIG + 1,
                'Lサイズ？\n"引用" \\ 🙏',
                dt.datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC),
                dt.datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC),
            ),
        )
    keys = LocalKeyring(d / "kms" / "keyring.db", ROOT_KEY)
    run_backup(
        policy=load_policy(),
        target=store,
        storage=storage_for(str(d / "backups")),
        keys=keys,
        logical_date=LOGICAL,
        run_id="scheduled__backup",
        validator_factory=lambda p, t: GxValidator(p, d / "validation", tables=t),
    )
    return d


def drill(
    base: Path,
    databases: dict[str, str],
    run_id: str,
    params: dict,
    target: DatabaseTarget | None = None,
    keys: LocalKeyring | None = None,
    backups: Path | None = None,
) -> dict:
    return restore.run_drill(
        params,
        policy=load_policy(),
        storage=storage_for(str(backups or base / "backups")),
        keys=keys or LocalKeyring(base / "kms" / "keyring.db", ROOT_KEY),
        store=pg_target(databases["store"], "store_db"),
        report_root=str(base / "reports"),
        run_id=run_id,
        target=target,
    )


def pg_rows(database: str, table: str, columns: list[str], pk: str, schema: str = "public") -> list[tuple]:
    import psycopg

    with psycopg.connect(uri(database)) as conn:
        return conn.execute(f'SELECT {", ".join(columns)} FROM "{schema}"."{table}" ORDER BY {pk}').fetchall()


def schemas(database: str) -> list[str]:
    import psycopg

    with psycopg.connect(uri(database)) as conn:
        return [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'drill_%'")]


def test_postgresql_store_restores_into_a_drill_schema_exactly(base, databases):
    target = pg_target(databases["target"], "restore_target")
    summary = drill(
        base,
        databases,
        "manual__pg_keep",
        {"recovery_point": "latest", "keep_restored": True, "target_conn_id": "restore_target"},
        target,
    )
    assert summary["status"] == "SUCCESSFUL", summary["failure"]
    schema = restore.drill_schema("manual__pg_keep")
    assert schema in summary["restored_to"] and "restore_target" in summary["restored_to"]
    assert "password" not in summary["restored_to"]
    for table in load_policy().backup_tables:
        want = pg_rows(databases["store"], table.name, table.column_names, table.primary_key)
        got = pg_rows(databases["target"], table.name, table.column_names, table.primary_key, schema)
        assert got == want, table.name  # every row, every allowed column, timestamps to the microsecond
        assert summary["tables"][table.name]["checksums"] == "ok"
    assert summary["tables"]["orders"]["live_store"]["rows_compared"] == summary["tables"]["orders"]["restored_rows"]
    # one process: the tables load back to back, smallest first, each read back once it is loaded
    state = base / "reports" / restore.DAG_ID / "manual__pg_keep" / "state"
    loads = {t: json.loads((state / "restore" / f"{t}.json").read_text()) for t in summary["tables"]}
    by_start = sorted(loads, key=lambda t: loads[t]["restore_started_at"])
    manifest = rp.load_point(storage_for(str(base / "backups")), POINT, verify=False).manifest
    assert by_start == restore.load_order(manifest, list(loads))
    for before, after in itertools.pairwise(by_start):
        assert loads[before]["restore_ended_at"] <= loads[after]["restore_started_at"], (before, after)
    for t in loads:
        checked = (state / "checked" / f"{t}.json").stat().st_mtime
        assert checked >= dt.datetime.fromisoformat(loads[t]["restore_ended_at"]).timestamp(), t
    # the drill never touched anything outside its own schema
    import psycopg

    with psycopg.connect(uri(databases["target"])) as conn:
        public = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
        mark = conn.execute(
            "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s", (schema,)
        ).fetchone()[0]
    assert public == 0 and "manual__pg_keep" in mark


def test_postgresql_target_schema_is_dropped_unless_kept(base, databases):
    target = pg_target(databases["target"], "restore_target")
    summary = drill(
        base,
        databases,
        "manual__pg_drop",
        {"target_conn_id": "restore_target", "verification": "sample", "tables": ["orders", "payments"]},
        target,
    )
    assert summary["status"] == "SUCCESSFUL", summary["failure"]
    assert restore.drill_schema("manual__pg_drop") not in schemas(databases["target"])
    assert "restored_to" not in summary


def test_postgresql_target_a_flipped_byte_is_named_and_the_schema_removed(base, databases, tmp_path):
    import shutil

    shutil.copytree(base / "backups", tmp_path / "backups")
    point_dir = tmp_path / "backups" / "recovery_points" / POINT
    victim = sorted((point_dir / "data" / "payments").glob("*/part-00000.parquet"))[-1]
    data = bytearray(victim.read_bytes())
    data[100] ^= 0x80
    victim.write_bytes(bytes(data))
    target = pg_target(databases["target"], "restore_target")
    summary = drill(
        base,
        databases,
        "manual__pg_flip",
        {"target_conn_id": "restore_target", "keep_restored": False},
        target,
        backups=tmp_path / "backups",
    )
    assert summary["status"] == "FAILED" and summary["failure"]["step"] == "verify_point"
    assert victim.relative_to(point_dir).as_posix() in summary["failure"]["error"]
    assert restore.drill_schema("manual__pg_flip") not in schemas(databases["target"])


def test_the_store_database_is_refused_as_target(base, databases):
    summary = drill(
        base,
        databases,
        "manual__pg_self",
        {"target_conn_id": "store_copy"},
        pg_target(databases["store"], "store_copy"),
    )
    assert summary["status"] == "FAILED" and "points at the live store" in summary["failure"]["error"]
    assert schemas(databases["store"]) == []


def test_postgresql_store_restores_into_scratch_sqlite_with_the_stores_conventions(base, databases):
    summary = drill(base, databases, "manual__pg_to_sqlite", {"keep_restored": True})
    assert summary["status"] == "SUCCESSFUL", summary["failure"]
    restored = sqlite3.connect(summary["restored_to"])
    for table in load_policy().backup_tables:
        cols = table.column_names
        want = pg_rows(databases["store"], table.name, cols, table.primary_key)
        got = restored.execute(f"SELECT {', '.join(cols)} FROM {table.name} ORDER BY {table.primary_key}").fetchall()
        assert len(got) == len(want), table.name
        for g, w in zip(got, want, strict=True):
            for value, expected, col in zip(g, w, table.columns, strict=True):
                if col.type == "timestamp" and value is not None:
                    assert TS_TEXT.match(value), (table.name, col.name, value)  # ISO-8601 UTC text
                    assert dt.datetime.fromisoformat(value).replace(tzinfo=UTC) == expected, (table.name, col.name)
                else:
                    assert value == expected, (table.name, col.name)
    row = restored.execute(f"SELECT body, opened_at FROM service_tickets WHERE ticket_id = {BIG + 1}").fetchone()
    assert row == ('Lサイズ？\n"引用" \\ 🙏', "2026-11-21 10:00:00.123456")
    assert json.loads((Path(summary["restored_to"]).parent / "summary.json").read_text())["status"] == "SUCCESSFUL"


def test_postgresql_target_a_file_that_decrypts_to_other_data_fails_naming_it(base, databases, monkeypatch):
    """The load streams every file of a table through one COPY; a file whose rows do not match
    its manifest checksums fails the drill with the drill's own error naming the file (not the
    driver's wrapper of it), and nothing of the table is committed."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from lomevexi_governance import crypto

    real = crypto.read_batches

    def plus_one_yen(batch):
        amount = pc.add(batch.column("amount_jpy"), 1)
        return pa.RecordBatch.from_arrays(
            [amount if n == "amount_jpy" else batch.column(n) for n in batch.schema.names], schema=batch.schema
        )

    def tampered(pf, where, **kwargs):
        for batch in real(pf, where, **kwargs):
            yield plus_one_yen(batch) if "payments" in where and batch.num_rows else batch

    monkeypatch.setattr(crypto, "read_batches", tampered)
    target = pg_target(databases["target"], "restore_target")
    summary = drill(base, databases, "manual__pg_tampered",
                    {"target_conn_id": "restore_target", "tables": ["orders", "payments"]}, target)
    assert summary["status"] == "FAILED" and summary["failure"]["step"] == "restore", summary["failure"]
    error = summary["failure"]["error"]
    assert "data/payments/" in error and "does not match its manifest checksums (column(s) ['amount_jpy'])" in error
    assert "adbc" not in error.lower()
    assert restore.drill_schema("manual__pg_tampered") not in schemas(databases["target"])
