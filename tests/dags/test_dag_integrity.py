"""Team policy for every DAG, enforced: parsing is free, metadata is complete."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lomevexi_governance.airflow_glue import ALLOWED_TAGS, OWNER

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
EXPECTED_DAGS = {"order_backup", "retention_purge", "restore_drill", "access_audit"}
HEAVY = ["pandas", "pyarrow", "great_expectations", "cryptography", "numpy", "psycopg", "adbc_driver_manager"]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_every_dag_file_defines_its_dag(dagbag):
    assert {p.stem for p in DAG_FILES} == set(dagbag.dag_ids)
    assert set(dagbag.dag_ids) <= EXPECTED_DAGS


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.stem for p in DAG_FILES])
def test_dag_metadata(dagbag, path):
    dag = dagbag.get_dag(path.stem)
    assert dag is not None and dag.dag_id == path.stem
    assert dag.tags and set(dag.tags) <= ALLOWED_TAGS, dag.tags
    doc = (dag.doc_md or "").lower()
    assert len(doc) > 200 and "owner" in doc and "failure" in doc, "doc_md must say owner and what a failure means"
    assert dag.catchup is False
    assert dag.start_date is not None and dag.start_date.tzinfo is not None
    assert dag.timetable is not None and dag.max_active_runs >= 1
    for task in dag.tasks:
        assert task.owner == OWNER, task.task_id
        assert task.on_failure_callback, f"{dag.dag_id}.{task.task_id} has no failure callback"
    assert dag.default_args.get("retries", 0) >= 1
    assert isinstance(dag.default_args.get("retry_delay"), dt.timedelta)


PARSE_PROBE = r"""
import importlib.util, json, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine

queries = []
event.listen(Engine, "before_cursor_execute", lambda *a, **k: queries.append(str(a[2])[:80]))
lookups = []

def forbid(name):
    def _f(*a, **k):
        lookups.append(name)
        raise RuntimeError(f"{name} at parse time")
    return _f

import airflow.sdk as sdk
sdk.Connection.get = classmethod(forbid("Connection.get"))
sdk.Variable.get = classmethod(forbid("Variable.get"))
from airflow.models import Variable, Connection
Variable.get = classmethod(forbid("models.Variable.get"))
Connection.get_connection_from_secrets = classmethod(forbid("models.Connection.get"))
before = set(sys.modules)
for path in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location("dagfile_" + path.rsplit("/", 1)[-1][:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
heavy = sorted(m for m in HEAVY if m in sys.modules and m not in before)
print(json.dumps({"queries": queries, "lookups": lookups, "heavy": heavy}))
"""


def test_parsing_makes_no_queries_no_lookups_and_no_heavy_imports(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env["AIRFLOW_HOME"] = str(tmp_path)
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{tmp_path}/never-created/airflow.db"
    code = f"HEAVY = {HEAVY!r}\n" + PARSE_PROBE
    proc = subprocess.run([sys.executable, "-c", code, *map(str, DAG_FILES)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"queries": [], "lookups": [], "heavy": []}
