"""`airflow dags test access_audit` against a SQLite store with planted violations.

The access log is built here from the policy as the docs state it (not from the rule engine):
benign traffic is role-appropriate and inside business hours on working days; each planted
violation breaks exactly one documented rule. A real SMTP server (aiosmtpd) receives the alerts.
The migrated Airflow home is the session's (``airflow_home`` in tests/conftest.py).
"""

from __future__ import annotations

import datetime as dt
import email
import json
import random
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = REPO / "bin" / "airflow"
DAG_FILE = REPO / "dags" / "access_audit.py"
SCHEMA_SQL = REPO / "include" / "lomevexi_governance" / "sql" / "store_schema.sql"
JST = dt.timezone(dt.timedelta(hours=9))
STAFF_IP_PREFIX = "203.0.113."
WINDOW = ("2026-11-18", "2026-11-24")  # Wed .. Tue; Sat 21, Sun 22, Mon 23 (a JP holiday) inside
WORKING_DAYS = [dt.date(2026, 11, d) for d in (18, 19, 20, 24)]

# The matrix as docs/access-audit.md states it (reads; writes).
READS = {
    "customer_service": ["customers", "orders", "order_items", "shipments", "service_tickets"],
    "logistics": ["orders", "order_items", "shipments"],
    "finance": ["orders", "order_items", "payments"],
    "security_admin": ["customers", "orders", "order_items", "payments", "shipments", "service_tickets"],
}
WRITES = {
    "customer_service": ["orders", "service_tickets"],
    "logistics": ["shipments"],
    "finance": ["payments"],
}


@dataclass
class Log:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    planted: dict[str, set[int]] = field(default_factory=dict)
    benign: set[int] = field(default_factory=set)
    outside_window: set[int] = field(default_factory=set)
    next_id: int = 1000

    def add(
        self,
        when: dt.datetime,
        staff: str,
        role: str,
        action: str,
        resource: str,
        *,
        records: int = 1,
        outcome: str = "allowed",
        rule: str | None = None,
        benign: bool = False,
        inside: bool = True,
    ) -> int:
        self.next_id += 1
        eid = self.next_id
        ts = when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f").removesuffix(".000000")
        self.rows.append(
            (
                eid,
                ts,
                staff,
                role,
                action,
                resource,
                None if action in ("search", "export") else eid,
                records,
                STAFF_IP_PREFIX + str(eid % 250),
                outcome,
            )
        )
        if rule:
            self.planted.setdefault(rule, set()).add(eid)
        if benign:
            self.benign.add(eid)
        if not inside:
            self.outside_window.add(eid)
        return eid


def at(day: dt.date, hh: int, mm: int = 0, ss: int = 0, us: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, ss, us, tzinfo=JST)


def build_log(seed: int = 20261124) -> Log:
    rnd = random.Random(seed)
    log = Log()
    staff = {role: [f"{role[:3]}-{i:02d}" for i in range(1, 6)] for role in READS}
    # benign: role-appropriate reads and writes, 09:00 <= t < 18:00 JST on working days
    for day in WORKING_DAYS:
        for _ in range(300):
            role = rnd.choice(list(READS))
            who = rnd.choice(staff[role])
            t = at(day, 9) + dt.timedelta(seconds=rnd.randrange(9 * 3600))
            if role in WRITES and rnd.random() < 0.1:
                log.add(t, who, role, "update", rnd.choice(WRITES[role]), benign=True)
            else:
                action = rnd.choice(["view", "view", "view", "search", "export"])
                records = 1 if action == "view" else rnd.randint(1, 500)
                outcome = "denied" if rnd.random() < 0.01 else "allowed"
                log.add(
                    t,
                    who,
                    role,
                    action,
                    rnd.choice(READS[role]),
                    records=records,
                    outcome=outcome,
                    benign=True,
                )
        # the exact edges of business hours are inside
        log.add(at(day, 9, 0, 0), "cus-01", "customer_service", "view", "orders", benign=True)
        log.add(at(day, 17, 59, 59, 999_999), "cus-02", "customer_service", "view", "orders", benign=True)

    wed, thu, fri, sat, hol, tue = (dt.date(2026, 11, d) for d in (18, 19, 20, 21, 23, 24))
    # role x data category
    log.add(at(wed, 10), "cus-03", "customer_service", "view", "payments", rule="role_category")
    log.add(at(wed, 10, 1), "cus-03", "customer_service", "export", "payments", records=3, rule="role_category")
    log.add(at(thu, 14), "eng-01", "engineering", "export", "customers", records=20, rule="role_category")
    log.add(at(fri, 11), "log-02", "logistics", "view", "service_tickets", rule="role_category")
    # changes a role may not make
    log.add(at(wed, 15), "sec-01", "security_admin", "update", "orders", rule="write_not_allowed")
    log.add(at(thu, 15), "fin-02", "finance", "delete", "payments", rule="write_not_allowed")
    log.add(at(fri, 15), "log-03", "logistics", "update", "customers", rule="write_not_allowed")
    # bulk
    log.add(at(wed, 16), "fin-01", "finance", "export", "payments", records=5_000, rule="bulk_access")
    log.add(at(tue, 16), "cus-04", "customer_service", "search", "customers", records=800, rule="bulk_access")
    # bursts of denied attempts
    for s in range(0, 7 * 50, 50):
        log.add(
            at(thu, 11) + dt.timedelta(seconds=s),
            "eng-02",
            "engineering",
            "view",
            "customers",
            outcome="denied",
            rule="denied_burst",
        )
    for m in (0, 3, 6, 9, 10):
        log.add(at(tue, 13, m), "log-04", "logistics", "view", "payments", outcome="denied", rule="denied_burst")
    # outside business hours (time-zone edges)
    log.add(
        at(wed, 8, 59, 59, 999_999),
        "cus-05",
        "customer_service",
        "view",
        "orders",
        rule="outside_business_hours",
    )
    log.add(at(thu, 18, 0, 0), "cus-05", "customer_service", "view", "orders", rule="outside_business_hours")
    log.add(at(fri, 23, 30), "fin-03", "finance", "view", "payments", rule="outside_business_hours")
    log.add(at(sat, 12), "sec-02", "security_admin", "view", "customers", rule="outside_business_hours")
    log.add(at(hol, 10), "cus-01", "customer_service", "view", "orders", rule="outside_business_hours")
    log.add(at(tue, 0, 0, 0), "log-01", "logistics", "view", "shipments", rule="outside_business_hours")
    log.add(at(tue, 23, 59, 59), "log-01", "logistics", "view", "shipments", rule="outside_business_hours")
    # just outside the window: never read (they would be violations if they were)
    log.add(
        at(dt.date(2026, 11, 17), 23, 59, 59, 999_999),
        "cus-03",
        "customer_service",
        "view",
        "payments",
        inside=False,
    )
    log.add(at(dt.date(2026, 11, 25), 0, 0, 0), "cus-03", "customer_service", "view", "payments", inside=False)
    rnd.shuffle(log.rows)
    return log


def write_store(path: Path, log: Log) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_SQL.read_text(encoding="utf-8"))
    conn.executemany("INSERT INTO staff_access_log VALUES (?,?,?,?,?,?,?,?,?,?)", log.rows)
    conn.commit()
    conn.close()


# --------------------------------------------------------------------------------------------
# fixtures: one migrated Airflow home, one SMTP server, one store for the module
# --------------------------------------------------------------------------------------------


@dataclass
class Env:
    home: Path
    report_root: Path
    store: Path
    log: Log
    received: list[Any]
    env: dict[str, str]

    def run(self, *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(AIRFLOW), *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def dags_test(self, logical_date: str, conf: dict[str, Any] | None = None) -> dict[str, Any]:
        args = ["dags", "test", "access_audit", logical_date, "-f", str(DAG_FILE)]
        if conf is not None:
            args += ["-c", json.dumps(conf)]
        proc = self.run(*args)
        state = self.last_run()
        if state["state"] != "success":
            tail = (proc.stdout + proc.stderr)[-6000:]
            pytest.fail(f"dag run {state} (exit {proc.returncode}):\n{tail}")
        return state

    def last_run(self) -> dict[str, Any]:
        # `airflow dags test` may exit 0 for a failed run: read the run's state from the metadata DB
        conn = sqlite3.connect(self.home / "airflow.db")
        try:
            run_id, state = conn.execute(
                "SELECT run_id, state FROM dag_run WHERE dag_id = 'access_audit' ORDER BY id DESC LIMIT 1"
            ).fetchone()
        finally:
            conn.close()
        return {"run_id": run_id, "state": state}

    def messages(self) -> list[email.message.Message]:
        return [email.message_from_bytes(e.content) for e in self.received]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def airflow_env(airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """The session's migrated Airflow home (tests/conftest.py), a store, reports and an SMTP server."""
    from aiosmtpd.controller import Controller
    from tests.conftest import airflow_base_env

    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(envelope)
            return "250 OK"

    port = _free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()

    base = tmp_path_factory.mktemp("access_audit")
    log = build_log()
    write_store(base / "store.db", log)
    env = airflow_base_env(airflow_home)  # no AIRFLOW_* from the caller's environment
    env.update(
        {
            "AIRFLOW_CONN_STORE_DB": f"sqlite:///{base}/store.db",
            "AIRFLOW_VAR_GOVERNANCE_REPORT_ROOT": str(base / "reports"),
            "AIRFLOW_VAR_GOVERNANCE_BACKUP_ROOT": str(base / "backups"),
            "AIRFLOW_VAR_GOVERNANCE_ALERT_TO": "security@lomevexi.test, oncall@lomevexi.test",
            "AIRFLOW_CONN_GOVERNANCE_SMTP": json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": port,
                    "extra": {
                        "disable_tls": True,
                        "disable_ssl": True,
                        "from_email": "audit@lomevexi.test",
                        "timeout": 10,
                    },
                }
            ),
        }
    )
    try:
        yield Env(
            home=airflow_home,
            report_root=base / "reports",
            store=base / "store.db",
            log=log,
            received=received,
            env=env,
        )
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def custom_run(airflow_env: Env) -> dict[str, Any]:
    run = airflow_env.dags_test("2026-11-25", {"start": WINDOW[0], "end": WINDOW[1]})
    folder = airflow_env.report_root / "access_audit" / f"custom/{WINDOW[0]}_{WINDOW[1]}"
    return {
        "run": run,
        "folder": folder,
        "summary": json.loads((folder / "summary.json").read_text(encoding="utf-8")),
        "messages": airflow_env.messages(),
    }


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------


def test_every_planted_violation_is_found_and_no_benign_event_flagged(
    airflow_env: Env, custom_run: dict[str, Any]
) -> None:
    summary = custom_run["summary"]
    by_rule: dict[str, set[int]] = {}
    for f in summary["findings"]:
        by_rule.setdefault(f["rule"], set()).update(f["event_ids"])
    log = airflow_env.log
    for rule, ids in log.planted.items():
        missing = ids - by_rule.get(rule, set())
        assert not missing, f"{rule}: planted events {sorted(missing)} not in the findings"
    flagged = set().union(*by_rule.values())
    assert not flagged & log.benign, f"benign events flagged: {sorted(flagged & log.benign)[:20]}"
    assert not flagged & log.outside_window
    assert summary["event_count"] == len(log.rows) - len(log.outside_window)
    assert summary["period"]["start_utc"] == "2026-11-17T15:00:00Z"
    assert summary["period"]["end_utc"] == "2026-11-24T15:00:00Z"
    assert summary["airflow_audit"]["note"] == "airflow audit log: not configured"
    assert summary["findings_by_rule"]["denied_burst"] == 2


def test_outputs_html_csv_evidence_and_run_summary(airflow_env: Env, custom_run: dict[str, Any]) -> None:
    folder: Path = custom_run["folder"]
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html and "<script" not in html.lower()
    assert "Labor Thanksgiving Day" in html
    csv_text = (folder / "findings.csv").read_text(encoding="utf-8")
    assert csv_text.count("\n") == custom_run["summary"]["findings_total"] + 1
    for name in ("report.html", "findings.csv", "summary.json"):
        assert STAFF_IP_PREFIX not in (folder / name).read_text(encoding="utf-8"), name

    from lomevexi_governance.audit.evidence import read_entries, verify_chain
    from lomevexi_governance.reports import path_safe

    log = airflow_env.report_root / "access_audit" / "evidence.jsonl"
    assert verify_chain(log) >= 1
    import hashlib

    entry = next(e for e in read_entries(log) if e["run_id"] == custom_run["run"]["run_id"])
    assert entry["report_sha256"] == hashlib.sha256((folder / "report.html").read_bytes()).hexdigest()

    run_summary = airflow_env.report_root / "access_audit" / path_safe(custom_run["run"]["run_id"]) / "summary.json"
    data = json.loads(run_summary.read_text(encoding="utf-8"))
    assert data["params"] == {"start": WINDOW[0], "end": WINDOW[1]}
    assert [p["label"] for p in data["periods"]] == [f"custom/{WINDOW[0]}_{WINDOW[1]}"]
    assert data["alerts"]["status"] == "ok"


def test_one_email_per_high_finding(custom_run: dict[str, Any]) -> None:
    high = [f for f in custom_run["summary"]["findings"] if f["severity"] == "high"]
    messages = custom_run["messages"]
    assert len(messages) == len(high) > 0
    assert sorted(m["X-Lomevexi-Finding"] for m in messages) == sorted(f["finding_id"] for f in high)
    for m in messages:
        assert m["From"] == "audit@lomevexi.test"
        body = next(p for p in m.walk() if p.get_content_type() == "text/html").get_payload(decode=True)
        assert STAFF_IP_PREFIX.encode() not in body
        assert m["X-Lomevexi-Finding"].encode() in body


def test_rerun_and_scheduled_roll_up_send_nothing_again(airflow_env: Env, custom_run: dict[str, Any]) -> None:
    before = len(airflow_env.received)
    airflow_env.dags_test("2026-11-25T01:00:00+00:00", {"start": WINDOW[0], "end": WINDOW[1]})
    assert len(airflow_env.received) == before
    # the scheduled run of Monday 2026-11-30 (no params): the daily report of Sunday the 29th and
    # the weekly roll-up of 2026-W48 (23..29). Its findings on the 23rd and 24th were alerted by
    # the custom run; only the 25th (outside that window) brings a new high finding.
    airflow_env.dags_test("2026-11-29T21:00:00+00:00")
    root = airflow_env.report_root / "access_audit"
    assert (root / "daily/2026-11-29/summary.json").exists()
    weekly = json.loads((root / "weekly/2026-W48/summary.json").read_text(encoding="utf-8"))
    assert weekly["period"]["start_date"] == "2026-11-23" and weekly["period"]["end_date"] == "2026-11-29"
    assert {f["day"] for f in weekly["findings"]} == {"2026-11-23", "2026-11-24", "2026-11-25"}
    custom_ids = {f["finding_id"] for f in custom_run["summary"]["findings"]}
    new_high = [f for f in weekly["findings"] if f["severity"] == "high" and f["finding_id"] not in custom_ids]
    assert [f["day"] for f in new_high] == ["2026-11-25"] and new_high[0]["rule"] == "role_category"
    new_messages = airflow_env.messages()[before:]
    assert [m["X-Lomevexi-Finding"] for m in new_messages] == [new_high[0]["finding_id"]]


def test_without_recipients_the_run_succeeds_and_logs_the_alerts(airflow_env: Env) -> None:
    # 2026-11-17 holds one planted high finding that no earlier run covered
    before = len(airflow_env.received)
    env = dict(airflow_env.env)
    env.pop("AIRFLOW_VAR_GOVERNANCE_ALERT_TO")
    no_mail = Env(**{**airflow_env.__dict__, "env": env})
    run = no_mail.dags_test("2026-11-25T02:00:00+00:00", {"start": "2026-11-17"})
    from lomevexi_governance.reports import path_safe

    root = airflow_env.report_root / "access_audit"
    summary = json.loads((root / "custom/2026-11-17_2026-11-17/summary.json").read_text(encoding="utf-8"))
    high = [f["finding_id"] for f in summary["findings"] if f["severity"] == "high"]
    assert len(high) == 1
    run_summary = json.loads((root / path_safe(run["run_id"]) / "summary.json").read_text(encoding="utf-8"))
    assert run_summary["alerts"]["status"] == "not configured"
    assert run_summary["alerts"]["not_sent"] == high
    assert len(airflow_env.received) == before
