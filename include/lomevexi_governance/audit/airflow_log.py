"""Airflow's own audit log: who triggered drills and purges, who changed connections or variables.

Airflow 3 tasks must not touch the metadata database through the ORM, so the log is read
through the public REST API, ``GET /api/v2/eventLogs``, with the Airflow connection
``airflow_api`` (type http: host, port, schema http/https, login and password). A JWT comes
from ``POST /auth/token`` (the simple auth manager and the FAB auth manager both serve it).
When ``airflow_api`` is not configured the summary says ``airflow audit log: not configured``
and the audit goes on; when it is configured but the API fails, the task fails.

Only event metadata is kept (id, time, event, user, DAG id, run id, and the connection id or
variable key a change named). The ``extra`` field's values are never copied: Airflow masks
secrets in it, but a report has no need for them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lomevexi_governance.errors import ConfigurationError, GovernanceError

API_CONN_ID = "airflow_api"
NOT_CONFIGURED = "airflow audit log: not configured"
PAGE_LIMIT = 100
#: DAGs whose runs the audit calls out: destructive or recovery jobs.
SENSITIVE_DAGS = frozenset({"retention_purge", "restore_drill", "order_backup"})

TRIGGER_EVENTS = frozenset({"trigger_dag_run", "cli_dag_trigger", "cli_dags_trigger", "cli_dag_test"})
RERUN_EVENTS = frozenset(
    {
        "clear_dag_run",
        "clear_dag_runs",
        "post_clear_task_instances",
        "cli_dag_clear",
        "cli_tasks_clear",
        "patch_dag_run",
        "delete_dag_run",
        "bulk_dag_runs",
    }
)
CONNECTION_EVENTS = frozenset(
    {
        "post_connection",
        "patch_connection",
        "delete_connection",
        "bulk_connections",
        "create_default_connections",
        "cli_connections_add",
        "cli_connections_delete",
        "cli_connections_import",
        "cli_connections_create_default_connections",
    }
)
VARIABLE_EVENTS = frozenset(
    {
        "post_variable",
        "patch_variable",
        "delete_variable",
        "bulk_variables",
        "cli_variables_set",
        "cli_variables_delete",
        "cli_variables_import",
    }
)
CATEGORIES = ("dag_trigger", "dag_rerun", "connection_change", "variable_change")


class AirflowApiError(GovernanceError):
    """The Airflow REST API refused or failed (names the endpoint and status, never a token)."""


@dataclass(frozen=True)
class ApiSettings:
    base_url: str
    username: str
    password: str = field(repr=False)
    verify: bool = True
    timeout_s: float = 30.0


def settings_from_connection(conn: Any) -> ApiSettings:
    """``airflow_api`` (http) -> :class:`ApiSettings`. ``host`` may be a bare host or a full URL."""
    host = (conn.host or "").rstrip("/")
    if not host:
        raise ConfigurationError(f"connection {conn.conn_id!r} has no host for the Airflow API")
    if "://" in host:
        base = host
    else:
        scheme = (conn.schema or "http").lower()
        if scheme not in ("http", "https"):
            scheme = "http"
        base = f"{scheme}://{host}"
    if conn.port and f":{conn.port}" not in base.split("://", 1)[1]:
        base = f"{base}:{conn.port}"
    if not conn.login or not conn.password:
        raise ConfigurationError(f"connection {conn.conn_id!r} needs a login and a password for the Airflow API")
    extra = conn.extra_dejson or {}
    return ApiSettings(
        base_url=base,
        username=conn.login,
        password=conn.password,
        verify=bool(extra.get("verify", True)),
        timeout_s=float(extra.get("timeout", 30)),
    )


@dataclass(frozen=True)
class AuditEvent:
    event_log_id: int
    when: dt.datetime
    event: str
    owner: str | None
    dag_id: str | None
    run_id: str | None
    category: str
    target: str | None = None  # connection id or variable key

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_log_id": self.event_log_id,
            "when_utc": _iso(self.when),
            "event": self.event,
            "owner": self.owner,
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "category": self.category,
            "target": self.target,
        }


def categorize(event: str) -> str | None:
    if event in TRIGGER_EVENTS:
        return "dag_trigger"
    if event in RERUN_EVENTS:
        return "dag_rerun"
    if event in CONNECTION_EVENTS:
        return "connection_change"
    if event in VARIABLE_EVENTS:
        return "variable_change"
    return None


def _parse_when(value: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat() + "Z"


def _target(category: str, extra: str | None) -> str | None:
    """The connection id or variable key a change named (from ``extra``; never its values)."""
    if not extra or category not in ("connection_change", "variable_change"):
        return None
    try:
        data = json.loads(extra)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    keys = ("connection_id", "conn_id") if category == "connection_change" else ("variable_key", "key")
    for k in keys:
        v = data.get(k)
        if isinstance(v, str) and v:
            return v
    return None


def parse_events(raw: Iterable[dict[str, Any]], start_utc: dt.datetime, end_utc: dt.datetime) -> list[AuditEvent]:
    """The governance-relevant events of ``[start_utc, end_utc)`` from API records (any order)."""
    out = []
    for rec in raw:
        event = str(rec.get("event") or "")
        category = categorize(event)
        if category is None or not rec.get("when"):
            continue
        when = _parse_when(str(rec["when"]))
        if not (start_utc <= when < end_utc):
            continue
        out.append(
            AuditEvent(
                event_log_id=int(rec.get("event_log_id") or 0),
                when=when,
                event=event,
                owner=rec.get("owner"),
                dag_id=rec.get("dag_id"),
                run_id=rec.get("run_id"),
                category=category,
                target=_target(category, rec.get("extra")),
            )
        )
    out.sort(key=lambda e: (e.when, e.event_log_id))
    return out


def summarize(events: list[AuditEvent], start_utc: dt.datetime, end_utc: dt.datetime, source: str) -> dict[str, Any]:
    """The ``airflow_audit`` section of summary.json for one period."""
    inside = [e for e in events if start_utc <= e.when < end_utc]
    by_category = Counter(e.category for e in inside)
    by_user = Counter(e.owner or "unknown" for e in inside)
    triggers = Counter((e.dag_id or "?", e.owner or "unknown") for e in inside if e.category == "dag_trigger")
    sensitive = [e.to_dict() for e in inside if e.dag_id in SENSITIVE_DAGS]
    return {
        "status": "ok",
        "source": source,
        "event_count": len(inside),
        "by_category": {c: by_category.get(c, 0) for c in CATEGORIES},
        "by_user": dict(sorted(by_user.items())),
        "dag_triggers": [{"dag_id": d, "user": u, "count": n} for (d, u), n in sorted(triggers.items())],
        "drills_and_purges": sensitive,
        "connection_changes": [e.to_dict() for e in inside if e.category == "connection_change"],
        "variable_changes": [e.to_dict() for e in inside if e.category == "variable_change"],
    }


def not_configured() -> dict[str, Any]:
    return {"status": "not configured", "note": NOT_CONFIGURED}


# --------------------------------------------------------------------------------------------
# The REST client
# --------------------------------------------------------------------------------------------


def fetch_events(
    settings: ApiSettings,
    start_utc: dt.datetime,
    end_utc: dt.datetime,
    *,
    client_factory: Callable[..., Any] | None = None,
) -> list[dict[str, Any]]:
    """Every event log record of ``[start_utc, end_utc)`` as the API returns them (paged)."""
    import httpx

    factory = client_factory or httpx.Client
    with factory(base_url=settings.base_url, timeout=settings.timeout_s, verify=settings.verify) as client:
        resp = client.post("/auth/token", json={"username": settings.username, "password": settings.password})
        if resp.status_code not in (200, 201):
            raise AirflowApiError(
                f"POST /auth/token on {settings.base_url} answered HTTP {resp.status_code} "
                f"for user {settings.username!r} (connection {API_CONN_ID!r})"
            )
        token = resp.json().get("access_token")
        if not token:
            raise AirflowApiError(f"POST /auth/token on {settings.base_url} returned no access_token")
        headers = {"Authorization": f"Bearer {token}"}
        records: list[dict[str, Any]] = []
        offset = 0
        # `after` and `before` are strict; widen by a second and filter exactly in parse_events
        params: dict[str, Any] = {
            "after": (start_utc - dt.timedelta(seconds=1)).isoformat(),
            "before": (end_utc + dt.timedelta(seconds=1)).isoformat(),
            "order_by": "id",
            "limit": PAGE_LIMIT,
        }
        while True:
            params["offset"] = offset
            resp = client.get("/api/v2/eventLogs", params=params, headers=headers)
            if resp.status_code != 200:
                raise AirflowApiError(f"GET /api/v2/eventLogs on {settings.base_url} answered HTTP {resp.status_code}")
            body = resp.json()
            page = list(body.get("event_logs") or [])
            records.extend(page)
            offset += len(page)
            total = int(body.get("total_entries") or 0)
            if not page or offset >= total:
                return records
