"""Access-audit outputs: charts, summary/CSV/HTML, evidence chain, alerts, Airflow audit log parsing."""

from __future__ import annotations

import csv
import datetime as dt
import email
import io
import json
import socket
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lomevexi_governance.audit import airflow_log, charts, job, notify
from lomevexi_governance.audit.evidence import append_chained, read_entries, verify_chain
from lomevexi_governance.audit.periods import Period
from lomevexi_governance.audit.report import findings_csv
from lomevexi_governance.errors import ConfigurationError, IntegrityError
from lomevexi_governance.policy import DEFAULT_POLICY_PATH, load_policy
from lomevexi_governance.settings import sqlite_target

pytestmark = pytest.mark.unit

UTC = dt.UTC
TUE = dt.date(2026, 11, 24)
SCHEMA_SQL = Path(DEFAULT_POLICY_PATH).parent / "sql" / "store_schema.sql"
STAFF_IP = "198.51.100.77"
RUN = {
    "dag_id": "access_audit",
    "run_id": "manual__2026-11-25T00:00:00+00:00",
    "logical_date": dt.datetime(2026, 11, 25, tzinfo=UTC),
}


# --------------------------------------------------------------------------------------------
# a small store with one violation of each rule
# --------------------------------------------------------------------------------------------


def _utc(day: dt.date, jst_hour: int, minute: int = 0, second: int = 0) -> str:
    t = dt.datetime(day.year, day.month, day.day, jst_hour, minute, second, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


PLANTED = {
    "role_category": [101, 102],
    "write_not_allowed": [201],
    "bulk_access": [301],
    "denied_burst": [401, 402, 403, 404, 405],
    "outside_business_hours": [501],
}
BENIGN = [1, 2, 3, 4]


def make_store(path: Path) -> None:
    rows = [
        (1, _utc(TUE, 10), "cs-1", "customer_service", "view", "orders", 11, 1, STAFF_IP, "allowed"),
        (2, _utc(TUE, 11), "fi-1", "finance", "view", "payments", 12, 1, STAFF_IP, "allowed"),
        (3, _utc(TUE, 12), "lg-1", "logistics", "update", "shipments", 13, 1, STAFF_IP, "allowed"),
        (4, _utc(TUE, 13), "sa-1", "security_admin", "export", "customers", None, 200, STAFF_IP, "allowed"),
        (101, _utc(TUE, 10, 5), "cs-2", "customer_service", "view", "payments", 21, 1, STAFF_IP, "allowed"),
        (102, _utc(TUE, 10, 6), "cs-2", "customer_service", "view", "payments", 22, 1, STAFF_IP, "allowed"),
        (201, _utc(TUE, 14), "sa-1", "security_admin", "delete", "orders", 23, 1, STAFF_IP, "allowed"),
        (301, _utc(TUE, 15), "fi-1", "finance", "export", "payments", None, 12_000, STAFF_IP, "allowed"),
        (501, _utc(TUE, 22), "lg-1", "logistics", "view", "orders", 24, 1, STAFF_IP, "allowed"),
    ]
    rows += [
        (401 + i, _utc(TUE, 16, i), "sa-1", "security_admin", "view", "customers", 30 + i, 1, STAFF_IP, "denied")
        for i in range(5)
    ]
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_SQL.read_text(encoding="utf-8"))
    conn.executemany("INSERT INTO staff_access_log VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    conn.commit()
    conn.close()


@pytest.fixture
def audited(tmp_path: Path) -> dict[str, Any]:
    make_store(tmp_path / "store.db")
    out = job.audit_period(
        target=sqlite_target(str(tmp_path / "store.db")),
        policy=load_policy(),
        period=Period("daily", TUE, TUE),
        report_root=tmp_path / "reports",
        run=RUN,
        airflow_audit_file=None,
    )
    return {
        "root": tmp_path / "reports",
        "result": out,
        "summary": json.loads(Path(out["summary"]).read_text()),
    }


# --------------------------------------------------------------------------------------------
# the period's outputs
# --------------------------------------------------------------------------------------------


def test_every_planted_violation_is_found_and_nothing_benign(audited: dict[str, Any]) -> None:
    s = audited["summary"]
    by_rule: dict[str, set[int]] = {}
    for f in s["findings"]:
        by_rule.setdefault(f["rule"], set()).update(f["event_ids"])
    for rule, ids in PLANTED.items():
        assert set(ids) <= by_rule.get(rule, set()), rule
    everything = set().union(*by_rule.values())
    assert not everything & set(BENIGN)
    assert s["event_count"] == 14 and s["denied_count"] == 5
    assert s["findings_by_rule"] == {
        "role_category": 1,
        "write_not_allowed": 1,
        "bulk_access": 1,
        "denied_burst": 1,
        "outside_business_hours": 1,
    }
    assert s["findings_by_severity"] == {"high": 4, "medium": 1}


def test_summary_fields(audited: dict[str, Any]) -> None:
    s = audited["summary"]
    assert s["period"] == {
        "kind": "daily",
        "label": "daily/2026-11-24",
        "timezone": "Asia/Tokyo",
        "start_date": "2026-11-24",
        "end_date": "2026-11-24",
        "end_date_inclusive": True,
        "start_utc": "2026-11-23T15:00:00Z",
        "end_utc": "2026-11-24T15:00:00Z",
        "end_utc_exclusive": True,
        "days": 1,
    }
    assert s["airflow_audit"]["note"] == "airflow audit log: not configured"
    totals = {(t["staff_role"], t["resource"], t["action"]): t for t in s["totals"]}
    assert totals[("security_admin", "customers", "view")]["denied"] == 5
    assert totals[("finance", "payments", "export")]["records"] == 12_000
    assert s["by_role_category"]["customer_service"]["payment"] == 2
    assert s["denied"] == {"by_role": {"security_admin": 5}, "by_staff": {"sa-1": 5}}
    assert sum(h["allowed"] + h["denied"] for h in s["by_hour_local"]) == 14
    for f in s["findings"]:
        assert set(f) >= {"finding_id", "rule", "severity", "staff_id", "event_ids", "period", "explanation"}
        assert f["period"] == "daily/2026-11-24"
    assert s["run_id"] == RUN["run_id"] and s["logical_date"] == "2026-11-25T00:00:00Z"


def test_reports_carry_no_customer_data(audited: dict[str, Any]) -> None:
    folder = Path(audited["result"]["dir"])
    for name in ("summary.json", "findings.csv", "report.html"):
        text = (folder / name).read_text(encoding="utf-8")
        assert STAFF_IP not in text, name  # client IPs are never read
        assert "record_id" not in text, name


def test_html_is_self_contained_with_charts(audited: dict[str, Any]) -> None:
    html = Path(audited["result"]["report"]).read_text(encoding="utf-8")
    assert html.count("<svg") >= 3
    for svg in html.split("<svg")[1:]:
        ET.fromstring("<svg" + svg.split("</svg>")[0] + "</svg>")  # each chart is well-formed XML
    assert "<script" not in html.lower()
    assert "src=" not in html and "<link" not in html and "@import" not in html
    assert "Labor Thanksgiving Day" not in html  # not in this period
    assert "daily/2026-11-24" in html and "sa-1" in html


def test_csv_lists_every_finding(audited: dict[str, Any]) -> None:
    text = Path(audited["result"]["findings_csv"]).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 5
    burst = next(r for r in rows if r["rule"] == "denied_burst")
    assert burst["event_ids"].split() == ["401", "402", "403", "404", "405"]


def test_csv_defuses_formulas() -> None:
    text = findings_csv([{"finding_id": "x", "staff_id": '=HYPERLINK("http://x")', "event_ids": [1, 2]}])
    row = next(csv.DictReader(io.StringIO(text)))
    assert row["staff_id"].startswith("'=") and row["event_ids"] == "1 2"


def test_evidence_log_records_the_report_hash(audited: dict[str, Any]) -> None:
    log = audited["root"] / "access_audit" / "evidence.jsonl"
    (entry,) = read_entries(log)
    html_sha = audited["result"]["report_sha256"]
    assert entry["report_sha256"] == html_sha
    import hashlib

    assert hashlib.sha256(Path(audited["result"]["report"]).read_bytes()).hexdigest() == html_sha
    assert entry["prev_sha256"] == "0" * 64 and entry["seq"] == 1
    assert verify_chain(log) == 1


def test_rerun_is_idempotent_and_reports_are_reproducible(tmp_path: Path, audited: dict[str, Any]) -> None:
    root = audited["root"]
    first = audited["result"]
    store = sqlite_target(str(root.parent / "store.db"))
    again = job.audit_period(
        target=store,
        policy=load_policy(),
        period=Period("daily", TUE, TUE),
        report_root=root,
        run=RUN,
        airflow_audit_file=None,
    )
    # same run, same data: same bytes, and no second evidence line (a retried task)
    assert again["report_sha256"] == first["report_sha256"]
    assert verify_chain(root / "access_audit" / "evidence.jsonl") == 1
    # another run: a new evidence line, chained to the first
    other = {**RUN, "run_id": "scheduled__2026-11-24T21:00:00+00:00"}
    job.audit_period(
        target=store,
        policy=load_policy(),
        period=Period("daily", TUE, TUE),
        report_root=root,
        run=other,
        airflow_audit_file=None,
    )
    assert verify_chain(root / "access_audit" / "evidence.jsonl") == 2


def test_empty_period_report(tmp_path: Path) -> None:
    make_store(tmp_path / "store.db")
    out = job.audit_period(
        target=sqlite_target(str(tmp_path / "store.db")),
        policy=load_policy(),
        period=Period("daily", dt.date(2026, 11, 20), dt.date(2026, 11, 20)),
        report_root=tmp_path / "reports",
        run=RUN,
        airflow_audit_file=None,
    )
    s = json.loads(Path(out["summary"]).read_text())
    assert s["event_count"] == 0 and s["findings"] == [] and s["totals"] == []
    html = Path(out["report"]).read_text()
    assert "No findings" in html and "<svg" in html
    assert Path(out["findings_csv"]).read_text().count("\n") == 1  # header only


def test_trend_reads_previous_periods(tmp_path: Path) -> None:
    make_store(tmp_path / "store.db")
    target = sqlite_target(str(tmp_path / "store.db"))
    for day in (dt.date(2026, 11, 22), TUE):
        job.audit_period(
            target=target,
            policy=load_policy(),
            period=Period("daily", day, day),
            report_root=tmp_path / "reports",
            run=RUN,
            airflow_audit_file=None,
        )
    html = (tmp_path / "reports/access_audit/daily/2026-11-24/report.html").read_text()
    assert "11-22" in html and "11-24" in html and "no report" in html  # 11-23 has none


# --------------------------------------------------------------------------------------------
# charts
# --------------------------------------------------------------------------------------------


def test_charts_are_valid_svg_with_escaped_labels() -> None:
    svgs = [
        charts.heatmap(["a<b", "c"], ["x&y", "z"], [[1, 0], [0, 1000]], forbidden={(0, 0)}, title="T<1>"),
        charts.hour_bars([1] * 24, [0] * 23 + [5], title="hours"),
        charts.trend_chart(["d1", "d2", "d3"], {"events": [1, None, 3], "denied": [0, None, 1]}, title="t"),
        charts.trend_chart([], {"events": []}, title="empty"),
        charts.hour_bars([0] * 24, [0] * 24, shade=None),
    ]
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.tag.endswith("svg") and root.get("role") == "img"
    assert "a&lt;b" in svgs[0] and "url(#hatch)" in svgs[0]
    assert "no report" in svgs[2]


def test_nice_ticks() -> None:
    assert charts.nice_ticks(0) == [0.0, 1.0]
    assert charts.nice_ticks(7)[-1] >= 7
    assert charts.nice_ticks(1234) == [0.0, 500.0, 1000.0, 1500.0]


# --------------------------------------------------------------------------------------------
# evidence chain
# --------------------------------------------------------------------------------------------


def test_evidence_chain_detects_tampering(tmp_path: Path) -> None:
    log = tmp_path / "evidence.jsonl"
    for i in range(3):
        append_chained(log, {"period": f"daily/2026-11-2{i}", "report_sha256": "ab" * 32})
    assert verify_chain(log) == 3
    lines = log.read_text().splitlines()
    lines[1] = lines[1].replace("2026-11-21", "2026-11-29")
    log.write_text("\n".join(lines) + "\n")
    with pytest.raises(IntegrityError, match="line 3 does not chain"):
        verify_chain(log)
    with pytest.raises(IntegrityError):
        append_chained(log, {"period": "daily/2026-11-30"})  # a broken log does not grow


def test_evidence_skip_if_makes_appends_idempotent(tmp_path: Path) -> None:
    log = tmp_path / "evidence.jsonl"
    a = append_chained(log, {"k": 1})
    b = append_chained(log, {"k": 1}, skip_if=lambda old: old.get("k") == 1)
    assert a == b and verify_chain(log) == 1


# --------------------------------------------------------------------------------------------
# alerts
# --------------------------------------------------------------------------------------------


def test_alerts_once_per_high_finding_never_resent(audited: dict[str, Any]) -> None:
    root, result = audited["root"], audited["result"]
    sent: list[notify.AlertMessage] = []
    outcome = job.alert_findings(report_root=root, run=RUN, periods=[result], send=sent.append)
    assert outcome.high_findings == 4 and len(sent) == 4 and not outcome.failed
    assert {m.finding_id for m in sent} == {
        f["finding_id"] for f in audited["summary"]["findings"] if f["severity"] == "high"
    }
    burst = next(m for m in sent if "denied_burst" in m.subject)
    assert "401, 402, 403, 404, 405" in burst.html and "sa-1" in burst.subject
    for m in sent:
        assert STAFF_IP not in m.html and result["report"] in m.html
    # the weekly roll-up and a rerun see the same findings: nothing is sent again
    again = job.alert_findings(report_root=root, run=RUN, periods=[result, result], send=sent.append)
    assert len(sent) == 4 and sorted(again.already_sent) == sorted(outcome.sent)
    assert verify_chain(notify.sent_log_path(root / "access_audit")) == 4


def test_alert_failure_is_recorded_and_raised(audited: dict[str, Any]) -> None:
    calls: list[str] = []

    def flaky(msg: notify.AlertMessage) -> None:
        calls.append(msg.finding_id)
        if len(calls) == 2:
            raise OSError("connection refused")

    outcome = job.alert_findings(report_root=audited["root"], run=RUN, periods=[audited["result"]], send=flaky)
    assert len(outcome.sent) == 3 and len(outcome.failed) == 1
    with pytest.raises(notify.AlertDeliveryError, match=outcome.failed[0]):
        notify.raise_on_failure(outcome)
    # the retry sends only the one that failed
    retry: list[str] = []
    again = job.alert_findings(
        report_root=audited["root"],
        run=RUN,
        periods=[audited["result"]],
        send=lambda m: retry.append(m.finding_id),
    )
    assert retry == outcome.failed and not again.failed


def test_no_recipient_logs_the_findings_and_sends_them_once_configured(
    audited: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("ERROR", logger="lomevexi_governance.audit.notify"):
        outcome = job.alert_findings(report_root=audited["root"], run=RUN, periods=[audited["result"]], send=None)
    assert outcome.status == "not configured" and len(outcome.not_sent) == 4 and not outcome.failed
    notify.raise_on_failure(outcome)  # not a failure: alerting is not configured
    assert sum("GOVERNANCE ALERT access_audit" in r.getMessage() for r in caplog.records) == 4
    # nothing was recorded as sent: once recipients exist, the findings go out
    sent: list[notify.AlertMessage] = []
    later = job.alert_findings(report_root=audited["root"], run=RUN, periods=[audited["result"]], send=sent.append)
    assert len(sent) == 4 and later.status == "ok"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, list[Any]]]:
    from aiosmtpd.controller import Controller

    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope)
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


def test_smtp_sender_delivers_through_the_airflow_connection(
    smtp_server: tuple[int, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, received = smtp_server
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOVERNANCE_SMTP",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {
                    "disable_tls": True,
                    "disable_ssl": True,
                    "from_email": "audit@lomevexi.test",
                    "timeout": 10,
                    "retry_limit": 0,
                },
            }
        ),
    )
    send = notify.smtp_sender(to=["oncall@lomevexi.test"], smtp_conn_id="governance_smtp", from_email=None, context={})
    send(notify.AlertMessage("f123", "subject {{ ti }}", "<p>{{ 7 * 7 }}</p>"))
    (envelope,) = received
    assert envelope.mail_from == "audit@lomevexi.test" and envelope.rcpt_tos == ["oncall@lomevexi.test"]
    message = email.message_from_bytes(envelope.content)
    assert message["X-Lomevexi-Finding"] == "f123"
    html = next(p for p in message.walk() if p.get_content_type() == "text/html").get_payload(decode=True)
    assert b"{{ 7 * 7 }}" in html  # never rendered as a template


def test_recipients_parsing() -> None:
    assert notify.recipients(" a@x.test, b@x.test;c@x.test ,") == ["a@x.test", "b@x.test", "c@x.test"]
    assert notify.recipients(None) == []


# --------------------------------------------------------------------------------------------
# Airflow's audit log (fixture JSON shaped like GET /api/v2/eventLogs)
# --------------------------------------------------------------------------------------------

EVENT_LOGS = [
    {
        "event_log_id": 10,
        "when": "2026-11-23T15:00:00Z",
        "dag_id": "retention_purge",
        "task_id": None,
        "run_id": "manual__2026-11-24",
        "map_index": None,
        "try_number": None,
        "event": "trigger_dag_run",
        "logical_date": None,
        "owner": "oncall",
        "extra": '{"method": "POST"}',
    },
    {
        "event_log_id": 11,
        "when": "2026-11-24T02:00:00+00:00",
        "dag_id": None,
        "task_id": None,
        "run_id": None,
        "map_index": None,
        "try_number": None,
        "event": "patch_connection",
        "logical_date": None,
        "owner": "admin",
        "extra": '{"connection_id": "store_db", "password": "***", "method": "PATCH"}',
    },
    {
        "event_log_id": 12,
        "when": "2026-11-24T03:00:00Z",
        "dag_id": None,
        "task_id": None,
        "run_id": None,
        "map_index": None,
        "try_number": None,
        "event": "post_variable",
        "logical_date": None,
        "owner": "admin",
        "extra": '{"key": "governance_alert_to", "value": "***"}',
    },
    {
        "event_log_id": 13,
        "when": "2026-11-24T04:00:00Z",
        "dag_id": "restore_drill",
        "task_id": None,
        "run_id": None,
        "map_index": None,
        "try_number": None,
        "event": "cli_dag_trigger",
        "logical_date": None,
        "owner": "root",
        "extra": None,
    },
    {
        "event_log_id": 14,
        "when": "2026-11-24T05:00:00Z",
        "dag_id": "order_backup",
        "task_id": "t",
        "run_id": "r",
        "map_index": -1,
        "try_number": 1,
        "event": "running",
        "logical_date": None,
        "owner": "data-governance",
        "extra": None,
    },
    {
        "event_log_id": 15,
        "when": "2026-11-24T15:00:00Z",
        "dag_id": "retention_purge",
        "task_id": None,
        "run_id": None,
        "map_index": None,
        "try_number": None,
        "event": "trigger_dag_run",
        "logical_date": None,
        "owner": "oncall",
        "extra": None,
    },
]


def test_airflow_events_are_parsed_and_summarized() -> None:
    period = Period("daily", TUE, TUE)
    events = airflow_log.parse_events(EVENT_LOGS, period.start_utc, period.end_utc)
    assert [e.event_log_id for e in events] == [10, 11, 12, 13]  # 14 is not relevant, 15 is after the end
    s = airflow_log.summarize(events, period.start_utc, period.end_utc, "GET http://x/api/v2/eventLogs")
    assert s["by_category"] == {
        "dag_trigger": 2,
        "dag_rerun": 0,
        "connection_change": 1,
        "variable_change": 1,
    }
    assert s["dag_triggers"] == [
        {"dag_id": "restore_drill", "user": "root", "count": 1},
        {"dag_id": "retention_purge", "user": "oncall", "count": 1},
    ]
    assert [e["target"] for e in s["connection_changes"]] == ["store_db"]
    assert [e["target"] for e in s["variable_changes"]] == ["governance_alert_to"]
    assert {e["dag_id"] for e in s["drills_and_purges"]} == {"retention_purge", "restore_drill"}
    assert "***" not in json.dumps(s)  # values from `extra` are never copied


def test_airflow_api_client_pages_with_a_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/auth/token":
            assert json.loads(request.content) == {"username": "auditor", "password": "s3cret"}
            return httpx.Response(201, json={"access_token": "jwt-token"})
        assert request.headers["Authorization"] == "Bearer jwt-token"
        offset = int(request.url.params["offset"])
        page = EVENT_LOGS[offset : offset + 4]
        return httpx.Response(200, json={"event_logs": page, "total_entries": len(EVENT_LOGS)})

    def factory(**kw: Any) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(handler), **kw)

    settings = airflow_log.ApiSettings("http://airflow.test:8080", "auditor", "s3cret")
    period = Period("daily", TUE, TUE)
    raw = airflow_log.fetch_events(settings, period.start_utc, period.end_utc, client_factory=factory)
    assert len(raw) == len(EVENT_LOGS)
    pages = [r for r in seen if r.url.path == "/api/v2/eventLogs"]
    assert [r.url.params["offset"] for r in pages] == ["0", "4"]
    assert "s3cret" not in repr(settings)


def test_airflow_api_refusal_names_the_endpoint_not_the_secret() -> None:
    def factory(**kw: Any) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(401)), **kw)

    settings = airflow_log.ApiSettings("http://airflow.test:8080", "auditor", "s3cret")
    with pytest.raises(airflow_log.AirflowApiError, match="/auth/token") as exc:
        airflow_log.fetch_events(
            settings,
            dt.datetime(2026, 11, 23, 15, tzinfo=UTC),
            dt.datetime(2026, 11, 24, 15, tzinfo=UTC),
            client_factory=factory,
        )
    assert "s3cret" not in str(exc.value)


def test_airflow_api_settings_from_connection() -> None:
    from airflow.models.connection import Connection

    s = airflow_log.settings_from_connection(Connection(conn_id="airflow_api", uri="http://admin:pw@localhost:8080"))
    assert (s.base_url, s.username, s.password) == ("http://localhost:8080", "admin", "pw")
    s = airflow_log.settings_from_connection(
        Connection(conn_id="airflow_api", conn_type="http", host="https://af.example", login="a", password="b")
    )
    assert s.base_url == "https://af.example"
    with pytest.raises(ConfigurationError, match="login and a password"):
        airflow_log.settings_from_connection(Connection(conn_id="airflow_api", uri="http://localhost:8080"))


def test_airflow_section_flows_into_the_period_summary(tmp_path: Path) -> None:
    make_store(tmp_path / "store.db")
    periods = [Period("daily", TUE, TUE)]
    path = job.collect_airflow_audit(
        report_root=tmp_path / "reports",
        run=RUN,
        periods=periods,
        settings=airflow_log.ApiSettings("http://airflow.test", "a", "b"),
        fetch=lambda settings, start, end: EVENT_LOGS,
    )
    out = job.audit_period(
        target=sqlite_target(str(tmp_path / "store.db")),
        policy=load_policy(),
        period=periods[0],
        report_root=tmp_path / "reports",
        run=RUN,
        airflow_audit_file=path,
    )
    s = json.loads(Path(out["summary"]).read_text())
    assert s["airflow_audit"]["status"] == "ok" and s["airflow_audit"]["event_count"] == 4
    html = Path(out["report"]).read_text()
    assert "patch_connection" in html and "retention_purge" in html
    not_conf = job.collect_airflow_audit(report_root=tmp_path / "r2", run=RUN, periods=periods, settings=None)
    assert json.loads(Path(not_conf).read_text())["note"] == "airflow audit log: not configured"


def test_run_summary_points_to_the_periods(audited: dict[str, Any]) -> None:
    path = job.write_run_summary(
        report_root=audited["root"],
        run=RUN,
        params={"start": None, "end": None},
        periods=[audited["result"]],
        airflow_audit_file=None,
    )
    data = json.loads(Path(path).read_text())
    assert Path(path).parent.name == "manual__2026-11-25T00_00_00_00_00"
    assert data["periods"][0]["summary"] == audited["result"]["summary"]
    assert data["alerts"] == {"status": "pending"} and data["airflow_audit"] == "not configured"
    job.record_alerts(path, notify.AlertOutcome(high_findings=1, sent=["x"]))
    assert json.loads(Path(path).read_text())["alerts"]["sent"] == ["x"]


def test_report_root_must_be_local() -> None:
    with pytest.raises(ConfigurationError, match="governance_report_root"):
        job.local_report_root("s3://bucket/reports")
