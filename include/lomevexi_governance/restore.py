"""``restore_drill``: prove that a recovery point really restores, as plain functions.

A drill restores one recovery point into a scratch database and checks it end to end::

    plan (re-validate params, resolve "latest")
      -> pin the point (purge and expiry leave it alone while the drill runs)
      -> prepare the target (a fresh scratch SQLite file, or a fresh ``drill_<hash>`` schema)
      -> verify the point: the manifest's Ed25519 signature, then the SHA-256 of every file,
         then that every key a file needs is there (retention-shredded partitions are skipped)
      -> restore: decrypt every file and load it batch by batch (purge tombstones re-applied)
      -> verify the restored data: row counts and per-column checksums against the manifest,
         referential integrity, the Great Expectations suites (outcome must equal the one
         recorded at backup time), and a comparison with the live store
      -> tear down (unless ``keep_restored``), unpin
      -> report: summary.json, report.html, the drill history ledger, the catalog record.

Every step is a function that tests call without Airflow; :func:`run_drill` runs them all in
order, and ``dags/restore_drill.py`` runs each as a task. Steps hand each other small dicts
(ids and paths) and write what they found to ``<report dir>/state/<step>.json``, which the
report step reads, so a failed task still leaves a complete, precise summary.

Outcome: ``SUCCESSFUL``, ``FAILED`` (the first failure is recorded, naming the file, key,
table or column) or ``TIMED_OUT`` (``drill.timeout_minutes`` of the policy, measured from the
start of the drill). Reports carry counts, checksum verdicts, ids and timings only: never a
customer value, never key material.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import html
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lomevexi_governance import checksums, db
from lomevexi_governance import recovery_points as rp
from lomevexi_governance.errors import (
    ConfigurationError,
    GovernanceError,
    IntegrityError,
    KeyMaterialError,
    NotFound,
    SourceUnavailable,
)
from lomevexi_governance.keys import KeyService
from lomevexi_governance.policy import Column, Policy, Table
from lomevexi_governance.reports import read_json, run_report_dir, write_json_atomic, write_text_atomic
from lomevexi_governance.settings import STORE_CONN_ID, DatabaseTarget, sqlite_target
from lomevexi_governance.source import TIMESTAMP, Snapshot
from lomevexi_governance.storage import Storage, storage_for

log = logging.getLogger(__name__)

DAG_ID = "restore_drill"
HISTORY_REL = f"{DAG_ID}/history.jsonl"
SUCCESSFUL, FAILED, TIMED_OUT = "SUCCESSFUL", "FAILED", "TIMED_OUT"
LATEST = "latest"
VERIFICATION_MODES = ("full", "sample")
SCRATCH_FILE = "restored.sqlite"
STATE_DIR = "state"
#: key ids under this prefix belong to retention epochs: destroying them is crypto-shredding
RETENTION_KEY_PREFIX = "epoch/"
#: how the purge words the tombstone of a key it destroys (``purge.shred``)
RETENTION_REASON = "retention:"
#: at most this many primary keys of mismatching rows are reported per table (counts are exact)
MAX_REPORTED_KEYS = 20
_SQL_TYPES = {"int64": "BIGINT", "string": "TEXT", "timestamp": "TIMESTAMPTZ"}
_ARROW_TYPES = {"int64": pa.int64(), "string": pa.string(), "timestamp": TIMESTAMP}
_IN_CHUNK = 500
_SCHEMA_MARK = "lomevexi restore_drill scratch schema, run "


class DrillTimedOut(GovernanceError):
    """The drill ran past ``drill.timeout_minutes`` of the policy."""


class DrillFailed(GovernanceError):
    """The restored data does not match the recovery point (names tables and columns)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- parameters and plan ---------------------------------------------------------------------


@dataclass(frozen=True)
class DrillParams:
    """The trigger form, validated. Nothing secret: connection *ids* only."""

    recovery_point: str = LATEST
    tables: tuple[str, ...] | None = None  # None: every table of the point
    target_conn_id: str | None = None  # None: a fresh scratch SQLite file under the report root
    keep_restored: bool = False
    verification: str = "full"

    def as_dict(self) -> dict[str, Any]:
        return {
            "recovery_point": self.recovery_point,
            "tables": list(self.tables) if self.tables is not None else None,
            "target_conn_id": self.target_conn_id,
            "keep_restored": self.keep_restored,
            "verification": self.verification,
        }


def parse_params(
    raw: Mapping[str, Any] | None, policy: Policy, *, store_conn_id: str = STORE_CONN_ID
) -> DrillParams:
    """Check types and values of the run's params (the trigger form may be bypassed by the API)."""
    raw = dict(raw or {})
    unknown = set(raw) - {"recovery_point", "tables", "target_conn_id", "keep_restored", "verification"}
    if unknown:
        raise ConfigurationError(f"restore_drill: unknown param(s) {sorted(unknown)}")
    point = raw.get("recovery_point") or LATEST
    if not isinstance(point, str):
        raise ConfigurationError(
            "restore_drill: param 'recovery_point' must be 'latest' or a recovery point id"
        )
    point = point.strip()
    tables_raw = raw.get("tables")
    tables: tuple[str, ...] | None
    if tables_raw in (None, "", "all", []) or tables_raw == ["all"]:
        tables = None
    else:
        if isinstance(tables_raw, str):
            tables_raw = [t for t in tables_raw.replace(",", "\n").split() if t]
        if not isinstance(tables_raw, list) or not all(isinstance(t, str) for t in tables_raw):
            raise ConfigurationError(
                "restore_drill: param 'tables' must be a list of table names (empty: all)"
            )
        known = [t.name for t in policy.backup_tables]
        bad = [t for t in tables_raw if t not in known]
        if bad:
            raise ConfigurationError(f"restore_drill: unknown table(s) {bad}; recovery points hold {known}")
        # parents before children, in the policy's order, without duplicates
        tables = tuple(t for t in known if t in set(tables_raw))
    target = raw.get("target_conn_id")
    if target in ("", None):
        target = None
    elif not isinstance(target, str):
        raise ConfigurationError("restore_drill: param 'target_conn_id' must be a connection id")
    else:
        target = target.strip()
        if target == store_conn_id:
            raise ConfigurationError(
                f"restore_drill: target_conn_id {target!r} is the live store; a drill never restores over "
                "the store. Leave it empty for a scratch SQLite database or name a separate connection"
            )
    keep = raw.get("keep_restored", False)
    if not isinstance(keep, bool):
        raise ConfigurationError("restore_drill: param 'keep_restored' must be true or false")
    mode = raw.get("verification", "full") or "full"
    if mode not in VERIFICATION_MODES:
        raise ConfigurationError(
            f"restore_drill: param 'verification' must be one of {list(VERIFICATION_MODES)}"
        )
    return DrillParams(point, tables, target, keep, mode)


def resolve_point(storage: Storage, wanted: str) -> str:
    """``latest`` -> the newest published point; an id -> itself if it is in the catalog.

    An unknown id fails listing the ids that are available (newest first).
    """
    available = rp.list_points(storage)
    listing = ", ".join(reversed(available)) if available else "none"
    if wanted == LATEST:
        if not available:
            raise NotFound(
                f"no recovery point is published under {storage.describe(rp.POINTS)}; nothing to drill"
            )
        return available[-1]
    if not rp.is_point_id(wanted):
        raise ConfigurationError(
            f"recovery_point {wanted!r} is neither 'latest' nor a recovery point id (rp-YYYYMMDDTHHMMSSZ); "
            f"available: {listing}"
        )
    if wanted not in available:
        raise NotFound(f"unknown recovery point {wanted!r}; available: {listing}")
    return wanted


@dataclass
class DrillPlan:
    """What this drill does, fixed by its first step; passed between steps (ids only)."""

    run_id: str
    dag_id: str
    recovery_point_id: str
    tables: list[str] | None  # None until the manifest is verified: every table of the point
    target_conn_id: str | None
    keep_restored: bool
    verification: str
    started_at: str
    deadline: str
    timeout_seconds: float
    sample_rows: int
    batch_rows: int
    report_dir: str
    triggered_by: str | None = None
    logical_date: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DrillPlan:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def deadline_at(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.deadline)

    @property
    def state_dir(self) -> Path:
        return Path(self.report_dir) / STATE_DIR


def check_deadline(plan: DrillPlan, where: str) -> None:
    """Raise :class:`DrillTimedOut` once the drill's time is up (checked between steps and batches)."""
    now = _now()
    if now >= plan.deadline_at:
        raise DrillTimedOut(
            f"restore drill of {plan.recovery_point_id} timed out {where}: more than "
            f"{plan.timeout_seconds / 60:g} minute(s) since it started at {plan.started_at} "
            "(policy drill.timeout_minutes)"
        )


def plan_drill(
    raw_params: Mapping[str, Any] | None,
    *,
    policy: Policy,
    storage: Storage,
    report_dir: str | os.PathLike[str],
    run_id: str,
    dag_id: str = DAG_ID,
    triggered_by: str | None = None,
    logical_date: dt.datetime | None = None,
    store_conn_id: str = STORE_CONN_ID,
    resolve_target: Callable[[str], DatabaseTarget] | None = None,
    store: DatabaseTarget | None = None,
    timeout: dt.timedelta | None = None,
) -> DrillPlan:
    """The first step: validate the params again, resolve the point, fix the deadline.

    Clears this run's earlier state (a cleared and rerun DAG run starts over).
    """
    state = Path(report_dir) / STATE_DIR
    if state.exists():
        for child in state.iterdir():
            child.unlink()
    params = parse_params(raw_params, policy, store_conn_id=store_conn_id)
    point_id = resolve_point(storage, params.recovery_point)
    if params.target_conn_id is not None and resolve_target is not None:
        target = resolve_target(params.target_conn_id)
        _refuse_store(target, store)
    started = _now()
    limit = timeout if timeout is not None else dt.timedelta(minutes=policy.drill_timeout_minutes)
    plan = DrillPlan(
        run_id=run_id,
        dag_id=dag_id,
        recovery_point_id=point_id,
        tables=list(params.tables) if params.tables is not None else None,
        target_conn_id=params.target_conn_id,
        keep_restored=params.keep_restored,
        verification=params.verification,
        started_at=started.isoformat(),
        deadline=(started + limit).isoformat(),
        timeout_seconds=limit.total_seconds(),
        sample_rows=policy.drill_sample_rows,
        batch_rows=policy.batch_rows,
        report_dir=str(report_dir),
        triggered_by=triggered_by,
        logical_date=logical_date.isoformat() if logical_date else None,
    )
    _write_state(plan.state_dir, "plan", plan.as_dict())
    log.info(
        "restore drill %s: recovery point %s, verification %s, target %s",
        run_id,
        point_id,
        plan.verification,
        plan.target_conn_id or "scratch SQLite",
    )
    return plan


# -- state files -----------------------------------------------------------------------------


def _write_state(state_dir: Path, name: str, data: Mapping[str, Any]) -> None:
    write_json_atomic(state_dir / f"{name}.json", data)


def _read_state(state_dir: Path, name: str) -> dict[str, Any] | None:
    path = state_dir / f"{name}.json"
    return read_json(path) if path.exists() else None


def _error_text(exc: BaseException) -> str:
    """Our own errors name files, keys, tables; a foreign exception is reported by type only."""
    if isinstance(exc, GovernanceError):
        return str(exc)
    return f"{type(exc).__name__} (see the task log)"


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, DrillTimedOut) or type(exc).__name__ == "AirflowTaskTimeout"


def record_failure(report_dir: str | os.PathLike[str], step: str, exc: BaseException) -> None:
    """Keep the first failure of the drill (its root cause); later ones only add to the list."""
    state = Path(report_dir) / STATE_DIR
    entry = {
        "step": step,
        "status": TIMED_OUT if _is_timeout(exc) else FAILED,
        "error_type": type(exc).__name__,
        "error": _error_text(exc),
        "at": _now().isoformat(),
    }
    existing = _read_state(state, "failure")
    if existing is None:
        _write_state(state, "failure", entry | {"later": []})
    else:
        existing.setdefault("later", []).append(entry)
        _write_state(state, "failure", existing)


@contextlib.contextmanager
def drill_step(report_dir: str | os.PathLike[str], step: str) -> Iterator[None]:
    """Record any failure of ``step`` (then re-raise it: the task, and the run, fail).

    A retry of the step starts by forgetting the failure its earlier attempt recorded (nothing
    downstream ran in between). Airflow's execution timeout becomes :class:`DrillTimedOut`, a
    permanent error: retrying after the deadline cannot help.
    """
    _forget_failure(report_dir, step)
    try:
        yield
    except BaseException as exc:
        record_failure(report_dir, step, exc)
        if _is_timeout(exc) and not isinstance(exc, DrillTimedOut):
            raise DrillTimedOut(f"restore drill step {step} hit the drill's time limit") from None
        raise


def _forget_failure(report_dir: str | os.PathLike[str], step: str) -> None:
    state = Path(report_dir) / STATE_DIR
    failure = _read_state(state, "failure")
    if failure is not None and failure.get("step") == step:
        (state / "failure.json").unlink()


# -- pins ------------------------------------------------------------------------------------


def pin_point(plan: DrillPlan, storage: Storage) -> dict[str, Any]:
    """Pin the point for the drill's lifetime, so purge and expiry leave it alone."""
    check_deadline(plan, "before pinning")
    rel = rp.pin(storage, plan.recovery_point_id, holder=plan.run_id, expires_at=plan.deadline_at)
    out = {
        "recovery_point_id": plan.recovery_point_id,
        "holder": plan.run_id,
        "expires_at": plan.deadline,
        "pin": rel,
    }
    _write_state(plan.state_dir, "pin", out)
    return out


def unpin_point(plan: DrillPlan, storage: Storage) -> dict[str, Any]:
    rp.unpin(storage, plan.recovery_point_id, plan.run_id)
    out = {"recovery_point_id": plan.recovery_point_id, "unpinned_at": _now().isoformat()}
    _write_state(plan.state_dir, "unpin", out)
    return out


# -- the target ------------------------------------------------------------------------------


@dataclass
class TargetInfo:
    """Where the drill restores to. ``location`` never contains a password."""

    dialect: str
    conn_id: str | None  # None: the drill's own scratch SQLite file
    location: str
    path: str | None = None
    schema: str | None = None
    created_tables: list[str] = field(default_factory=list)

    @property
    def scratch(self) -> bool:
        return self.conn_id is None

    def restored_to(self) -> str:
        if self.dialect == "sqlite":
            return str(self.path)
        return f"connection {self.conn_id!r} ({self.location}), schema {self.schema}"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetInfo:
        return cls(**dict(data))


def scratch_path(plan: DrillPlan) -> Path:
    return Path(plan.report_dir) / SCRATCH_FILE


def drill_schema(run_id: str) -> str:
    """The PostgreSQL schema of one drill run: ``drill_<12 hex of the run id's SHA-256>``."""
    return "drill_" + hashlib.sha256(run_id.encode()).hexdigest()[:12]


def _same_database(a: DatabaseTarget, b: DatabaseTarget) -> bool:
    if a.dialect != b.dialect:
        return False
    if a.is_sqlite:
        return bool(a.path and b.path) and os.path.realpath(str(a.path)) == os.path.realpath(str(b.path))
    return ((a.host or "localhost"), a.port or 5432, a.database) == (
        (b.host or "localhost"),
        b.port or 5432,
        b.database,
    )


def _refuse_store(target: DatabaseTarget, store: DatabaseTarget | None) -> None:
    if not (target.is_sqlite or target.is_postgres):
        raise ConfigurationError(
            f"connection {target.conn_id!r}: a drill restores into SQLite or PostgreSQL only"
        )
    if store is not None and (target.conn_id == store.conn_id or _same_database(target, store)):
        raise ConfigurationError(
            f"connection {target.conn_id!r} points at the live store ({store.describe()}); a drill never "
            "restores into the store database"
        )


def prepare_target(
    plan: DrillPlan, target: DatabaseTarget | None, store: DatabaseTarget | None
) -> TargetInfo:
    """Create the empty place to restore into; never touches existing tables."""
    check_deadline(plan, "before preparing the target")
    if target is None:
        path = scratch_path(plan)
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-journal", "-wal", "-shm"):  # ours: an earlier attempt of this run
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        sqlite3.connect(path).close()
        info = TargetInfo("sqlite", None, f"sqlite:{path}", path=str(path))
    else:
        _refuse_store(target, store)
        if target.is_sqlite:
            info = TargetInfo("sqlite", target.conn_id, target.describe(), path=target.path)
            with db.connection(target) as conn:
                present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            # restoring every table: any existing table may clash, so the database must be empty
            clash = sorted(present & set(plan.tables)) if plan.tables is not None else sorted(present)
            if clash:
                raise ConfigurationError(
                    f"connection {target.conn_id!r} ({target.describe()}) already has table(s) {clash}; "
                    "a drill only restores into tables it creates. Use an empty database"
                )
        else:
            schema = drill_schema(plan.run_id)
            info = TargetInfo("postgresql", target.conn_id, target.describe(), schema=schema)
            with db.connection(target, autocommit=True) as conn:
                _drop_own_schema(conn, schema, plan.run_id)
                conn.execute(f"CREATE SCHEMA {db.quote_ident(schema)}")
                mark = _sql_literal(_SCHEMA_MARK + plan.run_id)
                conn.execute(f"COMMENT ON SCHEMA {db.quote_ident(schema)} IS {mark}")
    _write_state(plan.state_dir, "target", info.as_dict())
    log.info("restore drill %s: restoring into %s", plan.run_id, info.restored_to())
    return info


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _drop_own_schema(conn: Any, schema: str, run_id: str) -> bool:
    """Drop ``schema`` if it exists and carries this run's mark; refuse any other schema."""
    row = conn.execute(
        "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s", (schema,)
    ).fetchone()
    if row is None:
        return False
    if row[0] != _SCHEMA_MARK + run_id:
        raise ConfigurationError(
            f"schema {schema!r} already exists and was not created by this drill run; refusing to touch it"
        )
    conn.execute(f"DROP SCHEMA {db.quote_ident(schema)} CASCADE")
    return True


def target_database(info: TargetInfo, target: DatabaseTarget | None) -> DatabaseTarget:
    """The DatabaseTarget to read and write the restored tables (PostgreSQL: search_path set)."""
    if info.scratch:
        assert info.path
        return sqlite_target(info.path, conn_id="restore_drill_scratch")
    if target is None:
        raise ConfigurationError(f"restore drill: connection {info.conn_id!r} is needed to reach the target")
    if target.is_postgres:
        existing = target.options.get("options", "")
        options = dict(target.options) | {"options": f"{existing} -csearch_path={info.schema}".strip()}
        return dataclasses.replace(target, options=options)
    return target


def teardown_target(plan: DrillPlan, info: TargetInfo, target: DatabaseTarget | None) -> dict[str, Any]:
    """Remove what the drill restored, unless ``keep_restored``. Only ever what it created."""
    out: dict[str, Any] = {"kept": plan.keep_restored, "restored_to": info.restored_to()}
    if plan.keep_restored:
        _write_state(plan.state_dir, "teardown", out)
        return out
    restored = _read_state(plan.state_dir, "restore") or {}
    created = sorted(set(info.created_tables) | set(restored.get("created_tables", [])))
    if info.scratch:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{info.path}{suffix}").unlink(missing_ok=True)
        out["removed"] = info.path
    elif info.dialect == "sqlite":
        assert target is not None
        with db.connection(target, autocommit=True) as conn:
            for name in created:
                conn.execute(f"DROP TABLE IF EXISTS {db.quote_ident(name)}")
        out["removed"] = created
    else:
        assert target is not None and info.schema
        with db.connection(target, autocommit=True) as conn:
            _drop_own_schema(conn, info.schema, plan.run_id)
        out["removed"] = f"schema {info.schema}"
    _write_state(plan.state_dir, "teardown", out)
    return out


# -- verifying the point ---------------------------------------------------------------------


def _erased_by_retention(keys: KeyService, key_ids: Sequence[str]) -> bool:
    """Every key of a file is a retention epoch key destroyed by the purge (crypto-shredding)."""
    if not key_ids or not all(k.startswith(RETENTION_KEY_PREFIX) for k in key_ids):
        return False
    purge = _purge_module()
    if purge is not None:
        return bool(purge.erased_by_retention(keys, key_ids))
    infos = [keys.info(k) for k in key_ids]  # the purge's convention, for when it is not installed
    return all(
        i is not None and i.state == "destroyed" and (i.reason or "").startswith(RETENTION_REASON)
        for i in infos
    )


def _shredded_entry(
    keys: KeyService, manifest: Mapping[str, Any], table: str, f: Mapping[str, Any], key_ids: Sequence[str]
) -> dict[str, Any]:
    """A file found crypto-shredded while the drill was restoring (reported like the others)."""
    infos = [keys.info(k) for k in key_ids]
    part = f["partition"]
    return {
        "partition": part,
        "key_prefix": manifest.get("partitions", {}).get(part, {}).get("key_prefix"),
        "erased_by": "retention",
        "during_drill": True,
        "destroyed_keys": list(key_ids),
        "destroyed_at": max(
            (i.destroyed_at for i in infos if i is not None and i.destroyed_at), default=None
        ),
        "reasons": sorted({i.reason for i in infos if i is not None and i.reason}),
        "tables": {table: int(f["rows"])},
        "files": [
            {"table": table, "path": f["path"], "rows": int(f["rows"]), "checksums": f.get("checksums", {})}
        ],
    }


def classify_files(
    point: rp.PointRef, keys: KeyService, tables: Sequence[str]
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Files to restore per table, and the partitions erased by retention (skipped).

    A file all of whose keys are retention epoch keys (``epoch/...``) destroyed by the purge
    was crypto-shredded: it is skipped and reported. Any other missing or destroyed key
    (including a partly destroyed epoch) fails, naming the key id.
    """
    restore: dict[str, list[dict[str, Any]]] = {t: [] for t in tables}
    shredded: dict[str, dict[str, Any]] = {}
    encrypted = bool(point.manifest.get("encrypted", True))
    cache: dict[str, Any] = {}
    for table, f in point.files(tables):
        key_ids = sorted(set(f.get("key_ids", {}).values())) if encrypted else []
        for key_id in key_ids:
            if key_id not in cache:
                cache[key_id] = keys.info(key_id)
        if any(
            cache[k] is not None and cache[k].state == "destroyed" for k in key_ids
        ) and _erased_by_retention(keys, key_ids):
            part = f["partition"]
            entry = shredded.setdefault(
                part,
                {
                    "partition": part,
                    "key_prefix": point.manifest.get("partitions", {}).get(part, {}).get("key_prefix"),
                    "erased_by": "retention",
                    "destroyed_keys": [],
                    "destroyed_at": None,
                    "reasons": [],
                    "tables": {},
                    "files": [],
                },
            )
            for key_id in key_ids:
                info = cache[key_id]
                if key_id not in entry["destroyed_keys"]:
                    entry["destroyed_keys"].append(key_id)
                    entry["destroyed_at"] = max(filter(None, [entry["destroyed_at"], info.destroyed_at]))
                    if info.reason not in entry["reasons"]:
                        entry["reasons"].append(info.reason)
            entry["tables"][table] = entry["tables"].get(table, 0) + int(f["rows"])
            entry["files"].append(
                {
                    "table": table,
                    "path": f["path"],
                    "rows": int(f["rows"]),
                    "checksums": f.get("checksums", {}),
                }
            )
            continue
        for key_id in key_ids:
            info = cache[key_id]
            if info is None:
                raise KeyMaterialError(
                    f"recovery point {point.point_id!r}: key {key_id!r}, needed to decrypt {f['path']}, "
                    "is missing from the key service (never created here, or removed without a tombstone)"
                )
            if info.state == "destroyed":
                why = (
                    "the file's other keys are intact, so this is not a whole-epoch crypto-shredding"
                    if key_id.startswith(RETENTION_KEY_PREFIX)
                    else "it is not a retention epoch key, so this is key loss, not crypto-shredding"
                )
                raise KeyMaterialError(
                    f"recovery point {point.point_id!r}: key {key_id!r}, needed to decrypt {f['path']}, "
                    f"was destroyed at {info.destroyed_at} ({info.reason}, run {info.run_id}); {why}"
                )
        restore[table].append(f)
    return restore, sorted(shredded.values(), key=lambda e: e["partition"])


def check_checksum_algorithm(point: rp.PointRef) -> None:
    """The point's per-column checksums must be computable by this version (else every check lies)."""
    recorded = point.manifest.get("checksum_algorithm")
    current = getattr(checksums, "ALGORITHM", None)
    if recorded != current:
        raise IntegrityError(
            f"recovery point {point.point_id!r}: its checksums were computed with "
            f"{recorded or 'an algorithm the manifest does not name'}, this drill computes {current}; "
            "the restored data cannot be verified against it by this version"
        )


def verify_point(plan: DrillPlan, storage: Storage, keys: KeyService) -> dict[str, Any]:
    """Signature first, then every file's SHA-256, then the keys. Nothing is loaded here."""
    check_deadline(plan, "before verifying the point")
    started = time.monotonic()
    point = rp.load_point(storage, plan.recovery_point_id, keys)  # the signature, before anything else
    in_point = list(point.manifest["tables"])
    if plan.tables is None:
        tables = in_point
    else:
        missing = [t for t in plan.tables if t not in in_point]
        if missing:
            raise NotFound(
                f"recovery point {plan.recovery_point_id!r} has no table(s) {missing}; it holds {in_point}"
            )
        tables = list(plan.tables)
    check_checksum_algorithm(point)
    stats = rp.verify_files(storage, point)  # every file of the point, named when it does not match
    check_deadline(plan, "after verifying the files")
    files, shredded = classify_files(point, keys, tables)
    out = {
        "recovery_point_id": plan.recovery_point_id,
        "signature": {
            "ok": True,
            "key_id": point.signature.get("key_id"),
            "public_key_sha256_16": point.signature.get("public_key_sha256_16"),
        },
        "files_verified": stats["files"],
        "bytes_verified": stats["bytes"],
        "tables": tables,
        "restore_files": {t: [f["path"] for f in fs] for t, fs in files.items()},
        "shredded_partitions_skipped": shredded,
        "snapshot_started_at": point.manifest["source"]["snapshot_started_at"],
        "point_created_at": point.manifest.get("created_at"),
        "point_logical_date": point.manifest.get("logical_date"),
        "seconds": round(time.monotonic() - started, 3),
    }
    _write_state(plan.state_dir, "verify", out)
    log.info(
        "restore drill %s: %s verified (%d files, %d bytes); %d partition(s) erased by retention",
        plan.run_id,
        plan.recovery_point_id,
        stats["files"],
        stats["bytes"],
        len(shredded),
    )
    return out


# -- restoring -------------------------------------------------------------------------------


def recorded_table(policy: Policy, name: str, recorded: Mapping[str, Any]) -> Table:
    """The table as the point recorded it (not as today's policy may describe it).

    Columns keep the policy's attributes (formats, value sets) where the policy still has the
    column with the same type, so masking and checks behave as they did at backup time.
    """
    current = policy.tables.get(name)
    columns = []
    for spec in recorded["schema"]:
        col_name, col_type = spec["name"], spec["type"]
        if col_type not in _SQL_TYPES:
            raise IntegrityError(
                f"recovery point: {name}.{col_name} has an unknown recorded type {col_type!r}"
            )
        if (
            current is not None
            and col_name in current.column_names
            and current.column(col_name).type == col_type
        ):
            base = current.column(col_name)
            columns.append(dataclasses.replace(base, nullable=bool(spec.get("nullable", base.nullable))))
        else:
            columns.append(
                Column(
                    name=col_name,
                    type=col_type,
                    sensitivity=spec.get("class", "operational"),
                    nullable=bool(spec.get("nullable", True)),
                )
            )
    return Table(
        name=name,
        backup=True,
        primary_key=recorded["primary_key"],
        columns=tuple(columns),
        parent=current.parent if current else None,
        references=dict(current.references) if current else {},
    )


def recorded_schema(table: Table) -> pa.Schema:
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.type], nullable=True) for c in table.columns])


def relaxed_not_null(manifest: Mapping[str, Any], table: str) -> set[str]:
    """Columns whose NOT NULL was already violated in the store at backup time (kept nullable)."""
    out = set()
    for f in manifest.get("validation", {}).get("failed", []):
        if f.get("table") == table and str(f.get("key", "")).endswith(".not_null"):
            out.add(str(f["key"]).rsplit(".", 1)[0])
    for v in manifest.get("backup", {}).get("violations", []):
        if v.get("table") == table and v.get("rule") == "not_null":
            out.add(v["column"])
    return out


def create_table_sql(table: Table, *, schema: str | None = None, relaxed: Collection[str] = ()) -> str:
    """DDL in the store contract's conventions (BIGINT, TEXT, TIMESTAMPTZ, NOT NULL, PRIMARY KEY)."""
    cols = []
    for c in table.columns:
        not_null = "" if (c.nullable or c.name in relaxed) else " NOT NULL"
        pk = " PRIMARY KEY" if c.name == table.primary_key else ""
        cols.append(f"    {db.quote_ident(c.name)} {_SQL_TYPES[c.type]}{not_null}{pk}")
    name = (
        db.quote_ident(table.name)
        if schema is None
        else f"{db.quote_ident(schema)}.{db.quote_ident(table.name)}"
    )
    return f"CREATE TABLE {name} (\n" + ",\n".join(cols) + "\n)"


def sqlite_timestamp_text(arr: pa.Array) -> pa.Array:
    """``timestamp[us, UTC]`` -> the store's SQLite text: ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (UTC)."""
    us = arr.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    secs = np.floor_divide(us, 1_000_000)
    frac = us - secs * 1_000_000
    base = pc.strftime(pa.array(secs, type=pa.timestamp("s")), format="%Y-%m-%d %H:%M:%S")
    digits = pc.utf8_lpad(pa.array(frac).cast(pa.string()), width=6, padding="0")
    suffix = pc.if_else(pa.array(frac != 0), pc.binary_join_element_wise(".", digits, ""), "")
    text = pc.binary_join_element_wise(base, suffix, "")
    return pc.if_else(arr.is_valid(), text, pa.scalar(None, pa.string()))


class _Loader:
    """Inserts canonical record batches into one restored table, in one transaction."""

    def __init__(
        self,
        target: DatabaseTarget,
        info: TargetInfo,
        table: Table,
        relaxed: Collection[str],
        *,
        replace: bool,
    ):
        """Create the table (``replace``: drop this run's own copy from an earlier attempt first)."""
        self.target = target
        self.table = table
        self.names = table.column_names
        self.rows = 0
        if target.is_sqlite:
            self.conn: Any = sqlite3.connect(target.path or "", timeout=60, isolation_level=None)
            self.conn.execute("PRAGMA synchronous = NORMAL")
            if replace:
                self.conn.execute(f"DROP TABLE IF EXISTS {db.quote_ident(table.name)}")
            self.conn.execute(create_table_sql(table, relaxed=relaxed))
            self.conn.execute("BEGIN")
            cols = ", ".join(db.quote_ident(n) for n in self.names)
            marks = ", ".join("?" for _ in self.names)
            self.insert = f"INSERT INTO {db.quote_ident(table.name)} ({cols}) VALUES ({marks})"
            self.ts = [pa.types.is_timestamp(_ARROW_TYPES[c.type]) for c in table.columns]
        else:
            import adbc_driver_postgresql.dbapi as pg  # only for PostgreSQL targets

            assert info.schema
            self.schema = info.schema
            with db.connection(target, autocommit=True) as conn:
                if replace:
                    conn.execute(
                        f"DROP TABLE IF EXISTS {db.quote_ident(info.schema)}.{db.quote_ident(table.name)}"
                    )
                conn.execute(create_table_sql(table, schema=info.schema, relaxed=relaxed))
            try:
                self.conn = pg.connect(target.postgres_uri())
            except Exception as exc:  # noqa: BLE001 - the driver raises many types; we rename
                raise SourceUnavailable(
                    f"connection {target.conn_id!r}: cannot reach PostgreSQL at {target.describe()} "
                    f"({type(exc).__name__})"
                ) from None
            self.cursor = self.conn.cursor()

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self.target.is_sqlite:
            columns = []
            for name, is_ts in zip(self.names, self.ts, strict=True):
                arr = batch.column(name)
                columns.append((sqlite_timestamp_text(arr) if is_ts else arr).to_pylist())
            self.conn.executemany(self.insert, zip(*columns, strict=True))
        else:
            self.cursor.adbc_ingest(self.table.name, batch, mode="append", db_schema_name=self.schema)
        self.rows += batch.num_rows

    def commit(self) -> None:
        if self.target.is_sqlite:
            self.conn.execute("COMMIT")
        else:
            self.conn.commit()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.target.is_sqlite and self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        if not self.target.is_sqlite:
            with contextlib.suppress(Exception):
                self.cursor.close()
        self.conn.close()


# purge tombstones: keyed hashes of purged primary keys (lomevexi_governance.purge) -------------

TombstoneFilter = Callable[[str, Any, Mapping[str, set[str]], Any], Any]


def _purge_module() -> Any:
    try:
        from lomevexi_governance import purge
    except ModuleNotFoundError as exc:
        if exc.name != "lomevexi_governance.purge":
            raise
        return None
    return purge


def load_tombstones(storage: Storage, keys: KeyService) -> dict[str, set[str]]:
    """The purge tombstones to re-apply on restore (``{table: {hmac hex}}``). Fails closed."""
    purge = _purge_module()
    if purge is None:
        if any(True for _ in storage.walk_files("ledger/tombstones")):
            raise ConfigurationError(
                "purge tombstones exist under "
                + storage.describe("ledger/tombstones")
                + " but lomevexi_governance.purge is not available to read them; refusing to restore "
                "rows that may have been purged"
            )
        return {}
    return {t: set(v) for t, v in purge.load_tombstones(storage, keys).items()}


def tombstone_mask(table: str, pks: pa.Array, tombstones: Mapping[str, set[str]], hasher: Any) -> np.ndarray:
    """Rows of ``pks`` whose keyed hash is a purge tombstone (True = drop)."""
    if not tombstones.get(table):
        return np.zeros(len(pks), dtype=bool)
    purge = _purge_module()
    if purge is not None:
        mask = purge.tombstone_filter(table, pks, tombstones, hasher)
        if isinstance(mask, (pa.Array, pa.ChunkedArray)):
            mask = mask.to_numpy(zero_copy_only=False)
        return np.asarray(mask, dtype=bool)
    wanted = tombstones[table]
    return np.fromiter((h in wanted for h in hasher.many(table, pks.to_pylist())), dtype=bool, count=len(pks))


def _open_file(storage: Storage, keys: KeyService, rel: str, encrypted: bool) -> Any:
    from lomevexi_governance import crypto

    if encrypted:
        return crypto.open_encrypted(storage.full(rel), keys, filesystem=storage.filesystem)
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(storage.filesystem.open_input_file(storage.full(rel)))
    except (OSError, pa.ArrowException) as exc:
        raise IntegrityError(f"cannot parse {storage.describe(rel)}: {type(exc).__name__}") from None


def _diff_columns(expected: Mapping[str, int], got: Mapping[str, int], columns: Sequence[str]) -> list[str]:
    return [c for c in [checksums.ROWS, *columns] if expected.get(c, 0) != got.get(c, 0)]


def restore_tables(
    plan: DrillPlan,
    *,
    storage: Storage,
    keys: KeyService,
    policy: Policy,
    info: TargetInfo,
    target: DatabaseTarget,
    tombstones: Mapping[str, set[str]] | None = None,
) -> dict[str, Any]:
    """Decrypt every file and load it batch by batch into ``target``.

    Each file's rows are checksummed as they are read and compared with the file's checksums in
    the manifest, so a file that decrypts to something else is named. Rows whose primary key
    has a purge tombstone are dropped (their checksum contribution is kept, to subtract).
    """
    from lomevexi_governance.crypto import read_batches

    check_deadline(plan, "before the restore")
    verified = _read_state(plan.state_dir, "verify")
    if verified is None:
        raise IntegrityError(f"restore drill {plan.run_id}: the point was not verified; refusing to restore")
    started_at = _now()
    started = time.monotonic()
    point = rp.load_point(storage, plan.recovery_point_id, keys)  # the signature again: no swap since verify
    manifest = point.manifest
    encrypted = bool(manifest.get("encrypted", True))
    base = rp.point_dir(plan.recovery_point_id)
    if tombstones is None:
        tombstones = load_tombstones(storage, keys)
    hasher = keys.tombstone_hasher() if any(tombstones.values()) else None
    out_tables: dict[str, Any] = {}
    earlier = _read_state(plan.state_dir, "restore") or {}  # an earlier attempt of this step
    ours = set(earlier.get("created_tables", []))
    created: list[str] = []
    shredded_during: list[dict[str, Any]] = []

    def progress() -> None:  # teardown must find every table this run created, even after a crash
        started_iso = started_at.isoformat()
        state = {
            "restore_started_at": started_iso,
            "created_tables": sorted(set(created) | ours),
            "complete": False,
        }
        _write_state(plan.state_dir, "restore", state)

    progress()
    for name in verified["tables"]:
        mt = manifest["tables"][name]
        table = recorded_table(policy, name, mt)
        schema = recorded_schema(table)
        pk = table.primary_key
        by_path = {f["path"]: f for f in mt["files"]}
        t_started = time.monotonic()
        # the scratch file and the drill schema are this run's own; in a connection's SQLite
        # database only a table this run created in an earlier attempt may be replaced
        replace = info.scratch or info.dialect == "postgresql" or name in ours
        loader = _Loader(target, info, table, relaxed_not_null(manifest, name), replace=replace)
        created.append(name)  # only once created: teardown must never drop a table it did not create
        progress()
        dropped: dict[str, int] = {}
        try:
            for path in verified["restore_files"][name]:
                f = by_path[path]
                rel = f"{base}/{path}"
                try:
                    pf = _open_file(storage, keys, rel, encrypted)
                except KeyMaterialError:
                    # shredded by a purge that ran since verify_point (shredding does not wait for
                    # pins: retention is an obligation); anything else fails, naming the key
                    key_ids = sorted(set(f.get("key_ids", {}).values()))
                    if not _erased_by_retention(keys, key_ids):
                        raise
                    shredded_during.append(_shredded_entry(keys, manifest, name, f, key_ids))
                    continue
                found = pf.schema_arrow
                if found.names != schema.names or not all(
                    found.field(n).type.equals(schema.field(n).type) for n in schema.names
                ):
                    raise IntegrityError(
                        f"recovery point {plan.recovery_point_id!r}: file {path} has columns/types "
                        f"{[(x.name, str(x.type)) for x in found]}, not the recorded schema of {name}"
                    )
                read_sums: dict[str, int] = {}
                for raw in read_batches(pf, storage.describe(rel), batch_size=plan.batch_rows):
                    check_deadline(plan, f"while restoring {name}")
                    rows = pa.RecordBatch.from_arrays(raw.columns, schema=schema)
                    read_sums = checksums.combine([read_sums, checksums.batch_checksums(rows, pk)])
                    if hasher is not None:
                        drop = tombstone_mask(name, rows.column(pk), tombstones, hasher)
                        if drop.any():
                            gone = rows.filter(pa.array(drop))
                            dropped = checksums.combine([dropped, checksums.batch_checksums(gone, pk)])
                            rows = rows.filter(pa.array(~drop))
                    loader.write(rows)
                bad = _diff_columns(checksums.from_hex(f.get("checksums", {})), read_sums, schema.names)
                if bad:
                    raise IntegrityError(
                        f"recovery point {plan.recovery_point_id!r}: file {path} decrypts to data that does "
                        f"not match its manifest checksums (column(s) {bad})"
                    )
            loader.commit()
        finally:
            loader.close()
        seconds = time.monotonic() - t_started
        out_tables[name] = {
            "files": len(verified["restore_files"][name]),
            "rows_written": loader.rows,
            "dropped_by_purge_tombstones": int(dropped.get(checksums.ROWS, 0)),
            "dropped_checksums": checksums.to_hex(dropped) if dropped else {},
            "seconds": round(seconds, 3),
            "rows_per_second": round(loader.rows / seconds) if seconds > 0 else None,
        }
        log.info(
            "restore drill %s: %s restored, %d rows (%d dropped by purge tombstones) in %.2fs",
            plan.run_id,
            name,
            loader.rows,
            out_tables[name]["dropped_by_purge_tombstones"],
            seconds,
        )
    seconds = time.monotonic() - started
    rows = sum(t["rows_written"] for t in out_tables.values())
    out = {
        "restore_started_at": started_at.isoformat(),
        "restore_ended_at": _now().isoformat(),
        "seconds": round(seconds, 3),
        "rows_written": rows,
        "rows_per_second": round(rows / seconds) if seconds > 0 else None,
        "tables": out_tables,
        "created_tables": created,
        "tombstone_tables": sorted(t for t, v in tombstones.items() if v),
        "shredded_during_drill": shredded_during,
        "complete": True,
    }
    _write_state(plan.state_dir, "restore", out)
    return out


# -- verifying the restored data -------------------------------------------------------------


def _null_aware_equal(a: pa.Array, b: pa.Array) -> np.ndarray:
    eq = pc.fill_null(pc.equal(a, b), False)
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    return np.asarray(pc.or_(eq, both_null).to_numpy(zero_copy_only=False), dtype=bool)


def _pks(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return np.asarray(arr.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


class LiveCompare:
    """Compare restored rows with the live store, for rows unchanged since the point.

    A store row counts as unchanged when its ``updated_at`` is not after the point's snapshot
    start. Restored rows the store no longer has (purged or deleted since) are counted, not
    mismatches. Tables without ``updated_at`` can change without trace, so they are compared by
    primary-key presence only. Store values go through the backup's card-number masking first,
    so a masked value compares equal to what the backup was allowed to keep. Mismatches are
    reported as counts and primary keys, never values.
    """

    def __init__(
        self,
        table: Table,
        store: Snapshot,
        snapshot_at: dt.datetime,
        *,
        mode: str,
        sample_rows: int,
        expected_rows: int,
    ):
        from lomevexi_governance.scan import ContentScanner

        self.table = table
        self.store = store
        self.snapshot_at = snapshot_at
        self.mode = mode
        self.values = "updated_at" in table.column_names
        self.scanner = ContentScanner(table)
        self.stride = (
            max(1, math.ceil(expected_rows / sample_rows)) if mode == "sample" and sample_rows > 0 else 1
        )
        self.sample_rows = sample_rows
        self.position = 0
        self.prev_hi: int | None = None
        self.stats: dict[str, Any] = {
            "mode": mode,
            "compared": "values" if self.values else "primary key presence (no updated_at column)",
            "rows_checked": 0,
            "rows_compared": 0,
            "mismatched_rows": 0,
            "mismatched_columns": {},
            "mismatched_primary_keys": [],
            "absent_from_store": 0,
            "changed_since_point": 0,
        }
        if mode == "full":
            self.stats["missing_from_restore"] = 0
        self.schema = recorded_schema(table)
        self.pk = table.primary_key

    def _store_batches(self, where: str) -> Iterator[pa.RecordBatch]:
        """Store rows (masked the way the backup masks) as canonical batches, in key order."""
        cols = ", ".join(db.quote_ident(c) for c in self.table.column_names)
        sql = (
            f"SELECT {cols} FROM {db.quote_ident(self.table.name)}{where} ORDER BY {db.quote_ident(self.pk)}"
        )
        for batch in self.store.stream_sql(sql, self.table, self.schema):
            yield self.scanner.process(batch)

    def _store_rows(self, where: str) -> pa.Table:
        return pa.Table.from_batches(list(self._store_batches(where)), schema=self.schema)

    def process(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        pk = db.quote_ident(self.pk)
        if self.mode == "full":
            hi = int(pc.max(batch.column(self.pk)).as_py())
            lo = f"{pk} > {int(self.prev_hi)} AND " if self.prev_hi is not None else ""
            store = self._store_rows(f" WHERE {lo}{pk} <= {hi}")
            self.prev_hi = hi
            self._compare(batch, store, count_missing=True)
            return
        idx = np.arange(self.position, self.position + batch.num_rows)
        self.position += batch.num_rows
        room = self.sample_rows - self.stats["rows_checked"]
        take = np.flatnonzero(idx % self.stride == 0)[: max(room, 0)]
        if not len(take):
            return
        sample = batch.take(pa.array(take))
        keys = _pks(sample.column(self.pk))
        parts = [
            self._store_rows(f" WHERE {pk} IN ({', '.join(str(int(k)) for k in keys[i : i + _IN_CHUNK])})")
            for i in range(0, len(keys), _IN_CHUNK)
        ]
        store = pa.concat_tables(parts) if parts else self.schema.empty_table()
        self._compare(sample, store, count_missing=False)

    def finish(self) -> dict[str, Any]:
        if self.mode == "full":  # store rows above the last restored key (all of them for an empty table)
            where = (
                f" WHERE {db.quote_ident(self.pk)} > {int(self.prev_hi)}" if self.prev_hi is not None else ""
            )
            none = pa.RecordBatch.from_pylist([], schema=self.schema)
            for batch in self._store_batches(where):  # streamed: may be a whole table
                self._compare(none, pa.Table.from_batches([batch]), count_missing=True)
        self.stats["mismatched_primary_keys"] = self.stats["mismatched_primary_keys"][:MAX_REPORTED_KEYS]
        return self.stats

    def _compare(self, restored: pa.RecordBatch, store: pa.Table, *, count_missing: bool) -> None:
        r_pk = _pks(restored.column(self.pk))
        s_pk_all = _pks(store.column(self.pk))
        unchanged = np.ones(len(s_pk_all), dtype=bool)
        if "updated_at" in self.table.column_names and store.num_rows:
            upd = store.column("updated_at")
            after = pc.fill_null(pc.greater(upd, pa.scalar(self.snapshot_at, type=TIMESTAMP)), False)
            unchanged = ~np.asarray(after.to_numpy(zero_copy_only=False), dtype=bool)
        self.stats["rows_checked"] += len(r_pk)
        in_store = np.isin(r_pk, s_pk_all)
        self.stats["absent_from_store"] += int((~in_store).sum())
        s_pk = s_pk_all[unchanged]
        changed_pks = s_pk_all[~unchanged]
        self.stats["changed_since_point"] += int(np.isin(r_pk, changed_pks).sum())
        if count_missing:
            self.stats["missing_from_restore"] += int((~np.isin(s_pk, r_pk)).sum())
        store_u = store.filter(pa.array(unchanged)) if store.num_rows else store
        common, ri, si = np.intersect1d(r_pk, s_pk, assume_unique=True, return_indices=True)
        self.stats["rows_compared"] += len(common)
        if not len(common) or not self.values:
            return
        r = restored.take(pa.array(ri))
        s = store_u.take(pa.array(si))
        bad_rows = np.zeros(len(common), dtype=bool)
        for name in self.table.column_names:
            if name == self.pk:
                continue
            a = r.column(name)
            b = s.column(name)
            if isinstance(b, pa.ChunkedArray):
                b = b.combine_chunks()
            differs = ~_null_aware_equal(a, b)
            if differs.any():
                cols = self.stats["mismatched_columns"]
                cols[name] = cols.get(name, 0) + int(differs.sum())
                bad_rows |= differs
        if bad_rows.any():
            self.stats["mismatched_rows"] += int(bad_rows.sum())
            room = MAX_REPORTED_KEYS - len(self.stats["mismatched_primary_keys"])
            if room > 0:
                self.stats["mismatched_primary_keys"].extend(int(k) for k in common[bad_rows][:room])


def reference_check(
    conn: Any,
    table: Table,
    restored: set[str],
    backup_violations: Sequence[Mapping[str, Any]],
    erased: Mapping[str, bool],
) -> list[dict[str, Any]]:
    """Orphans in the restored tables (items to orders and so on), against the backup-time count.

    More orphans than the store had at backup time break the restored database. When the parent
    table lost rows to retention since the point, such an orphan is a child that outlived its
    parent's erasure without a purge tombstone: still a failure, and the entry says so.
    """
    out = []
    for column, (ref_table, ref_column) in sorted(table.references.items()):
        entry: dict[str, Any] = {
            "table": table.name,
            "column": column,
            "references": f"{ref_table}.{ref_column}",
        }
        if ref_table not in restored:
            out.append(entry | {"status": "not_checked", "reason": f"{ref_table} was not restored"})
            continue
        c, p = db.quote_ident(column), db.quote_ident(ref_column)
        sql = (
            f"SELECT count(*) FROM {db.quote_ident(table.name)} c WHERE c.{c} IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM {db.quote_ident(ref_table)} p WHERE p.{p} = c.{c})"
        )
        orphans = int(conn.execute(sql).fetchone()[0])
        at_backup = sum(
            int(v.get("count", 0))
            for v in backup_violations
            if v.get("table") == table.name and v.get("column") == column and v.get("rule") == "reference"
        )
        if orphans == 0:
            status = "ok"
        elif orphans <= at_backup:
            status = "pre_existing"  # the store already had these orphans when the point was taken
        else:
            status = "broken"
        out.append(
            entry
            | {
                "status": status,
                "orphans": orphans,
                "orphans_at_backup": at_backup,
                "parent_rows_erased_since_point": bool(erased.get(ref_table)),
            }
        )
    return out


def compare_validation(
    recorded: Mapping[str, Any] | None,
    restored: Mapping[str, Any],
    tables: Sequence[str],
    erased: Mapping[str, bool],
) -> dict[str, Any]:
    """Compare the GX outcome on the restored data with the one recorded (signed) at backup time.

    Only ``backup``-stage expectations are comparable: ``source``-stage ones describe the store
    before masking (extra columns, raw card numbers) and are reported as recorded. Equal
    outcomes pass, including pre-existing failures (reported). A failure that appears on
    restore fails the drill; one that disappears does too, unless rows of that table were
    erased since the point (retention shredding or purge), which can remove the offending rows.
    """
    restored_failed = {
        (f["table"], f["key"]): f for f in restored.get("failed", []) if f.get("stage") == "backup"
    }
    if not recorded or "tables" not in recorded:
        return {
            "status": "not_recorded",
            "ok": True,
            "note": "the point carries no per-table Great Expectations outcome to compare with",
            "restored_failed": sorted(f"{t}:{k}" for t, k in restored_failed),
        }
    recorded_failed = {
        (f["table"], f["key"]): f
        for f in recorded.get("failed", [])
        if f.get("stage") == "backup" and f.get("expectation") != "reference"
    }
    per_table: dict[str, Any] = {}
    ok = True
    for t in tables:
        before = {k for (tt, k) in recorded_failed if tt == t}
        now = {k for (tt, k) in restored_failed if tt == t}
        appeared = sorted(now - before)
        vanished = sorted(before - now)
        count_changed = sorted(
            k
            for k in before & now
            if not erased.get(t)
            and recorded_failed[(t, k)].get("unexpected_count")
            != restored_failed[(t, k)].get("unexpected_count")
        )
        differs = bool(appeared or count_changed or (vanished and not erased.get(t)))
        entry = {
            "status": "differs" if differs else "match",
            "success_at_backup": bool(recorded.get("tables", {}).get(t, {}).get("success", not before)),
            "success_on_restore": not now,
            "pre_existing_failures": sorted(before & now),
        }
        if appeared:
            entry["new_failures"] = appeared
        if vanished:
            entry["no_longer_failing"] = vanished
            if erased.get(t) and not appeared:
                entry["note"] = (
                    "rows erased since the point (retention or purge) may have removed the offending rows"
                )
        if count_changed:
            entry["unexpected_count_changed"] = count_changed
        per_table[t] = entry
        ok = ok and not differs
    source_findings = [
        {k: f.get(k) for k in ("table", "column", "key", "unexpected_count")}
        for f in recorded.get("failed", [])
        if f.get("stage") == "source"
    ]
    return {
        "status": "match" if ok else "differs",
        "ok": ok,
        "tables": per_table,
        "source_stage_findings_at_backup": source_findings,
    }


def verify_restored(
    plan: DrillPlan,
    *,
    storage: Storage,
    keys: KeyService,
    policy: Policy,
    target: DatabaseTarget,
    store: DatabaseTarget | None,
    validator_factory: Callable[[Policy, Path, list[str]], Any] | None = None,
) -> dict[str, Any]:
    """Read the restored tables back and check them; raise :class:`DrillFailed` naming what differs."""
    check_deadline(plan, "before verifying the restored data")
    verified = _read_state(plan.state_dir, "verify")
    restored = _read_state(plan.state_dir, "restore")
    if not verified or not restored or not restored.get("complete"):
        raise IntegrityError(f"restore drill {plan.run_id}: the restore did not complete; nothing to verify")
    point = rp.load_point(storage, plan.recovery_point_id, keys)
    manifest = point.manifest
    tables: list[str] = verified["tables"]
    snapshot_at = dt.datetime.fromisoformat(verified["snapshot_started_at"])
    skipped: dict[str, dict[str, int]] = {t: {} for t in tables}
    skipped_rows: dict[str, int] = {t: 0 for t in tables}
    for part in verified["shredded_partitions_skipped"] + restored.get("shredded_during_drill", []):
        for f in part["files"]:
            skipped[f["table"]] = checksums.combine([skipped[f["table"]], checksums.from_hex(f["checksums"])])
            skipped_rows[f["table"]] += int(f["rows"])
    if validator_factory is None:
        from lomevexi_governance.validation import GxValidator

        def validator_factory(p: Policy, out: Path, names: list[str]) -> Any:
            return GxValidator(p, out, tables=names)

    gx_tables = [t for t in tables if t in policy.tables and policy.tables[t].backup]
    validator = (
        validator_factory(policy, Path(plan.report_dir) / "validation", gx_tables) if gx_tables else None
    )
    started = time.monotonic()
    per_table: dict[str, Any] = {}
    problems: list[str] = []
    erased: dict[str, bool] = {}
    store_ctx: Any = (
        Snapshot(store, batch_rows=plan.batch_rows) if store is not None else contextlib.nullcontext()
    )
    with Snapshot(target, batch_rows=plan.batch_rows) as snap, store_ctx as store_snap:
        store_columns: dict[str, list[str] | None] = {}
        for name in tables:
            mt = manifest["tables"][name]
            table = recorded_table(policy, name, mt)
            r_info = restored["tables"][name]
            dropped = checksums.from_hex(r_info.get("dropped_checksums") or {})
            expected = checksums.subtract(
                checksums.subtract(checksums.from_hex(mt.get("checksums") or {}), skipped[name]), dropped
            )
            expected_rows = int(mt["rows"]) - skipped_rows[name] - int(r_info["dropped_by_purge_tombstones"])
            erased[name] = bool(skipped_rows[name] or r_info["dropped_by_purge_tombstones"])
            live = None
            live_note = None
            if store_snap is not None:
                present = store_columns.setdefault(name, store_snap.columns(name))
                lacking = [c for c in table.column_names if present is None or c not in present]
                if lacking:
                    live_note = f"the live store lacks {name} column(s) {lacking}; not compared"
                else:
                    live = LiveCompare(
                        table,
                        store_snap,
                        snapshot_at,
                        mode=plan.verification,
                        sample_rows=plan.sample_rows,
                        expected_rows=expected_rows,
                    )
            gx = (
                validator.backup_stage(policy.tables[name])
                if validator is not None and name in gx_tables
                else None
            )
            got: dict[str, int] = {}
            for batch in snap.stream(table):
                check_deadline(plan, f"while verifying {name}")
                got = checksums.combine([got, checksums.batch_checksums(batch, table.primary_key)])
                if gx is not None:
                    gx.process(batch)
                if live is not None:
                    live.process(batch)
            finish = getattr(gx, "finish", None)  # GX validates gathered batches at the table's end
            if finish is not None:
                finish()
            if gx is not None and validator is not None and not got.get(checksums.ROWS):
                validator.cover_empty(policy.tables[name])
            bad = _diff_columns(expected, got, table.column_names)
            restored_rows = int(got.get(checksums.ROWS, 0))
            entry = {
                "expected_rows": expected_rows,
                "restored_rows": restored_rows,
                "rows_in_point": int(mt["rows"]),
                "rows_ok": restored_rows == expected_rows,
                "checksums": "ok" if not bad else "mismatch",
                "mismatched_columns": [c for c in bad if c != checksums.ROWS],
                "columns_checked": len(table.column_names),
                "skipped_shredded_rows": skipped_rows[name],
                "dropped_by_purge_tombstones": int(r_info["dropped_by_purge_tombstones"]),
                "files_restored": r_info["files"],
            }
            if live is not None:
                entry["live_store"] = live.finish()
                if entry["live_store"]["mismatched_rows"]:
                    live_d = entry["live_store"]
                    problems.append(
                        f"{name}: {live_d['mismatched_rows']} restored row(s) differ from the live store "
                        f"although unchanged since the point (columns {sorted(live_d['mismatched_columns'])})"
                    )
            else:
                entry["live_store"] = {
                    "mode": plan.verification,
                    "skipped": live_note or "no store connection",
                }
            if not entry["rows_ok"]:
                problems.append(f"{name}: {restored_rows} rows restored, {expected_rows} expected")
            if entry["mismatched_columns"]:
                problems.append(f"{name}: checksum mismatch in column(s) {entry['mismatched_columns']}")
            per_table[name] = entry
    with db.connection(target) as conn:
        violations = manifest.get("backup", {}).get("violations", [])
        for name in tables:
            refs = reference_check(
                conn,
                recorded_table(policy, name, manifest["tables"][name]),
                set(tables),
                violations,
                erased,
            )
            per_table[name]["references"] = refs
            for r in refs:
                if r["status"] == "broken":
                    problems.append(
                        f"{name}.{r['column']}: {r['orphans']} row(s) reference missing "
                        f"{r['references']} (at backup: {r['orphans_at_backup']})"
                        + (
                            f"; {r['references'].split('.')[0]} rows were erased since the point but these "
                            "children have no purge tombstone"
                            if r["parent_rows_erased_since_point"]
                            else ""
                        )
                    )
    if validator is not None:
        gx_summary = validator.finish(extra_columns={}, run_name=plan.run_id)
        validation = compare_validation(manifest.get("validation"), gx_summary, gx_tables, erased)
        validation["results_dir"] = gx_summary.get("results_dir")
    else:
        validation = {"status": "not_run", "ok": True}
    for t, v in validation.get("tables", {}).items():
        per_table[t]["validation"] = v
        if v["status"] == "differs":
            problems.append(
                f"{t}: Great Expectations outcome differs from the backup's "
                f"(new failures {v.get('new_failures', [])}, "
                f"no longer failing {v.get('no_longer_failing', [])}, "
                f"counts changed {v.get('unexpected_count_changed', [])})"
            )
    ended = _now()
    restore_started = dt.datetime.fromisoformat(restored["restore_started_at"])
    out = {
        "verification_ended_at": ended.isoformat(),
        "seconds": round(time.monotonic() - started, 3),
        "rto_seconds": round((ended - restore_started).total_seconds(), 3),
        "rpo_seconds": round((restore_started - snapshot_at).total_seconds(), 3),
        "tables": per_table,
        "validation": validation,
        "problems": problems,
        "ok": not problems,
    }
    _write_state(plan.state_dir, "verification", out)
    if problems:
        raise DrillFailed(
            f"restore drill of {plan.recovery_point_id}: the restored data does not match: "
            + "; ".join(problems)
        )
    log.info(
        "restore drill %s: restored data verified (RTO %.1fs, RPO %.0fs)",
        plan.run_id,
        out["rto_seconds"],
        out["rpo_seconds"],
    )
    return out


# -- report ----------------------------------------------------------------------------------


def finish_drill(
    *,
    report_dir: str | os.PathLike[str],
    report_root: str,
    storage: Storage | None,
    run_id: str,
    dag_id: str = DAG_ID,
    params: Mapping[str, Any] | None = None,
    triggered_by: str | None = None,
    logical_date: dt.datetime | None = None,
) -> dict[str, Any]:
    """Write summary.json, report.html, the history entry and the catalog record; return the summary.

    Reads what the steps left in ``state/``: a run whose steps failed or never ran is FAILED
    (or TIMED_OUT), naming the first failure.
    """
    report_dir = Path(report_dir)
    state = report_dir / STATE_DIR
    plan_d = _read_state(state, "plan")
    failure = _read_state(state, "failure")
    verify_d = _read_state(state, "verify") or {}
    restore_d = _read_state(state, "restore") or {}
    verification = _read_state(state, "verification") or {}
    target_d = _read_state(state, "target")
    teardown_d = _read_state(state, "teardown")
    pin_d = _read_state(state, "pin")
    unpin_d = _read_state(state, "unpin")
    plan = DrillPlan.from_dict(plan_d) if plan_d else None

    if failure is not None:
        status = failure["status"]
    elif not verification.get("ok"):
        status = FAILED
        failure = {
            "step": "verify_restored",
            "status": FAILED,
            "error": "the drill did not complete every step",
        }
    elif (
        plan is not None
        and dt.datetime.fromisoformat(verification["verification_ended_at"]) > plan.deadline_at
    ):
        status = TIMED_OUT
        failure = {
            "step": "verify_restored",
            "status": TIMED_OUT,
            "error": f"the drill finished after its deadline {plan.deadline}",
        }
    elif plan is not None and not plan.keep_restored and teardown_d is None:
        status = FAILED
        failure = {
            "step": "teardown_target",
            "status": FAILED,
            "error": "the restored copy was not removed (teardown did not run)",
        }
    else:
        status = SUCCESSFUL

    point_id = plan.recovery_point_id if plan else None
    tables: dict[str, Any] = {}
    if verification.get("tables"):
        tables = verification["tables"]
    elif verify_d.get("tables"):
        for name in verify_d["tables"]:
            r = (restore_d.get("tables") or {}).get(name, {})
            tables[name] = {
                "expected_rows": None,
                "restored_rows": r.get("rows_written"),
                "checksums": "not_verified",
            }
    target = TargetInfo.from_dict(target_d) if target_d else None
    kept = bool(plan and plan.keep_restored and target is not None and restore_d)
    summary: dict[str, Any] = {
        "dag_id": dag_id,
        "run_id": run_id,
        "logical_date": logical_date.isoformat() if logical_date else (plan.logical_date if plan else None),
        "status": status,
        "recovery_point_id": point_id,
        "triggered_by": triggered_by,
        "params": dict(params or {}),
        "verification": plan.verification if plan else (params or {}).get("verification"),
        "started_at": plan.started_at if plan else None,
        "finished_at": _now().isoformat(),
        "timeout_minutes": round(plan.timeout_seconds / 60, 3) if plan else None,
        "tables": tables,
        "rows_expected": sum(t.get("expected_rows") or 0 for t in tables.values()) if verification else None,
        "rows_restored": sum(t.get("restored_rows") or 0 for t in tables.values()) if restore_d else None,
        "rto_seconds": verification.get("rto_seconds"),
        "rpo_seconds": verification.get("rpo_seconds"),
        "restore": {
            k: restore_d.get(k)
            for k in ("restore_started_at", "restore_ended_at", "seconds", "rows_written", "rows_per_second")
        }
        if restore_d
        else None,
        "point": {
            k: verify_d.get(k)
            for k in (
                "signature",
                "files_verified",
                "bytes_verified",
                "snapshot_started_at",
                "point_created_at",
                "point_logical_date",
            )
        }
        if verify_d
        else None,
        "shredded_partitions_skipped": [
            {k: v for k, v in p.items() if k != "files"} | {"files": [f["path"] for f in p["files"]]}
            for p in verify_d.get("shredded_partitions_skipped", [])
            + restore_d.get("shredded_during_drill", [])
        ],
        "validation": verification.get("validation"),
        "target": {"dialect": target.dialect, "conn_id": target.conn_id, "scratch": target.scratch}
        if target
        else None,
        "teardown": teardown_d,
        "pin": {"pinned": bool(pin_d), "unpinned": bool(unpin_d)},
        "failure": failure,
    }
    if kept and target is not None:
        summary["restored_to"] = target.restored_to()
    from lomevexi_governance.ledger import Ledger

    ledger_storage = storage_for(report_root)
    entry = Ledger(ledger_storage, HISTORY_REL).append(
        {
            "dag_id": dag_id,
            "run_id": run_id,
            "recovery_point_id": point_id,
            "status": status,
            "triggered_by": triggered_by,
            "rto_seconds": summary["rto_seconds"],
            "rpo_seconds": summary["rpo_seconds"],
            "rows_restored": summary["rows_restored"],
            "tables": {
                t: {
                    "expected_rows": v.get("expected_rows"),
                    "restored_rows": v.get("restored_rows"),
                    "checksums": v.get("checksums"),
                }
                for t, v in tables.items()
            },
            "shredded_partitions_skipped": [p["partition"] for p in summary["shredded_partitions_skipped"]],
            "failure": {"step": failure["step"], "error": failure["error"]} if failure else None,
            "summary": str(report_dir / "summary.json"),
        }
    )
    history = {"ledger": ledger_storage.describe(HISTORY_REL), "seq": entry["seq"], "hash": entry["hash"]}
    summary["history"] = history
    write_json_atomic(report_dir / "summary.json", summary)
    write_text_atomic(report_dir / "report.html", render_html(summary))
    if storage is not None and point_id is not None:
        rp.record(
            storage,
            "drills",
            point_id,
            {
                "recovery_point_id": point_id,
                "run_id": run_id,
                "status": status,
                "finished_at": summary["finished_at"],
                "rto_seconds": summary["rto_seconds"],
                "rpo_seconds": summary["rpo_seconds"],
                "rows_restored": summary["rows_restored"],
                "summary": str(report_dir / "summary.json"),
                "failure": failure["error"] if failure else None,
            },
        )
    log.info("restore drill %s: %s (summary %s)", run_id, status, report_dir / "summary.json")
    return summary


def raise_for_status(summary: Mapping[str, Any], summary_path: str | os.PathLike[str] | None = None) -> None:
    """Fail (the DAG run) unless the drill was SUCCESSFUL; the message names the cause."""
    status = summary.get("status")
    if status == SUCCESSFUL:
        return
    failure = summary.get("failure") or {}
    where = f" Details: {summary_path}" if summary_path else ""
    message = (
        f"restore drill {status}: {failure.get('error', 'unknown cause')} "
        f"(step {failure.get('step', '?')}, recovery point {summary.get('recovery_point_id')}).{where}"
    )
    if status == TIMED_OUT:
        raise DrillTimedOut(message)
    raise DrillFailed(message)


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;margin:1rem 0}
td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}th{background:#f3f3f3}
.SUCCESSFUL{color:#0a6b2d}.FAILED,.TIMED_OUT{color:#a40000}.bad{color:#a40000;font-weight:bold}
code{background:#f5f5f5;padding:0 .2rem}
"""


_LIVE_KEYS = (
    "rows_compared",
    "mismatched_rows",
    "absent_from_store",
    "changed_since_point",
    "missing_from_restore",
)


def render_html(summary: Mapping[str, Any]) -> str:
    """A self-contained drill report: counts, verdicts, timings and ids; no customer value."""
    e = html.escape

    def cell(value: Any) -> str:
        if value is None:
            return "<td>–</td>"
        if isinstance(value, (dict, list)):
            return f"<td><code>{e(json.dumps(value, ensure_ascii=False, sort_keys=True))}</code></td>"
        return f"<td>{e(str(value))}</td>"

    status = str(summary.get("status"))
    rows = []
    for name, t in (summary.get("tables") or {}).items():
        live = t.get("live_store") or {}
        refs = [r for r in t.get("references", []) if r.get("status") not in ("ok",)]
        ok_cls = "" if t.get("checksums") == "ok" and t.get("rows_ok", False) else ' class="bad"'
        ref_text = [f"{r['column']}: {r['status']}" for r in refs] or "ok" if "references" in t else None
        bad_cols = (" " + e(", ".join(t["mismatched_columns"]))) if t.get("mismatched_columns") else ""
        live_text = {k: live.get(k) for k in _LIVE_KEYS if k in live} or live.get("skipped")
        rows.append(
            f"<tr><td>{e(name)}</td>{cell(t.get('rows_in_point'))}{cell(t.get('expected_rows'))}"
            f"{cell(t.get('restored_rows'))}<td{ok_cls}>{e(str(t.get('checksums')))}"
            f"{bad_cols}</td>"
            f"{cell(t.get('skipped_shredded_rows'))}{cell(t.get('dropped_by_purge_tombstones'))}"
            f"{cell((t.get('validation') or {}).get('status'))}"
            f"{cell(ref_text)}{cell(live_text)}</tr>"
        )
    failure = summary.get("failure")
    failure_html = (
        f'<h2>Failure</h2><p class="bad">Step <code>{e(str(failure.get("step")))}</code>: '
        f"{e(str(failure.get('error')))}</p>"
        if failure
        else ""
    )
    shredded = summary.get("shredded_partitions_skipped") or []
    shredded_html = "".join(
        f"<tr><td>{e(p['partition'])}</td>{cell(p.get('key_prefix'))}{cell(p.get('destroyed_at'))}"
        f"{cell(p.get('tables'))}{cell(p.get('reasons'))}</tr>"
        for p in shredded
    )
    facts = [
        ("Recovery point", summary.get("recovery_point_id")),
        ("Run", summary.get("run_id")),
        ("Triggered by", summary.get("triggered_by")),
        ("Verification", summary.get("verification")),
        ("RTO (restore + verification, s)", summary.get("rto_seconds")),
        ("RPO (age of the point at restore, s)", summary.get("rpo_seconds")),
        ("Rows restored", summary.get("rows_restored")),
        ("Restored to (kept)", summary.get("restored_to")),
        ("Started", summary.get("started_at")),
        ("Finished", summary.get("finished_at")),
    ]
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Restore drill {e(str(summary.get('recovery_point_id')))}: {e(status)}</title>"
        f"<style>{_CSS}</style></head><body>"
        f'<h1>Restore drill: <span class="{e(status)}">{e(status)}</span></h1>'
        "<table>"
        + "".join(f"<tr><th>{e(k)}</th>{cell(v)}</tr>" for k, v in facts)
        + "</table>"
        + failure_html
        + "<h2>Tables</h2><table><tr><th>Table</th><th>Rows in point</th><th>Expected</th><th>Restored</th>"
        "<th>Checksums</th><th>Skipped (shredded)</th><th>Dropped (purged)</th><th>GX vs backup</th>"
        "<th>References</th><th>Live store</th></tr>"
        + "".join(rows)
        + "</table>"
        + (
            "<h2>Partitions erased by retention (skipped)</h2><table><tr><th>Partition</th><th>Keys</th>"
            "<th>Destroyed</th><th>Rows per table</th><th>Reason</th></tr>" + shredded_html + "</table>"
            if shredded
            else ""
        )
        + "<p>Counts, verdicts and identifiers only: this report never contains customer data.</p>"
        "</body></html>\n"
    )


# -- everything in one call (tests, tools) ---------------------------------------------------


def run_drill(
    params: Mapping[str, Any] | None,
    *,
    policy: Policy,
    storage: Storage,
    keys: KeyService,
    store: DatabaseTarget | None,
    report_root: str,
    run_id: str,
    target: DatabaseTarget | None = None,
    dag_id: str = DAG_ID,
    triggered_by: str | None = None,
    logical_date: dt.datetime | None = None,
    tombstones: Mapping[str, set[str]] | None = None,
    timeout: dt.timedelta | None = None,
    validator_factory: Callable[[Policy, Path, list[str]], Any] | None = None,
) -> dict[str, Any]:
    """Run every step of a drill in order (what the DAG does task by task); return the summary.

    ``target`` is the database of ``params["target_conn_id"]`` (``None``: scratch SQLite).
    A failure is recorded and the drill goes on to teardown and the report; the returned
    summary says FAILED or TIMED_OUT. Unexpected (non-governance) errors are re-raised after
    the report is written.
    """
    report_dir = run_report_dir(report_root, dag_id, run_id)
    plan: DrillPlan | None = None
    info: TargetInfo | None = None
    pinned = False
    unexpected: BaseException | None = None
    store_conn_id = store.conn_id if store is not None else STORE_CONN_ID
    try:
        with drill_step(report_dir, "validate_params"):
            plan = plan_drill(
                params,
                policy=policy,
                storage=storage,
                report_dir=report_dir,
                run_id=run_id,
                dag_id=dag_id,
                triggered_by=triggered_by,
                logical_date=logical_date,
                store_conn_id=store_conn_id,
                store=store,
                timeout=timeout,
                resolve_target=(lambda _conn_id: target) if target is not None else None,
            )
            if plan.target_conn_id is not None and target is None:
                raise ConfigurationError(
                    f"run_drill: params name connection {plan.target_conn_id!r} but no target"
                )
        with drill_step(report_dir, "pin_point"):
            pin_point(plan, storage)
            pinned = True
        with drill_step(report_dir, "prepare_target"):
            info = prepare_target(plan, target, store)
        with drill_step(report_dir, "verify_point"):
            verify_point(plan, storage, keys)
        db_target = target_database(info, target)
        with drill_step(report_dir, "restore"):
            restore_tables(
                plan,
                storage=storage,
                keys=keys,
                policy=policy,
                info=info,
                target=db_target,
                tombstones=tombstones,
            )
        with drill_step(report_dir, "verify_restored"):
            verify_restored(
                plan,
                storage=storage,
                keys=keys,
                policy=policy,
                target=db_target,
                store=store,
                validator_factory=validator_factory,
            )
    except GovernanceError:
        pass  # recorded by drill_step; the summary names it
    except Exception as exc:  # noqa: BLE001 - recorded, reported as FAILED, then re-raised below
        unexpected = exc
    finally:
        cleanups: list[tuple[str, Callable[[], Any]]] = []
        if plan is not None and info is not None:
            cleanups.append(("teardown_target", lambda: teardown_target(plan, info, target)))  # type: ignore[arg-type]
        if plan is not None and pinned:
            cleanups.append(("unpin_point", lambda: unpin_point(plan, storage)))  # type: ignore[arg-type]
        for step, cleanup in cleanups:
            try:
                with drill_step(report_dir, step):
                    cleanup()
            except GovernanceError:
                pass  # recorded
            except Exception as exc:  # noqa: BLE001 - recorded, reported as FAILED, re-raised below
                unexpected = unexpected or exc
    summary = finish_drill(
        report_dir=report_dir,
        report_root=report_root,
        storage=storage,
        run_id=run_id,
        dag_id=dag_id,
        params=params,
        triggered_by=triggered_by,
        logical_date=logical_date,
    )
    if unexpected is not None:
        raise unexpected
    return summary


# -- task entry points (called by dags/restore_drill.py) --------------------------------------


def _plan(data: Mapping[str, Any]) -> DrillPlan:
    return DrillPlan.from_dict(data)


def _resolve(conn_id: str | None, resolve_target: Callable[[str], DatabaseTarget]) -> DatabaseTarget | None:
    return resolve_target(conn_id) if conn_id else None


def validate_task(env: Any, resolve_target: Callable[[str], DatabaseTarget]) -> dict[str, Any]:
    with drill_step(env.report_dir, "validate_params"):
        plan = plan_drill(
            env.params,
            policy=env.policy,
            storage=env.storage,
            report_dir=env.report_dir,
            run_id=env.run_id,
            dag_id=env.dag_id,
            triggered_by=env.triggered_by,
            logical_date=env.logical_date,
            store=env.store,
            resolve_target=resolve_target,
        )
    return plan.as_dict()


def pin_task(env: Any, plan: Mapping[str, Any]) -> dict[str, Any]:
    with drill_step(env.report_dir, "pin_point"):
        return pin_point(_plan(plan), env.storage)


def unpin_task(env: Any, plan: Mapping[str, Any]) -> dict[str, Any]:
    with drill_step(env.report_dir, "unpin_point"):
        return unpin_point(_plan(plan), env.storage)


def prepare_target_task(
    env: Any, plan: Mapping[str, Any], resolve_target: Callable[[str], DatabaseTarget]
) -> dict:
    p = _plan(plan)
    with drill_step(env.report_dir, "prepare_target"):
        return prepare_target(p, _resolve(p.target_conn_id, resolve_target), env.store).as_dict()


def verify_point_task(env: Any, plan: Mapping[str, Any]) -> dict[str, Any]:
    with drill_step(env.report_dir, "verify_point"):
        out = verify_point(_plan(plan), env.storage, env.keys)
    return {k: out[k] for k in ("recovery_point_id", "files_verified", "bytes_verified")} | {
        "shredded_partitions_skipped": [p["partition"] for p in out["shredded_partitions_skipped"]]
    }


def restore_task(
    env: Any,
    plan: Mapping[str, Any],
    target: Mapping[str, Any],
    resolve_target: Callable[[str], DatabaseTarget],
) -> dict[str, Any]:
    p = _plan(plan)
    info = TargetInfo.from_dict(target)
    with drill_step(env.report_dir, "restore"):
        out = restore_tables(
            p,
            storage=env.storage,
            keys=env.keys,
            policy=env.policy,
            info=info,
            target=target_database(info, _resolve(info.conn_id, resolve_target)),
        )
    return {k: out[k] for k in ("restore_started_at", "seconds", "rows_written", "rows_per_second")}


def verify_restored_task(
    env: Any,
    plan: Mapping[str, Any],
    target: Mapping[str, Any],
    resolve_target: Callable[[str], DatabaseTarget],
) -> dict[str, Any]:
    p = _plan(plan)
    info = TargetInfo.from_dict(target)
    with drill_step(env.report_dir, "verify_restored"):
        out = verify_restored(
            p,
            storage=env.storage,
            keys=env.keys,
            policy=env.policy,
            target=target_database(info, _resolve(info.conn_id, resolve_target)),
            store=env.store,
        )
    return {k: out[k] for k in ("rto_seconds", "rpo_seconds", "ok")}


def teardown_task(
    env: Any,
    plan: Mapping[str, Any],
    target: Mapping[str, Any],
    resolve_target: Callable[[str], DatabaseTarget],
) -> dict[str, Any]:
    p = _plan(plan)
    info = TargetInfo.from_dict(target)
    with drill_step(env.report_dir, "teardown_target"):
        return teardown_target(p, info, _resolve(info.conn_id, resolve_target))


def report_task(env: Any) -> str:
    finish_drill(
        report_dir=env.report_dir,
        report_root=env.report_root,
        storage=env.storage,
        run_id=env.run_id,
        dag_id=env.dag_id,
        params=env.params,
        triggered_by=env.triggered_by,
        logical_date=env.logical_date,
    )
    return str(env.report_dir / "summary.json")


def outcome_task(summary_path: str | None, report_dir: str | os.PathLike[str]) -> None:
    path = Path(summary_path) if summary_path else Path(report_dir) / "summary.json"
    if not path.exists():
        raise DrillFailed(f"restore drill: no summary was written ({path}); see the report task's log")
    raise_for_status(read_json(path), path)
