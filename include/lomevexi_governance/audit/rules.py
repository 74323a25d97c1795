"""The access-audit rules: pure, vectorized, over Arrow batches of ``staff_access_log`` events.

The engine sees each event once, batch by batch (a day can hold a million events), keeps only
aggregates and the few columns of flagged events, and turns those into findings at the end.
Nothing here does I/O: the reader feeds batches, the report module writes the result.

Rules (names and severities are the keys of ``access.severities`` in ``policy.yaml``):

``role_category``
    A read (``view``, ``search``, ``export``), allowed or denied, of a data category that the
    staff member's role may not read (``access.roles.<role>.read``), e.g. customer service reading
    ``payments``.
``write_not_allowed``
    A change, allowed or denied (``update``, ``delete`` and any action that is not a read), of a data
    category the role may not change (``access.roles.<role>.write``), and every delete by a
    role not in ``access.delete_allowed_roles``.
``bulk_access``
    An *allowed* ``export`` or ``search`` that returned more than
    ``access.thresholds.bulk_records`` records.
``denied_burst``
    At least ``denied_burst_count`` denied attempts by one staff member whose first and last
    are at most ``denied_burst_minutes`` apart. Overlapping or chained bursts form one finding.
``outside_business_hours``
    Any event (allowed or denied) outside business hours: a working day is a configured
    weekday that is neither a public holiday (``holidays.country``) nor an ``extra`` company
    holiday, or any date listed under ``working``; hours are ``[start, end)`` local time.

An attempt outside the role's grants is a finding even when the back office denied it: the
policy forbids the attempt (customer service has no business asking for payment data), and a
denied attempt is exactly the early warning policy IV.1 asks for; the finding's explanation says
it was denied. ``bulk_access`` counts only allowed exports and searches (a denied one returned
nothing). Every denied attempt also feeds ``denied_burst``. Unknown roles have no grants and
unknown resources belong to no category (``unknown``), so both are flagged: the rules fail
closed.

Findings group events: one finding per staff member, local day and data category for the first
three rules, per staff member and local day for ``outside_business_hours``, per burst for
``denied_burst``. A finding's id is a hash of what it is about (rule, staff member, day,
category, or the burst's first event), never of the report period, so the same finding seen by
a daily report and by the weekly roll-up has the same id and is alerted once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import holidays as holidays_lib

# This module is the Arrow/NumPy rule engine: it is imported only inside tasks, tests and the
# benchmark, never by a DAG file at parse time, so the heavy imports stay at module level here.
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lomevexi_governance.audit.periods import Period, iso_utc, zone
from lomevexi_governance.errors import PolicyError
from lomevexi_governance.policy import Policy

RULES = ("role_category", "write_not_allowed", "bulk_access", "denied_burst", "outside_business_hours")
SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
READ_ACTIONS = frozenset({"view", "search", "export"})
DELETE_ACTIONS = frozenset({"delete"})
WRITE_ACTIONS = frozenset({"update", "delete"})
BULK_ACTIONS = frozenset({"search", "export"})
DENIED = "denied"
MISSING = "(missing)"
UNKNOWN_CATEGORY = "unknown"

US = 1_000_000
HOUR_US = 3600 * US
DAY_US = 24 * HOUR_US
#: Granularity of the UTC-offset table: every zone's transitions fall on a quarter hour.
OFFSET_SLOT_US = 15 * 60 * US
EPOCH = dt.date(1970, 1, 1)

#: The columns the engine reads, as the reader delivers them.
EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.int64(), nullable=False),
        pa.field("occurred_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("staff_id", pa.string()),
        pa.field("staff_role", pa.string()),
        pa.field("action", pa.string()),
        pa.field("resource", pa.string()),
        pa.field("record_count", pa.int64()),
        pa.field("outcome", pa.string()),
    ]
)
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


# --------------------------------------------------------------------------------------------
# The policy, compiled for the engine
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessRules:
    """What the rules need from ``policy.yaml`` (sections business_hours, data_categories, access)."""

    timezone: str
    weekdays: frozenset[int]  # 0 = Monday
    start: dt.time
    end: dt.time
    holiday_country: str | None
    extra_holidays: frozenset[dt.date]
    working_days: frozenset[dt.date]
    resource_category: dict[str, str]
    categories: tuple[str, ...]
    read: dict[str, frozenset[str]]
    write: dict[str, frozenset[str]]
    delete_allowed_roles: frozenset[str]
    bulk_records: int
    denied_burst_count: int
    denied_burst_minutes: int
    severities: dict[str, str]

    @classmethod
    def from_policy(cls, policy: Policy) -> AccessRules:
        bh = policy.business_hours
        zone(bh.timezone)  # fail early on a bad zone name
        if bh.end <= bh.start:
            raise PolicyError("policy: business_hours.end must be after business_hours.start")
        missing = [r for r in RULES if r not in policy.severities]
        if missing:
            raise PolicyError(f"policy: access.severities lacks {missing}")
        bad = {r: s for r, s in policy.severities.items() if s not in SEVERITY_RANK}
        if bad:
            raise PolicyError(f"policy: access.severities has unknown levels {bad}; use {list(SEVERITY_RANK)}")
        thresholds = {}
        for key in ("bulk_records", "denied_burst_count", "denied_burst_minutes"):
            if key not in policy.thresholds:
                raise PolicyError(f"policy: access.thresholds lacks {key!r}")
            thresholds[key] = int(policy.thresholds[key])
        if thresholds["denied_burst_count"] < 1:
            raise PolicyError("policy: access.thresholds.denied_burst_count must be at least 1")
        categories = tuple(dict.fromkeys(policy.data_categories.values()))
        for role, grant in policy.roles.items():
            unknown = (grant.read | grant.write) - set(categories)
            if unknown:
                raise PolicyError(f"policy: access.roles.{role} names unknown data categories {sorted(unknown)}")
        return cls(
            timezone=bh.timezone,
            weekdays=frozenset(bh.weekdays),
            start=bh.start,
            end=bh.end,
            holiday_country=bh.holiday_country,
            extra_holidays=frozenset(bh.extra_holidays),
            working_days=frozenset(bh.working_days),
            resource_category=dict(policy.data_categories),
            categories=categories,
            read={r: g.read for r, g in policy.roles.items()},
            write={r: g.write for r, g in policy.roles.items()},
            delete_allowed_roles=frozenset(policy.delete_allowed_roles),
            bulk_records=thresholds["bulk_records"],
            denied_burst_count=thresholds["denied_burst_count"],
            denied_burst_minutes=thresholds["denied_burst_minutes"],
            severities=dict(policy.severities),
        )

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.read)

    def holidays(self, first: dt.date, last: dt.date) -> dict[dt.date, str]:
        """Non-working dates between ``first`` and ``last`` (public and company holidays).

        Dates listed as ``working`` are removed: they are working days whatever the calendar.
        """
        out: dict[dt.date, str] = {}
        if self.holiday_country:
            try:
                cal = holidays_lib.country_holidays(self.holiday_country, years=range(first.year, last.year + 1))
            except NotImplementedError:
                raise PolicyError(
                    f"policy: business_hours.holidays.country {self.holiday_country!r} is not known "
                    "to the holidays package"
                ) from None
            out.update({d: str(name) for d, name in cal.items() if first <= d <= last})
        for d in self.extra_holidays:
            if first <= d <= last:
                out.setdefault(d, "company holiday")
        for d in self.working_days:
            out.pop(d, None)
        return out

    def is_working_day(self, day: dt.date, holidays: dict[dt.date, str]) -> bool:
        if day in self.working_days:
            return True
        return day.weekday() in self.weekdays and day not in holidays

    def hours_text(self) -> str:
        days = [WEEKDAY_NAMES[d] for d in sorted(self.weekdays)]
        span = f"{days[0]}-{days[-1]}" if len(days) > 1 and _consecutive(sorted(self.weekdays)) else ",".join(days)
        return f"{span} {self.start:%H:%M}-{self.end:%H:%M} {self.timezone}"

    def may_read(self, role: str, category: str) -> bool:
        return category in self.read.get(role, frozenset())

    def may_write(self, role: str, category: str, action: str) -> bool:
        if action in DELETE_ACTIONS and role not in self.delete_allowed_roles:
            return False
        return category in self.write.get(role, frozenset())


def _consecutive(values: list[int]) -> bool:
    return all(b - a == 1 for a, b in itertools.pairwise(values))


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One finding: a rule broken by one staff member, with every event it covers."""

    finding_id: str
    rule: str
    severity: str
    staff_id: str
    staff_role: str
    period: str
    day: dt.date
    first_at: dt.datetime
    last_at: dt.datetime
    event_ids: tuple[int, ...]
    explanation: str
    data_category: str | None = None
    resources: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    records: int = 0

    @property
    def event_count(self) -> int:
        return len(self.event_ids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "finding_id": self.finding_id,
            "rule": self.rule,
            "severity": self.severity,
            "staff_id": self.staff_id,
            "staff_role": self.staff_role,
            "period": self.period,
            "day": self.day.isoformat(),
            "first_at_utc": iso_utc(self.first_at),
            "last_at_utc": iso_utc(self.last_at),
            "event_count": self.event_count,
            "event_ids": list(self.event_ids),
            "explanation": self.explanation,
            "data_category": self.data_category,
            "resources": list(self.resources),
            "actions": list(self.actions),
            "records": self.records,
        }


@dataclass
class AuditResult:
    period: Period
    event_count: int = 0
    denied_count: int = 0
    outside_hours_count: int = 0
    staff_count: int = 0
    findings: list[Finding] = field(default_factory=list)
    #: role x resource x action x outcome: events and records
    totals: list[dict[str, Any]] = field(default_factory=list)
    #: local hour of day -> allowed/denied events
    by_hour: list[dict[str, int]] = field(default_factory=list)
    #: local day -> events, denied, outside business hours
    by_day: list[dict[str, Any]] = field(default_factory=list)
    denied_by_staff: dict[str, int] = field(default_factory=dict)
    denied_by_role: dict[str, int] = field(default_factory=dict)
    holidays: dict[str, str] = field(default_factory=dict)

    def findings_by(self, attr: str) -> dict[str, int]:
        return dict(sorted(Counter(getattr(f, attr) for f in self.findings).items()))


def finding_id(rule: str, *parts: object) -> str:
    """A stable id: the same rule, staff member and subject give the same id on every rerun."""
    text = "|".join(["access_audit", rule, *(str(p) for p in parts)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


class _Vocab:
    """A growing string -> code table shared by every batch."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.names: list[str] = []

    def code(self, name: str) -> int:
        c = self.codes.get(name)
        if c is None:
            c = self.codes[name] = len(self.names)
            self.names.append(name)
        return c

    def encode(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Codes for a string column, via its dictionary (cheap for low-cardinality columns)."""
        if column.null_count:
            column = pc.fill_null(column, MISSING)
        enc = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
        if isinstance(enc, pa.ChunkedArray):
            enc = enc.combine_chunks()
        mapping = np.fromiter((self.code(str(v)) for v in enc.dictionary.to_pylist()), dtype=np.int32)
        indices = enc.indices.to_numpy(zero_copy_only=False)
        return mapping[indices] if mapping.size else np.zeros(len(indices), dtype=np.int32)

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class _Flagged:
    """The columns kept for flagged events of one rule, chunk by chunk."""

    staff: list[pa.Array] = field(default_factory=list)
    arrays: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, staff: pa.Array, **cols: np.ndarray) -> None:
        self.staff.append(staff)
        for k, v in cols.items():
            self.arrays.setdefault(k, []).append(v)

    def table(self) -> pa.Table | None:
        if not self.staff:
            return None
        data: dict[str, Any] = {"staff": pa.concat_arrays([s.cast(pa.string()) for s in self.staff])}
        for k, chunks in self.arrays.items():
            data[k] = pa.array(np.concatenate(chunks))
        return pa.table(data)


class AuditEngine:
    """Feed :meth:`consume` with event batches of one period, then call :meth:`finish`."""

    def __init__(self, rules: AccessRules, period: Period) -> None:
        if period.timezone != rules.timezone:
            raise ValueError(f"period time zone {period.timezone} differs from the policy's {rules.timezone}")
        self.rules = rules
        self.period = period
        self._start_us = _to_us(period.start_utc)
        self._end_us = _to_us(period.end_utc)
        self._first_day_num = (period.first_day - EPOCH).days
        self._holidays = rules.holidays(period.first_day, period.last_day)
        days = period.day_list()
        self._working = np.array([rules.is_working_day(d, self._holidays) for d in days], dtype=bool)
        self._bh_start_us = _time_us(rules.start)
        self._bh_end_us = _time_us(rules.end)
        self._offsets = _offset_table(self._start_us, self._end_us, rules.timezone)

        self._roles, self._resources, self._actions, self._outcomes = _Vocab(), _Vocab(), _Vocab(), _Vocab()
        self._lookup_sizes: tuple[int, int, int, int] = (-1, -1, -1, -1)
        self._categories = [*rules.categories, UNKNOWN_CATEGORY]

        self._flagged: dict[str, _Flagged] = {r: _Flagged() for r in RULES}
        self._totals: dict[tuple[int, int, int, int], list[int]] = {}
        self._by_hour = np.zeros(48, dtype=np.int64)
        self._by_day = np.zeros((period.days, 3), dtype=np.int64)
        self._staff: set[str] = set()
        self.event_count = 0

    # -- lookups by vocabulary code, rebuilt when a batch brings new names ---------------------

    def _refresh_lookups(self) -> None:
        sizes = (len(self._roles), len(self._resources), len(self._actions), len(self._outcomes))
        if sizes == self._lookup_sizes:
            return
        r = self.rules
        cat_index = {c: i for i, c in enumerate(self._categories)}
        self._cat_of_res = np.array(
            [cat_index[r.resource_category.get(name, UNKNOWN_CATEGORY)] for name in self._resources.names] or [0],
            dtype=np.int32,
        )
        roles = self._roles.names
        self._read_ok = np.array(
            [[r.may_read(role, c) for c in self._categories] for role in roles] or [[False]], dtype=bool
        )
        self._write_ok = np.array(
            [[r.may_write(role, c, "update") for c in self._categories] for role in roles] or [[False]],
            dtype=bool,
        )
        self._delete_ok = np.array([role in r.delete_allowed_roles for role in roles] or [False], dtype=bool)
        acts = self._actions.names
        self._is_read = np.array([a in READ_ACTIONS for a in acts] or [False], dtype=bool)
        self._is_delete = np.array([a in DELETE_ACTIONS for a in acts] or [False], dtype=bool)
        self._is_known_write = np.array([a in WRITE_ACTIONS for a in acts] or [False], dtype=bool)
        self._is_bulk = np.array([a in BULK_ACTIONS for a in acts] or [False], dtype=bool)
        self._is_denied = np.array([o == DENIED for o in self._outcomes.names] or [False], dtype=bool)
        self._lookup_sizes = sizes

    # -- per batch -----------------------------------------------------------------------------

    def consume(self, batch: pa.RecordBatch | pa.Table) -> None:
        if isinstance(batch, pa.Table):
            for b in batch.to_batches():
                self.consume(b)
            return
        n = batch.num_rows
        if n == 0:
            return
        occurred = batch.column("occurred_at")
        if occurred.null_count:
            raise ValueError("staff_access_log.occurred_at has NULLs in a batch given to the audit engine")
        ts = occurred.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
        if ts.min() < self._start_us or ts.max() >= self._end_us:
            raise ValueError(f"events outside the period {self.period.label} were given to the audit engine")
        event_id = batch.column("event_id").cast(pa.int64()).to_numpy(zero_copy_only=False)
        records_col = batch.column("record_count")
        if records_col.null_count:
            records_col = pc.fill_null(records_col, 1)  # the contract's column default
        records = records_col.cast(pa.int64()).to_numpy(zero_copy_only=False)

        role = self._roles.encode(batch.column("staff_role"))
        res = self._resources.encode(batch.column("resource"))
        act = self._actions.encode(batch.column("action"))
        out = self._outcomes.encode(batch.column("outcome"))
        self._refresh_lookups()

        # local wall-clock time: UTC + the zone's offset at that instant
        local = ts + self._offsets[(ts - self._start_us) // OFFSET_SLOT_US]
        day_num = local // DAY_US
        tod = local - day_num * DAY_US
        day_idx = (day_num - self._first_day_num).astype(np.int64)
        in_hours = self._working[day_idx] & (tod >= self._bh_start_us) & (tod < self._bh_end_us)
        outside = ~in_hours

        cat = self._cat_of_res[res]
        denied = self._is_denied[out]
        allowed = ~denied
        is_read = self._is_read[act]
        v_role = is_read & ~self._read_ok[role, cat]
        write_ok = (
            self._write_ok[role, cat]
            & (~self._is_delete[act] | self._delete_ok[role])
            & self._is_known_write[act]  # an action the policy does not know is never "allowed"
        )
        v_write = ~is_read & ~write_ok
        v_bulk = allowed & self._is_bulk[act] & (records > self.rules.bulk_records)

        staff_col = batch.column("staff_id")
        if staff_col.null_count:
            staff_col = pc.fill_null(staff_col, MISSING)
        for rule, mask in (
            ("role_category", v_role),
            ("write_not_allowed", v_write),
            ("bulk_access", v_bulk),
            ("outside_business_hours", outside),
            ("denied_burst", denied),
        ):
            idx = np.flatnonzero(mask)
            if idx.size:
                self._flagged[rule].add(
                    pc.take(staff_col, pa.array(idx)),
                    event_id=event_id[idx],
                    ts=ts[idx],
                    local=local[idx],
                    day=day_idx[idx],
                    role=role[idx],
                    res=res[idx],
                    act=act[idx],
                    cat=cat[idx],
                    records=records[idx],
                    denied=denied[idx].astype(np.int64),
                )

        # aggregates
        n_res, n_act, n_out = len(self._resources), len(self._actions), len(self._outcomes)
        key = ((role.astype(np.int64) * n_res + res) * n_act + act) * n_out + out
        uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
        rec_sums = np.bincount(inverse, weights=records, minlength=uniq.size)
        for packed, c, s in zip(uniq.tolist(), counts.tolist(), rec_sums.tolist(), strict=True):
            rest, o = divmod(packed, n_out)
            rest, a = divmod(rest, n_act)
            r_, s_ = divmod(rest, n_res)
            slot = self._totals.setdefault((r_, s_, a, o), [0, 0])
            slot[0] += c
            slot[1] += int(s)
        hour = (tod // HOUR_US).astype(np.int64)
        self._by_hour += np.bincount(hour * 2 + denied, minlength=48)[:48]
        days = self.period.days
        self._by_day[:, 0] += np.bincount(day_idx, minlength=days)[:days]
        self._by_day[:, 1] += np.bincount(day_idx, weights=denied, minlength=days)[:days].astype(np.int64)
        self._by_day[:, 2] += np.bincount(day_idx, weights=outside, minlength=days)[:days].astype(np.int64)
        self._staff.update(str(s) for s in pc.unique(staff_col).to_pylist())
        self.event_count += n

    # -- at the end ------------------------------------------------------------------------------

    def finish(self) -> AuditResult:
        self._refresh_lookups()
        findings: list[Finding] = []
        for rule in ("role_category", "write_not_allowed", "bulk_access"):
            findings.extend(self._category_findings(rule))
        findings.extend(self._outside_hours_findings())
        findings.extend(self._burst_findings())
        findings.sort(
            key=lambda f: (
                SEVERITY_RANK.get(f.severity, 9),
                RULES.index(f.rule),
                f.day,
                f.staff_id,
                f.first_at,
                f.finding_id,
            )
        )

        totals = []
        role_denied: Counter[str] = Counter()
        for (r_, s_, a, o), (events, records) in sorted(
            self._totals.items(),
            key=lambda kv: (
                self._roles.names[kv[0][0]],
                self._resources.names[kv[0][1]],
                self._actions.names[kv[0][2]],
                self._outcomes.names[kv[0][3]],
            ),
        ):
            resource = self._resources.names[s_]
            totals.append(
                {
                    "staff_role": self._roles.names[r_],
                    "resource": resource,
                    "data_category": self.rules.resource_category.get(resource, UNKNOWN_CATEGORY),
                    "action": self._actions.names[a],
                    "outcome": self._outcomes.names[o],
                    "events": events,
                    "records": records,
                }
            )
            if self._is_denied[o]:
                role_denied[self._roles.names[r_]] += events

        denied_tab = self._flagged["denied_burst"].table()
        denied_by_staff: dict[str, int] = {}
        if denied_tab is not None:
            vc = pc.value_counts(denied_tab.column("staff").combine_chunks())
            denied_by_staff = {str(v["values"]): int(v["counts"]) for v in vc.to_pylist()}
            denied_by_staff = dict(sorted(denied_by_staff.items(), key=lambda kv: (-kv[1], kv[0])))

        return AuditResult(
            period=self.period,
            event_count=self.event_count,
            denied_count=int(self._by_day[:, 1].sum()),
            outside_hours_count=int(self._by_day[:, 2].sum()),
            staff_count=len(self._staff),
            findings=findings,
            totals=totals,
            by_hour=[
                {"hour": h, "allowed": int(self._by_hour[2 * h]), "denied": int(self._by_hour[2 * h + 1])}
                for h in range(24)
            ],
            by_day=[
                {
                    "date": d.isoformat(),
                    "working_day": bool(self._working[i]),
                    "events": int(self._by_day[i, 0]),
                    "denied": int(self._by_day[i, 1]),
                    "outside_business_hours": int(self._by_day[i, 2]),
                }
                for i, d in enumerate(self.period.day_list())
            ],
            denied_by_staff=denied_by_staff,
            denied_by_role=dict(sorted(role_denied.items())),
            holidays={d.isoformat(): name for d, name in sorted(self._holidays.items())},
        )

    # -- finding builders -------------------------------------------------------------------------

    def _grouped(self, rule: str, keys: list[str]) -> list[dict[str, Any]]:
        table = self._flagged[rule].table()
        if table is None:
            return []
        grouped = table.group_by(keys, use_threads=False).aggregate(
            [
                ("event_id", "list"),
                ("ts", "min"),
                ("ts", "max"),
                ("local", "min"),
                ("local", "max"),
                ("records", "sum"),
                ("denied", "sum"),
                ("res", "list"),
                ("act", "list"),
                ("role", "distinct"),
            ]
        )
        return grouped.to_pylist()

    def _day(self, day_idx: int) -> dt.date:
        return self.period.first_day + dt.timedelta(days=int(day_idx))

    def _category_findings(self, rule: str) -> list[Finding]:
        out = []
        for g in self._grouped(rule, ["staff", "role", "day", "cat"]):
            role = self._roles.names[g["role"]]
            category = self._categories[g["cat"]]
            day = self._day(g["day"])
            resources = Counter(self._resources.names[i] for i in g["res_list"])
            actions = Counter(self._actions.names[i] for i in g["act_list"])
            what = ", ".join(f"{r}" for r in sorted(resources))
            acts = ", ".join(f"{a} x{n}" for a, n in sorted(actions.items()))
            n = len(g["event_id_list"])
            records = int(g["records_sum"] or 0)
            n_denied = int(g["denied_sum"] or 0)
            attempts = f"; {n_denied} of {n} attempt(s) denied" if n_denied else ""
            if rule == "role_category":
                verb = "tried to read" if n_denied == n else "read"
                text = (
                    f"{role} {verb} {category} data ({what}: {acts}{attempts}) although the role may not read "
                    f"{category} (policy access.roles.{role}.read)"
                )
            elif rule == "write_not_allowed":
                reasons = []
                if actions.get("delete", 0) and role not in self.rules.delete_allowed_roles:
                    reasons.append("deletes are reserved to the governance jobs (policy access.delete_allowed_roles)")
                if category not in self.rules.write.get(role, frozenset()):
                    reasons.append(f"the role may not change {category} (policy access.roles.{role}.write)")
                unknown = sorted(set(actions) - WRITE_ACTIONS - READ_ACTIONS)
                if unknown:
                    reasons.append(f"the action(s) {', '.join(unknown)} are not known to the policy")
                why = " and ".join(reasons) or "the policy does not allow it"
                verb = "tried to change" if n_denied == n else "changed"
                text = f"{role} {verb} {category} data ({what}: {acts}{attempts}) although {why}"
            else:
                text = (
                    f"{role} pulled {records:,} {what} records in {n} bulk request(s) ({acts}), each above "
                    f"the threshold of {self.rules.bulk_records:,} (policy access.thresholds.bulk_records)"
                )
            out.append(
                self._finding(
                    rule,
                    g,
                    role,
                    day,
                    text,
                    fid=finding_id(rule, g["staff"], role, day.isoformat(), category),
                    category=category,
                    resources=tuple(sorted(resources)),
                    actions=tuple(sorted(actions)),
                    records=records,
                )
            )
        return out

    def _outside_hours_findings(self) -> list[Finding]:
        out = []
        r = self.rules
        for g in self._grouped("outside_business_hours", ["staff", "day"]):
            day = self._day(g["day"])
            roles = sorted(self._roles.names[i] for i in g["role_distinct"])
            n = len(g["event_id_list"])
            t0 = _fmt_tod(g["local_min"])
            t1 = _fmt_tod(g["local_max"])
            if not self._working[g["day"]]:
                holiday = self._holidays.get(day)
                kind = (
                    f"a public holiday ({holiday})"
                    if holiday and holiday != "company holiday"
                    else ("a company holiday" if holiday else "not a working day")
                )
                when = f"on {WEEKDAY_NAMES[day.weekday()]} {day.isoformat()}, {kind}, between {t0} and {t1}"
            else:
                when = f"on {WEEKDAY_NAMES[day.weekday()]} {day.isoformat()} between {t0} and {t1}"
            resources = Counter(self._resources.names[i] for i in g["res_list"])
            actions = Counter(self._actions.names[i] for i in g["act_list"])
            text = (
                f"{n} access event(s) {when} local time, outside business hours ({r.hours_text()}; "
                f"policy business_hours)"
            )
            out.append(
                self._finding(
                    "outside_business_hours",
                    g,
                    "/".join(roles),
                    day,
                    text,
                    fid=finding_id("outside_business_hours", g["staff"], day.isoformat()),
                    resources=tuple(sorted(resources)),
                    actions=tuple(sorted(actions)),
                    records=int(g["records_sum"] or 0),
                )
            )
        return out

    def _burst_findings(self) -> list[Finding]:
        table = self._flagged["denied_burst"].table()
        k = self.rules.denied_burst_count
        if table is None or table.num_rows < k:
            return []
        table = table.sort_by([("staff", "ascending"), ("ts", "ascending"), ("event_id", "ascending")])
        staff = pc.dictionary_encode(table.column("staff")).combine_chunks().indices.to_numpy(zero_copy_only=False)
        ts = table.column("ts").to_numpy()
        window = self.rules.denied_burst_minutes * 60 * US
        n = len(ts)
        # a window of k consecutive denied attempts by one staff member, at most `window` apart
        starts = np.flatnonzero((staff[k - 1 :] == staff[: n - k + 1]) & (ts[k - 1 :] - ts[: n - k + 1] <= window))
        if starts.size == 0:
            return []
        diff = np.zeros(n + 1, dtype=np.int64)
        np.add.at(diff, starts, 1)
        np.add.at(diff, starts + k, -1)
        marked = np.flatnonzero(np.cumsum(diff[:-1]) > 0)
        # episodes: runs of marked attempts, split where the staff member changes, an unmarked
        # attempt intervenes or the gap exceeds the window
        breaks = np.ones(marked.size, dtype=bool)
        breaks[1:] = (
            (np.diff(marked) != 1)
            | (staff[marked[1:]] != staff[marked[:-1]])
            | (ts[marked[1:]] - ts[marked[:-1]] > window)
        )
        episode = np.cumsum(breaks) - 1
        ep_table = table.take(pa.array(marked)).append_column("episode", pa.array(episode))
        grouped = (
            ep_table.group_by(["episode", "staff"], use_threads=False)
            .aggregate(
                [
                    ("event_id", "list"),
                    ("ts", "min"),
                    ("ts", "max"),
                    ("local", "min"),
                    ("local", "max"),
                    ("day", "min"),
                    ("records", "sum"),
                    ("res", "list"),
                    ("act", "list"),
                    ("role", "distinct"),
                ]
            )
            .to_pylist()
        )
        out = []
        for g in grouped:
            ids = sorted(g["event_id_list"])
            day = self._day(g["day_min"])
            roles = sorted(self._roles.names[i] for i in g["role_distinct"])
            span_s = (g["ts_max"] - g["ts_min"]) / US
            span = f"{span_s / 60:.1f} min" if span_s >= 60 else f"{span_s:.0f} s"
            resources = Counter(self._resources.names[i] for i in g["res_list"])
            actions = Counter(self._actions.names[i] for i in g["act_list"])
            text = (
                f"{len(ids)} denied attempts within {span} ({day.isoformat()} {_fmt_tod(g['local_min'])}-"
                f"{_fmt_tod(g['local_max'])} local time) on {', '.join(sorted(resources))}; threshold "
                f"{k} within {self.rules.denied_burst_minutes} min (policy access.thresholds)"
            )
            g["day"] = g["day_min"]
            out.append(
                self._finding(
                    "denied_burst",
                    g,
                    "/".join(roles),
                    day,
                    text,
                    fid=finding_id("denied_burst", g["staff"], ids[0]),
                    resources=tuple(sorted(resources)),
                    actions=tuple(sorted(actions)),
                    records=int(g["records_sum"] or 0),
                )
            )
        return out

    def _finding(
        self,
        rule: str,
        g: dict[str, Any],
        role: str,
        day: dt.date,
        text: str,
        *,
        fid: str,
        category: str | None = None,
        resources: tuple[str, ...] = (),
        actions: tuple[str, ...] = (),
        records: int = 0,
    ) -> Finding:
        return Finding(
            finding_id=fid,
            rule=rule,
            severity=self.rules.severities[rule],
            staff_id=str(g["staff"]),
            staff_role=role,
            period=self.period.label,
            day=day,
            first_at=_from_us(g["ts_min"]),
            last_at=_from_us(g["ts_max"]),
            event_ids=tuple(sorted(int(i) for i in g["event_id_list"])),
            explanation=text,
            data_category=category,
            resources=resources,
            actions=actions,
            records=records,
        )


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _to_us(instant: dt.datetime) -> int:
    delta = instant.astimezone(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


def _from_us(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):  # pyarrow may hand back datetimes for timestamp columns
        return value.astimezone(dt.UTC)
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(value))


def _time_us(t: dt.time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * US + t.microsecond


def _fmt_tod(local_us: int) -> str:
    tod = int(local_us) % DAY_US
    return f"{tod // HOUR_US:02d}:{tod % HOUR_US // (60 * US):02d}"


def _offset_table(start_us: int, end_us: int, tz: str) -> np.ndarray:
    """The zone's UTC offset (µs) for every quarter hour of ``[start, end)``.

    Computed with :mod:`zoneinfo` (the system tz database), so time zones with daylight saving
    work too; Asia/Tokyo is simply +09:00 throughout.
    """
    z = zone(tz)
    slots = max(1, -(-(end_us - start_us) // OFFSET_SLOT_US))
    offsets = np.empty(slots, dtype=np.int64)
    base = _from_us(start_us)
    for i in range(slots):
        instant = base + dt.timedelta(microseconds=i * OFFSET_SLOT_US)
        off = instant.astimezone(z).utcoffset()
        assert off is not None
        offsets[i] = int(off.total_seconds()) * US
    return offsets


def run_rules(rules: AccessRules, period: Period, batches: Iterable[pa.RecordBatch | pa.Table]) -> AuditResult:
    """Convenience: the whole engine over an iterable of batches."""
    engine = AuditEngine(rules, period)
    for b in batches:
        engine.consume(b)
    return engine.finish()


def events_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    """Build an event table from dicts (tests, tools); ``occurred_at`` as an aware datetime."""
    rows = list(rows)
    cols: dict[str, list[Any]] = {f.name: [] for f in EVENT_SCHEMA}
    for r in rows:
        for name, values in cols.items():
            values.append(r.get(name, 1 if name == "record_count" else None))
    return pa.table(cols, schema=EVENT_SCHEMA)
