"""The benchmark harness still works end to end, at a tiny scale (asserts nothing about speed).

``python -m bench.run --orders 300 --runs 1`` against its own uniquely named PostgreSQL
database (created, seeded, dropped by the harness): every case runs once and the JSON,
markdown and SVG results name every case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench import run as bench_run

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


def test_bench_smoke(tmp_path: Path) -> None:
    import psycopg

    out = tmp_path / "results"
    cmd = [
        sys.executable, "-m", "bench.run", "--orders", "300", "--runs", "1", "--out", str(out),
        "--work", str(tmp_path / "work"), "--audit-events", "20000", "--pg", PG_SERVER,
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    [json_path] = list(out.glob("bench-300-*.json"))
    md_path, svg_path = json_path.with_suffix(".md"), json_path.with_suffix(".svg")
    assert md_path.exists() and svg_path.exists()
    result = json.loads(json_path.read_text())
    [scale] = result["scales"]
    assert scale["orders"] == 300 and scale["store"]["rows"]["orders"] == 300
    markdown, svg = md_path.read_text(), svg_path.read_text()
    for case in bench_run.DEFAULT_CASES:
        summary = scale["cases"][case]
        assert summary["runs_ok"] == 1 and not summary["errors"], (case, summary["errors"])
        assert summary["median_s"] > 0 and summary["peak_rss_mb"] > 0, case
        assert summary["host_cpu_s"] > 0, case  # the whole host's, the server's work included
        assert summary["command"], case
        [run] = summary["runs"]  # what made up the peak: the processes' RSS add up to it
        assert run["peak_processes"] and 0 <= run["peak_at_s"] <= run["wall_s"], case
        assert run["settle_s"] > 0, case  # CHECKPOINT and sync before the run, untimed
        assert abs(sum(p["rss_mb"] for p in run["peak_processes"]) - run["peak_rss_tree_mb"]) < 1, case
        assert f"- `{case}`: " in markdown, case
        assert f"`{case}`" in markdown, case
        assert summary["label"].replace("&", "&amp;") in svg, case
    assert scale["cases"]["backup_dag"]["detail"]["state"] == "success"
    assert scale["cases"]["backup"]["detail"]["validation_success"] is True
    assert {t["status"] for t in scale["targets"]} <= {"met", "not met"}
    assert len(scale["targets"]) == 8 and "### Targets" in markdown
    assert "Before each run, untimed: `CHECKPOINT` and `sync`" in markdown
    restore_target = next(t for t in scale["targets"] if t["target"].startswith("restore incl."))
    assert f"on {os.cpu_count()} cores" in restore_target["detail"]  # the drill's CPU floor
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert not result["errors"]

    # the harness dropped every database it created
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (scale["store"]["database"] + "%",)
        ).fetchall()
    assert left == []
