"""What the DAG files share: default arguments, tags, the failure alert, run-time lookups.

DAG files import this module at parse time, so it imports nothing heavy and reads no
Connection or Variable at module level: lookups happen inside the functions, which only
tasks call.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

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
    from lomevexi_governance.errors import GovernanceError

    reason = str(exc) if isinstance(exc, GovernanceError) else type(exc).__name__ if exc else "unknown"
    log.error("GOVERNANCE ALERT dag=%s task=%s run=%s reason=%s", dag_id, task_id, run_id, reason)
    try:
        from airflow.sdk import Variable

        to = Variable.get(ALERT_TO_VAR, default=None)
        if not to:
            return
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        SmtpNotifier(
            to=[a.strip() for a in str(to).split(",") if a.strip()],
            smtp_conn_id=SMTP_CONN_ID,
            subject=f"[governance] {dag_id}.{task_id} failed",
            html_content=f"<p>Run <code>{run_id}</code>: task <code>{task_id}</code> failed: {reason}</p>",
        ).notify(context)  # type: ignore[arg-type]
    except Exception:
        log.exception("could not send the failure alert for %s.%s", dag_id, task_id)


F = TypeVar("F", bound=Callable[..., Any])


def fail_fast(fn: F) -> F:
    """Let transient errors retry; fail permanent governance errors at once.

    Retrying cannot fix a wrong root key, a missing column or a tampered file, and a run that
    waits through its retry delays only hides the failure from on-call for longer. Such errors
    become ``AirflowFailException`` (no retries), with the same message; transient ones
    (an unreachable database) go through the task's retries.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from lomevexi_governance.errors import GovernanceError, TransientError

        try:
            return fn(*args, **kwargs)
        except TransientError:
            raise
        except GovernanceError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from None

    return wrapper  # type: ignore[return-value]


DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "on_failure_callback": notify_failure,
}


def store_target(conn_id: str = settings.STORE_CONN_ID) -> settings.DatabaseTarget:
    from airflow.sdk import Connection

    return settings.database_target(Connection.get(conn_id))


def variable(name: str) -> str:
    from airflow.sdk import Variable

    from lomevexi_governance.errors import ConfigurationError

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
    from airflow.sdk import Connection

    return Connection.get(conn_id)


def task_env(context: dict[str, Any], *, store_conn_id: str = settings.STORE_CONN_ID) -> Any:
    """Everything a governance task needs, read from Airflow at run time."""
    from lomevexi_governance.runtime import TaskEnv

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
        "run_type": getattr(getattr(dag_run, "run_type", ""), "value", str(getattr(dag_run, "run_type", ""))),
        "triggered_by": triggered_by,
    }
