"""What the DAG files share: default arguments, tags, the failure alert, run-time lookups.

DAG files import this module at parse time, so it imports nothing heavy and reads no
Connection or Variable at module level: lookups happen inside the functions, which only
tasks call.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from lomevexi_governance import settings

log = logging.getLogger(__name__)

OWNER = "data-governance"
#: The closed set of tags a DAG may carry (enforced by tests/dags/test_dag_integrity.py).
ALLOWED_TAGS = frozenset({"governance", "backup", "retention", "restore", "audit", "compliance", "on-call"})
#: Airflow Variable naming the address(es) that receive failure and finding alerts.
ALERT_TO_VAR = "governance_alert_to"
#: Airflow Connection used to send alerts (an SMTP server).
SMTP_CONN_ID = "governance_smtp"


def notify_failure(context: dict[str, Any]) -> None:
    """``on_failure_callback`` for every governance task.

    Logs a structured alert line (picked up by log-based monitoring) and, when the Variable
    ``governance_alert_to`` is set, e-mails it through the ``governance_smtp`` connection.
    Never raises: a broken alert channel must not hide the original failure.
    """
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    run_id = getattr(ti, "run_id", "?")
    exc = context.get("exception")
    # The exception text is ours (GovernanceError messages name ids, never values); for
    # foreign exceptions log the type only.
    from lomevexi_governance.errors import GovernanceError  # noqa: PLC0415

    reason = str(exc) if isinstance(exc, GovernanceError) else type(exc).__name__ if exc else "unknown"
    log.error("GOVERNANCE ALERT dag=%s task=%s run=%s reason=%s", dag_id, task_id, run_id, reason)
    try:
        from airflow.sdk import Variable  # noqa: PLC0415

        to = Variable.get(ALERT_TO_VAR, default=None)
        if not to:
            return
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier  # noqa: PLC0415

        SmtpNotifier(
            to=[a.strip() for a in str(to).split(",") if a.strip()],
            smtp_conn_id=SMTP_CONN_ID,
            subject=f"[governance] {dag_id}.{task_id} failed",
            html_content=f"<p>Run <code>{run_id}</code>: task <code>{task_id}</code> failed: {reason}</p>",
        ).notify(context)
    except Exception:  # noqa: BLE001 - alerting is best effort; the task failure stands
        log.exception("could not send the failure alert for %s.%s", dag_id, task_id)


DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "on_failure_callback": notify_failure,
}


def store_target(conn_id: str = settings.STORE_CONN_ID) -> settings.DatabaseTarget:
    from airflow.sdk import Connection  # noqa: PLC0415

    return settings.database_target(Connection.get(conn_id))


def variable(name: str) -> str:
    from airflow.sdk import Variable  # noqa: PLC0415
    from lomevexi_governance.errors import ConfigurationError  # noqa: PLC0415

    try:
        value = Variable.get(name)
    except KeyError:
        raise ConfigurationError(f"Airflow variable {name!r} is not set") from None
    return settings.check_root(value, name)


def roots() -> settings.Roots:
    return settings.Roots(
        backup_root=variable(settings.BACKUP_ROOT_VAR),
        report_root=variable(settings.REPORT_ROOT_VAR),
    )


def kms_connection(conn_id: str = settings.KMS_CONN_ID) -> Any:
    from airflow.sdk import Connection  # noqa: PLC0415

    return Connection.get(conn_id)


def task_env(context: dict[str, Any], *, store_conn_id: str = settings.STORE_CONN_ID) -> Any:
    """Everything a governance task needs, read from Airflow at run time."""
    from lomevexi_governance.runtime import TaskEnv  # noqa: PLC0415

    ident = run_identity(context)
    r = roots()
    return TaskEnv(
        dag_id=ident["dag_id"],
        run_id=ident["run_id"],
        logical_date=ident["logical_date"],
        backup_root=r.backup_root,
        report_root=r.report_root,
        store=store_target(store_conn_id),
        kms_connection=kms_connection(),
        triggered_by=ident["triggered_by"],
        run_type=ident["run_type"],
        params=dict(context.get("params") or {}),
    )


def run_identity(context: dict[str, Any]) -> dict[str, Any]:
    """dag_id, run_id, logical date (UTC) and who triggered the run, from a task context."""
    dag_run = context["dag_run"]
    logical = context.get("logical_date") or dag_run.logical_date or dag_run.run_after
    triggered_by = getattr(dag_run, "triggering_user_name", None)
    return {
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "logical_date": logical.astimezone(dt.timezone.utc),
        "run_type": str(getattr(dag_run, "run_type", "")),
        "triggered_by": triggered_by,
    }
