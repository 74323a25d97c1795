"""Recovery points: immutable, encrypted, signed snapshots of the in-scope tables.

Layout under the backup root::

    recovery_points/<id>/manifest.json          what is in the point (signed)
    recovery_points/<id>/manifest.json.sig      Ed25519 signature over manifest.json's bytes
    recovery_points/<id>/data/<table>/<partition>/part-00000.parquet  (part-00001 ... when a
                                                 partition's writer was closed early)
    staging/<id>.<attempt>/...                  work in progress; never read
    catalog/verifications/<id>.json             last verification of a point
    catalog/drills/<id>.json                    last drill of a point
    catalog/pins/<id>/<pin>.json                pins held by running drills
    catalog/expired.jsonl                       points deleted by expiry
    keys/<signing key>.pub.pem                  public key for offline verification

A point's id is derived from its logical date (``rp-20261123T160000Z``): one point per logical
date, so a rerun finds the point already published and leaves it as it is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lomevexi_governance import checksums
from lomevexi_governance.crypto import encryption_properties, master_key_ids
from lomevexi_governance.errors import IntegrityError, KeyMaterialError, NotFound
from lomevexi_governance.keys import KeyService, public_key_fingerprint, verify_signature
from lomevexi_governance.partitions import Partition, PartitionPlanner
from lomevexi_governance.pipeline import release_memory
from lomevexi_governance.policy import Policy, Table
from lomevexi_governance.reports import dumps
from lomevexi_governance.scan import forget_matchers
from lomevexi_governance.source import Snapshot, arrow_schema
from lomevexi_governance.storage import CATALOG, POINTS, Storage

FORMAT = "lomevexi-recovery-point/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
#: buffered rows across all open partitions of a table before the largest is flushed
BUFFER_BYTES = 64 << 20
#: row groups handed to the writer threads and not yet written, and the number of those threads.
#: One and one: at 2M orders (one process) that took the backup from 89.8 s to 71.6 s at the
#: same peak RSS (1,013 MB); two and two gained 2 s more for 75 MB (mimalloc's per-thread heaps)
IN_FLIGHT = 1
WRITER_THREADS = 1
#: Parquet writers a table keeps open at once (see :class:`TableWriter`)
MAX_OPEN_FILES = 16
#: a column is dictionary-encoded in all of a table's files when it repeats itself in the table's
#: first row group: at most DICTIONARY_SHARE distinct values among its first DICTIONARY_SAMPLE
#: rows (statuses, roles, prefectures, small amounts). Any other column (ids, timestamps, names,
#: addresses) is written plain: Parquet would build a dictionary of every value of the row group
#: only to give up at its 1 MiB page limit and write it plain anyway.
DICTIONARY_SAMPLE = 4096
DICTIONARY_SHARE = 0.5


def dictionary_columns(tbl: pa.Table) -> list[str]:
    """The columns of ``tbl`` worth dictionary-encoding (see :data:`DICTIONARY_SHARE`)."""
    sample = tbl.slice(0, DICTIONARY_SAMPLE)
    limit = max(1, int(DICTIONARY_SHARE * sample.num_rows))
    return [
        name for name in sample.schema.names
        if pc.count_distinct(sample.column(name), mode="all").as_py() <= limit
    ]


_ID = re.compile(r"^rp-\d{8}T\d{6}Z$")


def point_id_for(logical_date: dt.datetime) -> str:
    return "rp-" + logical_date.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def is_point_id(value: str) -> bool:
    return bool(_ID.match(value))


def point_dir(point_id: str) -> str:
    return f"{POINTS}/{point_id}"


def schema_fingerprint(schema: pa.Schema) -> str:
    desc = [{"name": f.name, "type": str(f.type)} for f in schema]
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()


class BatchCheck(Protocol):
    """A check on the data about to be written (content scan, Great Expectations)."""

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch: ...


@dataclass
class _PartitionFile:
    """One Parquet file of a partition (a partition has several when its writer was closed early)."""

    rel_path: str
    partition: Partition
    key_ids: dict[str, str]
    writer: Any
    rows: int = 0
    sums: dict[str, int] = field(default_factory=dict)
    #: the file's last write handed to the writer threads (each waits for the one before)
    last: Future[None] | None = None
    sha256: str = ""
    size: int = 0


@dataclass
class _PartitionBuffer:
    """Rows of one partition not yet handed to a writer."""

    partition: Partition
    batches: list[pa.RecordBatch] = field(default_factory=list)
    rows: int = 0
    nbytes: int = 0
    files: int = 0  # files opened so far (the next is part-<files>)


class TableWriter:
    """Writes one table's batches into per-partition encrypted Parquet files.

    Rows are buffered per partition (at most :data:`BUFFER_BYTES` in all; the largest buffer is
    flushed beyond it) and handed to a partition's file as one row group when its buffer holds
    ``row_group_rows``. A file is opened at its first row group, and at most
    :data:`MAX_OPEN_FILES` stay open: an open Parquet writer keeps its column buffers (at 5M
    orders about 5.7 MB each, so 56 open weekly partitions of ``orders`` held 320 MB), so the
    least recently written file is finished when another opens, and a partition that gets rows
    again later continues in its next file (``part-00001`` ...). Rows that arrive in a trickle stay
    buffered until a whole row group or the end of the table, so that costs few extra files.

    Row groups are encoded, compressed, encrypted, checksummed and written by background
    threads (pyarrow, numpy, hashlib and fsync release the GIL there), so that work overlaps with
    reading and checking the next batches; the writes of one file stay in order (each waits for
    the one before). At most :data:`IN_FLIGHT` row groups wait; an error in a thread surfaces in
    the caller at the next :meth:`add` or at :meth:`close`. At :meth:`close` the files are
    finished (last row group, footer, fsync, SHA-256) on :data:`WRITER_THREADS` threads.
    """

    def __init__(
        self,
        storage: Storage,
        base_rel: str,
        point_id: str,
        table: Table,
        schema: pa.Schema,
        keys: KeyService,
        run_id: str,
        row_group_rows: int,
        encrypt: bool = True,
        max_open_files: int | None = None,  # default: MAX_OPEN_FILES at construction
    ):
        self.storage = storage
        self.base_rel = base_rel
        self.point_id = point_id
        self.table = table
        self.schema = schema
        self.keys = keys
        self.run_id = run_id
        self.row_group_rows = row_group_rows
        self.encrypt = encrypt
        self.max_open_files = MAX_OPEN_FILES if max_open_files is None else max_open_files
        if self.max_open_files < 1:
            raise ValueError(f"{table.name}: max_open_files must be at least 1, not {self.max_open_files}")
        self.buffers: dict[str, _PartitionBuffer] = {}
        #: open files by partition label, least recently written first
        self.open: OrderedDict[str, _PartitionFile] = OrderedDict()
        self.finished: list[_PartitionFile] = []
        self._buffered_bytes = 0
        self._pool = ThreadPoolExecutor(max_workers=WRITER_THREADS, thread_name_prefix=f"parquet-{table.name}")
        self._in_flight: deque[Future[None]] = deque()
        #: decided from the table's first row group, the same for all its files
        self._dictionary: list[str] | None = None
        #: min/max statistics for ids, timestamps and amounts (row-group pruning by key or date);
        #: not for text, where they cost a quarter of the encoding and no reader uses them
        self._statistics = [
            f.name for f in schema if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
        ]
        by_class: dict[str, list[str]] = {}
        for f in schema:
            by_class.setdefault(table.column(f.name).sensitivity, []).append(f.name)
        self.columns_by_class = by_class

    def _open(self, buf: _PartitionBuffer, dictionary: list[str]) -> _PartitionFile:
        partition = buf.partition
        rel = f"data/{self.table.name}/{partition.label}/part-{buf.files:05d}.parquet"
        buf.files += 1
        key_ids = master_key_ids(partition.key_prefix(self.point_id), list(self.columns_by_class))
        props = None
        if self.encrypt:
            for key_id in key_ids.values():
                self.keys.ensure_master_key(key_id, created_by=self.run_id)
            props = encryption_properties(self.keys, key_ids, self.columns_by_class)
        full = self.storage.full(f"{self.base_rel}/{rel}")
        if self.storage.atomic_rename:
            import os

            os.makedirs(os.path.dirname(full), exist_ok=True)
        writer = pq.ParquetWriter(
            full,
            self.schema,
            filesystem=self.storage.filesystem,
            compression="zstd",
            compression_level=1,
            encryption_properties=props,
            write_statistics=self._statistics,
            use_dictionary=dictionary,
        )
        return _PartitionFile(rel, partition, key_ids if self.encrypt else {}, writer)

    def add(self, batch: pa.RecordBatch, codes: np.ndarray, partitions: Callable[[int], Partition]) -> None:
        uniq = np.unique(codes)
        for code in uniq:
            part = partitions(int(code))
            sub = batch if len(uniq) == 1 else batch.filter(pa.array(codes == code))
            buf = self.buffers.get(part.label)
            if buf is None:
                buf = self.buffers[part.label] = _PartitionBuffer(part)
            buf.batches.append(sub)
            buf.rows += sub.num_rows
            buf.nbytes += sub.nbytes
            self._buffered_bytes += sub.nbytes
            if buf.rows >= self.row_group_rows:
                self._flush(buf)
        while self._buffered_bytes > BUFFER_BYTES:
            self._flush(max(self.buffers.values(), key=lambda b: b.nbytes))

    def _flush(self, buf: _PartitionBuffer) -> None:
        """Hand ``buf``'s rows to the partition's open file (opened now if none) as one row group."""
        if not buf.batches:
            return
        tbl = pa.Table.from_batches(buf.batches, schema=self.schema)
        if self._dictionary is None:
            self._dictionary = dictionary_columns(tbl)
        self._buffered_bytes -= buf.nbytes
        buf.batches, buf.rows, buf.nbytes = [], 0, 0
        label = buf.partition.label
        pf = self.open.pop(label, None) or self._open(buf, self._dictionary)
        self.open[label] = pf  # now the most recently written
        while len(self._in_flight) >= IN_FLIGHT:
            self._in_flight.popleft().result()
        self._submit(pf, tbl, finish=False)
        while len(self.open) > self.max_open_files:
            _label, oldest = self.open.popitem(last=False)
            self._finish(oldest)

    def _submit(self, pf: _PartitionFile, tbl: pa.Table | None, *, finish: bool) -> None:
        pf.last = self._pool.submit(self._write_row_group, pf, tbl, pf.last, finish)
        self._in_flight.append(pf.last)

    def _finish(self, pf: _PartitionFile) -> None:
        self._submit(pf, None, finish=True)
        self.finished.append(pf)

    def _write_row_group(self, pf: _PartitionFile, tbl: pa.Table | None, before: Future[None] | None,
                         finish: bool) -> None:
        # runs on a writer thread; the file's writes are serialised by waiting for the previous
        # one (submitted earlier, so already running or done: no deadlock), and nothing else
        # touches the file's writer, row count or checksums until close() has waited for all
        if before is not None:
            before.result()
        if tbl is not None:
            pf.writer.write_table(tbl, row_group_size=max(tbl.num_rows, 1))
            pf.sums = checksums.combine([pf.sums, checksums.batch_checksums(tbl, self.table.primary_key)])
            pf.rows += tbl.num_rows
        if finish:
            pf.writer.close()
            rel_full = f"{self.base_rel}/{pf.rel_path}"
            self.storage.finalize_file(rel_full)
            pf.sha256, pf.size = self.storage.sha256(rel_full)

    def close(self) -> list[dict[str, Any]]:
        """Write what is still buffered, finish every open file; the files' manifest entries."""
        for label in sorted(self.buffers):
            self._flush(self.buffers[label])
        for label in sorted(self.open):
            self._finish(self.open.pop(label))
        while self._in_flight:
            self._in_flight.popleft().result()
        self._pool.shutdown()
        return [
            {
                "path": pf.rel_path,
                "partition": pf.partition.label,
                "rows": pf.rows,
                "bytes": pf.size,
                "sha256": pf.sha256,
                "key_ids": pf.key_ids,
                "checksums": checksums.to_hex(pf.sums),
            }
            for pf in sorted(self.finished, key=lambda f: f.rel_path)
        ]

    def abort(self) -> None:
        # queued writes are cancelled, running ones finish; then nothing touches the files
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._in_flight.clear()
        for pf in [*self.open.values(), *self.finished]:
            try:
                pf.writer.close()
            except Exception:  # noqa: BLE001, S110 - aborting; the staging folder is discarded
                pass


@dataclass
class WriteResult:
    point_id: str
    staging_rel: str
    manifest: dict[str, Any]
    scan: dict[str, Any]
    seconds: float


@dataclass
class PointWrite:
    """A point being written: what every table's writer needs (built once, from the snapshot)."""

    policy: Policy
    storage: Storage
    keys: KeyService
    logical_date: dt.datetime
    run_id: str
    point_id: str
    staging: str
    scope: list[Table]
    extra_columns: dict[str, list[str]]
    planner: PartitionPlanner
    encrypt: bool = True
    started: float = field(default_factory=time.monotonic)


@dataclass
class TablePart:
    """One table's share of a point: its manifest entry and the partitions its files use."""

    name: str
    entry: dict[str, Any]
    partitions: dict[str, dict[str, Any]]
    checks: dict[str, Any] = field(default_factory=dict)


def begin_point(
    *,
    policy: Policy,
    snapshot: Snapshot,
    storage: Storage,
    keys: KeyService,
    logical_date: dt.datetime,
    run_id: str,
    tables: Sequence[str] | None = None,
    encrypt: bool = True,
) -> PointWrite:
    """Check the store against the policy, load the partition facts, open a staging folder."""
    point_id = point_id_for(logical_date)
    scope = [t for t in policy.backup_tables if tables is None or t.name in tables]
    extra_columns = snapshot.check_tables(scope)
    planner = PartitionPlanner(policy, logical_date)
    planner.load(snapshot)
    staging = storage.staging_for(point_id)
    return PointWrite(policy, storage, keys, logical_date, run_id, point_id, staging, scope, extra_columns,
                      planner, encrypt)


def write_table(
    pw: PointWrite,
    snapshot: Snapshot,
    table: Table,
    checks: Sequence[BatchCheck] = (),
    planner: PartitionPlanner | None = None,
) -> TablePart:
    """Stream one table from ``snapshot`` through ``checks`` into its partition files in staging.

    ``planner`` defaults to the point's; a worker process passes its own (same snapshot, same facts).
    """
    planner = planner or pw.planner
    schema = arrow_schema(table)
    writer = TableWriter(pw.storage, pw.staging, pw.point_id, table, schema, pw.keys, pw.run_id,
                         pw.policy.row_group_rows, pw.encrypt)
    try:
        # no ORDER BY: nothing depends on the order of rows in a file (checksums are order-free,
        # restores add the primary key after loading), and a sequential scan is cheaper
        for raw in snapshot.stream(table, ordered=False):
            batch = raw
            for check in checks:
                batch = check.process(batch)
            writer.add(batch, planner.assign(table, batch), planner.partition)
        for check in checks:
            finish = getattr(check, "finish", None)
            if finish is not None:
                finish()
        files = writer.close()
    except BaseException:
        writer.abort()
        raise
    forget_matchers()  # the content scan's and the gate's per-batch matchers hold the last batches
    # the table's buffers are free now; without this the allocators keep them for the next
    # table (one process, 2M orders, one run each: peak RSS 763 -> 647 MB; at the end, when the
    # leader imports GX for the results, 724 -> about 420 MB)
    release_memory()
    total = checksums.combine(checksums.from_hex(f["checksums"]) for f in files) if files else {}
    entry = {
        "rows": sum(f["rows"] for f in files),
        "bytes": sum(f["bytes"] for f in files),
        "primary_key": table.primary_key,
        "schema": [
            {"name": f.name, "type": table.column(f.name).type, "class": table.column(f.name).sensitivity,
             "nullable": table.column(f.name).nullable}
            for f in schema
        ],
        "schema_fingerprint": schema_fingerprint(schema),
        "checksums": checksums.to_hex(total) if total else {},
        "files": files,
        "extra_columns_ignored": pw.extra_columns.get(table.name, []),
    }
    used = {f["partition"] for f in files}
    partitions = {
        p.label: p.as_dict() | {"key_prefix": p.key_prefix(pw.point_id)}
        for p in planner.partitions.values()
        if p.label in used
    }
    return TablePart(table.name, entry, partitions)


def finish_point(
    pw: PointWrite, snapshot: Snapshot, parts: Sequence[TablePart], extra_manifest: dict[str, Any] | None = None
) -> WriteResult:
    """The unsigned manifest of every table written (in policy order) and the source watermark."""
    by_name = {p.name: p for p in parts}
    missing = [t.name for t in pw.scope if t.name not in by_name]
    if missing:
        raise IntegrityError(f"recovery point {pw.point_id}: table(s) {missing} were not written")
    watermark = {}
    for table in pw.scope:
        if "updated_at" in table.column_names:
            value = snapshot.max_timestamp(table, "updated_at")
            watermark[table.name] = value.isoformat() if value else None
    partitions: dict[str, dict[str, Any]] = {}
    for part in parts:
        partitions.update(part.partitions)
    info = snapshot.info
    assert info is not None
    manifest = {
        "format": FORMAT,
        "recovery_point_id": pw.point_id,
        "logical_date": pw.logical_date.astimezone(dt.timezone.utc).isoformat(),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "dag_run_id": pw.run_id,
        "policy_sha256": pw.policy.sha256,
        "encrypted": pw.encrypt,
        "checksum_algorithm": checksums.ALGORITHM,
        "epoch_unit": pw.policy.epoch_unit,
        "source": {
            "dialect": info.dialect,
            "location": snapshot.target.describe(),
            "snapshot": info.position,
            "snapshot_started_at": info.started_at.isoformat(),
            "watermark": watermark,
        },
        "partitions": dict(sorted(partitions.items())),
        "tables": {t.name: by_name[t.name].entry for t in pw.scope},
    }
    if extra_manifest:
        manifest.update(extra_manifest)
    return WriteResult(pw.point_id, pw.staging, manifest, {}, time.monotonic() - pw.started)


def write_point(
    *,
    policy: Policy,
    snapshot: Snapshot,
    storage: Storage,
    keys: KeyService,
    logical_date: dt.datetime,
    run_id: str,
    checks_for: Callable[[Table, PartitionPlanner], Sequence[BatchCheck]] = lambda t, p: (),
    tables: Sequence[str] | None = None,
    encrypt: bool = True,
    extra_manifest: dict[str, Any] | None = None,
) -> WriteResult:
    """Stream every in-scope table from ``snapshot`` into a new staging folder, one after another.

    Nothing becomes visible under the final name here: :func:`publish_point` does that.
    (``backup.run_backup`` runs the same steps with tables spread over worker processes.)
    """
    pw = begin_point(policy=policy, snapshot=snapshot, storage=storage, keys=keys, logical_date=logical_date,
                     run_id=run_id, tables=tables, encrypt=encrypt)
    parts = [write_table(pw, snapshot, table, list(checks_for(table, pw.planner))) for table in pw.scope]
    return finish_point(pw, snapshot, parts, extra_manifest)


def sign_manifest(manifest: dict[str, Any], keys: KeyService) -> tuple[bytes, bytes]:
    body = dumps(manifest).encode("utf-8")
    key_id, signature = keys.sign(body)
    pem = keys.public_key_pem(key_id)
    sig = dumps({"algorithm": "ed25519", "key_id": key_id, "public_key_sha256_16": public_key_fingerprint(pem),
                 "signature": signature}).encode()
    return body, sig


def publish_point(storage: Storage, keys: KeyService, result: WriteResult, manifest: dict[str, Any]) -> str:
    """Sign the manifest and make the point visible atomically. Returns its folder."""
    body, sig = sign_manifest(manifest, keys)
    final = point_dir(result.point_id)
    storage.write_bytes(f"{result.staging_rel}/{SIGNATURE}", sig)
    storage.write_bytes(f"{result.staging_rel}/{MANIFEST}", body)  # last: publishes on object stores
    storage.publish(result.staging_rel, final)
    key_id = json.loads(sig)["key_id"]
    pub_rel = f"keys/{key_id.replace('/', '-')}.pub.pem"
    if not storage.exists(pub_rel):
        storage.write_bytes(pub_rel, keys.public_key_pem(key_id).encode())
    return final


def discard_staging(storage: Storage, point_id: str) -> int:
    """Remove what a killed earlier attempt of a point left behind.

    Local roots: its ``staging/<id>.<attempt>/`` folders. Object stores write a point in place
    and publish it with the manifest, so a point prefix without a manifest is an abandoned
    attempt: its objects are deleted (callers only get here when the point is not published).
    """
    removed = 0
    if not storage.atomic_rename:
        base = point_dir(point_id)
        if not storage.exists(f"{base}/{MANIFEST}") and storage.exists(base):
            storage.delete_tree(base)
            removed += 1
        return removed
    for name in storage.list_dir("staging"):
        if name.startswith(point_id + "."):
            storage.delete_tree(f"staging/{name}")
            removed += 1
    return removed


# -- reading and verifying ---------------------------------------------------------------


@dataclass
class PointRef:
    point_id: str
    manifest: dict[str, Any]
    signature: dict[str, Any]

    @property
    def logical_date(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.manifest["logical_date"])

    @property
    def created_at(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.manifest["created_at"])

    def files(self, tables: Iterable[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
        wanted = set(tables) if tables is not None else None
        return [
            (name, f)
            for name, t in self.manifest["tables"].items()
            if wanted is None or name in wanted
            for f in t["files"]
        ]


def load_point(storage: Storage, point_id: str, keys: KeyService | None = None, *, verify: bool = True) -> PointRef:
    """Read a point's manifest; with ``verify`` (default) check its signature first."""
    base = point_dir(point_id)
    if not storage.exists(f"{base}/{MANIFEST}"):
        raise NotFound(f"recovery point {point_id!r} has no manifest under {storage.describe(base)}")
    body = storage.read_bytes(f"{base}/{MANIFEST}")
    try:
        sig = json.loads(storage.read_bytes(f"{base}/{SIGNATURE}"))
    except (NotFound, json.JSONDecodeError):
        raise IntegrityError(f"recovery point {point_id!r}: {SIGNATURE} is missing or unreadable") from None
    if verify:
        if keys is None:
            raise ValueError("verify=True needs the key service (for the trusted public key)")
        pem = keys.public_key_pem(sig["key_id"])
        if not verify_signature(pem, body, sig["signature"]):
            raise IntegrityError(
                f"recovery point {point_id!r}: the signature of {storage.describe(base + '/' + MANIFEST)} "
                "does not verify (the manifest was altered or signed by another key)"
            )
    try:
        manifest = json.loads(body)
    except json.JSONDecodeError:
        raise IntegrityError(f"recovery point {point_id!r}: {MANIFEST} is not valid JSON") from None
    if manifest.get("recovery_point_id") != point_id:
        raise IntegrityError(f"recovery point {point_id!r}: the manifest names another point")
    return PointRef(point_id, manifest, sig)


def verify_files(
    storage: Storage,
    point: PointRef,
    tables: Iterable[str] | None = None,
    skip: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """Check the SHA-256 and size of every file against the manifest; raise naming the first bad file."""
    base = point_dir(point.point_id)
    checked = 0
    total = 0
    for _table, f in point.files(tables):
        if skip is not None and skip(f):
            continue
        rel = f"{base}/{f['path']}"
        sha, size = storage.sha256(rel)
        if sha != f["sha256"] or size != f["bytes"]:
            raise IntegrityError(
                f"recovery point {point.point_id!r}: file {f['path']} does not match its manifest "
                f"(SHA-256 {'differs' if sha != f['sha256'] else 'ok'}, size {size} vs {f['bytes']}): "
                f"{storage.describe(rel)}"
            )
        checked += 1
        total += size
    return {"files": checked, "bytes": total}


def list_points(storage: Storage) -> list[str]:
    """Ids of published points (a folder with a manifest), oldest first."""
    return [
        name
        for name in storage.list_dir(POINTS)
        if is_point_id(name) and storage.exists(f"{POINTS}/{name}/{MANIFEST}")
    ]


def record(storage: Storage, kind: str, point_id: str, payload: dict[str, Any]) -> None:
    storage.write_bytes(f"{CATALOG}/{kind}/{point_id}.json", dumps(payload).encode())


def read_record(storage: Storage, kind: str, point_id: str) -> dict[str, Any] | None:
    rel = f"{CATALOG}/{kind}/{point_id}.json"
    if not storage.exists(rel):
        return None
    return json.loads(storage.read_bytes(rel))


def verify_point(storage: Storage, keys: KeyService, point_id: str, *, by: str) -> dict[str, Any]:
    """Full verification (signature, then every file's hash); records the outcome in the catalog."""
    started = dt.datetime.now(dt.timezone.utc)
    outcome: dict[str, Any] = {"recovery_point_id": point_id, "verified_at": started.isoformat(), "by": by}
    try:
        point = load_point(storage, point_id, keys)
        stats = verify_files(storage, point)
    except (IntegrityError, NotFound, KeyMaterialError) as exc:
        record(storage, "verifications", point_id, outcome | {"ok": False, "error": str(exc)})
        raise
    outcome |= {"ok": True, **stats}
    record(storage, "verifications", point_id, outcome)
    return outcome


def newest_verified(storage: Storage) -> str | None:
    for point_id in reversed(list_points(storage)):
        rec = read_record(storage, "verifications", point_id)
        if rec and rec.get("ok"):
            return point_id
    return None


# -- pins and expiry ---------------------------------------------------------------------


def pin(storage: Storage, point_id: str, holder: str, *, expires_at: dt.datetime) -> str:
    rel = f"{CATALOG}/pins/{point_id}/{_safe(holder)}.json"
    storage.write_bytes(rel, dumps({"holder": holder, "expires_at": expires_at.isoformat()}).encode())
    return rel


def unpin(storage: Storage, point_id: str, holder: str) -> None:
    storage.delete_tree(f"{CATALOG}/pins/{point_id}/{_safe(holder)}.json")


def active_pins(storage: Storage, point_id: str, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    now = now or dt.datetime.now(dt.timezone.utc)
    out = []
    for name in storage.list_dir(f"{CATALOG}/pins/{point_id}"):
        data = json.loads(storage.read_bytes(f"{CATALOG}/pins/{point_id}/{name}"))
        if dt.datetime.fromisoformat(data["expires_at"]) > now:
            out.append(data)
    return out


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def expire_points(
    storage: Storage, keys: KeyService, policy: Policy, logical_date: dt.datetime, *, run_id: str
) -> list[dict[str, Any]]:
    """Delete points past backup retention, with their exclusive keys.

    Never the newest verified point, never a pinned one. Returns what was expired.
    """
    keep_after = logical_date - dt.timedelta(days=policy.backup_retention_days)
    newest = newest_verified(storage)
    expired = []
    for point_id in list_points(storage):
        if point_id == newest or active_pins(storage, point_id):
            continue
        try:
            point = load_point(storage, point_id, keys)
        except (IntegrityError, NotFound):
            continue  # a damaged point is left for a human: the verification record shows it
        if point.logical_date > keep_after:
            continue
        exclusive = [
            p["key_prefix"] for p in point.manifest["partitions"].values() if p["key_prefix"].startswith("rp/")
        ]
        # keys first: if the run dies after this, the point is already unreadable, and the
        # rerun (which still lists the folder) finishes the deletion
        destroyed = []
        for prefix in exclusive:
            for info in keys.list_keys(prefix + "/"):
                if info.state == "active":
                    keys.destroy(info.key_id, reason=f"recovery point {point_id} expired", run_id=run_id)
                    destroyed.append(info.key_id)
        # the manifest last: an interrupted delete leaves a listed point that the rerun finishes
        storage.delete_tree(point_dir(point_id), last=(MANIFEST, SIGNATURE))
        entry = {
            "recovery_point_id": point_id,
            "logical_date": point.manifest["logical_date"],
            "expired_at": dt.datetime.now(dt.timezone.utc).isoformat(),
            "run_id": run_id,
            "destroyed_keys": destroyed,
        }
        _append_jsonl(storage, f"{CATALOG}/expired.jsonl", entry)
        expired.append(entry)
    return expired


def _append_jsonl(storage: Storage, rel: str, entry: dict[str, Any]) -> None:
    existing = storage.read_bytes(rel) if storage.exists(rel) else b""
    storage.write_bytes(rel, existing + json.dumps(entry, sort_keys=True, ensure_ascii=False).encode() + b"\n")

