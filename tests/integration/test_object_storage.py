"""Recovery points on an S3-compatible object store (``governance_backup_root = s3://bucket/prefix``).

A real S3 server on loopback (moto in server mode, one per module) and the production code path:
pyarrow's S3FileSystem with ``AWS_ENDPOINT_URL``, as a MinIO or Ceph endpoint would be configured.
Object stores have no atomic rename, so a point is written in place and published by its
manifest, written last; these tests hold that contract: a killed upload is invisible, a rerun
completes it and leaves nothing behind, expiry deletes every object of an expired point.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from tests.integration.storefixtures import NOW, load_sqlite, store_rows

from lomevexi_governance import recovery_points as rp
from lomevexi_governance.backup import run_backup
from lomevexi_governance.crypto import open_encrypted
from lomevexi_governance.errors import KeyMaterialError, NotFound
from lomevexi_governance.keys import LocalKeyring
from lomevexi_governance.settings import sqlite_target
from lomevexi_governance.source import Snapshot
from lomevexi_governance.storage import ObjectStorage, storage_for

pytestmark = pytest.mark.integration

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",  # moto accepts any credentials
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, with the AWS environment pointing at it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    started = time.monotonic()
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
            mp.delenv(name, raising=False)
        for name, value in AWS_ENV.items():
            mp.setenv(name, value)
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        print(f"moto S3 server on {endpoint} (started in {time.monotonic() - started:.2f}s)")
        try:
            yield endpoint
        finally:
            server.stop()


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


@pytest.fixture
def storage(s3: Any) -> ObjectStorage:
    """A fresh bucket per test, used through the production entry point ``storage_for``."""
    bucket = f"gov-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    st = storage_for(f"s3://{bucket}/backups")
    assert isinstance(st, ObjectStorage)
    return st


@pytest.fixture
def store(tmp_path: Path) -> tuple[Any, dict[str, list[dict[str, Any]]]]:
    from tests.conftest import create_sqlite_store

    rows = store_rows(n_orders=24)  # enough for every partition kind; few objects keep moto quick
    path = create_sqlite_store(tmp_path / "store.db")
    load_sqlite(str(path), rows)
    return sqlite_target(str(path), "store_db"), rows


def objects(s3: Any, storage: ObjectStorage, rel: str = "") -> dict[str, bytes]:
    """Every object under ``rel`` of the backup root, keyed by path relative to the root, as S3 lists it."""
    bucket, _, prefix = storage.full(rel).partition("/")
    root_prefix = storage.root.partition("/")[2] + "/"
    out: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            out[obj["Key"][len(root_prefix):]] = obj["ETag"]
    return out


def backup(policy, target, storage, keys, when=NOW, run_id="run-1"):
    return run_backup(policy=policy, target=target, storage=storage, keys=keys, logical_date=when, run_id=run_id)


def test_backup_verify_and_decrypt_over_s3(policy, store, storage, keyring, s3, tmp_path):
    target, rows = store
    started = time.monotonic()
    outcome = backup(policy, target, storage, keyring)
    point_id = outcome.recovery_point_id
    assert not outcome.already_published
    assert rp.list_points(storage) == [point_id]

    verified = rp.verify_point(storage, keyring, point_id, by="test")
    point = rp.load_point(storage, point_id, keyring)
    files = point.files()
    assert verified["ok"] and verified["files"] == len(files) > 0
    assert rp.newest_verified(storage) == point_id
    assert {p["kind"] for p in point.manifest["partitions"].values()} == {"epoch", "open", "protected", "pending"}
    print(f"backup + verify over S3: {len(files)} files in {time.monotonic() - started:.2f}s")

    # every object under the point is in the manifest (plus manifest and signature): nothing stray
    base = rp.point_dir(point_id)
    listed = set(objects(s3, storage, base))
    assert listed == {f"{base}/{f['path']}" for _t, f in files} | {f"{base}/{rp.MANIFEST}", f"{base}/{rp.SIGNATURE}"}

    # decrypt every file straight from the bucket; every row came back
    for name, expected in rows.items():
        parts = [
            open_encrypted(storage.full(f"{base}/{f['path']}"), keyring, filesystem=storage.filesystem).read()
            for f in point.manifest["tables"][name]["files"]
        ]
        table = pa.concat_tables(parts) if parts else None
        assert (table.num_rows if table is not None else 0) == len(expected) == point.manifest["tables"][name]["rows"]
        if table is not None and name == "orders":
            pk = policy.table(name).primary_key
            assert sorted(table.column(pk).to_pylist()) == sorted(r[pk] for r in expected)
            assert set(table.column("recipient_name").to_pylist()) == {r["recipient_name"] for r in expected}

    # what lies in the bucket is ciphertext: no customer value, no column name in the clear
    _t, some = next((t, f) for t, f in files if t == "orders")
    raw = storage.read_bytes(f"{base}/{some['path']}")
    for clear in (b"090-1234-5678", "神南".encode(), b"recipient_phone"):
        assert clear not in raw

    # without the keys the objects are unreadable
    stranger = LocalKeyring(tmp_path / "other" / "keyring.db", os.urandom(32))
    with pytest.raises(KeyMaterialError):
        open_encrypted(storage.full(f"{base}/{some['path']}"), stranger, filesystem=storage.filesystem).read()


def test_rerun_is_idempotent(policy, store, storage, keyring, s3):
    target, _rows = store
    first = backup(policy, target, storage, keyring)
    before = objects(s3, storage)
    again = backup(policy, target, storage, keyring, run_id="run-2")
    assert again.already_published and again.recovery_point_id == first.recovery_point_id
    assert again.tables == first.tables
    assert objects(s3, storage) == before  # same objects, same ETags: nothing rewritten
    assert rp.list_points(storage) == [first.recovery_point_id]


class _Killed(BaseException):
    """Stands for the worker dying mid-upload (SIGKILL, OOM, a lost node)."""


class _KillAt:
    def __init__(self, table: str):
        self.table = table

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        raise _Killed(self.table)


def test_killed_upload_is_invisible_and_the_rerun_completes(policy, store, storage, keyring, s3):
    target, _rows = store
    point_id = rp.point_id_for(NOW)
    base = rp.point_dir(point_id)
    # 1. an attempt dies after uploading the first tables' Parquet objects, before the manifest
    scope = [t.name for t in policy.backup_tables]
    victim = scope[len(scope) // 2]
    with Snapshot(target, batch_rows=policy.batch_rows) as snapshot, pytest.raises(_Killed):
        rp.write_point(policy=policy, snapshot=snapshot, storage=storage, keys=keyring, logical_date=NOW,
                       run_id="killed", checks_for=lambda t, _p: [_KillAt(t.name)] if t.name == victim else [])
    # ... and a stray part of an upload that never finished
    storage.write_bytes(f"{base}/data/{victim}/epoch-2099-W01/part-00000.parquet", b"PAR1 truncated")
    leftovers = objects(s3, storage, base)
    assert leftovers and f"{base}/{rp.MANIFEST}" not in leftovers

    # 2. readers never see it
    assert rp.list_points(storage) == []
    assert rp.newest_verified(storage) is None
    with pytest.raises(NotFound):
        rp.load_point(storage, point_id, keyring)

    # 3. the rerun discards the abandoned objects, writes the point and publishes it
    outcome = backup(policy, target, storage, keyring, run_id="rerun")
    assert not outcome.already_published
    assert rp.list_points(storage) == [point_id]
    assert rp.verify_point(storage, keyring, point_id, by="test")["ok"]
    point = rp.load_point(storage, point_id, keyring)
    expected = {f"{base}/{f['path']}" for _t, f in point.files()} | {f"{base}/{rp.MANIFEST}", f"{base}/{rp.SIGNATURE}"}
    assert set(objects(s3, storage, base)) == expected  # the stray part is gone


class _RecordingFs:
    """Delegates to the real S3FileSystem and records what is deleted, in order."""

    def __init__(self, fs: Any):
        self._fs = fs
        self.deleted: list[str] = []

    def delete_file(self, path: str) -> None:
        self.deleted.append(path)
        self._fs.delete_file(path)

    def delete_dir(self, path: str) -> None:
        self.deleted.append(path + "/")
        self._fs.delete_dir(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fs, name)


def test_expiry_deletes_an_expired_points_objects_and_keys(policy, store, storage, keyring, s3):
    target, _rows = store
    old_date = NOW - dt.timedelta(days=policy.backup_retention_days + 10)
    old = backup(policy, target, storage, keyring, when=old_date, run_id="old")
    new = backup(policy, target, storage, keyring, when=NOW, run_id="new")
    for point_id in (old.recovery_point_id, new.recovery_point_id):
        rp.verify_point(storage, keyring, point_id, by="test")
    assert rp.list_points(storage) == [old.recovery_point_id, new.recovery_point_id]
    old_base = rp.point_dir(old.recovery_point_id)
    exclusive = [p["key_prefix"] for p in rp.load_point(storage, old.recovery_point_id, keyring)
                 .manifest["partitions"].values() if p["key_prefix"].startswith("rp/")]
    assert exclusive and objects(s3, storage, old_base)

    recorder = _RecordingFs(storage.filesystem)
    storage.filesystem = recorder
    expired = rp.expire_points(storage, keyring, policy, NOW, run_id="expire-run")
    storage.filesystem = recorder._fs

    assert [e["recovery_point_id"] for e in expired] == [old.recovery_point_id]
    assert objects(s3, storage, old_base) == {}  # every object of the expired point is gone
    assert rp.list_points(storage) == [new.recovery_point_id]
    assert rp.verify_point(storage, keyring, new.recovery_point_id, by="test")["ok"]
    # its exclusive keys are destroyed (tombstones remain), shared epoch keys are not
    destroyed = expired[0]["destroyed_keys"]
    assert destroyed and all(k.startswith(tuple(p + "/" for p in exclusive)) for k in destroyed)
    assert all(keyring.info(k).state == "destroyed" for k in destroyed)
    # the manifest went after the data (an interrupted expiry leaves a listed point to finish)
    manifest_at = recorder.deleted.index(storage.full(f"{old_base}/{rp.MANIFEST}"))
    data_at = max(i for i, p in enumerate(recorder.deleted) if "/data" in p)
    assert data_at < manifest_at
    log = storage.read_bytes(f"{rp.CATALOG}/expired.jsonl").decode()
    assert old.recovery_point_id in log

    # expiring again is a no-op
    assert rp.expire_points(storage, keyring, policy, NOW, run_id="expire-again") == []
