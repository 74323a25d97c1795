"""
### order_backup: nightly encrypted recovery point of the store

**What it does.** Every night at 01:00 Asia/Tokyo it takes one consistent snapshot of the store
(`store_db`) and writes a *recovery point* under the Variable `governance_backup_root`: the
in-scope tables (policy.yaml) as Parquet with every column and the footer encrypted (Parquet
Modular Encryption, keys in the KMS named by `governance_kms`), rows partitioned by retention
epoch so `retention_purge` can crypto-shred them, and a manifest signed with Ed25519.

Steps: `preflight` (keys and config, before anything is written) → `write_and_publish` (stream,
mask card numbers, validate with Great Expectations, write to staging, sign, publish atomically;
on PostgreSQL the task and `recovery_points.workers - 1` worker processes write tables at the same
time, all from the task's one snapshot, so budget that many cores and memory slots for it)
→ `verify` (signature and SHA-256 of every file; emits the `lomevexi_recovery_point` asset) →
`expire` (points past backup retention, with their exclusive keys) → `report` (summary.json) →
`validation_gate`.

**Owner:** data-governance (data engineering on-call).

**What a failure means and what to do.**
- `preflight` / `write_and_publish` failed: *no new recovery point tonight*. Read the task log:
  messages name the table, column, file, connection or key. Fix and clear the task; the rerun
  is idempotent (one point per logical date; abandoned staging is discarded).
- `verify` failed: the published point does not match its manifest (storage corruption or
  tampering). Do not delete anything; page security and run `restore_drill` on the previous point.
- `validation_gate` failed: the point **was published** (a drifted store must never be left
  without a backup), but the minimization gate found data the policy does not allow
  (extra columns, card numbers, malformed values). See `validation` in the run's summary.json and
  the Data Docs; the store owners must fix the source. Rerunning does not clear it.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from lomevexi_governance import airflow_glue as glue
from lomevexi_governance.assets import RECOVERY_POINT


@dag(
    dag_id="order_backup",
    schedule=CronTriggerTimetable("0 1 * * *", timezone="Asia/Tokyo"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Tokyo"),
    catchup=False,
    max_active_runs=1,
    default_args=glue.DEFAULT_ARGS,
    tags=["governance", "backup"],
    doc_md=__doc__,
)
def order_backup() -> None:
    @task
    @glue.fail_fast
    def preflight(**context) -> dict:
        """Check the connections, variables and root key before anything is written."""
        from lomevexi_governance import backup  # noqa: PLC0415

        return backup.preflight_task(glue.task_env(context))

    @task(retries=3)
    @glue.fail_fast
    def write_and_publish(checked: dict, **context) -> dict:
        from lomevexi_governance import backup  # noqa: PLC0415

        return backup.write_task(glue.task_env(context))

    @task(outlets=[RECOVERY_POINT])
    @glue.fail_fast
    def verify(outcome: dict, **context) -> dict:
        from lomevexi_governance import backup  # noqa: PLC0415

        return backup.verify_task(glue.task_env(context), outcome)

    @task
    @glue.fail_fast
    def expire(verified: dict, **context) -> dict:
        from lomevexi_governance import backup  # noqa: PLC0415

        return backup.expire_task(glue.task_env(context))

    @task
    @glue.fail_fast
    def report(outcome: dict, verified: dict, expired: dict, **context) -> str:
        from lomevexi_governance import backup  # noqa: PLC0415

        return backup.report_task(glue.task_env(context), outcome, verified, expired)

    @task(retries=0)
    @glue.fail_fast
    def validation_gate(outcome: dict, summary_path: str) -> None:
        """Fail the run (and alert) when the minimization gate failed; the point stays published."""
        from lomevexi_governance import backup  # noqa: PLC0415

        backup.gate(outcome, summary_path)

    checked = preflight()
    outcome = write_and_publish(checked)
    verified = verify(outcome)
    expired = expire(verified)
    summary = report(outcome, verified, expired)
    validation_gate(outcome, summary)


order_backup()
