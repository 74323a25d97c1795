"""restore_drill as Airflow runs it (`airflow dags test`), asserting the run's final state.

`airflow dags test` exits 0 even when the run failed, so the state is read back from Airflow
(`scripts/run_dag.py`'s run_state, through tests.conftest.run_dag).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from tests.conftest import create_sqlite_store, governance_env, run_dag
from tests.integration.storefixtures import load_sqlite, store_rows

from lomevexi_governance import recovery_points as rp
from lomevexi_governance.backup import run_backup
from lomevexi_governance.keys import LocalKeyring
from lomevexi_governance.policy import load_policy
from lomevexi_governance.settings import sqlite_target
from lomevexi_governance.storage import storage_for
from lomevexi_governance.validation import GxValidator

pytestmark = pytest.mark.integration
UTC = dt.UTC
BACKUP_DATE = dt.datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
POINT = rp.point_id_for(BACKUP_DATE)
ROOT_KEY = bytes(range(2, 34))


@pytest.fixture(scope="module")
def point(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An independent store (hand-built: Japanese, emoji, NULLs, fractional seconds) and its point."""
    d = tmp_path_factory.mktemp("drill_dag")
    store = create_sqlite_store(d / "store.db")
    load_sqlite(str(store), store_rows(n_orders=80))
    run_backup(
        policy=load_policy(),
        target=sqlite_target(str(store), conn_id="store_db"),
        storage=storage_for(str(d / "backups")),
        keys=LocalKeyring(d / "kms" / "keyring.db", ROOT_KEY),
        logical_date=BACKUP_DATE,
        run_id="scheduled__backup",
        validator_factory=lambda p, t: GxValidator(p, d / "validation", tables=t),
    )
    return d


def copy_of(point: Path, tmp_path: Path) -> Path:
    for name in ("backups", "kms"):
        shutil.copytree(point / name, tmp_path / name)
    shutil.copy(point / "store.db", tmp_path / "store.db")
    return tmp_path


def summary_of(tmp: Path) -> dict:
    found = list((tmp / "reports" / "restore_drill").glob("*/summary.json"))
    assert len(found) == 1, found
    return json.loads(found[0].read_text())


def instant(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value).replace(tzinfo=UTC)


def test_a_kept_drill_of_latest_reproduces_the_store(airflow_home, point, tmp_path):
    tmp = copy_of(point, tmp_path)
    env = governance_env(airflow_home, tmp, f"sqlite:///{tmp / 'store.db'}", ROOT_KEY)
    state, output = run_dag(
        "restore_drill", "2026-11-29T18:00:00+00:00", env, {"recovery_point": "latest", "keep_restored": True}
    )
    assert state == "success", output[-4000:]
    summary = summary_of(tmp)
    assert summary["status"] == "SUCCESSFUL" and summary["recovery_point_id"] == POINT
    assert "triggered_by" in summary and summary["rto_seconds"] > 0 and summary["rpo_seconds"] > 0
    restored = Path(summary["restored_to"])
    assert restored.is_file() and tmp / "reports" in restored.parents
    store, copy = sqlite3.connect(tmp / "store.db"), sqlite3.connect(restored)
    for table in load_policy().backup_tables:
        sql = f"SELECT {', '.join(table.column_names)} FROM {table.name} ORDER BY {table.primary_key}"
        want, got = store.execute(sql).fetchall(), copy.execute(sql).fetchall()
        assert len(got) == len(want) == summary["tables"][table.name]["restored_rows"], table.name
        for g, w in zip(got, want, strict=True):  # every row and every allowed column
            for col, a, b in zip(table.columns, g, w, strict=True):
                if col.type == "timestamp":  # the same UTC instant, stored as ISO-8601 text
                    assert instant(a) == instant(b), (table.name, col.name)
                else:
                    assert a == b, (table.name, col.name)
    history = (tmp / "reports" / "restore_drill" / "history.jsonl").read_text().splitlines()
    assert json.loads(history[-1])["status"] == "SUCCESSFUL"
    assert rp.active_pins(storage_for(str(tmp / "backups")), POINT) == []


def test_after_one_flipped_byte_the_next_drill_fails_naming_the_file(airflow_home, point, tmp_path):
    tmp = copy_of(point, tmp_path)
    point_dir = tmp / "backups" / "recovery_points" / POINT
    victim = sorted((point_dir / "data" / "orders").glob("*/part-00000.parquet"))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 3] ^= 0x04
    victim.write_bytes(bytes(data))
    env = governance_env(airflow_home, tmp, f"sqlite:///{tmp / 'store.db'}", ROOT_KEY)
    state, output = run_dag("restore_drill", "2026-12-06T18:00:00+00:00", env, {"recovery_point": POINT})
    assert state == "failed", output[-4000:]
    summary = summary_of(tmp)
    rel = victim.relative_to(point_dir).as_posix()
    assert summary["status"] == "FAILED" and summary["failure"]["step"] == "verify_point"
    assert rel in summary["failure"]["error"]
    assert rel in output  # the failed task's log names it too
    assert not summary.get("rows_restored")  # nothing was loaded
    assert rp.read_record(storage_for(str(tmp / "backups")), "drills", POINT)["status"] == "FAILED"
