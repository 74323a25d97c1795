"""Retention epochs and the partition of every row."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from lomevexi_governance.partitions import (
    OPEN,
    PENDING,
    PROTECTED,
    PartitionPlanner,
    epoch_bounds,
    epoch_for,
    epoch_starts,
)
from lomevexi_governance.retention import ActiveHolds, evaluate_orders, to_us
from lomevexi_governance.source import TIMESTAMP

pytestmark = pytest.mark.unit
UTC = dt.timezone.utc
L = dt.datetime(2026, 11, 23, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "unit", "label", "start"),
    [
        (dt.datetime(2026, 11, 24, 23, 59, tzinfo=UTC), "day", "epoch-2026-11-24", dt.datetime(2026, 11, 24, tzinfo=UTC)),
        (dt.datetime(2026, 11, 29, 23, 59, tzinfo=UTC), "week", "epoch-2026-W48", dt.datetime(2026, 11, 23, tzinfo=UTC)),
        (dt.datetime(2026, 11, 30, 0, 0, tzinfo=UTC), "week", "epoch-2026-W49", dt.datetime(2026, 11, 30, tzinfo=UTC)),
        (dt.datetime(2027, 1, 1, 5, tzinfo=UTC), "week", "epoch-2026-W53", dt.datetime(2026, 12, 28, tzinfo=UTC)),
        (dt.datetime(2026, 12, 31, 23, tzinfo=UTC), "month", "epoch-2026-12", dt.datetime(2026, 12, 1, tzinfo=UTC)),
        (dt.datetime(1969, 12, 31, 23, tzinfo=UTC), "week", "epoch-1970-W01", dt.datetime(1969, 12, 29, tzinfo=UTC)),
    ],
)
def test_epochs(instant, unit, label, start):
    p = epoch_for(instant, unit)
    assert p.label == label and p.start == start and p.start <= instant < p.end


def test_epoch_starts_vectorised_matches_scalar():
    rng = np.random.default_rng(1)
    us = rng.integers(to_us(dt.datetime(2020, 1, 1, tzinfo=UTC)), to_us(dt.datetime(2030, 1, 1, tzinfo=UTC)), 500)
    for unit in ("day", "week", "month"):
        starts = epoch_starts(us, unit)
        for u, s in zip(us[:50], starts[:50], strict=True):
            begin, end, _ = epoch_bounds(int(s), unit)
            assert to_us(begin) <= u < to_us(end)


def _orders(rows):
    return pa.table({
        "order_id": pa.array([r[0] for r in rows], pa.int64()),
        "customer_id": pa.array([r[1] for r in rows], pa.int64()),
        "completed_at": pa.array([r[2] for r in rows], TIMESTAMP),
    })


def test_order_verdicts_at_the_boundary(policy):
    hour = dt.timedelta(hours=1)
    year = dt.timedelta(days=365)
    orders = _orders([
        (1, 10, L - year - hour),            # due
        (2, 10, L - year + hour),            # 364 days 23 hours: kept
        (3, 11, None),                       # not completed
        (4, 12, L - year - hour),            # order hold
        (5, 13, L - year - hour),            # customer hold
        (6, 14, L - year - hour),            # open ticket
        (7, 15, L - year - hour),            # released hold: due
        (8, 10, L - year),                   # exactly 365 days: due
    ])
    holds = pa.table({
        "subject_type": ["order", "customer", "order"],
        "subject_id": pa.array([4, 13, 7], pa.int64()),
        "placed_at": pa.array([L - 2 * year] * 3, TIMESTAMP),
        "released_at": pa.array([None, None, L - hour], TIMESTAMP),
    })
    verdict = evaluate_orders(policy, L, orders, ActiveHolds.from_table(holds, L), np.array([6]))
    due = dict(zip(verdict.order_id.tolist(), verdict.is_due.tolist(), strict=True))
    assert due == {1: True, 2: False, 3: False, 4: False, 5: False, 6: False, 7: True, 8: True}
    assert verdict.protected_counts() == {"legal_hold": 2, "open_ticket": 1}


def test_children_follow_their_order(policy):
    planner = PartitionPlanner(policy, L)
    year = dt.timedelta(days=365)
    orders = _orders([(1, 1, L - year + dt.timedelta(days=10)), (2, 1, None), (3, 2, L - year - dt.timedelta(days=1)), (4, 3, L)])
    holds = pa.table({"subject_type": ["order"], "subject_id": pa.array([4], pa.int64()),
                      "placed_at": pa.array([L - year], TIMESTAMP), "released_at": pa.array([None], TIMESTAMP)})
    planner.holds = ActiveHolds.from_table(holds, L)
    planner.orders = evaluate_orders(policy, L, orders, planner.holds, np.array([], dtype=np.int64))
    items = pa.record_batch({"order_item_id": pa.array([10, 11, 12, 13, 14], pa.int64()),
                             "order_id": pa.array([1, 2, 3, 4, 99], pa.int64())})
    codes = planner.assign(policy.table("order_items"), items)
    assert codes[1] == OPEN and codes[2] == PENDING and codes[3] == PROTECTED and codes[4] == OPEN
    epoch = planner.partition(int(codes[0]))
    assert epoch.kind == "epoch" and epoch.start <= L + dt.timedelta(days=10) < epoch.end
    assert epoch.key_prefix("rp-x") == f"epoch/{epoch.label.removeprefix('epoch-')}"
    assert planner.partition(OPEN).key_prefix("rp-x") == "rp/rp-x/open"


def test_the_planner_s_verdicts_without_reasons_give_the_same_codes(policy):
    year = dt.timedelta(days=365)
    orders = _orders([(i, i % 3, None if i % 5 == 0 else L - year + dt.timedelta(days=i - 20)) for i in range(1, 41)])
    holds = pa.table({"subject_type": ["order", "customer"], "subject_id": pa.array([7, 2], pa.int64()),
                      "placed_at": pa.array([L - year] * 2, TIMESTAMP), "released_at": pa.array([None, None], TIMESTAMP)})
    active = ActiveHolds.from_table(holds, L)
    full = evaluate_orders(policy, L, orders, active, np.array([11], dtype=np.int64))
    slim = full.without_reasons()
    assert len(slim.customer_id) == 0 and len(slim.protected_reason) == 0
    with pytest.raises(ValueError, match="without their reasons"):
        slim.protected_counts()
    items = pa.record_batch({"order_item_id": pa.array(range(100, 145), pa.int64()),
                             "order_id": pa.array([*range(1, 41), 99, 0, 7, 11, 2], pa.int64())})
    tickets = pa.record_batch({
        "ticket_id": pa.array(range(5), pa.int64()), "customer_id": pa.array([0, 1, 2, 1, 0], pa.int64()),
        "order_id": pa.array([3, None, 7, 25, 99], pa.int64()),
        "status": ["closed", "closed", "open", "closed", "closed"],
        "closed_at": pa.array([L - 2 * year, L - year, None, L - dt.timedelta(days=400), L], TIMESTAMP),
    })
    codes = []
    for verdicts in (full, slim):
        planner = PartitionPlanner(policy, L)
        planner.holds, planner.orders = active, verdicts
        codes.append((planner.assign(policy.table("order_items"), items).tolist(),
                      planner.assign(policy.table("service_tickets"), tickets).tolist()))
    assert codes[0] == codes[1]


def test_orphans_and_an_empty_order_table_are_safe(policy):
    from lomevexi_governance.retention import ticket_verdicts

    empty = evaluate_orders(policy, L, _orders([]), ActiveHolds(np.array([], dtype=np.int64), np.array([], dtype=np.int64)),
                            np.array([], dtype=np.int64))
    tickets = pa.table({
        "ticket_id": pa.array([1, 2], pa.int64()), "customer_id": pa.array([1, 1], pa.int64()),
        "order_id": pa.array([99, None], pa.int64()), "status": ["closed", "closed"],
        "closed_at": pa.array([L - dt.timedelta(days=400), L - dt.timedelta(days=10)], TIMESTAMP),
    })
    verdict = ticket_verdicts(policy, L, tickets, empty, ActiveHolds(np.array([], dtype=np.int64), np.array([], dtype=np.int64)))
    assert verdict["is_due"].tolist() == [True, False]  # the orphan ticket follows its own clock
    planner = PartitionPlanner(policy, L)
    planner.orders, planner.holds = empty, ActiveHolds(np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    items = pa.record_batch({"order_item_id": pa.array([1], pa.int64()), "order_id": pa.array([5], pa.int64())})
    assert planner.assign(policy.table("order_items"), items).tolist() == [OPEN]
