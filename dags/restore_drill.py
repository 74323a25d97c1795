"""
### restore_drill: prove that a recovery point really restores

**What it does.** Every Sunday at 03:00 Asia/Tokyo (and whenever someone triggers it) it takes a
recovery point written by `order_backup` and restores it into a scratch database, then checks
that what came back is exactly what was backed up (policy III.1 "backup and recovery").

Steps: `validate_params` (the trigger form again, server side: an unknown recovery point id fails
listing the available ones; `store_db` is refused as a target) → setup `pin_point` (purge and
expiry leave the point alone while the drill runs) and setup `prepare_target` (a fresh scratch
SQLite file under the report root, or a fresh `drill_<hash>` schema on the PostgreSQL connection
`target_conn_id`; existing tables are never touched) → `verify_point` (the manifest's Ed25519
signature first, then the SHA-256 of every file, then every key: nothing is loaded from a point
that fails) → `drill_tables` (the point's tables) → per table, a mapped task group
`drill_table` (Celery or Kubernetes workers restore tables in parallel, at most 4 at a time per
run, each with bounded memory):
`drill_table.restore_table` (decrypt and stream the table's files into it, then add the primary
key; purge tombstones are re-applied so purged rows never come back; partitions crypto-shredded
by retention are skipped and reported) → `drill_table.verify_table` (read it back: row count and
per-column checksums against the manifest, a streaming merge with the live store for rows
unchanged since the point; the Great Expectations outcome is inherited from the backup when the
content is checksum-identical, else the suite runs) → `verify_restored` (every table together:
referential integrity, the GX comparison with the outcome recorded at backup time, RTO; fails
naming every table and column that differs) → teardown `teardown_target` (unless
`keep_restored`) and `unpin_point` → `report` (`summary.json` with status SUCCESSFUL / FAILED /
TIMED_OUT, RTO and RPO; `report.html`; an entry in the hash-chained drill history
`<report root>/restore_drill/history.jsonl`; the catalog's last drill of the point) → `outcome`
(fails the run unless the drill was SUCCESSFUL).

**Trigger form.** `recovery_point` ("latest" or an id such as `rp-20261123T160000Z`), `tables`
(empty: all), `target_conn_id` (empty: scratch SQLite), `keep_restored`, `verification`
("full" compares every unchanged row with the live store, "sample" up to `drill.sample_rows` per
table). The time limit is `drill.timeout_minutes` in policy.yaml. Reports hold counts,
checksums, ids and timings only, never customer data.

**Owner:** data-governance (data engineering on-call; compliance reads the drill history).

**What a failure means and what to do.** A failed drill means *we could not prove that this
backup restores*. `summary.json` (`failure`) and the failed task's log name the cause.
- `validate_params`: wrong conf (unknown point id: the message lists the available ones). Fix the
  conf and trigger again.
- `verify_point`: a bad signature or a file whose SHA-256 differs (named) means the point was
  altered or damaged: **do not delete anything**, page security, and drill the previous point.
  A missing or destroyed key (named; not retention shredding) means the point cannot be
  restored: escalate to the key custodians.
- `restore_table` / `verify_table` / `verify_restored`: the data does not come back as recorded
  (table and columns named), or the store had changed in a way the point cannot explain. Keep the evidence (rerun
  with `keep_restored: true` to inspect the copy) and open an incident; the backups are not
  trustworthy until a drill passes.
- TIMED_OUT: the restore is slower than the policy allows (RTO breach). Check the store and target
  load, then raise it with the owners of the policy's `drill.timeout_minutes`.
- `teardown_target` failed: a restored copy (customer data) may be left behind; remove the
  scratch file or `drill_*` schema named in the log.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.sdk import Param, TriggerRule, dag, setup, task, task_group, teardown
from airflow.timetables.trigger import CronTriggerTimetable

from lomevexi_governance import airflow_glue as glue


def _drill_deadline(context) -> None:
    """pre_execute: this task's execution_timeout is the time left before the drill's deadline.

    The deadline comes from the policy (``drill.timeout_minutes``), read at run time by the first
    task, so parsing stays free. The library also checks the deadline between steps and batches.
    """
    plan = context["ti"].xcom_pull(task_ids="validate_params")
    if plan:
        left = dt.datetime.fromisoformat(plan["deadline"]) - dt.datetime.now(dt.UTC)
        context["task"].execution_timeout = max(left, dt.timedelta(seconds=1))


@dag(
    dag_id="restore_drill",
    schedule=CronTriggerTimetable("0 3 * * 0", timezone="Asia/Tokyo"),
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Tokyo"),
    catchup=False,
    max_active_runs=1,
    default_args=glue.DEFAULT_ARGS,
    tags=["governance", "restore", "on-call"],
    doc_md=__doc__,
    params={
        "recovery_point": Param(
            "latest",
            type="string",
            pattern=r"^(latest|rp-\d{8}T\d{6}Z)$",
            title="Recovery point",
            description='"latest" for the newest published point, or a point id such as '
            "rp-20261123T160000Z (checked against the catalog; an unknown id lists the available ones).",
        ),
        "tables": Param(
            [],
            type="array",
            items={"type": "string"},
            title="Tables",
            description="Tables to restore, one per line (e.g. orders, order_items). Leave empty for all "
            "tables of the point.",
        ),
        "target_conn_id": Param(
            None,
            type=["null", "string"],
            title="Target connection",
            description="Airflow connection id of a SQLite or PostgreSQL database to restore into "
            "(PostgreSQL: into a fresh drill_<hash> schema). Leave empty for a fresh scratch SQLite "
            "database under the report root. Never store_db.",
        ),
        "keep_restored": Param(
            False,
            type="boolean",
            title="Keep the restored copy",
            description="Keep the restored database after the drill (its location is in summary.json as "
            "restored_to). It holds customer data: remove it when done.",
        ),
        "verification": Param(
            "full",
            type="string",
            enum=["full", "sample"],
            title="Live-store comparison",
            description='"full": compare every restored row unchanged since the point with the live store; '
            '"sample": up to drill.sample_rows rows per table (policy.yaml).',
        ),
    },
)
def restore_drill() -> None:
    @task
    @glue.fail_fast
    def validate_params(**context) -> dict:
        """Validate the trigger form again and resolve the recovery point; fixes the drill's deadline."""
        from lomevexi_governance import restore  # noqa: PLC0415

        return restore.validate_task(glue.task_env(context), glue.store_target)

    @setup
    @task
    @glue.fail_fast
    def pin_point(plan: dict, **context) -> dict:
        """Pin the point until the deadline: purge and expiry leave it alone."""
        from lomevexi_governance import restore  # noqa: PLC0415

        return restore.pin_task(glue.task_env(context), plan)

    @setup
    @task
    @glue.fail_fast
    def prepare_target(plan: dict, **context) -> dict:
        """A fresh scratch SQLite file, or a fresh drill schema on the target connection."""
        from lomevexi_governance import restore  # noqa: PLC0415

        return restore.prepare_target_task(glue.task_env(context), plan, glue.store_target)

    @task
    @glue.fail_fast
    def verify_point(plan: dict, **context) -> dict:
        """Signature, then SHA-256 of every file, then keys. Nothing is loaded before this passes."""
        from lomevexi_governance import restore  # noqa: PLC0415

        return restore.verify_point_task(glue.task_env(context), plan)

    @task
    def drill_tables(verified: dict) -> list[str]:
        """The tables the per-table tasks are mapped over (fixed by verify_point, parents first)."""
        return list(verified["tables"])

    # One mapped task instance per table; each has the drill's time left as its execution_timeout.
    @task(pre_execute=_drill_deadline, execution_timeout=dt.timedelta(hours=6), max_active_tis_per_dagrun=4)
    @glue.fail_fast
    def restore_table(plan: dict, target: dict, table: str, **context) -> dict:
        """Decrypt and load one table, batch by batch, then add its primary key."""
        from lomevexi_governance import restore as lib  # noqa: PLC0415

        return lib.restore_table_task(glue.task_env(context), plan, target, table, glue.store_target)

    @task(pre_execute=_drill_deadline, execution_timeout=dt.timedelta(hours=6), max_active_tis_per_dagrun=4)
    @glue.fail_fast
    def verify_table(plan: dict, target: dict, table: str, restored: dict, **context) -> dict:
        """Read one table back: count, per-column checksums, live-store merge, GX (inherited or run)."""
        from lomevexi_governance import restore as lib  # noqa: PLC0415

        return lib.verify_table_task(glue.task_env(context), plan, target, table, glue.store_target)

    @task_group
    def drill_table(plan: dict, target: dict, table: str) -> None:
        """Restore one table, then read it back (a mapped task group: tables run in parallel)."""
        verify_table(plan, target, table, restore_table(plan, target, table))

    @task(pre_execute=_drill_deadline, execution_timeout=dt.timedelta(hours=6))
    @glue.fail_fast
    def verify_restored(plan: dict, target: dict, **context) -> dict:
        """Every table's checks together, references, GX vs the backup's outcome; RTO and RPO."""
        from lomevexi_governance import restore  # noqa: PLC0415

        return restore.verify_restored_task(glue.task_env(context), plan, target, glue.store_target)

    @teardown
    @task
    @glue.fail_fast
    def teardown_target(plan: dict, target: dict, **context) -> dict:
        """Remove the restored copy unless keep_restored (only what the drill created)."""
        from lomevexi_governance import restore  # noqa: PLC0415

        return restore.teardown_task(glue.task_env(context), plan, target, glue.store_target)

    @teardown
    @task
    @glue.fail_fast
    def unpin_point(plan: dict, pinned: dict, **context) -> dict:
        from lomevexi_governance import restore  # noqa: PLC0415

        return restore.unpin_task(glue.task_env(context), plan)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    @glue.fail_fast
    def report(**context) -> str:
        """summary.json, report.html, the drill history and the catalog record, whatever happened."""
        from lomevexi_governance import restore  # noqa: PLC0415

        return restore.report_task(glue.task_env(context))

    @task(trigger_rule=TriggerRule.ALL_DONE)
    @glue.fail_fast
    def outcome(summary_path: str, **context) -> None:
        """Fail the run (and alert) unless the drill was SUCCESSFUL."""
        from lomevexi_governance import restore  # noqa: PLC0415

        restore.outcome_task(summary_path, glue.task_env(context).report_dir)

    plan = validate_params()
    pinned = pin_point(plan)
    target = prepare_target(plan)
    verified = verify_point(plan)
    pinned >> verified
    tables = drill_table.partial(plan=plan, target=target).expand(table=drill_tables(verified))
    checked = verify_restored(plan, target)
    tables >> checked
    torn_down = teardown_target(plan, target)
    unpinned = unpin_point(plan, pinned)
    checked >> [torn_down, unpinned]
    summary = report()
    [torn_down, unpinned] >> summary
    outcome(summary)


restore_drill()
