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


def test_the_algorithm_gives_its_recorded_values():
    """Manifests record the algorithm and drills verify points with it for as long as they are
    kept, so a speed-up must never change its output: these are its values for a fixed batch."""
    from lomevexi_governance import checksums

    golden = pa.record_batch({
        "id": pa.array([1, 2, 3, 4, 5], pa.int64()),
        "name": pa.array(["山田 花子", None, "", "abcdefgh", "東京都渋谷区神宮前1-2-3 ハイツ101号室"], pa.string()),
        "t": pa.array([0, None, 1_700_000_000_123_456, -5, 42], TS),
        "n": pa.array([7, None, -1, 0, 2**40], pa.int64()),
        "f": pa.array([True, False, None, True, False]),
    })
    assert checksums.ALGORITHM == "splitmix64-sum/poly64-utf8/1"
    assert to_hex(batch_checksums(golden, "id")) == {
        "__rows__": 5, "id": "5cb418c0e503f184", "name": "ae4e8920c7d7950a", "t": "a8e39eeaacda171c",
        "n": "01a4fdfe9725e57d", "f": "4b82542d7764bdf7",
    }
