"""Connections as Airflow gives them: both SQLite forms, PostgreSQL URIs, no secret in descriptions."""

from __future__ import annotations

import json

import pytest
from airflow.models.connection import Connection

from lomevexi_governance.errors import ConfigurationError
from lomevexi_governance.settings import check_root, database_target, target_from_uri

pytestmark = pytest.mark.unit


def test_sqlite_uri_form():
    t = target_from_uri("sqlite:////data/store.db", "store_db")
    assert t.is_sqlite and t.path == "/data/store.db"


def test_sqlite_json_form():
    conn = Connection.from_json(json.dumps({"conn_type": "sqlite", "host": "/data/store.db"}), conn_id="store_db")
    t = database_target(conn)
    assert t.is_sqlite and t.path == "/data/store.db"


def test_relative_sqlite_path_is_refused():
    conn = Connection.from_json(json.dumps({"conn_type": "sqlite", "host": "store.db"}), conn_id="store_db")
    with pytest.raises(ConfigurationError, match="'store_db'.*must be absolute"):
        database_target(conn)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgres_uri_keeps_the_password_out_of_descriptions(scheme):
    t = target_from_uri(f"{scheme}://gov:s3cr%40t@db.internal:6432/store?sslmode=require", "store_db")
    assert t.is_postgres and t.host == "db.internal" and t.port == 6432 and t.database == "store"
    assert t.password == "s3cr@t"
    assert "s3cr" not in t.describe() and "s3cr" not in repr(t)
    assert t.postgres_uri() == "postgresql://gov:s3cr%40t@db.internal:6432/store?sslmode=require"


def test_unsupported_type_is_named():
    with pytest.raises(ConfigurationError, match="'store_db' has type 'mysql'"):
        target_from_uri("mysql://u@h/db", "store_db")


def test_roots():
    assert check_root("/backups/", "governance_backup_root") == "/backups"
    assert check_root("s3://bucket/prefix", "governance_backup_root") == "s3://bucket/prefix"
    with pytest.raises(ConfigurationError, match="'governance_report_root' must be an absolute path"):
        check_root("reports", "governance_report_root")
    with pytest.raises(ConfigurationError, match="'governance_backup_root' is not set"):
        check_root("", "governance_backup_root")


@pytest.mark.parametrize("opener", ["connect_arrow", "snapshot"])
def test_an_unreachable_store_is_named_without_its_password(opener):
    from lomevexi_governance import db
    from lomevexi_governance.errors import SourceUnavailable
    from lomevexi_governance.source import Snapshot

    target = target_from_uri("postgresql://gov:s3cret-pw@127.0.0.1:1/store", "store_db")
    with pytest.raises(SourceUnavailable, match="connection 'store_db': cannot reach PostgreSQL") as info:
        if opener == "connect_arrow":
            db.connect_arrow(target)
        else:
            with Snapshot(target):
                pass
    assert "s3cret-pw" not in str(info.value)
