"""
### retention_purge: destroy what is past retention, in the store and in every backup

**What it does.** Runs every night as soon as `order_backup` has published and verified the
recovery point (it is scheduled on the `lomevexi_recovery_point` asset) and purges, for that
backup's logical date, what policy III.3 says must be destroyed (rules in
`include/lomevexi_governance/policy.yaml`, computed from the logical date as exact UTC instants):
orders completed 365 days ago or more with their items, payments, shipments and closed service
tickets; other closed tickets 365 days after closing; storefront visits after 90 days; staff
access events after 3 years. Never purged: orders not completed, orders (or any order of a
customer) under an active legal hold, orders with an open ticket, customers, legal holds.

Steps: `validate_params` (the `dry_run` param must be a boolean) → `guard` (fails closed unless
the newest *verified* recovery point is the one for this logical date, so the backups already
reflect today's holds and open tickets) → `purge` (plan from one consistent read; keyed-hash
tombstones and a `purge_begin` ledger entry written *before* deleting; batched deletes, one
transaction per batch, children first; crypto-shredding of every retention epoch that has
ended: its master keys are destroyed, which erases its rows from every recovery point at once)
→ `report` (`summary.json`, `report.html`, ledger verification).

Trigger it manually with `{"dry_run": true}` to preview: nothing is deleted or shredded, the
counts are reported and a `dry_run` entry is written to the ledger. Scheduled runs purge.

**Evidence.** `<backup root>/ledger/purge.jsonl` (append-only, hash-chained: rules, counts,
tombstone files with their SHA-256, key ids destroyed) and `ledger/tombstones/`; per run
`<report root>/retention_purge/<run id>/summary.json` and `report.html`. No purged value is ever
written anywhere. Verify with
`python -m lomevexi_governance.purge verify-ledger --backup-root PATH --report-root PATH`.

**Owner:** data-governance (data engineering on-call; compliance reads the reports).

**What a failure means and what to do.**
- `validate_params` failed: the run conf is not `{"dry_run": true|false}`. Trigger again with a
  boolean.
- `guard` failed: no verified recovery point for this logical date, or a newer one exists.
  Nothing was deleted. Make `order_backup` succeed for the date (or trigger the purge for the
  newest point's date); never bypass the guard.
- `purge` failed: some batches may be committed: every committed batch is whole (an order with
  all its children), so the store is consistent, and the tombstones already cover the planned
  rows. Read the log (it names the table, connection or key), fix, and clear the task: the rerun
  recomputes the plan and finishes the job. A ledger integrity error means the evidence was
  edited: do not rerun, escalate to compliance and security.
- `report` failed on ledger verification: treat as tampering (escalate); the purge itself is done.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import Param, dag, task

from lomevexi_governance import airflow_glue as glue
from lomevexi_governance.assets import RECOVERY_POINT


def _env(context: dict) -> Any:
    """The task environment, with the logical date of the backup that triggered this run."""
    from lomevexi_governance import purge  # noqa: PLC0415

    return purge.env_for_run(glue.task_env(context), context)


@dag(
    dag_id="retention_purge",
    schedule=[RECOVERY_POINT],
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Tokyo"),
    catchup=False,
    max_active_runs=1,  # one writer of the ledger and of the store's deletes
    default_args=glue.DEFAULT_ARGS,
    tags=["governance", "retention", "compliance"],
    doc_md=__doc__,
    params={
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description=(
                "Preview only: compute and report what is due, write a dry-run ledger entry, delete and "
                "shred nothing. Scheduled runs purge (false)."
            ),
        ),
    },
)
def retention_purge() -> None:
    @task(retries=0)
    def validate_params(**context) -> dict:
        """Re-validate the params (fail closed on anything but a boolean dry_run)."""
        from lomevexi_governance import purge  # noqa: PLC0415

        return purge.validate_task(context["params"])

    @task(retries=0)
    def guard(checked: dict, **context) -> dict:
        """Refuse to purge unless the newest verified recovery point is for this logical date."""
        from lomevexi_governance import purge  # noqa: PLC0415

        return purge.guard_task(_env(context), context["params"])

    @task
    def purge(guarded: dict, **context) -> dict:
        """Plan, tombstones and ledger entry, batched deletes, crypto-shredding (idempotent)."""
        from lomevexi_governance import purge as lib  # noqa: PLC0415

        return lib.purge_task(_env(context), context["params"])

    @task
    def report(outcome: dict, **context) -> str:
        from lomevexi_governance import purge as lib  # noqa: PLC0415

        return lib.report_task(_env(context), outcome)

    report(purge(guard(validate_params())))


retention_purge()
