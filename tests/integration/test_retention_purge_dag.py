"""The issue's "done": order_backup, then retention_purge {"dry_run": false}, through Airflow itself.

Against an independent store (a seeded SQLite file; the expectation comes from the plain-Python
oracle in test_purge_sqlite.py): exactly the due rows are gone (nothing protected, nothing not
yet due), no orphan rows remain, and a restore of the recovery point taken before the purge
returns none of the purged orders and all of the protected ones. That a second run purges
nothing is checked on both dialects in test_purge_sqlite.py and test_purge_postgres.py, without
the cost of another Airflow run.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from test_purge_sqlite import CHILDREN, D1, ORDERS, ids, oracle, orphans, read_store, restore_ids

from conftest import governance_env, run_dag
from lomevexi_governance import recovery_points as rp
from lomevexi_governance import seed
from lomevexi_governance.keys import LocalKeyring
from lomevexi_governance.settings import sqlite_target
from lomevexi_governance.storage import storage_for

pytestmark = pytest.mark.integration

LOGICAL = D1.isoformat()


def _summary(tmp: Path) -> dict:
    """The summary.json (and report.html) of the one retention_purge run."""
    found = list((tmp / "reports" / "retention_purge").glob("*/summary.json"))
    assert len(found) == 1, found
    assert (found[0].parent / "report.html").exists()
    return json.loads(found[0].read_text())


def test_backup_then_purge_through_airflow(airflow_home: Path, tmp_path: Path, root_key: bytes) -> None:
    store = tmp_path / "store.db"
    seed.seed_store(sqlite_target(str(store)), orders=ORDERS, as_of=D1 - dt.timedelta(hours=1))
    env = governance_env(airflow_home, tmp_path, f"sqlite:///{store}", root_key)

    state, output = run_dag("order_backup", LOGICAL, env)
    assert state == "success", output[-4000:]
    with sqlite3.connect(store) as conn:
        before = read_store(conn)
    expected, kept = oracle(before, D1)

    state, output = run_dag("retention_purge", LOGICAL, env, {"dry_run": False})
    assert state == "success", output[-4000:]
    with sqlite3.connect(store) as conn:
        after = read_store(conn)
        assert orphans(conn) == dict.fromkeys((*CHILDREN, "service_tickets"), 0)
    for table, due in expected.items():
        assert ids(before, table) - ids(after, table) == due, table
    assert ids(after, "customers") == ids(before, "customers")

    summary = _summary(tmp_path)
    assert summary["dry_run"] is False
    assert summary["logical_date"] == LOGICAL
    assert summary["purged"] == {t: len(v) for t, v in expected.items()}
    assert summary["protected"] == {
        "legal_hold": sum(r == "legal_hold" for r in kept.values()),
        "open_ticket": sum(r == "open_ticket" for r in kept.values()),
    }
    assert summary["shredded_keys"] == []  # one point only: nothing under an ended epoch yet
    assert summary["guard"]["ok"] and summary["guard"]["recovery_point_id"] == rp.point_id_for(D1)
    assert summary["ledger"]["verification"]["ok"] and summary["ledger"]["head"]["seq"] == 2

    # a restore of the point taken before the purge: none of the purged, all of the protected
    storage = storage_for(str(tmp_path / "backups"))
    keys = LocalKeyring(tmp_path / "kms" / "keyring.db", root_key)
    restored, dropped, erased = restore_ids(storage, keys, rp.point_id_for(D1), "orders")
    assert restored.isdisjoint(expected["orders"]) and dropped == expected["orders"] and not erased
    assert set(kept) <= restored

    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "lomevexi_governance.purge",
            "verify-ledger",
            "--backup-root",
            str(tmp_path / "backups"),
            "--report-root",
            str(tmp_path / "reports"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["anchors"] == 1
