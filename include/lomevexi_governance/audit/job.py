"""The access-audit job, step by step, as plain functions the DAG's tasks call.

Each step takes plain values (a :class:`DatabaseTarget`, the policy, paths, the run identity)
and returns a small JSON-able dict: paths and counts, never event data, so it fits in an XCom.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lomevexi_governance import reports
from lomevexi_governance.audit import airflow_log
from lomevexi_governance.audit.evidence import append_chained
from lomevexi_governance.audit.notify import AlertMessage, AlertOutcome, send_alerts, sent_log_path
from lomevexi_governance.audit.periods import Period, iso_utc
from lomevexi_governance.audit.report import (
    DAG_ID,
    audit_root,
    build_summary,
    findings_csv,
    load_trend,
    period_dir,
    render_html,
)
from lomevexi_governance.errors import ConfigurationError
from lomevexi_governance.policy import Policy
from lomevexi_governance.settings import REPORT_ROOT_VAR, DatabaseTarget

EVIDENCE_LOG = "evidence.jsonl"
AIRFLOW_AUDIT_FILE = "airflow_audit.json"


def run_dir(report_root: str | Path, run_id: str) -> Path:
    return reports.run_report_dir(report_root, DAG_ID, run_id)


def _run_json(run: dict[str, Any]) -> dict[str, Any]:
    out = dict(run)
    ld = out.get("logical_date")
    if isinstance(ld, dt.datetime):
        out["logical_date"] = iso_utc(ld)
    return out


# --------------------------------------------------------------------------------------------
# Airflow's audit log
# --------------------------------------------------------------------------------------------


def collect_airflow_audit(
    *,
    report_root: str | Path,
    run: dict[str, Any],
    periods: list[Period],
    settings: airflow_log.ApiSettings | None,
    fetch: Callable[..., list[dict[str, Any]]] = airflow_log.fetch_events,
) -> str:
    """Fetch the Airflow events of all periods once; write them to the run folder; return the path.

    ``settings`` is ``None`` when the ``airflow_api`` connection is not configured: the file
    then records "not configured" and the periods' summaries say so.
    """
    path = run_dir(report_root, run["run_id"]) / AIRFLOW_AUDIT_FILE
    start = min(p.start_utc for p in periods)
    end = max(p.end_utc for p in periods)
    if settings is None:
        payload: dict[str, Any] = airflow_log.not_configured()
    else:
        raw = fetch(settings, start, end)
        events = airflow_log.parse_events(raw, start, end)
        payload = {
            "status": "ok",
            "source": f"GET {settings.base_url}/api/v2/eventLogs",
            "start_utc": iso_utc(start),
            "end_utc": iso_utc(end),
            "events": [e.to_dict() for e in events],
        }
    reports.write_json_atomic(path, payload)
    return str(path)


def airflow_section(airflow_audit_file: str | None, period: Period) -> dict[str, Any]:
    if not airflow_audit_file:
        return airflow_log.not_configured()
    payload = reports.read_json(airflow_audit_file)
    if payload.get("status") != "ok":
        return payload
    events = [
        airflow_log.AuditEvent(
            event_log_id=e["event_log_id"],
            when=dt.datetime.fromisoformat(e["when_utc"].replace("Z", "+00:00")),
            event=e["event"],
            owner=e.get("owner"),
            dag_id=e.get("dag_id"),
            run_id=e.get("run_id"),
            category=e["category"],
            target=e.get("target"),
        )
        for e in payload["events"]
    ]
    return airflow_log.summarize(events, period.start_utc, period.end_utc, payload["source"])


# --------------------------------------------------------------------------------------------
# One period
# --------------------------------------------------------------------------------------------


def audit_period(
    *,
    target: DatabaseTarget,
    policy: Policy,
    period: Period,
    report_root: str | Path,
    run: dict[str, Any],
    airflow_audit_file: str | None,
) -> dict[str, Any]:
    """Read the period's events, apply the rules, write the reports and the evidence line."""
    from lomevexi_governance.audit.reader import read_events
    from lomevexi_governance.audit.rules import AccessRules, AuditEngine

    rules = AccessRules.from_policy(policy)
    engine = AuditEngine(rules, period)
    for batch in read_events(target, period.start_utc, period.end_utc):
        engine.consume(batch)
    result = engine.finish()

    run_j = _run_json(run)
    summary = build_summary(
        result,
        rules=rules,
        policy=policy,
        run=run_j,
        airflow_audit=airflow_section(airflow_audit_file, period),
    )
    trend = load_trend(report_root, period, summary)
    out_dir = period_dir(report_root, period)
    csv_sha = reports.write_text_atomic(out_dir / "findings.csv", findings_csv(summary["findings"]))
    html_sha = reports.write_text_atomic(out_dir / "report.html", render_html(summary, rules=rules, trend=trend))
    summary["files"] = {
        "report.html": {"sha256": html_sha},
        "findings.csv": {"sha256": csv_sha},
    }
    summary_sha = reports.write_json_atomic(out_dir / "summary.json", summary)

    evidence = append_chained(
        audit_root(report_root) / EVIDENCE_LOG,
        {
            "period": period.label,
            "run_id": run_j.get("run_id"),
            "logical_date": run_j.get("logical_date"),
            "report_sha256": html_sha,
            "files": {
                f"{period.label}/report.html": html_sha,
                f"{period.label}/findings.csv": csv_sha,
                f"{period.label}/summary.json": summary_sha,
            },
            "findings": summary["findings_total"],
            "policy_sha256": policy.sha256,
            "recorded_at_utc": iso_utc(dt.datetime.now(dt.UTC)),
        },
        skip_if=lambda old: (
            old.get("period") == period.label
            and old.get("run_id") == run_j.get("run_id")
            and old.get("report_sha256") == html_sha
            and (old.get("files") or {}).get(f"{period.label}/summary.json") == summary_sha
        ),
    )
    return {
        "label": period.label,
        "kind": period.kind,
        "dir": str(out_dir),
        "summary": str(out_dir / "summary.json"),
        "report": str(out_dir / "report.html"),
        "findings_csv": str(out_dir / "findings.csv"),
        "report_sha256": html_sha,
        "evidence_seq": evidence["seq"],
        "event_count": summary["event_count"],
        "denied_count": summary["denied_count"],
        "findings_total": summary["findings_total"],
        "findings_by_severity": summary["findings_by_severity"],
    }


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def write_run_summary(
    *,
    report_root: str | Path,
    run: dict[str, Any],
    params: dict[str, Any],
    periods: list[dict[str, Any]],
    airflow_audit_file: str | None,
    alerts: dict[str, Any] | None = None,
) -> str:
    """``<report_root>/access_audit/<run id>/summary.json``: what this run did, with pointers."""
    airflow_status = "not configured"
    if airflow_audit_file and Path(airflow_audit_file).exists():
        airflow_status = reports.read_json(airflow_audit_file).get("status", "unknown")
    path = run_dir(report_root, run["run_id"]) / "summary.json"
    previous = reports.read_json(path) if path.exists() else {}
    summary = {
        "report": DAG_ID,
        **_run_json(run),
        "params": {k: params.get(k) for k in ("start", "end")},
        "periods": periods,
        "event_count": sum(p["event_count"] for p in periods),
        "findings_total": sum(p["findings_total"] for p in periods),
        "airflow_audit": airflow_status,
        "evidence_log": str(audit_root(report_root) / EVIDENCE_LOG),
        "alerts": alerts if alerts is not None else previous.get("alerts", {"status": "pending"}),
    }
    reports.write_json_atomic(path, summary)
    return str(path)


def record_alerts(run_summary: str | Path, outcome: AlertOutcome) -> None:
    """Put the alert outcome into the run's summary.json (written before alerting)."""
    data = reports.read_json(run_summary)
    data["alerts"] = outcome.to_dict()
    reports.write_json_atomic(run_summary, data)


def local_report_root(value: str) -> Path:
    """The access audit writes its reports and append-only logs on a local (or mounted) path."""
    if "://" in value:
        raise ConfigurationError(
            f"Airflow variable {REPORT_ROOT_VAR!r} is a URL; the access audit needs a local or mounted "
            "path for its reports and append-only evidence log"
        )
    return Path(value)


def alert_findings(
    *,
    report_root: str | Path,
    run: dict[str, Any],
    periods: list[dict[str, Any]],
    send: Callable[[AlertMessage], None] | None,
) -> AlertOutcome:
    """Alert every high finding of the run's periods that was not alerted before.

    ``send`` is ``None`` when the Variable ``governance_alert_to`` names no recipient: the
    findings are then logged as ``GOVERNANCE ALERT`` lines and the outcome says
    "not configured" (the same convention as ``airflow_glue.notify_failure``).
    """
    findings: list[dict[str, Any]] = []
    report_paths: dict[str, str] = {}
    for p in periods:
        data = json.loads(Path(p["summary"]).read_text(encoding="utf-8"))
        findings.extend(data["findings"])
        report_paths[p["label"]] = p["report"]

    return send_alerts(
        findings,
        sent_log=sent_log_path(audit_root(report_root)),
        send=send,
        run_id=run["run_id"],
        report_paths=report_paths,
    )
