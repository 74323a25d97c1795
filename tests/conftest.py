"""Shared fixtures: stores built from the contract DDL, keyrings, PostgreSQL databases, Airflow homes.

Services are real: SQLite files, the local PostgreSQL at 127.0.0.1:5432 (a test that needs it
fails when it is down, it never skips), and Airflow itself for DAG runs.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
DDL = (ROOT / "include" / "lomevexi_governance" / "sql" / "store_schema.sql").read_text()
PG_ADMIN = os.environ.get("GOVERNANCE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


# -- stores ----------------------------------------------------------------------------------


def create_sqlite_store(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(DDL)
    conn.close()
    return path


def insert_rows(conn: Any, table: str, rows: list[dict[str, Any]], marker: str = "?") -> None:
    if not rows:
        return
    cols = list(rows[0])
    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([marker] * len(cols))})"
    cur = conn.cursor()
    cur.executemany(sql, [tuple(r[c] for c in cols) for r in rows])
    conn.commit()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Path:
    return create_sqlite_store(tmp_path / "store.db")


@pytest.fixture
def policy():
    from lomevexi_governance.policy import load_policy

    return load_policy()


@pytest.fixture
def root_key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def keyring(tmp_path: Path, root_key: bytes):
    from lomevexi_governance.keys import LocalKeyring

    return LocalKeyring(tmp_path / "kms" / "keyring.db", root_key)


# -- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh, uniquely named database on the local PostgreSQL; dropped afterwards."""
    import psycopg

    name = f"gov_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # fail, never skip: the suite promises real PostgreSQL
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN}: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def pg_store(pg_database: str) -> str:
    import psycopg

    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(DDL)
    return pg_database


# -- Airflow ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated Airflow home (SQLite metadata) for the whole session."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = airflow_base_env(home)
    proc = subprocess.run([str(ROOT / "bin" / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return home


def airflow_base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "GX_ANALYTICS_ENABLED": "false",
        }
    )
    return env


def governance_env(
    airflow_home: Path, tmp: Path, store_uri: str, root_key: bytes, **extra: str
) -> dict[str, str]:
    """Environment for a DAG run against ``store_uri`` with backups and reports under ``tmp``."""
    env = airflow_base_env(airflow_home)
    env.update(
        {
            "AIRFLOW_CONN_STORE_DB": store_uri,
            "AIRFLOW_CONN_GOVERNANCE_KMS": json.dumps(
                {
                    "conn_type": "generic",
                    "password": base64.b64encode(root_key).decode(),
                    "extra": {"backend": "local", "keyring_path": str(tmp / "kms" / "keyring.db")},
                }
            ),
            "AIRFLOW_VAR_GOVERNANCE_BACKUP_ROOT": str(tmp / "backups"),
            "AIRFLOW_VAR_GOVERNANCE_REPORT_ROOT": str(tmp / "reports"),
        }
    )
    env.update(extra)
    return env


def run_dag(dag_id: str, logical_date: str, env: dict[str, str], conf: dict | None = None) -> tuple[str | None, str]:
    """Run a DAG with `airflow dags test`; return (final run state, captured output).

    `airflow dags test` exits 0 even when the run failed, so callers assert on the state.
    """
    from run_dag import run_state

    cmd = [str(ROOT / "bin" / "airflow"), "dags", "test", dag_id, logical_date]
    if conf is not None:
        cmd += ["-c", json.dumps(conf)]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as exc:  # keep what it printed: the last lines say where it hung
        partial = (exc.stdout or b"") + (exc.stderr or b"")
        text = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
        pytest.fail(f"`airflow dags test {dag_id}` did not finish in 600 s; its last output:\n{text[-4000:]}")
    state, _run_id = run_state(dag_id, logical_date, env=env)
    return state, proc.stdout + proc.stderr
