"""Early warning: one e-mail per high-severity finding, never twice for the same finding.

Which findings were alerted is kept in ``<report_root>/access_audit/alerts_sent.jsonl``, a
hash-chained append-only log (see :mod:`evidence`) keyed by the stable ``finding_id``. A rerun
of the same period, a retry of the task, or the weekly roll-up that sees the same findings
again, sends nothing new. A finding is recorded right after its message was accepted by the
SMTP server, so a crash between the two can at worst resend that one finding (at least once,
never silently dropped).

Messages name the rule, staff id and role, the day, event ids and the report's path: never
customer data (the audit never reads customer values, client IPs or record ids).
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lomevexi_governance.audit.evidence import append_chained, read_entries
from lomevexi_governance.errors import GovernanceError

log = logging.getLogger(__name__)

SENT_LOG = "alerts_sent.jsonl"
ALERT_SEVERITIES = frozenset({"critical", "high"})
MAX_IDS_IN_MESSAGE = 100
DEFAULT_FROM = "lomevexi-governance@localhost"


class AlertDeliveryError(GovernanceError):
    """Some alerts could not be sent (names the finding ids, never their content)."""


@dataclass(frozen=True)
class AlertMessage:
    finding_id: str
    subject: str
    html: str


@dataclass
class AlertOutcome:
    high_findings: int = 0
    sent: list[str] = field(default_factory=list)
    already_sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    #: high findings not e-mailed because no recipient is configured (logged instead)
    not_sent: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.failed:
            return "failed"
        return "not configured" if self.not_sent else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "high_findings": self.high_findings,
            "sent": self.sent,
            "already_sent": self.already_sent,
            "failed": self.failed,
            "not_sent": self.not_sent,
            "status": self.status,
        }


def sent_log_path(audit_root: str | Path) -> Path:
    return Path(audit_root) / SENT_LOG


def already_sent(path: Path) -> set[str]:
    return {str(e["finding_id"]) for e in read_entries(path) if "finding_id" in e}


def alert_message(finding: dict[str, Any], *, report_path: str | None, run_id: str) -> AlertMessage:
    """The e-mail for one finding (subject and HTML body; every value escaped)."""
    e = html.escape
    ids = [str(i) for i in finding.get("event_ids", [])]
    shown = ", ".join(ids[:MAX_IDS_IN_MESSAGE])
    if len(ids) > MAX_IDS_IN_MESSAGE:
        shown += f" … and {len(ids) - MAX_IDS_IN_MESSAGE} more (see the report)"
    subject = (
        f"[governance] access audit {finding['severity']}: {finding['rule']} by staff "
        f"{finding['staff_id']} on {finding['day']} ({finding['finding_id']})"
    )
    rows = [
        ("Finding", finding["finding_id"]),
        ("Rule", finding["rule"]),
        ("Severity", finding["severity"]),
        ("Staff", f"{finding['staff_id']} ({finding.get('staff_role', '')})"),
        ("Day (local)", finding["day"]),
        ("First / last event (UTC)", f"{finding.get('first_at_utc', '')} / {finding.get('last_at_utc', '')}"),
        ("Events", f"{finding.get('event_count', len(ids))}: {shown}"),
        ("What happened", finding.get("explanation", "")),
        ("Report period", finding.get("period", "")),
        ("Report", report_path or "(not written)"),
        ("Run", run_id),
    ]
    body = "".join(f"<tr><th align='left'>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows)
    text = (
        "<p>The nightly staff-access audit found a high-severity finding. Review it in the report and "
        "follow the access-incident runbook (docs/access-audit.md).</p>"
        f"<table cellpadding='4'>{body}</table>"
        "<p>This message names staff and event ids only; it carries no customer data.</p>"
    )
    return AlertMessage(finding_id=str(finding["finding_id"]), subject=subject, html=text)


def high_findings(findings: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """High (and critical) findings, one per finding id (periods may repeat a finding)."""
    seen: dict[str, dict[str, Any]] = {}
    for f in findings:
        if f.get("severity") in ALERT_SEVERITIES and f["finding_id"] not in seen:
            seen[f["finding_id"]] = f
    return list(seen.values())


def send_alerts(
    findings: Iterable[dict[str, Any]],
    *,
    sent_log: Path,
    send: Callable[[AlertMessage], None] | None,
    run_id: str,
    report_paths: dict[str, str] | None = None,
) -> AlertOutcome:
    """Send each high finding not yet alerted and record each one sent; collect failures.

    ``report_paths`` maps a period label to its HTML report (for the message). With ``send``
    ``None`` (no recipient configured) nothing is sent or recorded: each finding is logged as
    a structured ``GOVERNANCE ALERT`` line, as :func:`airflow_glue.notify_failure` does, and
    will be e-mailed by the first run that covers it once recipients are configured.
    """
    todo = high_findings(findings)
    outcome = AlertOutcome(high_findings=len(todo))
    done = already_sent(sent_log)
    for f in todo:
        fid = f["finding_id"]
        if fid in done:
            outcome.already_sent.append(fid)
            continue
        if send is None:
            log.error(
                "GOVERNANCE ALERT access_audit finding=%s rule=%s severity=%s staff=%s day=%s events=%d "
                "(not e-mailed: no recipient configured)",
                fid,
                f["rule"],
                f["severity"],
                f["staff_id"],
                f["day"],
                len(f.get("event_ids", [])),
            )
            outcome.not_sent.append(fid)
            continue
        msg = alert_message(f, report_path=(report_paths or {}).get(f.get("period", "")), run_id=run_id)
        try:
            send(msg)
        except Exception:  # noqa: BLE001 - collected and re-raised below with every failed id
            outcome.failed.append(fid)
            continue
        append_chained(
            sent_log,
            {
                "finding_id": fid,
                "rule": f["rule"],
                "severity": f["severity"],
                "staff_id": f["staff_id"],
                "day": f["day"],
                "period": f.get("period"),
                "run_id": run_id,
                "sent_at_utc": dt.datetime.now(dt.UTC).isoformat(),
            },
            skip_if=_same_finding(fid),
        )
        outcome.sent.append(fid)
    return outcome


def _same_finding(fid: str) -> Callable[[dict[str, Any]], bool]:
    def same(old: dict[str, Any]) -> bool:
        return old.get("finding_id") == fid

    return same


def raise_on_failure(outcome: AlertOutcome) -> None:
    """Fail the task when an alert was not delivered (the findings themselves are results)."""
    if outcome.failed:
        raise AlertDeliveryError(
            f"{len(outcome.failed)} of {outcome.high_findings} high-severity alert(s) could not be sent "
            f"(finding ids {', '.join(outcome.failed)}); the run fails so that on-call looks at the findings"
        )


def smtp_sender(
    *,
    to: list[str],
    smtp_conn_id: str,
    from_email: str | None,
    context: Any,
) -> Callable[[AlertMessage], None]:
    """A sender that delivers each message through Airflow's SMTP notifier and connection."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    sender: dict[str, str] = {}

    def send(msg: AlertMessage) -> None:
        if "from" not in sender:
            # the connection's extra `from_email` when no sender is given (looked up once, lazily)
            from airflow.sdk import Connection

            sender["from"] = from_email or Connection.get(smtp_conn_id).extra_dejson.get("from_email") or DEFAULT_FROM
        notifier = SmtpNotifier(
            to=to,
            from_email=sender["from"],
            subject=msg.subject,
            html_content=msg.html,
            smtp_conn_id=smtp_conn_id,
            custom_headers={"X-Lomevexi-Finding": msg.finding_id},
        )
        # notify() (not __call__): nothing is rendered as a Jinja template, so text taken
        # from the store can never be evaluated.
        notifier.notify(context)

    return send


def recipients(value: str | None) -> list[str]:
    return [a.strip() for a in (value or "").replace(";", ",").split(",") if a.strip()]
