"""Order-independent column checksums."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lomevexi_governance.checksums import batch_checksums, combine, from_hex, subtract, to_hex

pytestmark = pytest.mark.unit

TS = pa.timestamp("us", tz="UTC")


def _batch(ids, names, ts):
    return pa.record_batch({"id": pa.array(ids, pa.int64()), "name": pa.array(names, pa.string()), "t": pa.array(ts, TS)})


def test_order_does_not_matter_and_parts_add_up():
    b = _batch([1, 2, 3], ["山田", None, "🙏"], [0, None, 1_700_000_000_123_456])
    whole = batch_checksums(b, "id")
    assert batch_checksums(b.take([2, 0, 1]), "id") == whole
    assert combine([batch_checksums(b.slice(0, 1), "id"), batch_checksums(b.slice(1), "id")]) == whole
    assert subtract(whole, batch_checksums(b.slice(0, 1), "id")) == batch_checksums(b.slice(1), "id")
    assert from_hex(to_hex(whole)) == whole


def test_changes_are_detected():
    b = _batch([1, 2], ["a", "b"], [1, 2])
    base = batch_checksums(b, "id")
    swapped = batch_checksums(_batch([1, 2], ["b", "a"], [1, 2]), "id")
    assert swapped["name"] != base["name"] and swapped["t"] == base["t"]
    nulled = batch_checksums(_batch([1, 2], ["a", None], [1, 2]), "id")
    assert nulled["name"] != base["name"]
    empty = batch_checksums(_batch([1, 2], ["a", ""], [1, 2]), "id")
    assert empty["name"] != nulled["name"]
    dup = batch_checksums(_batch([1, 2, 2], ["a", "b", "b"], [1, 2, 2]), "id")
    assert dup["__rows__"] == 3 and dup["name"] != base["name"]


def test_windows_do_not_change_hashes_and_memory_stays_bounded(monkeypatch):
    from lomevexi_governance import checksums

    values = pa.array([f"山田 花子 {i}" * (i % 7) for i in range(5000)] + ["x" * 5000])
    whole = checksums._string_hashes(values)
    monkeypatch.setattr(checksums, "WINDOW_BYTES", 1000)  # many windows, one value longer than a window
    assert (checksums._string_hashes(values) == whole).all()
    assert (checksums._string_hashes(values.slice(17, 300)) == whole[17:317]).all()
    big = pa.array(["a" * 100] * 200_000)  # 20 MB of text
    monkeypatch.setattr(checksums, "WINDOW_BYTES", 1 << 20)
    checksums._string_hashes(big)
    assert len(checksums._POWERS[0]) <= (1 << 20) + 1
