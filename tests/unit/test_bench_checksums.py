"""The checksum window benchmark still runs, at a tiny scale (asserts nothing about speed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench import checksum_windows

from lomevexi_governance import checksums

pytestmark = pytest.mark.unit


def test_checksum_window_bench_smoke(tmp_path: Path, capsys) -> None:
    out = tmp_path / "windows.json"
    windows = [1024, checksums.WINDOW_BYTES]
    assert checksum_windows.main(["--orders", "30", "--rounds", "2", "--windows", ",".join(map(str, windows)),
                                  "--batch-rows", "64", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["orders"] == 30 and result["rows"] > 30 and result["batches"] > 8
    assert [r["window_bytes"] for r in result["results"]] == windows
    assert [r["default"] for r in result["results"]] == [False, True]
    assert all(len(r["runs_s"]) == 2 and r["median_s"] > 0 for r in result["results"])
    assert "| 1,024 |" in capsys.readouterr().out
    assert checksums.WINDOW_BYTES == windows[1]  # the default is put back


def test_window_dependent_checksums_fail_the_bench(monkeypatch) -> None:
    import pyarrow as pa

    batch = pa.record_batch({"id": pa.array([1, 2], pa.int64()), "t": pa.array(["a" * 40, "b"])})
    real = checksums.batch_checksums
    monkeypatch.setattr(checksums, "batch_checksums",
                        lambda b, pk: {**real(b, pk), "t": checksums.WINDOW_BYTES})
    with pytest.raises(AssertionError, match=r"window size\(s\) \[32\] give other checksums than 16"):
        checksum_windows.measure([("t", "id", batch)], [16, 32], rounds=1)
