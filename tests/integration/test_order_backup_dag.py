"""order_backup as Airflow runs it (`airflow dags test`), asserting the run's final state."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from tests.conftest import create_sqlite_store, governance_env, run_dag
from tests.integration.storefixtures import PLANTED_CARDS, load_sqlite, store_rows

pytestmark = pytest.mark.integration
LOGICAL = "2026-11-23T16:00:00+00:00"


def _summary(tmp: Path) -> dict:
    found = list((tmp / "reports" / "order_backup").glob("*/summary.json"))
    assert len(found) == 1, found
    return json.loads(found[0].read_text())


def test_clean_store_backs_up_and_succeeds(airflow_home, tmp_path, root_key):
    store = create_sqlite_store(tmp_path / "store.db")
    load_sqlite(str(store), store_rows())
    env = governance_env(airflow_home, tmp_path, f"sqlite:///{store}", root_key)
    state, output = run_dag("order_backup", LOGICAL, env)
    assert state == "success", output[-4000:]
    summary = _summary(tmp_path)
    assert summary["recovery_point_id"] == "rp-20261123T160000Z"
    assert summary["validation"]["success"] is True
    assert summary["verification"]["ok"] is True
    conn = sqlite3.connect(store)
    manifest = json.loads((tmp_path / "backups" / "recovery_points" / "rp-20261123T160000Z" / "manifest.json").read_text())
    for table, entry in manifest["tables"].items():
        assert entry["rows"] == conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0], table
        assert summary["tables"][table]["rows"] == entry["rows"]
    assert summary["bytes"] > 0 and summary["duration_seconds"] > 0


def test_drifted_store_is_published_but_the_run_fails(airflow_home, tmp_path, root_key):
    store = create_sqlite_store(tmp_path / "store.db")
    load_sqlite(str(store), store_rows(planted=True), extra_columns=True)
    env = governance_env(airflow_home, tmp_path, f"sqlite:///{store}", root_key)
    state, output = run_dag("order_backup", LOGICAL, env)
    assert state == "failed"
    assert "minimization gate failed" in output
    assert (tmp_path / "backups" / "recovery_points" / "rp-20261123T160000Z" / "manifest.json").exists()
    summary = _summary(tmp_path)
    assert summary["extraneous_columns"] == {"customers": ["birthday"], "orders": ["marketing_segment"]}
    assert summary["masked"]["service_tickets.body"] == 4
    for number in PLANTED_CARDS:
        assert number not in output


def test_wrong_root_key_fails_before_anything_is_written(airflow_home, tmp_path, root_key):
    import base64
    import os

    store = create_sqlite_store(tmp_path / "store.db")
    load_sqlite(str(store), store_rows())
    env = governance_env(airflow_home, tmp_path, f"sqlite:///{store}", root_key)
    assert run_dag("order_backup", LOGICAL, env)[0] == "success"
    other = os.urandom(32)
    env = governance_env(airflow_home, tmp_path, f"sqlite:///{store}", other)
    state, output = run_dag("order_backup", "2026-11-24T16:00:00+00:00", env)
    assert state == "failed"
    assert "root key does not open the keyring" in output
    assert base64.b64encode(other).decode() not in output
    assert not (tmp_path / "backups" / "recovery_points" / "rp-20261124T160000Z").exists()
    assert not list((tmp_path / "backups" / "staging").glob("rp-20261124T160000Z*"))
