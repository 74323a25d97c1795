"""``order_backup``: the nightly recovery point, as plain functions the DAG wires together.

write -> audit (content scan and Great Expectations, inline on every batch) -> publish ->
verify -> expire. Idempotent per logical date: the point id comes from the logical date, a
published point is never rewritten, and abandoned staging folders of a killed attempt are
discarded before a new attempt starts.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lomevexi_governance import recovery_points as rp
from lomevexi_governance.errors import ConfigurationError
from lomevexi_governance.keys import KeyService
from lomevexi_governance.pipeline import release_memory
from lomevexi_governance.policy import Policy, Table
from lomevexi_governance.scan import ContentScanner, ReferenceCheck
from lomevexi_governance.settings import DatabaseTarget
from lomevexi_governance.source import Snapshot
from lomevexi_governance.storage import Storage

log = logging.getLogger(__name__)


@dataclass
class BackupOutcome:
    recovery_point_id: str
    already_published: bool
    tables: dict[str, dict[str, int]]
    write_seconds: float
    extra_columns: dict[str, list[str]]
    masked: dict[str, int]
    violations: list[dict[str, Any]]
    validation: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "recovery_point_id": self.recovery_point_id,
            "already_published": self.already_published,
            "tables": self.tables,
            "rows": sum(t["rows"] for t in self.tables.values()),
            "bytes": sum(t["bytes"] for t in self.tables.values()),
            "write_seconds": round(self.write_seconds, 3),
            "extraneous_columns": self.extra_columns,
            "masked": self.masked,
            "violations": self.violations,
            "validation": self.validation,
        }


def preflight(target: DatabaseTarget, keys_factory: Any) -> KeyService:
    """Fail before writing anything when the keyring cannot be opened.

    ``keys_factory`` builds the key service (so that a wrong root key surfaces here, naming the
    connection). The store is checked when the snapshot opens.
    """
    keys: KeyService = keys_factory()
    if not target.is_sqlite and not target.is_postgres:
        raise ConfigurationError(f"connection {target.conn_id!r}: unsupported store dialect")
    return keys


def backup_table(
    pw: rp.PointWrite,
    snapshot: Snapshot,
    table: Table,
    validator: Any = None,
) -> rp.TablePart:
    """One table through the gate and into staging: GX source stage, content scan and masking,
    reference checks, GX backup stage, partitioned encrypted Parquet. Returns its results."""
    planner = pw.planner
    scanner = ContentScanner(table)
    checks: list[Any] = [validator.source_stage(table)] if validator else []
    checks.append(scanner)
    known = {col: planner.known_ids(ref_table) for col, (ref_table, _c) in table.references.items()
             if ref_table in ("orders", "customers")}
    reference = ReferenceCheck(table, known) if known else None
    if reference is not None:
        checks.append(reference)
    if validator:
        checks.append(validator.backup_stage(table))
    part = rp.write_table(pw, snapshot, table, checks)
    part.checks = {
        "scan": scanner.result.as_dict(),
        "references": reference.violations() if reference is not None else [],
    }
    return part


def _table_summary(manifest: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {
        name: {"rows": t["rows"], "bytes": t["bytes"], "files": len(t["files"])}
        for name, t in manifest["tables"].items()
    }


def run_backup(
    *,
    policy: Policy,
    target: DatabaseTarget,
    storage: Storage,
    keys: KeyService,
    logical_date: dt.datetime,
    run_id: str,
    tables: Sequence[str] | None = None,
    encrypt: bool = True,
    validator_factory: Any = None,
    workers: int | None = None,
) -> BackupOutcome:
    """Take (or find) the recovery point for ``logical_date``.

    ``validator_factory(policy, tables) -> Validator`` adds the Great Expectations gate; its
    outcome is recorded in the manifest (signed), so drills can compare against it.
    ``workers`` (default: the policy's ``recovery_points.workers``): on PostgreSQL, tables are
    written by that many processes sharing this backup's one snapshot (``pg_export_snapshot``).
    """
    point_id = rp.point_id_for(logical_date)
    if point_id in rp.list_points(storage):
        point = rp.load_point(storage, point_id, keys)
        log.info("recovery point %s is already published; nothing to write", point_id)
        backup_meta = point.manifest.get("backup", {})
        return BackupOutcome(
            point_id,
            True,
            _table_summary(point.manifest),
            0.0,
            backup_meta.get("extraneous_columns", {}),
            backup_meta.get("masked", {}),
            backup_meta.get("violations", []),
            point.manifest.get("validation", {}),
        )
    stale = rp.discard_staging(storage, point_id)
    if stale:
        log.info("discarded %d abandoned staging folder(s) of %s", stale, point_id)

    started = time.monotonic()
    validator = validator_factory(policy, tables) if validator_factory else None
    workers = policy.backup_workers if workers is None else max(1, workers)

    with Snapshot(target, batch_rows=policy.batch_rows) as snapshot:
        pw = rp.begin_point(policy=policy, snapshot=snapshot, storage=storage, keys=keys,
                            logical_date=logical_date, run_id=run_id, tables=tables, encrypt=encrypt)
        if workers > 1 and target.is_postgres and len(pw.scope) > 1:
            from lomevexi_governance.backup_workers import write_tables_in_parallel

            parts = write_tables_in_parallel(pw, snapshot, workers, validator)
        else:
            parts = [backup_table(pw, snapshot, table, validator) for table in pw.scope]
        result = rp.finish_point(pw, snapshot, parts)
        assert snapshot.info is not None
        extra = dict(snapshot.info.extra_columns)
        if validator:
            for table in pw.scope:
                validator.check_source_columns(table, snapshot.columns(table.name) or [])
                validator.cover_empty(table)
    masked: dict[str, int] = {}
    violations: list[dict[str, Any]] = []
    reference_violations: list[dict[str, Any]] = []
    in_policy_order = {t.name: i for i, t in enumerate(pw.scope)}
    for part in sorted(parts, key=lambda p: in_policy_order[p.name]):
        masked.update(part.checks["scan"]["masked"])
        violations.extend(part.checks["scan"]["violations"])
        reference_violations.extend(part.checks["references"])
    violations.extend(reference_violations)
    if validator:
        release_memory()  # before GX is imported to write the results
        validation = validator.finish(extra_columns=extra, reference_violations=reference_violations, run_name=run_id)
    else:
        validation = {"success": not extra and not violations, "engine": "content-scan", "failed": []}
    manifest = result.manifest | {
        "backup": {"extraneous_columns": extra, "masked": masked, "violations": violations},
        "validation": {k: v for k, v in validation.items() if k in ("success", "tables", "failed")},
    }
    try:
        rp.publish_point(storage, keys, result, manifest)
    except BaseException:
        if storage.atomic_rename:
            storage.delete_tree(result.staging_rel)
        raise
    seconds = time.monotonic() - started
    log.info("published %s: %d rows in %.1fs", point_id, sum(t["rows"] for t in manifest["tables"].values()), seconds)
    return BackupOutcome(point_id, False, _table_summary(manifest), seconds, extra, masked, violations, validation)


# -- task entry points (called by dags/order_backup.py) ---------------------------------


def preflight_task(env: Any) -> dict[str, Any]:
    """Keys, connections and roots are usable; nothing is written. Returns ids only."""
    target = env.require_store()
    keys = preflight(target, lambda: env.keys)
    env.policy  # noqa: B018 - parse the policy now: a broken policy fails before any write
    return {
        "store": target.describe(),
        "backup_root": env.storage.describe(""),
        "signing_key": keys.public_key_pem().splitlines()[1][:16] + "…",
    }


def _outcome_path(env: Any) -> Any:
    return env.report_dir / "backup_outcome.json"


def write_task(env: Any) -> dict[str, Any]:
    from lomevexi_governance.reports import write_json_atomic
    from lomevexi_governance.validation import GxValidator

    report_dir = env.report_dir
    outcome = run_backup(
        policy=env.policy,
        target=env.require_store(),
        storage=env.storage,
        keys=env.keys,
        logical_date=env.logical_date,
        run_id=env.run_id,
        validator_factory=lambda policy, tables: GxValidator(policy, report_dir / "validation", tables=tables),
    )
    full = outcome.as_dict()
    path = _outcome_path(env)
    write_json_atomic(path, full)
    return {
        "recovery_point_id": outcome.recovery_point_id,
        "already_published": outcome.already_published,
        "rows": full["rows"],
        "bytes": full["bytes"],
        "validation_success": bool(outcome.validation.get("success")),
        "outcome_path": str(path),
    }


def verify_task(env: Any, outcome: dict[str, Any]) -> dict[str, Any]:
    result = rp.verify_point(env.storage, env.keys, outcome["recovery_point_id"], by=env.run_id)
    return {k: result[k] for k in ("recovery_point_id", "ok", "files", "bytes", "verified_at")}


def expire_task(env: Any) -> dict[str, Any]:
    expired = rp.expire_points(env.storage, env.keys, env.policy, env.logical_date, run_id=env.run_id)
    return {
        "expired": [e["recovery_point_id"] for e in expired],
        "destroyed_keys": sum(len(e["destroyed_keys"]) for e in expired),
    }


def report_task(env: Any, outcome: dict[str, Any], verified: dict[str, Any], expired: dict[str, Any]) -> str:
    from lomevexi_governance.reports import read_json, write_json_atomic

    full = read_json(outcome["outcome_path"])
    summary = {
        "dag_id": env.dag_id,
        "run_id": env.run_id,
        "logical_date": env.logical_date.isoformat(),
        "recovery_point_id": full["recovery_point_id"],
        "already_published": full["already_published"],
        "tables": full["tables"],
        "rows": full["rows"],
        "bytes": full["bytes"],
        "duration_seconds": full["write_seconds"],
        "verification": verified,
        "expired": expired,
        "validation": full["validation"],
        "extraneous_columns": full["extraneous_columns"],
        "masked": full["masked"],
        "violations": full["violations"],
    }
    path = env.report_dir / "summary.json"
    write_json_atomic(path, summary)
    return str(path)


def gate(outcome: dict[str, Any], summary_path: str) -> None:
    from lomevexi_governance.errors import ValidationFailed
    from lomevexi_governance.reports import read_json

    if outcome["validation_success"]:
        return
    validation = read_json(summary_path)["validation"]
    failed = validation.get("failed", [])
    where = sorted({f"{f['table']}.{f['column']}" if f.get("column") else f["table"] for f in failed})
    raise ValidationFailed(
        f"minimization gate failed for recovery point {outcome['recovery_point_id']} "
        f"({len(failed)} expectation(s) on {', '.join(where[:20]) or 'the source schema'}); "
        f"the point was published. Details: {summary_path}"
    )
