"""The access-audit outputs of one period: summary.json, findings.csv and a self-contained HTML report.

Layout under ``<report_root>/access_audit/``::

    daily/2026-11-23/        summary.json  findings.csv  report.html
    weekly/2026-W47/         ...
    monthly/2026-11/         ...
    custom/2026-11-01_2026-11-23/
    <run id, path-safe>/summary.json     what the DAG run did (pointers to the periods)
    evidence.jsonl           SHA-256 of every report, hash-chained (append-only)
    alerts_sent.jsonl        findings already alerted (append-only)

The HTML has no scripts, no external style sheets, fonts or images: charts are inline SVG
(:mod:`charts`). Nothing written here is wall-clock dependent, so a rerun over the same data
produces byte-identical reports (only the run id differs when the run differs).
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Any

from lomevexi_governance.audit import charts
from lomevexi_governance.audit.periods import Period
from lomevexi_governance.audit.rules import RULES, SEVERITY_RANK, UNKNOWN_CATEGORY, AccessRules, AuditResult
from lomevexi_governance.policy import Policy

DAG_ID = "access_audit"
SCHEMA_VERSION = 1
TREND_PERIODS = {"daily": 13, "weekly": 7, "monthly": 11}
MAX_IDS_IN_HTML = 200
CSV_FIELDS = (
    "finding_id",
    "rule",
    "severity",
    "staff_id",
    "staff_role",
    "period",
    "day",
    "first_at_utc",
    "last_at_utc",
    "event_count",
    "event_ids",
    "data_category",
    "resources",
    "actions",
    "records",
    "explanation",
)


def audit_root(report_root: str | Path) -> Path:
    return Path(report_root) / DAG_ID


def period_dir(report_root: str | Path, period: Period) -> Path:
    return audit_root(report_root) / period.label


# --------------------------------------------------------------------------------------------
# summary.json
# --------------------------------------------------------------------------------------------


def _totals(result: AuditResult) -> list[dict[str, Any]]:
    """role x resource x action: events, allowed, denied, records."""
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for t in result.totals:
        key = (t["staff_role"], t["resource"], t["action"])
        m = merged.setdefault(
            key,
            {
                "staff_role": key[0],
                "resource": key[1],
                "data_category": t["data_category"],
                "action": key[2],
                "events": 0,
                "allowed": 0,
                "denied": 0,
                "records": 0,
            },
        )
        m["events"] += t["events"]
        m["records"] += t["records"]
        m["denied" if t["outcome"] == "denied" else "allowed"] += t["events"]
    return [merged[k] for k in sorted(merged)]


def role_category_matrix(result: AuditResult, rules: AccessRules) -> dict[str, dict[str, int]]:
    cats = [*rules.categories]
    if any(t["data_category"] == UNKNOWN_CATEGORY for t in result.totals):
        cats.append(UNKNOWN_CATEGORY)
    roles = list(dict.fromkeys([*rules.roles, *(t["staff_role"] for t in result.totals)]))
    matrix = {r: dict.fromkeys(cats, 0) for r in roles}
    for t in result.totals:
        matrix[t["staff_role"]][t["data_category"]] += t["events"]
    return matrix


def build_summary(
    result: AuditResult,
    *,
    rules: AccessRules,
    policy: Policy,
    run: dict[str, Any],
    airflow_audit: dict[str, Any],
) -> dict[str, Any]:
    findings = [f.to_dict() for f in result.findings]
    by_rule = dict.fromkeys(RULES, 0)
    by_sev: dict[str, int] = {}
    for f in result.findings:
        by_rule[f.rule] += 1
        by_sev[f.severity] = by_sev.get(f.severity, 0) + 1
    return {
        "report": DAG_ID,
        "schema_version": SCHEMA_VERSION,
        "dag_id": run.get("dag_id", DAG_ID),
        "run_id": run.get("run_id"),
        "logical_date": run.get("logical_date"),
        "policy": {"sha256": policy.sha256, "file": Path(policy.path).name},
        "period": result.period.describe(),
        "business_hours": {
            "timezone": rules.timezone,
            "weekdays": [_weekday_name(d) for d in sorted(rules.weekdays)],
            "start": rules.start.strftime("%H:%M"),
            "end": rules.end.strftime("%H:%M"),
            "holiday_country": rules.holiday_country,
            "holidays_in_period": result.holidays,
        },
        "thresholds": {
            "bulk_records": rules.bulk_records,
            "denied_burst_count": rules.denied_burst_count,
            "denied_burst_minutes": rules.denied_burst_minutes,
        },
        "event_count": result.event_count,
        "allowed_count": result.event_count - result.denied_count,
        "denied_count": result.denied_count,
        "outside_business_hours_count": result.outside_hours_count,
        "staff_count": result.staff_count,
        "denied": {"by_role": result.denied_by_role, "by_staff": result.denied_by_staff},
        "totals": _totals(result),
        "by_role_category": role_category_matrix(result, rules),
        "by_hour_local": result.by_hour,
        "by_day": result.by_day,
        "findings_total": len(findings),
        "findings_by_rule": by_rule,
        "findings_by_severity": dict(sorted(by_sev.items(), key=lambda kv: SEVERITY_RANK.get(kv[0], 9))),
        "findings": findings,
        "airflow_audit": airflow_audit,
    }


def _weekday_name(d: int) -> str:
    return ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[d]


# --------------------------------------------------------------------------------------------
# findings.csv
# --------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    """CSV cell; text that a spreadsheet would run as a formula is prefixed with a quote."""
    text = (
        " ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else ("" if value is None else str(value))
    )
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def findings_csv(findings: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for f in findings:
        w.writerow([_cell(f.get(k)) for k in CSV_FIELDS])
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# trend (previous periods' summaries)
# --------------------------------------------------------------------------------------------


def load_trend(report_root: str | Path, period: Period, summary: dict[str, Any]) -> dict[str, Any]:
    """Events, denied, off-hours and findings for the previous periods and this one.

    Previous periods come from their summary.json (``None`` when there is no report); a custom
    window is drawn per day instead.
    """
    if period.kind == "custom":
        high_by_day: dict[str, int] = defaultdict(int)
        other_by_day: dict[str, int] = defaultdict(int)
        for f in summary["findings"]:
            target = high_by_day if f["severity"] in ("critical", "high") else other_by_day
            target[f["day"]] += 1
        days = summary["by_day"]
        return {
            "unit": "day",
            "labels": [d["date"][5:] for d in days],
            "events": [d["events"] for d in days],
            "denied": [d["denied"] for d in days],
            "outside_business_hours": [d["outside_business_hours"] for d in days],
            "high_findings": [high_by_day.get(d["date"], 0) for d in days],
            "other_findings": [other_by_day.get(d["date"], 0) for d in days],
        }
    previous = period.previous(TREND_PERIODS[period.kind])
    rows: list[dict[str, Any] | None] = []
    for p in previous:
        f = period_dir(report_root, p) / "summary.json"
        try:
            rows.append(json.loads(f.read_text(encoding="utf-8")))
        except (FileNotFoundError, ValueError):
            rows.append(None)
    rows.append(summary)
    labels = [_short_label(p) for p in [*previous, period]]

    def pick(key: str) -> list[int | None]:
        return [r.get(key) if r else None for r in rows]

    def sev(r: dict[str, Any] | None, high: bool) -> int | None:
        if not r:
            return None
        by = r.get("findings_by_severity") or {}
        return sum(n for s, n in by.items() if (s in ("critical", "high")) == high)

    return {
        "unit": period.kind,
        "labels": labels,
        "events": pick("event_count"),
        "denied": pick("denied_count"),
        "outside_business_hours": pick("outside_business_hours_count"),
        "high_findings": [sev(r, True) for r in rows],
        "other_findings": [sev(r, False) for r in rows],
    }


def _short_label(p: Period) -> str:
    if p.kind == "daily":
        return p.first_day.strftime("%m-%d")
    return p.label.split("/", 1)[1]


# --------------------------------------------------------------------------------------------
# report.html
# --------------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI','Hiragino Sans',Meiryo,sans-serif;margin:2rem auto;
max-width:1100px;color:#222;line-height:1.45;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}th,td{border:1px solid #ddd;padding:.3rem .5rem;
vertical-align:top;text-align:left}th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.kpis{display:flex;gap:1rem;flex-wrap:wrap}.kpi{border:1px solid #ddd;border-radius:6px;padding:.6rem 1rem;
min-width:8rem}.kpi b{display:block;font-size:1.4rem}.sev-high,.sev-critical{color:#fff;background:#b5453a;
padding:0 .4rem;border-radius:3px}.sev-medium{background:#f1c27d;padding:0 .4rem;border-radius:3px}
.sev-low{background:#ddd;padding:0 .4rem;border-radius:3px}.muted{color:#666}code{font-size:.85rem}
figure{margin:1rem 0}figcaption{color:#555;font-size:.85rem}details summary{cursor:pointer}
.ok{color:#3a9a5b}.no{color:#b5453a}td.nw{white-space:nowrap}
"""


def _table(
    headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None, nowrap: set[int] | None = None
) -> str:
    numeric = numeric or set()
    nowrap = nowrap or set()
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for r in rows:
        cells = []
        for i, v in enumerate(r):
            cls = ' class="n"' if i in numeric else ' class="nw"' if i in nowrap else ""
            cells.append(f"<td{cls}>{v}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _findings_html(findings: list[dict[str, Any]]) -> str:
    if not findings:
        return "<p class='ok'>No findings: every event in the period was within the policy.</p>"
    rows = []
    for f in findings:
        ids = [str(i) for i in f["event_ids"]]
        shown = ", ".join(ids[:MAX_IDS_IN_HTML])
        more = (
            f" … and {len(ids) - MAX_IDS_IN_HTML} more (findings.csv lists all)" if len(ids) > MAX_IDS_IN_HTML else ""
        )
        rows.append(
            [
                f"<span class='sev-{escape(f['severity'])}'>{escape(f['severity'])}</span>",
                f"<code>{escape(f['rule'])}</code>",
                escape(f["staff_id"]),
                escape(f["staff_role"]),
                escape(f["day"]),
                str(f["event_count"]),
                escape(f["explanation"])
                + f"<details><summary>event ids</summary><code>{escape(shown)}{escape(more)}</code></details>"
                + f"<div class='muted'>finding <code>{escape(f['finding_id'])}</code></div>",
            ]
        )
    return _table(
        ["Severity", "Rule", "Staff", "Role", "Day", "Events", "What happened"],
        rows,
        {5},
        nowrap={0, 1, 2, 4},
    )


def _airflow_html(section: dict[str, Any]) -> str:
    if section.get("status") != "ok":
        note = section.get("note") or section.get("status", "unavailable")
        return f"<p class='muted'>{escape(str(note))}</p>"
    parts = [
        f"<p>{section['event_count']} governance-relevant Airflow events in the period "
        f"(source: <code>{escape(section.get('source', ''))}</code>).</p>"
    ]
    cats = section.get("by_category", {})
    parts.append(_table(["Category", "Events"], [[escape(k), str(v)] for k, v in cats.items()], {1}))
    if section.get("dag_triggers"):
        parts.append(
            _table(
                ["DAG", "Triggered by", "Runs"],
                [[escape(t["dag_id"]), escape(t["user"]), str(t["count"])] for t in section["dag_triggers"]],
                {2},
            )
        )
    changes = [
        *section.get("drills_and_purges", []),
        *section.get("connection_changes", []),
        *section.get("variable_changes", []),
    ]
    if changes:
        seen = set()
        rows = []
        for e in sorted(changes, key=lambda e: (e["when_utc"], e["event_log_id"])):
            if e["event_log_id"] in seen:
                continue
            seen.add(e["event_log_id"])
            rows.append(
                [
                    escape(e["when_utc"]),
                    escape(e["event"]),
                    escape(str(e.get("owner") or "")),
                    escape(str(e.get("dag_id") or e.get("target") or "")),
                ]
            )
        parts.append(_table(["When (UTC)", "Event", "User", "DAG / connection / variable"], rows))
    return "".join(parts)


def render_html(
    summary: dict[str, Any],
    *,
    rules: AccessRules,
    trend: dict[str, Any],
) -> str:
    p = summary["period"]
    tz = rules.timezone
    title = f"Staff access audit — {p['label']}"
    sev = summary["findings_by_severity"]
    high = sum(n for s, n in sev.items() if s in ("critical", "high"))

    # chart 1: role x data category
    matrix = summary["by_role_category"]
    roles = list(matrix)
    cats = list(next(iter(matrix.values()))) if matrix else list(rules.categories)
    values = [[matrix[r][c] for c in cats] for r in roles]
    forbidden = {(i, j) for i, r in enumerate(roles) for j, c in enumerate(cats) if not rules.may_read(r, c)}
    heat = charts.heatmap(
        roles,
        cats,
        values,
        forbidden=forbidden,
        title="Access events by role and data category",
        row_title="role",
        col_title="data category",
    )
    # chart 2: by hour of day
    bh_start = rules.start.hour + rules.start.minute / 60
    bh_end = rules.end.hour + rules.end.minute / 60
    hours = charts.hour_bars(
        [h["allowed"] for h in summary["by_hour_local"]],
        [h["denied"] for h in summary["by_hour_local"]],
        shade=(bh_start, bh_end),
        title=f"Access events by hour of day ({tz})",
        shade_label=f"business hours {rules.start:%H:%M}-{rules.end:%H:%M} (working days)",
    )
    # chart 3: trend
    unit = trend["unit"]
    trend_title = {
        "day": "Per day in this window",
        "daily": "This day against the previous days",
        "weekly": "This week against the previous weeks",
        "monthly": "This month against the previous months",
    }[unit]
    trend_caption = (
        "Local days of this window."
        if unit == "day"
        else "The highlighted bar is this period; a dash marks a period without a report."
    )
    trend_events = charts.trend_chart(
        trend["labels"],
        {
            "events": trend["events"],
            "denied": trend["denied"],
            "outside hours": trend["outside_business_hours"],
        },
        title=f"{trend_title}: events",
        highlight_last=unit != "day",
    )
    trend_findings = charts.trend_chart(
        trend["labels"],
        {"high findings": trend["high_findings"], "other findings": trend["other_findings"]},
        title=f"{trend_title}: findings",
        highlight_last=unit != "day",
    )

    totals_rows = [
        [
            escape(t["staff_role"]),
            escape(t["resource"]),
            escape(t["data_category"]),
            escape(t["action"]),
            f"{t['events']:,}",
            f"{t['allowed']:,}",
            f"{t['denied']:,}",
            f"{t['records']:,}",
        ]
        for t in summary["totals"]
    ]
    denied_staff = list(summary["denied"]["by_staff"].items())[:25]
    grants_rows = []
    for role in rules.roles:
        grants_rows.append(
            [
                f"<code>{escape(role)}</code>",
                escape(", ".join(c for c in rules.categories if rules.may_read(role, c)) or "—"),
                escape(", ".join(c for c in rules.categories if rules.may_write(role, c, "update")) or "—"),
                "yes" if role in rules.delete_allowed_roles else "no",
            ]
        )
    holidays = summary["business_hours"]["holidays_in_period"]
    hol_text = ", ".join(f"{d} ({escape(n)})" for d, n in holidays.items()) or "none"
    rule_rows = [[f"<code>{r}</code>", escape(rules.severities[r])] for r in RULES]
    by_rule_rows = [[f"<code>{escape(r)}</code>", str(n)] for r, n in summary["findings_by_rule"].items()]

    return "".join(
        [
            "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            # no scripts, no external resources: this page renders offline, as filed
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'\">",
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
            f"<h1>{escape(title)}</h1>",
            f"<p class='muted'>Lomevexi data governance · policy III.1 access control, III.2 audit, IV early "
            f"warning · run <code>{escape(str(summary.get('run_id')))}</code> · policy sha256 "
            f"<code>{escape(summary['policy']['sha256'][:16])}…</code></p>",
            _table(
                [
                    "Period",
                    "From (local)",
                    "To (local, inclusive)",
                    "Time zone",
                    "From (UTC)",
                    "To (UTC, exclusive)",
                ],
                [
                    [
                        escape(p["label"]),
                        escape(p["start_date"]),
                        escape(p["end_date"]),
                        escape(p["timezone"]),
                        escape(p["start_utc"]),
                        escape(p["end_utc"]),
                    ]
                ],
            ),
            "<div class='kpis'>",
            f"<div class='kpi'><b>{summary['event_count']:,}</b>events</div>",
            f"<div class='kpi'><b>{summary['staff_count']:,}</b>staff members</div>",
            f"<div class='kpi'><b>{summary['denied_count']:,}</b>denied</div>",
            f"<div class='kpi'><b>{summary['outside_business_hours_count']:,}</b>outside business hours</div>",
            f"<div class='kpi'><b class='{'no' if high else 'ok'}'>{high}</b>high-severity findings</div>",
            f"<div class='kpi'><b>{summary['findings_total']}</b>findings in all</div>",
            "</div>",
            "<h2>Findings</h2>",
            _findings_html(summary["findings"]),
            _table(["Rule", "Findings"], by_rule_rows, {1}),
            "<h2>Charts</h2>",
            f"<figure>{heat}<figcaption>Cells outlined in red are categories the role may not read; "
            "a hatched cell had events there (allowed reads there are <code>role_category</code> "
            "findings).</figcaption></figure>",
            f"<figure>{hours}<figcaption>Local time ({escape(tz)}). Weekends and public holidays have "
            f"no business hours. Holidays in the period: {hol_text}.</figcaption></figure>",
            f"<figure>{trend_events}<figcaption>{escape(trend_caption)}</figcaption></figure>",
            f"<figure>{trend_findings}</figure>",
            "<h2>Access by role, resource and action</h2>",
            _table(
                ["Role", "Resource", "Category", "Action", "Events", "Allowed", "Denied", "Records"],
                totals_rows,
                {4, 5, 6, 7},
            )
            if totals_rows
            else "<p class='muted'>No events in the period.</p>",
            "<h2>Denied attempts</h2>",
            _table(
                ["Role", "Denied"],
                [[escape(r), f"{n:,}"] for r, n in summary["denied"]["by_role"].items()],
                {1},
            )
            if summary["denied"]["by_role"]
            else "<p class='muted'>None.</p>",
            _table(["Staff (top 25)", "Denied"], [[escape(s), f"{n:,}"] for s, n in denied_staff], {1})
            if denied_staff
            else "",
            "<h2>Airflow audit log</h2>",
            "<p class='muted'>Who triggered drills and purges, who changed connections or variables.</p>",
            _airflow_html(summary["airflow_audit"]),
            "<h2>Policy applied</h2>",
            _table(["Role", "May read", "May change", "May delete"], grants_rows),
            f"<p>Business hours: {escape(rules.hours_text())}, public holidays of "
            f"{escape(str(rules.holiday_country))} excluded. Bulk: an export or search returning more "
            f"than {rules.bulk_records:,} records. Denied burst: {rules.denied_burst_count} denied "
            f"attempts within {rules.denied_burst_minutes} minutes.</p>",
            _table(["Rule", "Severity"], rule_rows),
            "<p class='muted'>This report names staff ids and event ids only, never customer data. "
            "Its SHA-256 is recorded in <code>access_audit/evidence.jsonl</code>, a hash-chained "
            "append-only log.</p>",
            "</body></html>\n",
        ]
    )
