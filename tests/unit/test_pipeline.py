"""The overlap machinery: a prefetching reader thread and the Parquet writer threads."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lomevexi_governance import checksums
from lomevexi_governance import recovery_points as rp
from lomevexi_governance.partitions import Partition
from lomevexi_governance.pipeline import prefetched
from lomevexi_governance.policy import load_policy
from lomevexi_governance.source import arrow_schema
from lomevexi_governance.storage import storage_for

pytestmark = pytest.mark.unit


class Source:
    """An iterator that records which thread ran it and whether it was closed."""

    def __init__(self, n: int, fail_at: int | None = None):
        self.n, self.fail_at = n, fail_at
        self.threads: set[str] = set()
        self.produced = 0
        self.closed = False

    def __iter__(self) -> Iterator[int]:
        return self.gen()

    def gen(self) -> Iterator[int]:
        try:
            for i in range(self.n):
                self.threads.add(threading.current_thread().name)
                if i == self.fail_at:
                    raise LookupError(f"orders.status: item {i} is bad")
                self.produced += 1
                yield i
        finally:
            self.closed = True


def _no_thread(name: str) -> bool:
    return all(t.name != name for t in threading.enumerate())


def test_items_arrive_in_order_produced_on_another_thread():
    src = Source(50)
    got = list(prefetched(iter(src), depth=2, name="t-order"))
    assert got == list(range(50))
    assert src.threads == {"t-order"} and src.closed
    assert _no_thread("t-order")


def test_a_producer_error_is_raised_unchanged_in_the_consumer():
    src = Source(10, fail_at=3)
    got = []
    with pytest.raises(LookupError, match=r"orders\.status: item 3 is bad"):
        for item in prefetched(iter(src), name="t-fail"):
            got.append(item)
    assert got == [0, 1, 2] and src.closed and _no_thread("t-fail")


def test_stopping_early_closes_the_source_and_joins_the_thread():
    src = Source(10_000)
    gen = prefetched(iter(src.gen()), depth=2, name="t-early")
    assert [next(gen), next(gen)] == [0, 1]
    gen.close()
    assert src.closed and _no_thread("t-early")
    assert src.produced <= 2 + 2 + 1  # consumed, queued, in hand: never runs ahead unbounded


def test_the_producer_stays_at_most_depth_ahead():
    src = Source(1000)
    gen = prefetched(iter(src.gen()), depth=3, name="t-depth")
    next(gen)
    time.sleep(0.3)
    assert src.produced <= 1 + 3 + 1
    gen.close()


def _writer(tmp_path, table_name: str, **kw) -> tuple[rp.TableWriter, pa.Schema]:
    policy = load_policy()
    table = policy.table(table_name)
    schema = arrow_schema(table)
    storage = storage_for(str(tmp_path))
    writer = rp.TableWriter(storage, "staging", "rp-20261124T000000Z", table, schema, keys=None,  # type: ignore[arg-type]
                            run_id="test", row_group_rows=100, encrypt=False, **kw)
    return writer, schema


def _customers(n: int, start: int, schema: pa.Schema) -> pa.RecordBatch:
    ts = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    cols = {}
    for f in schema:
        if pa.types.is_int64(f.type):
            cols[f.name] = pa.array(range(start, start + n), type=pa.int64())
        elif pa.types.is_timestamp(f.type):
            cols[f.name] = pa.array([ts] * n, type=f.type)
        else:
            cols[f.name] = pa.array([f"{f.name}-{i}" for i in range(start, start + n)], type=pa.string())
    return pa.RecordBatch.from_pydict(cols, schema=schema)


def test_writer_threads_write_every_row_in_row_groups_with_exact_checksums(tmp_path):
    writer, schema = _writer(tmp_path, "customers")
    parts = [Partition("open", "open"), Partition("protected", "protected")]
    batches = [_customers(70, i * 70, schema) for i in range(20)]
    import numpy as np

    for b in batches:
        codes = (np.asarray(b.column("customer_id")) % 2).astype(np.int32)
        writer.add(b, codes, lambda c: parts[c])
    files = writer.close()
    assert sorted(f["partition"] for f in files) == ["open", "protected"]
    assert sum(f["rows"] for f in files) == 1400
    everything = pa.Table.from_batches(batches)
    expected = checksums.batch_checksums(everything, "customer_id")
    total = checksums.combine(checksums.from_hex(f["checksums"]) for f in files)
    assert total == expected
    for f in files:
        path = tmp_path / "staging" / f["path"]
        meta = pq.ParquetFile(path).metadata
        assert meta.num_rows == f["rows"] and meta.num_row_groups >= 2
        assert f["bytes"] == path.stat().st_size
        import hashlib

        assert f["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_at_most_max_open_files_writers_are_open_and_a_partition_continues_in_its_next_file(tmp_path):
    import hashlib

    import numpy as np

    writer, schema = _writer(tmp_path, "customers", max_open_files=2)
    parts = [Partition(f"epoch-{i}", f"epoch-{i}") for i in range(5)]
    batches = [_customers(120, i * 120, schema) for i in range(30)]
    most_open = 0
    for i, b in enumerate(batches):
        # partitions 0..4 in turn get whole row groups; partition 4 also a trickle from every batch
        codes = np.full(b.num_rows, i % 4, dtype=np.int32)
        codes[:3] = 4
        writer.add(b, codes, lambda c: parts[c])
        most_open = max(most_open, len(writer.open))
    files = writer.close()
    assert most_open <= 2 and not writer.open
    by_partition: dict[str, list[str]] = {}
    for f in files:
        by_partition.setdefault(f["partition"], []).append(f["path"])
    assert set(by_partition) == {p.label for p in parts}
    # partitions 0..3 were closed and reopened: several numbered files each
    assert all(len(by_partition[f"epoch-{i}"]) > 1 for i in range(4))
    assert sorted(by_partition["epoch-0"])[:2] == ["data/customers/epoch-0/part-00000.parquet",
                                                   "data/customers/epoch-0/part-00001.parquet"]
    # the trickle stayed buffered until the end: one file, one row group
    assert len(by_partition["epoch-4"]) == 1
    assert pq.ParquetFile(tmp_path / "staging" / by_partition["epoch-4"][0]).metadata.num_row_groups == 1
    everything = pa.Table.from_batches(batches)
    assert sum(f["rows"] for f in files) == everything.num_rows
    total = checksums.combine(checksums.from_hex(f["checksums"]) for f in files)
    assert total == checksums.batch_checksums(everything, "customer_id")
    ids = []
    for f in files:
        path = tmp_path / "staging" / f["path"]
        assert f["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        ids += pq.read_table(path, columns=["customer_id"]).column(0).to_pylist()
    assert sorted(ids) == list(range(everything.num_rows))


def test_only_columns_that_repeat_are_dictionary_encoded_and_text_has_no_statistics(tmp_path):
    import numpy as np

    writer, schema = _writer(tmp_path, "customers")
    ts = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    parts = [Partition("open", "open"), Partition("protected", "protected")]
    batches = []
    for i in range(6):
        ids = list(range(i * 100, i * 100 + 100))
        batches.append(pa.RecordBatch.from_pydict({
            "customer_id": pa.array(ids, type=pa.int64()),  # unique
            "email": pa.array([f"c{k % 3}@example.jp" for k in ids]),  # three values
            "created_at": pa.array([ts + dt.timedelta(seconds=k) for k in ids], type=schema.field("created_at").type),
            "updated_at": pa.array([None if k % 2 else ts for k in ids], type=schema.field("updated_at").type),
        }, schema=schema))
    assert rp.dictionary_columns(pa.Table.from_batches(batches)) == ["email", "updated_at"]
    for b in batches:
        writer.add(b, (np.asarray(b.column("customer_id")) % 2).astype(np.int32), lambda c: parts[c])
    files = writer.close()
    assert len(files) == 2
    for f in files:
        meta = pq.ParquetFile(tmp_path / "staging" / f["path"]).metadata
        for rg in range(meta.num_row_groups):
            dictionary = {meta.schema.column(i).name for i in range(meta.num_columns)
                          if meta.row_group(rg).column(i).dictionary_page_offset is not None}
            assert dictionary == {"email", "updated_at"}, (f["path"], rg)
            with_stats = {meta.schema.column(i).name for i in range(meta.num_columns)
                          if meta.row_group(rg).column(i).is_stats_set}
            assert with_stats == {"customer_id", "created_at", "updated_at"}, (f["path"], rg)
    # a sample without repeats has no dictionary column; a single row is its own dictionary
    assert rp.dictionary_columns(pa.Table.from_batches(batches[:1]).select(["customer_id"])) == []
    assert rp.dictionary_columns(pa.Table.from_batches(batches[:1]).slice(0, 1)) == schema.names


def test_a_failure_on_a_writer_thread_surfaces_in_the_caller(tmp_path, monkeypatch):
    writer, schema = _writer(tmp_path, "customers")
    part = Partition("open", "open")
    import numpy as np

    def broken(tbl, primary_key):
        raise OSError("disk full writing customers/open")

    monkeypatch.setattr(checksums, "batch_checksums", broken)
    with pytest.raises(OSError, match="disk full writing customers/open"):
        for i in range(10):
            b = _customers(100, i * 100, schema)
            writer.add(b, np.zeros(100, dtype=np.int32), lambda c: part)
        writer.close()
    writer.abort()
    assert all(not t.name.startswith("parquet-customers") for t in threading.enumerate())


def test_giving_memory_back_starts_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """release_memory runs after every table of a drill or backup: it must reach the C library
    without ``ctypes.util.find_library``, which runs ``ldconfig -p`` in a child process."""
    import subprocess

    from lomevexi_governance import pipeline, restore

    started: list[object] = []
    real = subprocess.Popen.__init__

    def recording(self: subprocess.Popen[bytes], *args: object, **kwargs: object) -> None:
        started.append(args[0] if args else kwargs.get("args"))
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(subprocess.Popen, "__init__", recording)
    pipeline.libc.cache_clear()
    pool = pa.default_memory_pool()
    try:
        pipeline.release_memory()
        restore.bounded_memory.__wrapped__()
        pipeline.release_memory()
    finally:
        pa.set_memory_pool(pool)  # bounded_memory chose the process's Arrow allocator
    assert started == []
    lib = pipeline.libc()
    assert lib is not None  # glibc, on every machine this project runs on
    assert lib.malloc_trim(0) in (0, 1)
