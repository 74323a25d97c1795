"""
### access_audit: who touched which customer data, when, and was it allowed

**What it does.** Every day at 06:00 Asia/Tokyo it audits the previous day (Asia/Tokyo) of
`staff_access_log` in the store (`store_db`) against the reviewed policy
(`include/lomevexi_governance/policy.yaml`: role × data-category matrix, business hours and
public holidays, bulk and denied-burst thresholds, severities), and reads Airflow's own audit
log for the same period through the REST API (connection `airflow_api`; "not configured" in
the report when absent): who triggered drills and purges, who changed connections or
variables. The Monday run also produces the weekly roll-up (previous ISO week) and the run on
the 1st the monthly roll-up. Trigger it with params `start`/`end` (dates, Asia/Tokyo, end
inclusive) to audit any window on demand (at most 366 days).

Rules: `role_category`, `write_not_allowed`, `bulk_access`, `denied_burst` (high) and
`outside_business_hours` (medium). See `docs/access-audit.md`.

**Outputs** (variable `governance_report_root`):
`access_audit/<daily/2026-11-23 | weekly/2026-W47 | monthly/2026-11 | custom/A_B>/` holds
`summary.json`, `findings.csv` and `report.html` (charts, for compliance);
`access_audit/evidence.jsonl` records each report's SHA-256, hash-chained;
`access_audit/<run id>/summary.json` says what the run did. Reports name staff and event ids,
never customer data.

**Early warning.** Each high-severity finding is e-mailed once (connection `governance_smtp`,
recipients in variable `governance_alert_to`); `access_audit/alerts_sent.jsonl` remembers
what was sent, so reruns and roll-ups never resend a finding. With `governance_alert_to`
unset, findings are logged as `GOVERNANCE ALERT` lines and the run summary says alerts are
"not configured" (as for the failure alerts of every governance DAG).

**Owner:** data-governance (with compliance as the report's reader).

**What a failure means.** Findings never fail the run: a run with high findings succeeds and
sends the alerts. The run fails when the audit could not be done or its warning could not be
delivered: the store or the policy is unreadable, `staff_access_log` lacks a column or holds a
timestamp that is not one, the Airflow API is configured but refuses, the report folder is
not writable, the evidence log's hash chain is broken, or an alert e-mail was not accepted
by the SMTP server (`send_alerts` fails after recording the ones that were).

**What on-call does.** Read the failed task's log: the message names the table, column,
connection, variable, file or finding id at fault. Fix the cause and clear the failed task:
every step is idempotent for the run's logical date; alerts already sent are not sent again.
If alerting failed, the findings are already in the period's `report.html`: forward the high
findings to the security team by hand while the mail path is being fixed. A broken evidence
chain is an incident in itself: do not edit the log, escalate to compliance.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pendulum
from airflow.sdk import CronTriggerTimetable, Param, dag, get_current_context, task

from lomevexi_governance import airflow_glue, settings

TIMEZONE = "Asia/Tokyo"  # the store's; the policy's business_hours.timezone governs the rules


def _report_root() -> Any:
    """The report root (a local path), read at run time from its Variable."""
    from lomevexi_governance.audit.job import local_report_root  # noqa: PLC0415

    return local_report_root(airflow_glue.variable(settings.REPORT_ROOT_VAR))


@dag(
    dag_id="access_audit",
    schedule=CronTriggerTimetable("0 6 * * *", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,  # the period folders and append-only logs are shared between runs
    dagrun_timeout=dt.timedelta(hours=3),
    default_args=airflow_glue.DEFAULT_ARGS,
    tags=["governance", "audit", "compliance"],
    doc_md=__doc__,
    params={
        "start": Param(
            None,
            type=["null", "string"],
            format="date",
            title="First day (Asia/Tokyo)",
            description="First local day to audit, YYYY-MM-DD. Leave empty for the scheduled audit of the "
            "day before the run's logical date (plus the weekly/monthly roll-ups when due).",
        ),
        "end": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Last day (Asia/Tokyo, inclusive)",
            description="Last local day to audit, YYYY-MM-DD, inclusive. Empty with a start: that one day.",
        ),
    },
)
def access_audit() -> None:
    @task
    def plan() -> list[dict[str, str]]:
        """Validate the params again and decide which periods this run audits."""
        from lomevexi_governance.audit.periods import plan_periods  # noqa: PLC0415
        from lomevexi_governance.policy import load_policy  # noqa: PLC0415

        context = get_current_context()
        run = airflow_glue.run_identity(context)
        params = context["params"]
        periods = plan_periods(
            run["logical_date"],
            params.get("start"),
            params.get("end"),
            timezone=load_policy().business_hours.timezone,
        )
        return [p.to_xcom() for p in periods]

    @task
    def airflow_audit_log(periods: list[dict[str, str]]) -> str:
        """Airflow's own audit events of the periods (REST API), or "not configured"."""
        from airflow.sdk import Connection  # noqa: PLC0415
        from airflow.sdk.exceptions import AirflowNotFoundException  # noqa: PLC0415

        from lomevexi_governance.audit import airflow_log, job  # noqa: PLC0415
        from lomevexi_governance.audit.periods import Period  # noqa: PLC0415

        context = get_current_context()
        try:
            settings = airflow_log.settings_from_connection(Connection.get(airflow_log.API_CONN_ID))
        except AirflowNotFoundException:
            settings = None
        return job.collect_airflow_audit(
            report_root=_report_root(),
            run=airflow_glue.run_identity(context),
            periods=[Period.from_xcom(p) for p in periods],
            settings=settings,
        )

    @task(map_index_template="{{ period_label }}")
    def audit_period(period: dict[str, str], airflow_audit_file: str) -> dict[str, Any]:
        """Read the period's events, apply the rules, write summary.json, findings.csv, report.html."""
        from lomevexi_governance.audit import job  # noqa: PLC0415
        from lomevexi_governance.audit.periods import Period  # noqa: PLC0415
        from lomevexi_governance.policy import load_policy  # noqa: PLC0415

        context = get_current_context()
        context["period_label"] = period["label"]  # type: ignore[typeddict-unknown-key]
        return job.audit_period(
            target=airflow_glue.store_target(),
            policy=load_policy(),
            period=Period.from_xcom(period),
            report_root=_report_root(),
            run=airflow_glue.run_identity(context),
            airflow_audit_file=airflow_audit_file,
        )

    @task
    def publish_run_summary(results: list[dict[str, Any]], airflow_audit_file: str) -> str:
        """The run's own summary.json (pointers to the period reports)."""
        from lomevexi_governance.audit import job  # noqa: PLC0415

        context = get_current_context()
        return job.write_run_summary(
            report_root=_report_root(),
            run=airflow_glue.run_identity(context),
            params=dict(context["params"]),
            periods=list(results),
            airflow_audit_file=airflow_audit_file,
        )

    @task
    def send_alerts(results: list[dict[str, Any]], run_summary: str) -> dict[str, Any]:
        """E-mail each high-severity finding once; fail if any alert could not be delivered."""
        from airflow.sdk import Variable  # noqa: PLC0415

        from lomevexi_governance.audit import job, notify  # noqa: PLC0415

        context = get_current_context()
        to = notify.recipients(Variable.get(airflow_glue.ALERT_TO_VAR, default=None))
        sender = (
            notify.smtp_sender(to=to, smtp_conn_id=airflow_glue.SMTP_CONN_ID, from_email=None, context=context)
            if to
            else None
        )
        outcome = job.alert_findings(
            report_root=_report_root(),
            run=airflow_glue.run_identity(context),
            periods=list(results),
            send=sender,
        )
        job.record_alerts(run_summary, outcome)
        notify.raise_on_failure(outcome)
        return outcome.to_dict()

    periods = plan()
    airflow_file = airflow_audit_log(periods)
    results = audit_period.partial(airflow_audit_file=airflow_file).expand(period=periods)
    run_summary = publish_run_summary(results, airflow_file)
    send_alerts(results, run_summary)


access_audit()
