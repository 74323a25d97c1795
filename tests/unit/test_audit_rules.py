"""The access-audit rules, periods and reader on constructed logs (no Airflow run)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lomevexi_governance.audit.bench import bench
from lomevexi_governance.audit.periods import Period, plan_periods
from lomevexi_governance.audit.rules import AccessRules, AuditEngine, AuditResult, events_table, run_rules
from lomevexi_governance.errors import ConfigurationError, SourceSchemaError
from lomevexi_governance.policy import DEFAULT_POLICY_PATH, load_policy, parse_policy
from lomevexi_governance.settings import sqlite_target

pytestmark = pytest.mark.unit

JST = dt.timezone(dt.timedelta(hours=9))
UTC = dt.UTC
TUE = dt.date(2026, 11, 24)  # a working Tuesday
HOLIDAY = dt.date(2026, 11, 23)  # Monday, Labor Thanksgiving Day (勤労感謝の日)
SAT = dt.date(2026, 11, 21)
SCHEMA_SQL = Path(DEFAULT_POLICY_PATH).parent / "sql" / "store_schema.sql"


@pytest.fixture(scope="module")
def rules() -> AccessRules:
    return AccessRules.from_policy(load_policy())


def rules_with(replace: dict[str, str]) -> AccessRules:
    text = Path(DEFAULT_POLICY_PATH).read_text(encoding="utf-8")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return AccessRules.from_policy(parse_policy(text))


_ids = iter(range(1, 10**9))


def ev(
    when: dt.datetime,
    *,
    role: str = "customer_service",
    resource: str = "orders",
    action: str = "view",
    outcome: str = "allowed",
    staff: str | None = None,
    records: int = 1,
    event_id: int | None = None,
) -> dict[str, Any]:
    return {
        "event_id": event_id if event_id is not None else next(_ids),
        "occurred_at": when,
        "staff_id": staff or f"{role[:2]}-001",
        "staff_role": role,
        "action": action,
        "resource": resource,
        "record_count": records,
        "outcome": outcome,
    }


def jst(day: dt.date, hh: int, mm: int = 0, ss: int = 0, us: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, ss, us, tzinfo=JST)


def audit(
    rules: AccessRules,
    rows: list[dict[str, Any]],
    first: dt.date = TUE,
    last: dt.date | None = None,
    kind: str = "daily",
) -> AuditResult:
    last = last or first
    if kind == "daily" and last != first:
        kind = "custom"
    period = Period(kind, first, last, rules.timezone)
    return run_rules(rules, period, [events_table(rows)] if rows else [])


def flagged(result: AuditResult, rule: str | None = None) -> set[int]:
    return {i for f in result.findings if rule is None or f.rule == rule for i in f.event_ids}


# --------------------------------------------------------------------------------------------
# precision: what is allowed yields nothing
# --------------------------------------------------------------------------------------------


def test_role_appropriate_access_in_business_hours_yields_nothing(rules: AccessRules) -> None:
    policy = load_policy()
    rows = []
    hour = 9
    for role, grant in policy.roles.items():
        for resource, category in policy.data_categories.items():
            if category in grant.read:
                for action in ("view", "search", "export"):
                    rows.append(ev(jst(TUE, hour, 15), role=role, resource=resource, action=action, records=500))
            if category in grant.write:
                rows.append(ev(jst(TUE, hour, 30), role=role, resource=resource, action="update"))
        hour += 1
    # single denied attempts within the role's grants and below-threshold bursts are benign too
    rows.append(ev(jst(TUE, 14, 0), role="logistics", resource="shipments", outcome="denied", staff="lg-9"))
    rows += [
        ev(jst(TUE, 15, m), role="finance", resource="payments", outcome="denied", staff="fi-9") for m in range(4)
    ]
    # boundary instants that are inside business hours
    rows.append(ev(jst(TUE, 9, 0, 0, 0)))
    rows.append(ev(jst(TUE, 17, 59, 59, 999_999)))
    result = audit(rules, rows)
    assert result.findings == []
    assert result.event_count == len(rows)
    assert result.denied_count == 5


def test_empty_period(rules: AccessRules) -> None:
    result = audit(rules, [])
    assert result.event_count == 0 and result.findings == []
    assert result.staff_count == 0 and result.denied_count == 0
    assert [h["allowed"] + h["denied"] for h in result.by_hour] == [0] * 24
    assert result.by_day == [
        {"date": "2026-11-24", "working_day": True, "events": 0, "denied": 0, "outside_business_hours": 0}
    ]


# --------------------------------------------------------------------------------------------
# each rule
# --------------------------------------------------------------------------------------------


def test_role_category_customer_service_reading_payments(rules: AccessRules) -> None:
    bad = [
        ev(jst(TUE, 10), resource="payments", staff="cs-7"),
        ev(jst(TUE, 11), resource="payments", action="export", staff="cs-7", records=3),
    ]
    ok = [ev(jst(TUE, 10), resource="orders", staff="cs-7"), ev(jst(TUE, 10), resource="service_tickets")]
    denied = [ev(jst(TUE, 12), resource="payments", outcome="denied", staff="cs-7")]
    engineering = [ev(jst(TUE, 13), role="engineering", resource="customers", staff="en-1")]
    result = audit(rules, bad + ok + denied + engineering)
    found = [f for f in result.findings if f.rule == "role_category"]
    assert len(found) == 2
    cs = next(f for f in found if f.staff_id == "cs-7")
    # the denied attempt is part of the finding: asking for payment data is the violation
    assert cs.event_ids == tuple(sorted(e["event_id"] for e in bad + denied))
    assert cs.severity == "high" and cs.data_category == "payment" and cs.staff_role == "customer_service"
    assert cs.period == "daily/2026-11-24" and cs.day == TUE
    assert "customer_service read payment data" in cs.explanation and "\n" not in cs.explanation
    eng = next(f for f in found if f.staff_id == "en-1")
    assert eng.event_ids == (engineering[0]["event_id"],)
    assert flagged(result) == {e["event_id"] for e in bad + denied + engineering}


def test_write_not_allowed(rules: AccessRules) -> None:
    sec_update = ev(jst(TUE, 10), role="security_admin", resource="orders", action="update", staff="sa-1")
    lg_update_pay = ev(jst(TUE, 10), role="logistics", resource="payments", action="update", staff="lg-1")
    cs_delete = ev(jst(TUE, 11), resource="service_tickets", action="delete", staff="cs-1")
    ok = [
        ev(jst(TUE, 10), resource="orders", action="update", staff="cs-1"),
        ev(jst(TUE, 10), role="finance", resource="payments", action="update", staff="fi-1"),
        ev(jst(TUE, 10), role="logistics", resource="shipments", action="update", staff="lg-1"),
    ]
    denied = ev(jst(TUE, 12), role="security_admin", resource="orders", action="delete", outcome="denied")
    result = audit(rules, [sec_update, lg_update_pay, cs_delete, *ok, denied])
    assert flagged(result, "write_not_allowed") == {
        sec_update["event_id"],
        lg_update_pay["event_id"],
        cs_delete["event_id"],
        denied["event_id"],  # a denied delete attempt by a role that may not delete is still flagged
    }
    assert flagged(result) == flagged(result, "write_not_allowed")
    delete = next(f for f in result.findings if f.staff_id == "cs-1")
    assert "delete_allowed_roles" in delete.explanation


def test_bulk_access_threshold(rules: AccessRules) -> None:
    assert rules.bulk_records == 500
    over = ev(jst(TUE, 10), role="finance", resource="payments", action="export", records=501, staff="fi-2")
    search = ev(jst(TUE, 11), resource="orders", action="search", records=10_000, staff="cs-2")
    at = ev(jst(TUE, 10), role="finance", resource="payments", action="export", records=500, staff="fi-2")
    view = ev(jst(TUE, 10), resource="orders", action="view", records=5_000, staff="cs-3")
    denied = ev(jst(TUE, 10), resource="orders", action="export", records=9_999, outcome="denied", staff="cs-3")
    result = audit(rules, [over, search, at, view, denied])
    assert flagged(result, "bulk_access") == {over["event_id"], search["event_id"]}
    assert flagged(result) == {over["event_id"], search["event_id"]}
    fi = next(f for f in result.findings if f.staff_id == "fi-2")
    assert fi.records == 501 and fi.severity == "high"


def test_denied_burst(rules: AccessRules) -> None:
    assert (rules.denied_burst_count, rules.denied_burst_minutes) == (5, 10)
    # 5 denied within 10 minutes (first and last exactly 10 minutes apart): a burst
    burst = [
        ev(jst(TUE, 10, m), role="logistics", resource="shipments", outcome="denied", staff="lg-5")
        for m in (0, 2, 4, 7, 10)
    ]
    # 5 denied spread over 10 min 1 s: not a burst
    spread = [
        ev(
            jst(TUE, 11, m, 1 if m == 10 else 0),
            role="logistics",
            resource="orders",
            outcome="denied",
            staff="lg-6",
        )
        for m in (0, 2, 4, 7, 10)
    ]
    # 4 denied in a minute: below the count
    few = [
        ev(jst(TUE, 12, 0, s), role="finance", resource="payments", outcome="denied", staff="fi-6")
        for s in (0, 10, 20, 30)
    ]
    # 3 + 3 by two people at the same time: bursts are per staff member
    pair = [ev(jst(TUE, 13, 0, s), outcome="denied", staff=f"cs-{s % 2}") for s in range(6)]
    result = audit(rules, burst + spread + few + pair)
    found = [f for f in result.findings if f.rule == "denied_burst"]
    assert len(found) == 1
    assert found[0].staff_id == "lg-5" and found[0].event_ids == tuple(e["event_id"] for e in burst)
    assert flagged(result) == {e["event_id"] for e in burst}


def test_denied_burst_chains_and_separate_episodes(rules: AccessRules) -> None:
    # 8 attempts a minute apart: overlapping windows, one finding with all eight
    chain = [ev(jst(TUE, 10, m), outcome="denied", staff="cs-8") for m in range(8)]
    # half an hour later, a second burst by the same person: a second finding
    later = [ev(jst(TUE, 10, 40, s), outcome="denied", staff="cs-8") for s in range(0, 50, 10)]
    # an allowed event in between does not matter
    between = [ev(jst(TUE, 10, 20), staff="cs-8")]
    result = audit(rules, chain + later + between)
    found = sorted((f for f in result.findings if f.rule == "denied_burst"), key=lambda f: f.first_at)
    assert [f.event_ids for f in found] == [
        tuple(e["event_id"] for e in chain),
        tuple(e["event_id"] for e in later),
    ]
    assert found[0].finding_id != found[1].finding_id


def test_outside_business_hours_edges(rules: AccessRules) -> None:
    before_open = ev(jst(TUE, 8, 59, 59, 999_999), staff="cs-9")
    at_open = ev(jst(TUE, 9, 0), staff="cs-9")
    before_close = ev(jst(TUE, 17, 59, 59, 999_999), staff="cs-9")
    at_close = ev(jst(TUE, 18, 0), staff="cs-9")
    late = ev(jst(TUE, 23, 59, 59), staff="cs-9")
    early = ev(jst(TUE, 0, 0), staff="cs-9")
    result = audit(rules, [before_open, at_open, before_close, at_close, late, early])
    assert flagged(result, "outside_business_hours") == {
        before_open["event_id"],
        at_close["event_id"],
        late["event_id"],
        early["event_id"],
    }
    (finding,) = result.findings
    assert finding.severity == "medium" and finding.day == TUE
    assert "Asia/Tokyo" in finding.explanation


def test_weekend_and_public_holiday_have_no_business_hours(rules: AccessRules) -> None:
    sat = ev(jst(SAT, 12), staff="cs-1")
    holiday = ev(jst(HOLIDAY, 12), staff="cs-1")
    result = audit(rules, [sat, holiday], first=SAT, last=HOLIDAY)
    assert flagged(result, "outside_business_hours") == {sat["event_id"], holiday["event_id"]}
    days = {f.day: f for f in result.findings}
    assert "Labor Thanksgiving Day" in days[HOLIDAY].explanation
    assert result.holidays == {"2026-11-23": "Labor Thanksgiving Day"}
    assert [d["working_day"] for d in result.by_day] == [False, False, False]


def test_company_holidays_and_working_days_are_configurable() -> None:
    rules = rules_with({"extra: []": 'extra: ["2026-11-24"]', "working: []": 'working: ["2026-11-23"]'})
    tue = ev(jst(TUE, 12), staff="cs-1")
    mon = ev(jst(HOLIDAY, 12), staff="cs-1")
    result = audit(rules, [tue, mon], first=HOLIDAY, last=TUE)
    assert flagged(result, "outside_business_hours") == {tue["event_id"]}
    assert "company holiday" in result.findings[0].explanation


def test_midnight_utc_versus_jst(rules: AccessRules) -> None:
    # 2026-11-24T00:00Z is 09:00 JST on Tuesday the 24th: in business hours
    utc_midnight = ev(dt.datetime(2026, 11, 24, 0, 0, tzinfo=UTC))
    # 2026-11-23T23:59:59Z is 08:59:59 JST on the 24th: outside
    just_before = ev(dt.datetime(2026, 11, 23, 23, 59, 59, tzinfo=UTC))
    # 2026-11-23T15:00Z is midnight JST: the first instant of the 24th's period
    jst_midnight = ev(dt.datetime(2026, 11, 23, 15, 0, tzinfo=UTC))
    period = Period("daily", TUE, TUE)
    assert period.start_utc == dt.datetime(2026, 11, 23, 15, tzinfo=UTC)
    assert period.end_utc == dt.datetime(2026, 11, 24, 15, tzinfo=UTC)
    result = audit(rules, [utc_midnight, just_before, jst_midnight])
    assert flagged(result) == {just_before["event_id"], jst_midnight["event_id"]}
    assert {f.day for f in result.findings} == {TUE}
    # the previous JST day's period does not take the JST-midnight event
    engine = AuditEngine(rules, Period("daily", HOLIDAY, HOLIDAY))
    with pytest.raises(ValueError, match="outside the period"):
        engine.consume(events_table([jst_midnight]).to_batches()[0])


def test_other_time_zone_with_daylight_saving() -> None:
    rules = rules_with({"timezone: Asia/Tokyo": "timezone: America/Chicago", "country: JP": "country: US"})
    # Monday 2026-03-09 (CDT, UTC-5) and Monday 2026-11-02 (CST, UTC-6), both at 09:30 local
    cdt = ev(dt.datetime(2026, 3, 9, 14, 30, tzinfo=UTC), staff="cs-1")
    cst = ev(dt.datetime(2026, 11, 2, 15, 30, tzinfo=UTC), staff="cs-1")
    cst_early = ev(dt.datetime(2026, 11, 2, 14, 30, tzinfo=UTC), staff="cs-1")  # 08:30 CST
    r1 = run_rules(
        rules,
        Period("daily", dt.date(2026, 3, 9), dt.date(2026, 3, 9), "America/Chicago"),
        [events_table([cdt])],
    )
    r2 = run_rules(
        rules,
        Period("daily", dt.date(2026, 11, 2), dt.date(2026, 11, 2), "America/Chicago"),
        [events_table([cst, cst_early])],
    )
    assert r1.findings == []
    assert flagged(r2) == {cst_early["event_id"]}


def test_unknown_role_resource_and_action_fail_closed(rules: AccessRules) -> None:
    intern = ev(jst(TUE, 10), role="intern", resource="orders", staff="in-1")
    new_table = ev(jst(TUE, 10), role="security_admin", resource="loyalty_points", staff="sa-1")
    odd_action = ev(jst(TUE, 10), resource="orders", action="print", staff="cs-1")
    result = audit(rules, [intern, new_table, odd_action])
    assert flagged(result, "role_category") == {intern["event_id"], new_table["event_id"]}
    assert flagged(result, "write_not_allowed") == {odd_action["event_id"]}


def test_one_finding_per_staff_day_and_category_not_per_event(rules: AccessRules) -> None:
    rows = [ev(jst(TUE, 10, m), resource="payments", staff="cs-1") for m in range(30)]
    rows += [ev(jst(TUE, 10, 0), resource="payments", staff="cs-2")]
    result = audit(rules, rows)
    assert len(result.findings) == 2
    assert sum(f.event_count for f in result.findings) == 31


def test_finding_ids_are_stable_across_reruns_and_roll_ups(rules: AccessRules) -> None:
    rows = [
        ev(jst(TUE, 10), resource="payments", staff="cs-1", event_id=42),
        ev(jst(TUE, 20), staff="cs-1", event_id=43),
    ]
    daily = audit(rules, rows)
    again = audit(rules, list(reversed(rows)))
    week = audit(rules, rows, first=dt.date(2026, 11, 23), last=dt.date(2026, 11, 29), kind="weekly")
    ids = {f.finding_id for f in daily.findings}
    assert ids == {f.finding_id for f in again.findings} == {f.finding_id for f in week.findings}
    assert {f.period for f in week.findings} == {"weekly/2026-W48"}


def test_totals_hours_and_days(rules: AccessRules) -> None:
    rows = [
        ev(jst(TUE, 10), records=3),
        ev(jst(TUE, 10), outcome="denied"),
        ev(jst(TUE, 23), role="finance", resource="payments", action="export", records=7),
    ]
    result = audit(rules, rows)
    totals = {
        (t["staff_role"], t["resource"], t["action"], t["outcome"]): (t["events"], t["records"]) for t in result.totals
    }
    assert totals == {
        ("customer_service", "orders", "view", "allowed"): (1, 3),
        ("customer_service", "orders", "view", "denied"): (1, 1),
        ("finance", "payments", "export", "allowed"): (1, 7),
    }
    assert result.by_hour[10] == {"hour": 10, "allowed": 1, "denied": 1}
    assert result.by_hour[23] == {"hour": 23, "allowed": 1, "denied": 0}
    assert result.by_day[0]["events"] == 3 and result.by_day[0]["outside_business_hours"] == 1
    assert result.denied_by_role == {"customer_service": 1}


def test_engine_handles_many_batches_and_dictionary_columns(rules: AccessRules) -> None:
    rows = [
        ev(jst(TUE, 10, i % 60), resource="payments" if i % 7 == 0 else "orders", staff=f"cs-{i % 3}")
        for i in range(500)
    ]
    table = events_table(rows)
    one = run_rules(rules, Period("daily", TUE, TUE), [table])
    dict_table = table.set_column(3, "staff_role", table.column("staff_role").dictionary_encode())
    many = run_rules(rules, Period("daily", TUE, TUE), dict_table.to_batches(max_chunksize=37))
    assert [f.to_dict() for f in one.findings] == [f.to_dict() for f in many.findings]
    assert one.totals == many.totals


# --------------------------------------------------------------------------------------------
# large day: time and memory budget
# --------------------------------------------------------------------------------------------


def test_large_day_within_budget() -> None:
    """1,000,000 events of one day through the engine: < 60 s and < 512 MiB peak.

    Measured on the 2-core dev machine: 2.3 s, 36 MiB traced (Python + NumPy) and 7.4 MiB in
    the Arrow pool (`python -m lomevexi_governance.audit.bench`).
    """
    result = bench(1_000_000)
    assert result.events == 1_000_000
    assert result.seconds < 60
    assert result.traced_peak_mib < 512
    assert result.arrow_pool_peak_mib < 512
    assert result.findings > 0


# --------------------------------------------------------------------------------------------
# periods
# --------------------------------------------------------------------------------------------


def test_scheduled_periods_daily_weekly_monthly() -> None:
    # the 06:00 JST run on Tuesday 2026-11-24 (logical date 2026-11-23T21:00Z)
    tue = plan_periods(dt.datetime(2026, 11, 23, 21, tzinfo=UTC))
    assert [p.label for p in tue] == ["daily/2026-11-23"]
    # Monday 2026-11-30: also the ISO week 2026-W48 (Mon 23 .. Sun 29)
    mon = plan_periods(dt.datetime(2026, 11, 29, 21, tzinfo=UTC))
    assert [p.label for p in mon] == ["daily/2026-11-29", "weekly/2026-W48"]
    assert (mon[1].first_day, mon[1].last_day) == (dt.date(2026, 11, 23), dt.date(2026, 11, 29))
    # Tuesday 2026-12-01: also the month of November
    first = plan_periods(dt.datetime(2026, 11, 30, 21, tzinfo=UTC))
    assert [p.label for p in first] == ["daily/2026-11-30", "monthly/2026-11"]
    assert first[1].days == 30
    assert first[1].describe()["start_utc"] == "2026-10-31T15:00:00Z"
    assert first[1].describe()["end_utc"] == "2026-11-30T15:00:00Z"


def test_custom_periods_and_param_validation() -> None:
    logical = dt.datetime(2026, 11, 24, tzinfo=UTC)
    (p,) = plan_periods(logical, "2026-11-01", "2026-11-23")
    assert p.label == "custom/2026-11-01_2026-11-23" and p.days == 23
    (one,) = plan_periods(logical, "2026-11-05", None)
    assert (one.first_day, one.last_day) == (dt.date(2026, 11, 5), dt.date(2026, 11, 5))
    with pytest.raises(ConfigurationError, match="before param 'start'"):
        plan_periods(logical, "2026-11-23", "2026-11-01")
    with pytest.raises(ConfigurationError, match="YYYY-MM-DD"):
        plan_periods(logical, "23/11/2026", None)
    with pytest.raises(ConfigurationError, match="at most 366"):
        plan_periods(logical, "2025-01-01", "2026-11-01")


def test_previous_periods_for_trends() -> None:
    assert [p.label for p in Period("daily", TUE, TUE).previous(2)] == [
        "daily/2026-11-22",
        "daily/2026-11-23",
    ]
    week = Period("weekly", dt.date(2026, 11, 23), dt.date(2026, 11, 29))
    assert [p.label for p in week.previous(2)] == ["weekly/2026-W46", "weekly/2026-W47"]
    month = Period("monthly", dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    assert [p.label for p in month.previous(2)] == ["monthly/2026-01", "monthly/2026-02"]
    assert Period("custom", TUE, TUE).previous(3) == []


# --------------------------------------------------------------------------------------------
# reader (SQLite; PostgreSQL when the local server is up)
# --------------------------------------------------------------------------------------------


def make_store(path: Path, rows: list[tuple[Any, ...]]) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_SQL.read_text(encoding="utf-8"))
    conn.executemany(
        "INSERT INTO staff_access_log (event_id, occurred_at, staff_id, staff_role, action, resource, "
        "record_id, record_count, client_ip, outcome) VALUES (?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    conn.commit()
    conn.close()


def row(event_id: int, occurred_at: str, **kw: Any) -> tuple[Any, ...]:
    return (
        event_id,
        occurred_at,
        kw.get("staff", "cs-1"),
        kw.get("role", "customer_service"),
        kw.get("action", "view"),
        kw.get("resource", "orders"),
        None,
        kw.get("records", 1),
        "192.0.2.10",
        kw.get("outcome", "allowed"),
    )


def test_sqlite_reader_compares_instants(tmp_path: Path) -> None:
    from lomevexi_governance.audit.reader import read_events

    make_store(
        tmp_path / "store.db",
        [
            row(1, "2026-11-23 14:59:59.999999"),  # 23:59:59.999999 JST on the 23rd: before
            row(2, "2026-11-23 15:00:00"),  # 00:00 JST on the 24th: first instant
            row(3, "2026-11-24 14:59:59.999999"),  # last instant
            row(4, "2026-11-24 15:00:00"),  # 00:00 JST on the 25th: after
            row(5, "2026-11-24T10:00:00+09:00"),  # other ISO forms, read as instants
            row(6, "2026-11-24T23:59:00+09:00"),
            row(7, "2026-11-24T15:00:00Z"),
            row(8, "2026-11-23 15:00:00.5"),
        ],
    )
    period = Period("daily", TUE, TUE)
    batches = list(
        read_events(sqlite_target(str(tmp_path / "store.db")), period.start_utc, period.end_utc, batch_rows=2)
    )
    table = pa.Table.from_batches(batches)
    assert sorted(table.column("event_id").to_pylist()) == [2, 3, 5, 6, 8]
    assert "client_ip" not in table.column_names and "record_id" not in table.column_names
    assert table.schema.field("occurred_at").type == pa.timestamp("us", tz="UTC")


def test_sqlite_reader_names_bad_input(tmp_path: Path) -> None:
    from lomevexi_governance.audit.reader import read_events

    make_store(tmp_path / "store.db", [row(1, "2026-11-24 01:00:00"), row(77, "2026-11-24 yesterday")])
    period = Period("daily", TUE, TUE)
    target = sqlite_target(str(tmp_path / "store.db"))
    with pytest.raises(SourceSchemaError, match=r"occurred_at' of event_id 77") as exc:
        list(read_events(target, period.start_utc, period.end_utc))
    assert "yesterday" not in str(exc.value)  # names the row, never the value

    conn = sqlite3.connect(tmp_path / "store.db")
    conn.execute("ALTER TABLE staff_access_log DROP COLUMN outcome")
    conn.commit()
    conn.close()
    with pytest.raises(SourceSchemaError, match=r"staff_access_log.*outcome"):
        list(read_events(target, period.start_utc, period.end_utc))


@pytest.mark.postgres
def test_postgres_reader_compares_instants(pg_store: str) -> None:
    """timestamptz bounds on PostgreSQL (the store DDL in a fresh database, tests/conftest.py)."""
    import psycopg

    from lomevexi_governance.audit.reader import read_events
    from lomevexi_governance.settings import target_from_uri

    with psycopg.connect(pg_store, autocommit=True) as conn:
        for eid, ts in [
            (1, "2026-11-23 14:59:59.999999+00"),
            (2, "2026-11-24 00:00:00+09"),
            (3, "2026-11-24 23:59:59.999999+09"),
            (4, "2026-11-24 15:00:00+00"),
        ]:
            conn.execute(
                "INSERT INTO staff_access_log VALUES (%s, %s, 'cs-1', 'customer_service', 'view', "
                "'orders', NULL, 1, '192.0.2.1', 'allowed')",
                (eid, ts),
            )
    period = Period("daily", TUE, TUE)
    table = pa.Table.from_batches(list(read_events(target_from_uri(pg_store), period.start_utc, period.end_utc)))
    assert sorted(table.column("event_id").to_pylist()) == [2, 3]
    assert table.column("occurred_at").to_pylist()[-1] == dt.datetime(2026, 11, 24, 14, 59, 59, 999_999, tzinfo=UTC)


def test_denied_attempt_outside_the_grants_is_a_finding_that_says_so(rules: AccessRules) -> None:
    tried = [ev(jst(TUE, 10, m), resource="payments", outcome="denied", staff="cs-5") for m in (0, 30)]
    result = audit(rules, tried)
    found = [f for f in result.findings if f.rule == "role_category"]
    assert len(found) == 1 and found[0].event_ids == tuple(e["event_id"] for e in tried)
    assert "tried to read payment data" in found[0].explanation and "2 of 2 attempt(s) denied" in found[0].explanation
