"""Benchmark of the access-audit rule engine on a synthetic large day.

    python -m lomevexi_governance.audit.bench [--events 1000000] [--batch-rows 65536] [--json]

Generates ``--events`` synthetic ``staff_access_log`` events for one Asia/Tokyo day as Arrow
batches (2,000 staff members, mostly role-appropriate reads in business hours, a few percent
off-hours, denied and out-of-role events), runs :class:`AuditEngine` over them and prints the
wall time and the peak memory: Python/NumPy allocations traced by :mod:`tracemalloc` plus the
Arrow memory pool's high-water mark (Arrow allocates outside tracemalloc's view). Generation
is not timed. The unit suite runs the same code on 200,000 events.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa

from lomevexi_governance.audit.periods import Period
from lomevexi_governance.audit.rules import EVENT_SCHEMA, US, AccessRules, AuditEngine
from lomevexi_governance.policy import Policy, load_policy

ROLES = ("customer_service", "logistics", "finance", "engineering", "security_admin")
ROLE_WEIGHTS = (0.55, 0.2, 0.1, 0.1, 0.05)
RESOURCES = ("customers", "orders", "order_items", "payments", "shipments", "service_tickets")
ACTIONS = ("view", "search", "export", "update", "delete")


def synthetic_batches(
    policy: Policy,
    period: Period,
    events: int,
    *,
    batch_rows: int = 65_536,
    staff: int = 2_000,
    seed: int = 7,
) -> Iterator[pa.RecordBatch]:
    """Deterministic synthetic events inside ``period``, as batches of EVENT_SCHEMA."""
    rng = np.random.default_rng(seed)
    start_us = int(period.start_utc.timestamp()) * US
    span_us = int((period.end_utc - period.start_utc).total_seconds()) * US
    staff_role = rng.choice(len(ROLES), size=staff, p=ROLE_WEIGHTS)
    staff_ids = np.array([f"st{i:05d}" for i in range(staff)], dtype=object)
    # per role, the resources it may read: most events stay within them
    readable = []
    for role_name in ROLES:
        grant = policy.roles.get(role_name)
        ok = [i for i, r in enumerate(RESOURCES) if grant and policy.data_categories.get(r) in grant.read]
        readable.append(np.array(ok or [1]))
    role_names = np.array(ROLES, dtype=object)
    res_names = np.array(RESOURCES, dtype=object)
    act_names = np.array(ACTIONS, dtype=object)
    outcome_names = np.array(["allowed", "denied"], dtype=object)
    next_id = 1
    remaining = events
    while remaining > 0:
        n = min(batch_rows, remaining)
        s = rng.integers(0, staff, n)
        role: np.ndarray = staff_role[s]
        # time: 95% in 09:00-18:00 local (the day is a working day in the benchmark), else anywhere
        in_hours = rng.random(n) < 0.95
        offset = np.where(
            in_hours,
            (9 * 3600 + rng.integers(0, 9 * 3600, n)) * US,
            rng.integers(0, span_us // US, n) * US,
        )
        ts = np.sort(start_us + np.minimum(offset, span_us - 1))
        res = np.empty(n, dtype=np.int64)
        for r in range(len(ROLES)):
            m: np.ndarray = role == r
            res[m] = rng.choice(readable[r], size=int(m.sum()))
        stray = rng.random(n) < 0.002
        res[stray] = rng.integers(0, len(RESOURCES), int(stray.sum()))
        act = rng.choice(len(ACTIONS), size=n, p=(0.8, 0.15, 0.03, 0.019, 0.001))
        records = np.where(act == 1, rng.integers(1, 200, n), np.where(act == 2, rng.integers(1, 600, n), 1))
        denied = rng.random(n) < 0.01
        yield pa.record_batch(
            [
                pa.array(np.arange(next_id, next_id + n, dtype=np.int64)),
                pa.array(ts, type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                pa.array(staff_ids[s], type=pa.string()),
                pa.array(role_names[role], type=pa.string()),
                pa.array(act_names[act], type=pa.string()),
                pa.array(res_names[res], type=pa.string()),
                pa.array(records.astype(np.int64)),
                pa.array(outcome_names[denied.astype(np.int64)], type=pa.string()),
            ],
            schema=EVENT_SCHEMA,
        )
        next_id += n
        remaining -= n


@dataclass
class BenchResult:
    events: int
    batch_rows: int
    seconds: float
    events_per_second: float
    traced_peak_mib: float
    arrow_pool_peak_mib: float
    findings: int
    flagged_events: int


def bench(
    events: int = 1_000_000,
    *,
    batch_rows: int = 65_536,
    policy: Policy | None = None,
    day: dt.date = dt.date(2026, 11, 24),
) -> BenchResult:
    """Run the engine over ``events`` synthetic events of one (working) day; time and memory."""
    policy = policy or load_policy()
    rules = AccessRules.from_policy(policy)
    period = Period("daily", day, day, rules.timezone)
    batches = list(synthetic_batches(policy, period, events, batch_rows=batch_rows))
    pool = pa.default_memory_pool()
    baseline_arrow = pool.bytes_allocated()
    tracemalloc.start()
    tracemalloc.reset_peak()
    t0 = time.perf_counter()
    engine = AuditEngine(rules, period)
    for b in batches:
        engine.consume(b)
    result = engine.finish()
    seconds = time.perf_counter() - t0
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    arrow_peak = max(0, pool.max_memory() - baseline_arrow) if pool.max_memory() is not None else 0
    flagged = sum(f.event_count for f in result.findings)
    return BenchResult(
        events=events,
        batch_rows=batch_rows,
        seconds=round(seconds, 3),
        events_per_second=round(events / seconds) if seconds else 0,
        traced_peak_mib=round(traced_peak / 2**20, 1),
        arrow_pool_peak_mib=round(arrow_peak / 2**20, 1),
        findings=len(result.findings),
        flagged_events=flagged,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batch-rows", type=int, default=65_536)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)
    r = bench(args.events, batch_rows=args.batch_rows)
    if args.json:
        print(json.dumps(asdict(r)))
    else:
        sys.stdout.write(
            f"{r.events:,} events in {r.seconds:.2f} s ({r.events_per_second:,}/s); "
            f"peak traced memory {r.traced_peak_mib} MiB, Arrow pool peak {r.arrow_pool_peak_mib} MiB; "
            f"{r.findings} findings covering {r.flagged_events:,} events\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
