"""``make bench-checksums``: per-column checksum speed by text window size, side by side.

    python -m bench.checksum_windows                       # 100,000 orders, the default windows
    python -m bench.checksum_windows --orders 20000 --windows 16384,131072,1048576 --rounds 3

The per-column checksums (``lomevexi_governance.checksums``) hash text in windows of
``WINDOW_BYTES`` bytes; each window's temporaries are about 32 bytes per byte of text, so the
window decides whether the work stays in a core's cache. This seeds a SQLite store of
``--orders`` orders in a temporary directory, reads every in-scope table through the backup's
own reader (``source.Snapshot``, the canonical Arrow batches a backup checksums), then times
``batch_checksums`` over all of them once per window size, the sizes alternating round by round
(so drift hits every size alike), and reports the median of the rounds. Every window size must
give the same checksums (the hash does not depend on the window): the run fails otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_WINDOWS = (1 << 14, 1 << 16, 1 << 17, 1 << 18, 1 << 20)
AS_OF = dt.datetime(2026, 11, 24, tzinfo=dt.timezone.utc)


def load_batches(orders: int, work: Path, batch_rows: int | None = None) -> list[tuple[str, str, Any]]:
    """``(table, primary key, batch)`` for every batch of every in-scope table of a fresh store,
    ``batch_rows`` rows each (default the policy's ``row_group_rows``: what a backup checksums
    at a time; a drill's read-back uses the same size)."""
    from lomevexi_governance.policy import load_policy
    from lomevexi_governance.seed import seed_store
    from lomevexi_governance.settings import sqlite_target
    from lomevexi_governance.source import Snapshot

    policy = load_policy()
    target = sqlite_target(str(work / "store.db"), conn_id="bench_checksums")
    seed_store(target, orders=orders, as_of=AS_OF)
    out = []
    with Snapshot(target, batch_rows=batch_rows or policy.row_group_rows) as snap:
        for table in policy.backup_tables:
            out.extend((table.name, table.primary_key, b) for b in snap.stream(table, ordered=False))
    return out


def measure(batches: list[tuple[str, str, Any]], windows: Sequence[int], rounds: int) -> dict[str, Any]:
    from lomevexi_governance import checksums

    default = checksums.WINDOW_BYTES
    seconds: dict[int, list[float]] = {w: [] for w in windows}
    sums: dict[int, list[dict[str, int]]] = {}
    try:
        for _ in range(rounds):
            for w in windows:
                checksums.WINDOW_BYTES = w
                started = time.perf_counter()
                got = [checksums.batch_checksums(b, pk) for _, pk, b in batches]
                seconds[w].append(time.perf_counter() - started)
                if sums.setdefault(w, got) != got:
                    raise AssertionError(f"window {w}: checksums differ between rounds")
    finally:
        checksums.WINDOW_BYTES = default
    first = sums[windows[0]]
    differ = [w for w in windows if sums[w] != first]
    if differ:
        raise AssertionError(f"window size(s) {differ} give other checksums than {windows[0]}")
    rows = sum(b.num_rows for _, _, b in batches)
    text = sum(
        b.column(i).nbytes for _, _, b in batches for i, f in enumerate(b.schema) if str(f.type) == "string"
    )
    results = []
    for w in windows:
        median = statistics.median(seconds[w])
        results.append({
            "window_bytes": w, "median_s": round(median, 4), "runs_s": [round(s, 4) for s in seconds[w]],
            "rows_per_s": round(rows / median), "mb_per_s": round(sum(b.nbytes for _, _, b in batches) / median / 1e6, 1),
            "default": w == default,
        })
    return {"rows": rows, "batches": len(batches), "bytes": sum(b.nbytes for _, _, b in batches),
            "text_bytes": text, "rounds": rounds, "results": results}


def render(result: dict[str, Any]) -> str:
    lines = [
        f"per-column checksums of {result['rows']:,} rows in {result['batches']} batches "
        f"({result['bytes'] / 1e6:.1f} MB, {result['text_bytes'] / 1e6:.1f} MB of it text), "
        f"median of {result['rounds']} rounds",
        "",
        "| WINDOW_BYTES | median s | rows/s | MB/s | |",
        "|---:|---:|---:|---:|---|",
    ]
    for r in result["results"]:
        mark = "current default" if r["default"] else ""
        lines.append(f"| {r['window_bytes']:,} | {r['median_s']:.3f} | {r['rows_per_s']:,} | {r['mb_per_s']} | {mark} |")
    return "\n".join(lines)


def _windows(text: str) -> list[int]:
    values = [int(x) for x in text.split(",") if x.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"window sizes must be positive integers: {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.checksum_windows", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=100_000, help="orders in the seeded store (default 100000)")
    ap.add_argument("--windows", type=_windows, default=list(DEFAULT_WINDOWS),
                    help="comma list of WINDOW_BYTES values (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds; every window size once per round (default 5)")
    ap.add_argument("--batch-rows", type=int, help="rows per batch (default the policy's row_group_rows)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    opts = ap.parse_args(argv)
    if opts.orders < 1 or opts.rounds < 1 or (opts.batch_rows is not None and opts.batch_rows < 1):
        ap.error("--orders, --rounds and --batch-rows must be at least 1")
    with tempfile.TemporaryDirectory(prefix="bench-checksums-") as work:
        print(f"bench-checksums: seeding {opts.orders:,} orders (SQLite) ...", file=sys.stderr, flush=True)
        batches = load_batches(opts.orders, Path(work), opts.batch_rows)
    result = measure(batches, opts.windows, opts.rounds)
    result["orders"] = opts.orders
    print(render(result))
    if opts.json:
        opts.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
