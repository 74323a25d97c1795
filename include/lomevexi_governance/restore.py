"""``restore_drill``: prove that a recovery point really restores, as plain functions.

A drill restores one recovery point into a scratch database and checks it end to end::

    plan (re-validate params, resolve "latest")
      -> pin the point (purge and expiry leave it alone while the drill runs)
      -> prepare the target (a fresh scratch SQLite file, or a fresh ``drill_<hash>`` schema)
      -> verify the point: the manifest's Ed25519 signature, then the SHA-256 of every file,
         then that every key a file needs is there (retention-shredded partitions are skipped)
      -> per table (one mapped task each in the DAG, so tables restore in parallel):
           restore: decrypt every file and stream it into the table (purge tombstones
             re-applied), then add the primary key
           read back: row count and per-column checksums against the manifest, and a
             streaming merge with the live store; the Great Expectations outcome is inherited
             from the backup when the content is checksum-identical, else the suite runs
      -> across tables: referential integrity, the GX comparison, RTO and RPO
      -> tear down (unless ``keep_restored``), unpin
      -> report: summary.json, report.html, the drill history ledger, the catalog record.

Every step is a function that tests call without Airflow; :func:`run_drill` runs them all in
order (the per-table steps table by table), and ``dags/restore_drill.py`` runs each as a task.
Steps hand each other small dicts (ids and paths) and write what they found under
``<report dir>/state/`` (per-table steps: one file per table, so parallel task instances never
write the same file), which the report step reads, so a failed task still leaves a complete,
precise summary. Memory is bounded by a few record batches per table, whatever its size.

Outcome: ``SUCCESSFUL``, ``FAILED`` (the first failure is recorded, naming the file, key,
table or column) or ``TIMED_OUT`` (``drill.timeout_minutes`` of the policy, measured from the
start of the drill). Reports carry counts, checksum verdicts, ids and timings only: never a
customer value, never key material.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import html
import json
import logging
import math
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Collection, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lomevexi_governance import checksums, db, pipeline
from lomevexi_governance import recovery_points as rp
from lomevexi_governance.errors import (
    ConfigurationError,
    GovernanceError,
    IntegrityError,
    KeyMaterialError,
    NotFound,
)
from lomevexi_governance.keys import KeyService
from lomevexi_governance.pipeline import prefetched, release_memory
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
#: per-table state (``state/<kind>/<table>.json``) and per-step failures
RESTORE_DIR, CHECKED_DIR, CREATED_DIR, FAILURES_DIR = "restore", "checked", "created", "failures"
#: rows per batch read from a Parquet file and sent to the target in one COPY. The load holds
#: a few of them at once (two prefetched, the one being encoded, the driver's COPY buffer) while
#: the main thread reads back another table: 65,536 put the 2M-order drill's peak RSS at
#: 485-490 MB, 32,768 at 447-457 MB, in the same time (alternating runs, 2026-12-07)
LOAD_BATCH_ROWS = 32_768
#: rows per batch read back from the target and from the store (the live merge)
VERIFY_BATCH_ROWS = 131_072
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


# -- bounded memory, streaming helpers ---------------------------------------------------------

#: size of the record batches the PostgreSQL driver hands over when reading back (bytes)
READ_HINT_BYTES = 4 << 20


@functools.cache
def bounded_memory() -> None:
    """Make freed memory go back to the system, once per process (a drill task's own process).

    A drill streams far more data than it holds. Arrow's default pool (mimalloc) and glibc's
    dynamic mmap threshold both keep freed blocks for reuse, so the resident size grew with the
    number of batches streamed rather than with one batch. The system allocator with a fixed
    1 MiB mmap threshold returns every large buffer when it is freed.
    """
    with contextlib.suppress(Exception):  # only an optimisation: any platform without them is fine
        pa.set_memory_pool(pa.system_memory_pool())
    libc = pipeline.libc()
    if libc is None:  # not glibc: nothing to tune
        return
    with contextlib.suppress(AttributeError):
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD: fixed, so no longer raised by frees
        libc.mallopt(-8, 2)  # M_ARENA_MAX: helper and Arrow threads share two heaps, not one each


class _OrderedReader:
    """A read-only, repeatable-read view of one database, streaming queries as canonical batches.

    PostgreSQL: the ADBC driver's binary COPY, each driver batch conformed and handed on as it
    is (about ``READ_HINT_BYTES``), so a stream holds one or two batches. SQLite: the store's
    own :class:`Snapshot`.
    """

    def __init__(self, target: DatabaseTarget, batch_rows: int):
        self.target = target
        self.batch_rows = batch_rows
        self._snapshot: Snapshot | None = None
        self._conn: Any = None

    @property
    def threadable(self) -> bool:
        """Whether its streams may be consumed on another thread (sqlite3 objects may not)."""
        return not self.target.is_sqlite

    def __enter__(self) -> _OrderedReader:
        if self.target.is_sqlite:
            self._snapshot = Snapshot(self.target, batch_rows=self.batch_rows).__enter__()
            return self
        self._conn = db.connect_arrow(self.target, autocommit=True)
        cur = self._conn.cursor()
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        cur.close()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._snapshot is not None:
            self._snapshot.__exit__(*exc)
            self._snapshot = None
        if self._conn is not None:
            try:
                cur = self._conn.cursor()
                cur.execute("ROLLBACK")
                cur.close()
            finally:
                self._conn.close()
                self._conn = None

    def stream(self, sql: str, table: Table, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        from lomevexi_governance.source import conform

        if self._snapshot is not None:
            yield from self._snapshot.stream_sql(sql, table, schema)
            return
        cur = self._conn.cursor()
        try:
            cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(READ_HINT_BYTES)})
            cur.execute(sql)
            for batch in cur.fetch_record_batch():
                if batch.num_rows:
                    yield conform(batch, table, schema)
        finally:
            cur.close()

    def ordered(self, table: Table, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """Every row of ``table`` (its recorded columns), in primary-key order."""
        cols = ", ".join(db.quote_ident(n) for n in schema.names)
        sql = f"SELECT {cols} FROM {db.quote_ident(table.name)} ORDER BY {db.quote_ident(table.primary_key)}"
        return self.stream(sql, table, schema)


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


def parse_params(raw: Mapping[str, Any] | None, policy: Policy, *, store_conn_id: str = STORE_CONN_ID) -> DrillParams:
    """Check types and values of the run's params (the trigger form may be bypassed by the API)."""
    raw = dict(raw or {})
    unknown = set(raw) - {"recovery_point", "tables", "target_conn_id", "keep_restored", "verification"}
    if unknown:
        raise ConfigurationError(f"restore_drill: unknown param(s) {sorted(unknown)}")
    point = raw.get("recovery_point") or LATEST
    if not isinstance(point, str):
        raise ConfigurationError("restore_drill: param 'recovery_point' must be 'latest' or a recovery point id")
    point = point.strip()
    tables_raw = raw.get("tables")
    tables: tuple[str, ...] | None
    if tables_raw in (None, "", "all", []) or tables_raw == ["all"]:
        tables = None
    else:
        if isinstance(tables_raw, str):
            tables_raw = [t for t in tables_raw.replace(",", "\n").split() if t]
        if not isinstance(tables_raw, list) or not all(isinstance(t, str) for t in tables_raw):
            raise ConfigurationError("restore_drill: param 'tables' must be a list of table names (empty: all)")
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
        raise ConfigurationError(f"restore_drill: param 'verification' must be one of {list(VERIFICATION_MODES)}")
    return DrillParams(point, tables, target, keep, mode)


def resolve_point(storage: Storage, wanted: str) -> str:
    """``latest`` -> the newest published point; an id -> itself if it is in the catalog.

    An unknown id fails listing the ids that are available (newest first).
    """
    available = rp.list_points(storage)
    listing = ", ".join(reversed(available)) if available else "none"
    if wanted == LATEST:
        if not available:
            raise NotFound(f"no recovery point is published under {storage.describe(rp.POINTS)}; nothing to drill")
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
    _clear_state(Path(report_dir) / STATE_DIR)
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
#
# Steps run as separate Airflow tasks, and the per-table steps as mapped task instances that may
# run at the same time on different workers. So no state file is ever written by two task
# instances: per-table results go to ``state/<kind>/<table>.json`` and failures to
# ``state/failures/<step>[.<table>].json``; readers combine them.


def _write_state(state_dir: Path, name: str, data: Mapping[str, Any]) -> None:
    write_json_atomic(state_dir / f"{name}.json", data)


def _read_state(state_dir: Path, name: str) -> dict[str, Any] | None:
    path = state_dir / f"{name}.json"
    return read_json(path) if path.exists() else None


def _read_table_states(state_dir: Path, kind: str) -> dict[str, dict[str, Any]]:
    """``{table: state}`` of one per-table kind (``restore``, ``checked``, ``created``)."""
    folder = state_dir / kind
    if not folder.is_dir():
        return {}
    return {p.stem: read_json(p) for p in sorted(folder.glob("*.json"))}


def _clear_state(state_dir: Path) -> None:
    if not state_dir.exists():
        return
    for child in state_dir.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def _error_text(exc: BaseException) -> str:
    """Our own errors name files, keys, tables; a foreign exception is reported by type only."""
    if isinstance(exc, GovernanceError):
        return str(exc)
    return f"{type(exc).__name__} (see the task log)"


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, DrillTimedOut) or type(exc).__name__ == "AirflowTaskTimeout"


def _failure_file(report_dir: str | os.PathLike[str], step: str, table: str | None) -> Path:
    name = step if table is None else f"{step}.{table}"
    return Path(report_dir) / STATE_DIR / FAILURES_DIR / f"{name}.json"


def record_failure(
    report_dir: str | os.PathLike[str], step: str, exc: BaseException, *, table: str | None = None
) -> None:
    """Record a failure of ``step`` (of one table, for the per-table steps) in its own file."""
    entry = {
        "step": step,
        "status": TIMED_OUT if _is_timeout(exc) else FAILED,
        "error_type": type(exc).__name__,
        "error": _error_text(exc),
        "at": _now().isoformat(),
    }
    if table is not None:
        entry["table"] = table
    write_json_atomic(_failure_file(report_dir, step, table), entry)


def read_failure(report_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The drill's first failure (its root cause), with every later one in ``later``."""
    folder = Path(report_dir) / STATE_DIR / FAILURES_DIR
    if not folder.is_dir():
        return None
    entries = sorted((read_json(p) for p in folder.glob("*.json")), key=lambda e: (e["at"], e["step"]))
    if not entries:
        return None
    return entries[0] | {"later": entries[1:]}


@contextlib.contextmanager
def drill_step(report_dir: str | os.PathLike[str], step: str, *, table: str | None = None) -> Iterator[None]:
    """Record any failure of ``step`` (then re-raise it: the task, and the run, fail).

    A retry of the step starts by forgetting the failure its earlier attempt recorded (nothing
    downstream ran in between). Airflow's execution timeout becomes :class:`DrillTimedOut`, a
    permanent error: retrying after the deadline cannot help.
    """
    _failure_file(report_dir, step, table).unlink(missing_ok=True)
    try:
        yield
    except BaseException as exc:
        record_failure(report_dir, step, exc, table=table)
        if _is_timeout(exc) and not isinstance(exc, DrillTimedOut):
            where = f" ({table})" if table else ""
            raise DrillTimedOut(f"restore drill step {step}{where} hit the drill's time limit") from None
        raise


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
        raise ConfigurationError(f"connection {target.conn_id!r}: a drill restores into SQLite or PostgreSQL only")
    if store is not None and (target.conn_id == store.conn_id or _same_database(target, store)):
        raise ConfigurationError(
            f"connection {target.conn_id!r} points at the live store ({store.describe()}); a drill never "
            "restores into the store database"
        )


def prepare_target(plan: DrillPlan, target: DatabaseTarget | None, store: DatabaseTarget | None) -> TargetInfo:
    """Create the empty place to restore into; never touches existing tables."""
    check_deadline(plan, "before preparing the target")
    if target is None:
        path = scratch_path(plan)
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-journal", "-wal", "-shm"):  # ours: an earlier attempt of this run
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        conn = sqlite3.connect(path)
        try:  # per-table tasks may read one table back while another table is being written
            conn.execute("PRAGMA journal_mode = WAL")
        finally:
            conn.close()
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
    created = sorted(set(info.created_tables) | set(_read_table_states(plan.state_dir, CREATED_DIR)))
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
        i is not None and i.state == "destroyed" and (i.reason or "").startswith(RETENTION_REASON) for i in infos
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
        "destroyed_at": max((i.destroyed_at for i in infos if i is not None and i.destroyed_at), default=None),
        "reasons": sorted({i.reason for i in infos if i is not None and i.reason}),
        "tables": {table: int(f["rows"])},
        "files": [{"table": table, "path": f["path"], "rows": int(f["rows"]), "checksums": f.get("checksums", {})}],
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
        if any(cache[k] is not None and cache[k].state == "destroyed" for k in key_ids) and _erased_by_retention(
            keys, key_ids
        ):
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
            raise NotFound(f"recovery point {plan.recovery_point_id!r} has no table(s) {missing}; it holds {in_point}")
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
            raise IntegrityError(f"recovery point: {name}.{col_name} has an unknown recorded type {col_type!r}")
        if current is not None and col_name in current.column_names and current.column(col_name).type == col_type:
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


def create_table_sql(
    table: Table, *, schema: str | None = None, relaxed: Collection[str] = (), primary_key: bool = True
) -> str:
    """DDL in the store contract's conventions (BIGINT, TEXT, TIMESTAMPTZ, NOT NULL, PRIMARY KEY).

    ``primary_key=False``: without the constraint, for a loader that adds it after the rows.
    """
    cols = []
    for c in table.columns:
        not_null = "" if (c.nullable or c.name in relaxed) else " NOT NULL"
        pk = " PRIMARY KEY" if c.name == table.primary_key and primary_key else ""
        cols.append(f"    {db.quote_ident(c.name)} {_SQL_TYPES[c.type]}{not_null}{pk}")
    name = db.quote_ident(table.name) if schema is None else f"{db.quote_ident(schema)}.{db.quote_ident(table.name)}"
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
    """Loads canonical record batches into one restored table, in one transaction.

    PostgreSQL, the way ``pg_restore`` does it: the table is created without its primary key,
    the batches go in through one ADBC binary COPY (``adbc_ingest`` of a stream: one COPY per
    table, not one per batch), then the primary key is added (one index build instead of
    millions of index insertions; a duplicate key fails, naming the table), and only then is
    the transaction committed. SQLite: ``executemany`` in one ``BEGIN IMMEDIATE`` transaction,
    with the primary key in the DDL (SQLite cannot add one later).
    """

    def __init__(
        self,
        target: DatabaseTarget,
        info: TargetInfo,
        table: Table,
        relaxed: Collection[str],
        *,
        replace: bool,
        busy_seconds: float = 60.0,
        on_created: Callable[[], None] = lambda: None,
    ):
        """Create the table (``replace``: drop this run's own copy from an earlier attempt first).

        ``on_created`` runs right after the table exists (teardown must find it even if what
        follows fails), and only then: teardown never drops a table the drill did not create.
        """
        self.target = target
        self.table = table
        self.names = table.column_names
        self.rows = 0
        self.primary_key_seconds = 0.0
        if target.is_sqlite:
            # another mapped task may be writing the same file: wait for its lock, not fail
            self.conn: Any = sqlite3.connect(target.path or "", timeout=busy_seconds, isolation_level=None)
            self.conn.execute("PRAGMA synchronous = NORMAL")
            if replace:
                self.conn.execute(f"DROP TABLE IF EXISTS {db.quote_ident(table.name)}")
            self.conn.execute(create_table_sql(table, relaxed=relaxed))
            on_created()
            self.conn.execute("BEGIN IMMEDIATE")
            cols = ", ".join(db.quote_ident(n) for n in self.names)
            marks = ", ".join("?" for _ in self.names)
            self.insert = f"INSERT INTO {db.quote_ident(table.name)} ({cols}) VALUES ({marks})"
            self.ts = [pa.types.is_timestamp(_ARROW_TYPES[c.type]) for c in table.columns]
        else:
            assert info.schema
            self.schema = info.schema
            self.qualified = f"{db.quote_ident(info.schema)}.{db.quote_ident(table.name)}"
            with db.connection(target, autocommit=True) as conn:
                if replace:
                    conn.execute(f"DROP TABLE IF EXISTS {self.qualified}")
                conn.execute(create_table_sql(table, schema=info.schema, relaxed=relaxed, primary_key=False))
            on_created()
            self.conn = db.connect_arrow(target)
            self.cursor = self.conn.cursor()

    def write_all(self, batches: Generator[pa.RecordBatch, None, None], schema: pa.Schema) -> None:
        """Write every batch of ``batches`` (all of ``schema``); their exceptions surface unchanged.

        On PostgreSQL ADBC pulls the batches itself, through a record batch reader, so an
        exception raised while producing one (a checksum mismatch, the deadline) reaches ADBC as
        a stream error: it is kept and re-raised as it was, never as ADBC's wrapper of it.
        """
        if self.target.is_sqlite:
            with contextlib.closing(batches):
                for batch in batches:
                    self._write_sqlite(batch)
            return
        failed: list[BaseException] = []

        def counted() -> Generator[pa.RecordBatch, None, None]:
            try:
                for batch in batches:
                    if batch.num_rows:
                        self.rows += batch.num_rows
                        yield batch
            except GeneratorExit:  # closed by us, after ADBC is done with the stream
                raise
            except BaseException as exc:
                failed.append(exc)
                raise

        stream = counted()
        try:
            self.cursor.adbc_ingest(
                self.table.name, pa.RecordBatchReader.from_batches(schema, stream), mode="append",
                db_schema_name=self.schema,
            )
        except BaseException:
            if failed:
                raise failed[0] from None
            raise
        finally:
            stream.close()
            batches.close()
        if failed:  # a driver that swallowed the stream's error must not commit a partial table
            raise failed[0]

    def _write_sqlite(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        columns = []
        for name, is_ts in zip(self.names, self.ts, strict=True):
            arr = batch.column(name)
            columns.append((sqlite_timestamp_text(arr) if is_ts else arr).to_pylist())
        self.conn.executemany(self.insert, zip(*columns, strict=True))
        self.rows += batch.num_rows

    def commit(self) -> None:
        if self.target.is_sqlite:
            self.conn.execute("COMMIT")
            return
        started = time.monotonic()
        pk = db.quote_ident(self.table.primary_key)
        try:
            self.cursor.execute(f"ALTER TABLE {self.qualified} ADD PRIMARY KEY ({pk})")
        except Exception as exc:
            state = getattr(exc, "sqlstate", None) or ""
            if state == "23505":  # unique_violation
                raise IntegrityError(
                    f"restored table {self.table.name}: primary key {self.table.primary_key} has duplicate "
                    "values (a row came back twice)"
                ) from None
            raise
        self.primary_key_seconds = time.monotonic() - started
        self.conn.commit()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.target.is_sqlite and self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        if not self.target.is_sqlite:
            with contextlib.suppress(Exception):
                self.cursor.close()
        self.conn.close()


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
        return pq.ParquetFile(storage.filesystem.open_input_file(storage.full(rel)), **crypto.READ_OPTIONS)
    except (OSError, pa.ArrowException) as exc:
        raise IntegrityError(f"cannot parse {storage.describe(rel)}: {type(exc).__name__}") from None


def _diff_columns(expected: Mapping[str, int], got: Mapping[str, int], columns: Sequence[str]) -> list[str]:
    return [c for c in [checksums.ROWS, *columns] if expected.get(c, 0) != got.get(c, 0)]


def _verified_state(plan: DrillPlan) -> dict[str, Any]:
    verified = _read_state(plan.state_dir, "verify")
    if verified is None:
        raise IntegrityError(f"restore drill {plan.run_id}: the point was not verified; refusing to restore")
    return verified


def drill_tables(plan: DrillPlan) -> list[str]:
    """The tables this drill restores, parents first (fixed by ``verify_point``)."""
    return list(_verified_state(plan)["tables"])


def _seconds_left(plan: DrillPlan) -> float:
    return max((plan.deadline_at - _now()).total_seconds(), 1.0)


def restore_table(
    plan: DrillPlan,
    name: str,
    *,
    storage: Storage,
    keys: KeyService,
    policy: Policy,
    info: TargetInfo,
    target: DatabaseTarget,
    tombstones: Mapping[str, set[str]] | None = None,
    point: rp.PointRef | None = None,
) -> dict[str, Any]:
    """Decrypt every file of one table and load it, streamed batch by batch, into ``target``.

    Memory holds one record batch (one file is opened at a time, each with fresh decryption
    properties), whatever the size of the table. Each file's rows are checksummed as they are
    read and compared with the file's checksums in the manifest, so a file that decrypts to
    something else is named. Rows whose primary key has a purge tombstone are dropped (their
    checksum contribution is kept, to subtract). Writes ``state/restore/<table>.json``; safe to
    run at the same time as the other tables' restores (one mapped task each in the DAG).
    """
    from lomevexi_governance.crypto import read_batches

    check_deadline(plan, f"before restoring {name}")
    verified = _verified_state(plan)
    if name not in verified["tables"]:
        raise ConfigurationError(
            f"restore drill {plan.run_id}: table {name!r} is not part of this drill ({verified['tables']})"
        )
    bounded_memory()
    started_at = _now()
    started = time.monotonic()
    if point is None:  # the signature again: no swap since verify_point
        point = rp.load_point(storage, plan.recovery_point_id, keys)
    manifest = point.manifest
    encrypted = bool(manifest.get("encrypted", True))
    base = rp.point_dir(plan.recovery_point_id)
    if tombstones is None:
        tombstones = load_tombstones(storage, keys)
    hasher = keys.tombstone_hasher() if tombstones.get(name) else None
    mt = manifest["tables"][name]
    table = recorded_table(policy, name, mt)
    schema = recorded_schema(table)
    pk = table.primary_key
    by_path = {f["path"]: f for f in mt["files"]}
    paths = verified["restore_files"][name]
    # the scratch file and the drill schema are this run's own; in a connection's SQLite
    # database only a table this run created in an earlier attempt may be replaced
    ours = _read_state(plan.state_dir, f"{CREATED_DIR}/{name}") is not None
    replace = info.scratch or info.dialect == "postgresql" or ours
    _write_state(plan.state_dir, f"{RESTORE_DIR}/{name}", {"table": name, "complete": False})
    loader = _Loader(
        target,
        info,
        table,
        relaxed_not_null(manifest, name),
        replace=replace,
        busy_seconds=_seconds_left(plan),
        on_created=lambda: _write_state(
            plan.state_dir, f"{CREATED_DIR}/{name}", {"table": name, "created_at": _now().isoformat()}
        ),
    )
    dropped: dict[str, int] = {}
    shredded_during: list[dict[str, Any]] = []

    def batches() -> Iterator[pa.RecordBatch]:
        """Every file of the table, decrypted, checked against its manifest checksums, filtered."""
        nonlocal dropped
        for path in paths:
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
            for raw in read_batches(pf, storage.describe(rel), batch_size=LOAD_BATCH_ROWS):
                check_deadline(plan, f"while restoring {name}")
                rows = pa.RecordBatch.from_arrays(raw.columns, schema=schema)
                read_sums = checksums.combine([read_sums, checksums.batch_checksums(rows, pk)])
                if hasher is not None:
                    drop = tombstone_mask(name, rows.column(pk), tombstones, hasher)
                    if drop.any():
                        gone = rows.filter(pa.array(drop))
                        dropped = checksums.combine([dropped, checksums.batch_checksums(gone, pk)])
                        rows = rows.filter(pa.array(~drop))
                yield rows
            del pf
            bad = _diff_columns(checksums.from_hex(f.get("checksums", {})), read_sums, schema.names)
            if bad:
                raise IntegrityError(
                    f"recovery point {plan.recovery_point_id!r}: file {path} decrypts to data that does "
                    f"not match its manifest checksums (column(s) {bad})"
                )

    try:
        # files are read, decrypted and checksummed on a helper thread while the target ingests
        def timed(source: Generator[pa.RecordBatch, None, None]) -> Generator[pa.RecordBatch, None, None]:
            try:
                for rows in source:
                    check_deadline(plan, f"while restoring {name}")
                    yield rows
            finally:
                source.close()  # stops the helper thread now, also when the load failed

        loader.write_all(timed(prefetched(batches(), depth=2, name="restore-load")), schema)
        check_deadline(plan, f"before adding the primary key of {name}")
        loader.commit()
    finally:
        loader.close()
    seconds = time.monotonic() - started
    out = {
        "table": name,
        "restore_started_at": started_at.isoformat(),
        "restore_ended_at": _now().isoformat(),
        "files": len(paths),
        "rows_written": loader.rows,
        "dropped_by_purge_tombstones": int(dropped.get(checksums.ROWS, 0)),
        "dropped_checksums": checksums.to_hex(dropped) if dropped else {},
        "shredded_during_drill": shredded_during,
        "tombstones": bool(tombstones.get(name)),
        "primary_key_seconds": round(loader.primary_key_seconds, 3),
        "seconds": round(seconds, 3),
        "rows_per_second": round(loader.rows / seconds) if seconds > 0 else None,
        "complete": True,
    }
    _write_state(plan.state_dir, f"{RESTORE_DIR}/{name}", out)
    release_memory()
    log.info(
        "restore drill %s: %s restored, %d rows (%d dropped by purge tombstones) in %.2fs",
        plan.run_id,
        name,
        loader.rows,
        out["dropped_by_purge_tombstones"],
        seconds,
    )
    return out


def load_order(manifest: Mapping[str, Any], tables: Sequence[str]) -> list[str]:
    """The order in which a one-process drill loads ``tables`` while it reads back the loaded ones.

    Smallest first (by the rows in the point, then by name): reading a table back costs a little
    more than loading it, so with the loads running ahead this is Johnson's rule for two stages
    in a row. The drill's time is then about the smallest table's load plus every read-back,
    instead of also waiting at the end for the largest table's read-back alone.
    """
    recorded = manifest.get("tables", {})
    return sorted(tables, key=lambda t: (int(recorded.get(t, {}).get("rows", 0)), t))


def collect_restore(state_dir: Path, tables: Sequence[str] | None = None) -> dict[str, Any]:
    """The restore as a whole, from the per-table states (what ``state/restore.json`` holds)."""
    per_table = _read_table_states(state_dir, RESTORE_DIR)
    created = sorted(_read_table_states(state_dir, CREATED_DIR))
    wanted = list(tables) if tables is not None else list(per_table)
    done = {t: s for t, s in per_table.items() if s.get("complete")}
    out: dict[str, Any] = {"created_tables": created, "complete": bool(wanted) and all(t in done for t in wanted)}
    if not done:
        return out
    started = min(s["restore_started_at"] for s in done.values())
    ended = max(s["restore_ended_at"] for s in done.values())
    rows = sum(s["rows_written"] for s in done.values())
    # the sum of the tables' own times: what the load costs (tables may run in parallel)
    seconds = sum(s["seconds"] for s in done.values())
    wall = (dt.datetime.fromisoformat(ended) - dt.datetime.fromisoformat(started)).total_seconds()
    out |= {
        "restore_started_at": started,
        "restore_ended_at": ended,
        "seconds": round(seconds, 3),
        "wall_seconds": round(wall, 3),
        "rows_written": rows,
        "rows_per_second": round(rows / seconds) if seconds > 0 else None,
        "tables": {
            t: {k: v for k, v in s.items() if k not in ("table", "shredded_during_drill", "complete")}
            for t, s in done.items()
        },
        "tombstone_tables": sorted(t for t, s in done.items() if s.get("tombstones")),
        "shredded_during_drill": [e for t in sorted(done) for e in done[t]["shredded_during_drill"]],
    }
    return out


def finish_restore(plan: DrillPlan) -> dict[str, Any]:
    """Check that every table of the drill was restored; write ``state/restore.json``."""
    tables = drill_tables(plan)
    out = collect_restore(plan.state_dir, tables)
    _write_state(plan.state_dir, "restore", out)
    if not out["complete"]:
        done = set(out.get("tables", {}))
        raise IntegrityError(
            f"restore drill {plan.run_id}: table(s) {[t for t in tables if t not in done]} were not restored"
        )
    return out


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
    """Every table of the drill, one after the other (:func:`restore_table` each), then the total."""
    point = rp.load_point(storage, plan.recovery_point_id, keys)
    if tombstones is None:
        tombstones = load_tombstones(storage, keys)
    for name in drill_tables(plan):
        restore_table(
            plan,
            name,
            storage=storage,
            keys=keys,
            policy=policy,
            info=info,
            target=target,
            tombstones=tombstones,
            point=point,
        )
    return finish_restore(plan)


# -- verifying the restored data -------------------------------------------------------------


def _null_aware_equal(a: pa.Array, b: pa.Array) -> np.ndarray:
    eq = pc.fill_null(pc.equal(a, b), False)
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    return np.asarray(pc.or_(eq, both_null).to_numpy(zero_copy_only=False), dtype=bool)


def _pks(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return np.asarray(arr.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def _masking_only(table: Table) -> Table:
    """``table`` with its row rules removed, so :class:`ContentScanner` only masks card numbers.

    The live comparison needs the store's values masked exactly the way the backup masks them
    (which depends only on the table, the column name and the text); counting rule violations
    again would cost a regular-expression pass per text column for nothing.
    """
    columns = tuple(
        dataclasses.replace(c, nullable=True, values=None, min=None, format=None, sensitivity="communication")
        for c in table.columns
    )
    return dataclasses.replace(table, columns=columns)


class _Side:
    """One key-ordered stream of batches, consumed in key ranges (the merge's cursor)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.batch: pa.RecordBatch | None = None
        self.keys = np.zeros(0, dtype=np.int64)
        self.pos = 0
        self.last: int | None = None

    def set(self, batch: pa.RecordBatch, pk: str) -> None:
        keys = _pks(batch.column(pk))
        if len(keys) and (
            (self.last is not None and keys[0] <= self.last) or (len(keys) > 1 and not (np.diff(keys) > 0).all())
        ):
            raise IntegrityError(f"{self.what}: primary key {pk} is not strictly increasing (duplicate key?)")
        if len(keys):
            self.last = int(keys[-1])
        self.batch, self.keys, self.pos = batch, keys, 0

    @property
    def empty(self) -> bool:
        return self.batch is None or self.pos >= len(self.keys)

    def take_upto(self, bound: int) -> pa.RecordBatch:
        """The rows from the cursor with a key <= ``bound`` (zero-copy slice), and advance."""
        assert self.batch is not None
        end = int(np.searchsorted(self.keys, bound, side="right"))
        out = self.batch.slice(self.pos, end - self.pos)
        self.pos = end
        return out


class LiveCompare:
    """Compare restored rows with the live store, for rows unchanged since the point.

    A store row counts as unchanged when its ``updated_at`` is not after the point's snapshot
    start. Restored rows the store no longer has (purged or deleted since) are counted, not
    mismatches. Tables without ``updated_at`` can change without trace, so they are compared by
    primary-key presence only. Store values go through the backup's card-number masking first,
    so a masked value compares equal to what the backup was allowed to keep. Mismatches are
    reported as counts and primary keys, never values.

    ``full``: a streaming merge. The restored table (read back in primary-key order) and one
    key-ordered query of the store advance together, compared key range by key range, so
    memory holds one restored batch and one store batch whatever the table sizes or gaps.
    ``sample``: every n-th restored row, looked up in the store by key.
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
        ordered_store: Callable[[], Iterator[pa.RecordBatch]] | None = None,
        prefetch: bool = False,
    ):
        """``ordered_store``: the store table in key order, for the full merge (default: ``store``)."""
        from lomevexi_governance.scan import ContentScanner

        self.table = table
        self.store = store
        self.snapshot_at = snapshot_at
        self.mode = mode
        self.values = "updated_at" in table.column_names
        self.scanner = ContentScanner(_masking_only(table))
        self.stride = max(1, math.ceil(expected_rows / sample_rows)) if mode == "sample" and sample_rows > 0 else 1
        self.sample_rows = sample_rows
        self.position = 0
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
        self._ordered_store = ordered_store
        self._prefetch = prefetch
        self._store_iter: Iterator[pa.RecordBatch] | None = None
        self._restored = _Side(f"restored table {table.name}")
        self._store = _Side(f"store table {table.name}")
        self._store_done = False

    def _store_batches(self, where: str) -> Iterator[pa.RecordBatch]:
        """Store rows (masked the way the backup masks) as canonical batches, in key order."""
        cols = ", ".join(db.quote_ident(c) for c in self.table.column_names)
        sql = f"SELECT {cols} FROM {db.quote_ident(self.table.name)}{where} ORDER BY {db.quote_ident(self.pk)}"
        for batch in self.store.stream_sql(sql, self.table, self.schema):
            yield self.scanner.process(batch)

    def _store_rows(self, where: str) -> pa.Table:
        return pa.Table.from_batches(list(self._store_batches(where)), schema=self.schema)

    def _next_store(self) -> bool:
        """Load the next non-empty store batch into the cursor; False at the end of the store."""
        if self._store_iter is None:
            if self._ordered_store is None:
                self._store_iter = self._store_batches("")
            else:
                masked = (self.scanner.process(b) for b in self._ordered_store())
                # read and masked on a helper thread, one batch ahead, where the driver allows it
                self._store_iter = prefetched(masked, depth=1, name="restore-live-store") if self._prefetch else masked
        while not self._store_done:
            batch = next(self._store_iter, None)
            if batch is None:
                self._store_done = True
                break
            if batch.num_rows:
                self._store.set(batch, self.pk)
                return True
        return False

    def process(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self.mode == "full":
            self._merge(batch)
            return
        idx = np.arange(self.position, self.position + batch.num_rows)
        self.position += batch.num_rows
        room = self.sample_rows - self.stats["rows_checked"]
        take = np.flatnonzero(idx % self.stride == 0)[: max(room, 0)]
        if not len(take):
            return
        sample = batch.take(pa.array(take))
        keys = _pks(sample.column(self.pk))
        pk = db.quote_ident(self.pk)
        parts = [
            self._store_rows(f" WHERE {pk} IN ({', '.join(str(int(k)) for k in keys[i : i + _IN_CHUNK])})")
            for i in range(0, len(keys), _IN_CHUNK)
        ]
        store = pa.concat_tables(parts) if parts else self.schema.empty_table()
        self._compare(sample, store, count_missing=False)

    def _merge(self, batch: pa.RecordBatch) -> None:
        """Advance both sides up to the keys of ``batch``, one key range at a time."""
        r = self._restored
        r.set(batch, self.pk)
        while not r.empty:
            if self._store.empty and not self._next_store():
                rest = r.take_upto(int(r.keys[-1]))  # the store has nothing beyond: all absent
                self._compare(rest, rest.schema.empty_table(), count_missing=True)
                return
            # the range both cursors cover: up to the smaller of the two batches' last keys
            bound = min(int(r.keys[-1]), int(self._store.keys[-1]))
            restored = r.take_upto(bound)
            store = self._store.take_upto(bound)
            self._compare(restored, store, count_missing=True)

    def finish(self) -> dict[str, Any]:
        if self.mode == "full":  # store rows beyond the last restored key (all of them for an empty table)
            while not self._store.empty or self._next_store():
                assert self._store.batch is not None
                rest = self._store.take_upto(int(self._store.keys[-1]))
                self._compare(self.schema.empty_table(), rest, count_missing=True)
        self.close()
        self.stats["mismatched_primary_keys"] = self.stats["mismatched_primary_keys"][:MAX_REPORTED_KEYS]
        return self.stats

    def close(self) -> None:
        """Stop reading the store (also when the comparison ends early)."""
        close = getattr(self._store_iter, "close", None)
        if close is not None:
            close()
        self._store_iter = None

    def _compare(
        self, restored: pa.RecordBatch | pa.Table, store: pa.RecordBatch | pa.Table, *, count_missing: bool
    ) -> None:
        r_pk = _pks(restored.column(self.pk))
        s_pk_all = _pks(store.column(self.pk))
        unchanged = np.ones(len(s_pk_all), dtype=bool)
        if "updated_at" in self.table.column_names and store.num_rows:
            upd = store.column("updated_at")
            after = pc.fill_null(pc.greater(upd, pa.scalar(self.snapshot_at, type=TIMESTAMP)), False)
            unchanged = ~np.asarray(after.to_numpy(zero_copy_only=False), dtype=bool)
        self.stats["rows_checked"] += len(r_pk)
        all_unchanged = bool(unchanged.all())
        if len(r_pk) == len(s_pk_all) and np.array_equal(r_pk, s_pk_all):  # the usual case: same keys
            if all_unchanged:
                common, ri, si = r_pk, None, None
                store_u = store
            else:
                self.stats["changed_since_point"] += int((~unchanged).sum())
                keep = np.flatnonzero(unchanged)
                common, ri, si = r_pk[keep], keep, keep
                store_u = store
        else:
            in_store = np.isin(r_pk, s_pk_all, assume_unique=True)
            self.stats["absent_from_store"] += int((~in_store).sum())
            s_pk = s_pk_all[unchanged]
            changed_pks = s_pk_all[~unchanged]
            if len(changed_pks):
                self.stats["changed_since_point"] += int(np.isin(r_pk, changed_pks, assume_unique=True).sum())
            if count_missing:
                self.stats["missing_from_restore"] += int((~np.isin(s_pk, r_pk, assume_unique=True)).sum())
            store_u = store.filter(pa.array(unchanged)) if not all_unchanged else store
            common, ri, si = np.intersect1d(r_pk, s_pk, assume_unique=True, return_indices=True)
        self.stats["rows_compared"] += len(common)
        if not len(common) or not self.values:
            return
        r = restored if ri is None else restored.take(pa.array(ri))
        s = store_u if si is None else store_u.take(pa.array(si))
        bad_rows = np.zeros(len(common), dtype=bool)
        for name in self.table.column_names:
            if name == self.pk:
                continue
            a = r.column(name)
            b = s.column(name)
            if isinstance(a, pa.ChunkedArray):
                a = a.combine_chunks()
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


def _default_validator_factory(p: Policy, out: Path, names: list[str]) -> Any:
    from lomevexi_governance.validation import GxValidator

    return GxValidator(p, out, tables=names)


def _recorded_backup_failures(recorded: Mapping[str, Any] | None, table: str) -> list[dict[str, Any]]:
    """The backup-stage GX failures the point recorded for ``table`` (what compare_validation compares)."""
    return [
        dict(f)
        for f in (recorded or {}).get("failed", [])
        if f.get("table") == table and f.get("stage") == "backup" and f.get("expectation") != "reference"
    ]


def _gx_inheritable(
    manifest: Mapping[str, Any], expected: Mapping[str, int], got: Mapping[str, int], erased_rows: int
) -> str | None:
    """Why the backup's GX outcome holds for the restored table; ``None``: the suite must run.

    Per-column checksums mix each value with its row's primary key, so when every column's
    checksum (and the row count) read back equals the expected one, the restored table holds
    exactly the (key, value) pairs of the rows the backup-stage suite validated at backup time
    (less the rows erased since the point, whose checksums were subtracted). The same rows give
    the same outcome of that suite; a subset of them can only lose failures, never gain one
    (every backup-stage expectation is per value, or the column set), which is what the
    comparison with the backup allows for erased tables. So re-running the suite could not
    change the verdict. It still runs when anything differs, or when the point recorded no
    per-table outcome.
    """
    recorded = manifest.get("validation")
    if not recorded or "tables" not in recorded:
        return None
    if not expected or _diff_columns(expected, got, [k for k in expected if k != checksums.ROWS]):
        return None
    if erased_rows:
        return (
            "inherited from the backup's outcome: the restored content is checksum-identical to the point's "
            f"less {erased_rows} row(s) erased since the point, so failures can only have decreased"
        )
    return "inherited from the backup's outcome: the restored content is checksum-identical to the point's"


def verify_table(
    plan: DrillPlan,
    name: str,
    *,
    storage: Storage,
    keys: KeyService,
    policy: Policy,
    target: DatabaseTarget,
    store: DatabaseTarget | None,
    validator_factory: Callable[[Policy, Path, list[str]], Any] | None = None,
    point: rp.PointRef | None = None,
) -> dict[str, Any]:
    """Read one restored table back and check it; write ``state/checked/<table>.json``.

    In one streamed pass, in primary-key order: row count and per-column checksums (the proof
    that every row came back; compared with the manifest's, less skipped and dropped rows), and
    the live-store comparison (a merge with one key-ordered query of the store). Then the Great
    Expectations outcome: inherited from the backup when the content is checksum-identical to
    the point (see :func:`_gx_inheritable`), else the table's backup-stage suite runs on the
    restored data (a second streamed pass). A mismatch is recorded, not raised:
    :func:`verify_restored` fails the drill naming every table and column that differs.
    """
    check_deadline(plan, f"before verifying {name}")
    bounded_memory()
    verified = _verified_state(plan)
    r_info = _read_state(plan.state_dir, f"{RESTORE_DIR}/{name}")
    if not r_info or not r_info.get("complete"):
        raise IntegrityError(f"restore drill {plan.run_id}: {name} was not restored; nothing to verify")
    if point is None:
        point = rp.load_point(storage, plan.recovery_point_id, keys)
    manifest = point.manifest
    mt = manifest["tables"][name]
    table = recorded_table(policy, name, mt)
    snapshot_at = dt.datetime.fromisoformat(verified["snapshot_started_at"])
    started = time.monotonic()
    skipped: dict[str, int] = {}
    skipped_rows = 0
    for part in verified["shredded_partitions_skipped"] + r_info.get("shredded_during_drill", []):
        for f in part["files"]:
            if f["table"] == name:
                skipped = checksums.combine([skipped, checksums.from_hex(f["checksums"])])
                skipped_rows += int(f["rows"])
    dropped = checksums.from_hex(r_info.get("dropped_checksums") or {})
    table_sums = checksums.from_hex(mt.get("checksums") or {})
    expected = checksums.subtract(checksums.subtract(table_sums, skipped), dropped)
    dropped_rows = int(r_info["dropped_by_purge_tombstones"])
    expected_rows = int(mt["rows"]) - skipped_rows - dropped_rows
    got: dict[str, int] = {}
    live = None
    live_note = None
    schema = recorded_schema(table)
    with contextlib.ExitStack() as stack:
        reader = stack.enter_context(_OrderedReader(target, VERIFY_BATCH_ROWS))
        store_snap = stack.enter_context(Snapshot(store, batch_rows=VERIFY_BATCH_ROWS)) if store else None
        if store_snap is not None and store is not None:
            present = store_snap.columns(name)
            lacking = [c for c in table.column_names if present is None or c not in present]
            if lacking:
                live_note = f"the live store lacks {name} column(s) {lacking}; not compared"
            else:
                ordered = None
                threadable = False
                if plan.verification == "full":
                    store_reader = stack.enter_context(_OrderedReader(store, VERIFY_BATCH_ROWS))
                    ordered = functools.partial(store_reader.ordered, table, schema)
                    threadable = store_reader.threadable
                live = LiveCompare(
                    table,
                    store_snap,
                    snapshot_at,
                    mode=plan.verification,
                    sample_rows=plan.sample_rows,
                    expected_rows=expected_rows,
                    ordered_store=ordered,
                    prefetch=threadable,
                )
                stack.callback(live.close)
        # read back on a helper thread, one batch ahead of the checksums and the merge
        restored = reader.ordered(table, schema)
        for batch in prefetched(restored, depth=1, name="restore-read") if reader.threadable else restored:
            check_deadline(plan, f"while verifying {name}")
            got = checksums.combine([got, checksums.batch_checksums(batch, table.primary_key)])
            if live is not None:
                live.process(batch)
        live_stats = live.finish() if live is not None else None
    bad = _diff_columns(expected, got, table.column_names)
    restored_rows = int(got.get(checksums.ROWS, 0))
    entry: dict[str, Any] = {
        "expected_rows": expected_rows,
        "restored_rows": restored_rows,
        "rows_in_point": int(mt["rows"]),
        "rows_ok": restored_rows == expected_rows,
        "checksums": "ok" if not bad else "mismatch",
        "mismatched_columns": [c for c in bad if c != checksums.ROWS],
        "columns_checked": len(table.column_names),
        "skipped_shredded_rows": skipped_rows,
        "dropped_by_purge_tombstones": dropped_rows,
        "files_restored": r_info["files"],
        "erased_since_point": bool(skipped_rows or dropped_rows),
        "live_store": live_stats
        if live_stats is not None
        else {"mode": plan.verification, "skipped": live_note or "no store connection"},
    }
    # Great Expectations: inherited when the content is the point's, else run on the restored rows
    gx: dict[str, Any] = {"table": name, "run": False}
    if name in policy.tables and policy.tables[name].backup:
        reason = _gx_inheritable(manifest, expected, got, skipped_rows + dropped_rows)
        if reason is not None:
            gx |= {
                "basis": "inherited",
                "note": reason,
                "failed": _recorded_backup_failures(manifest.get("validation"), name),
            }
        else:
            check_deadline(plan, f"before running the Great Expectations suite on {name}")
            gx_started = time.monotonic()
            factory = validator_factory or _default_validator_factory
            validator = factory(policy, Path(plan.report_dir) / "validation" / name, [name])
            stage = validator.backup_stage(policy.tables[name])
            with _OrderedReader(target, plan.batch_rows) as again:
                for batch in again.ordered(table, schema):
                    check_deadline(plan, f"while running the Great Expectations suite on {name}")
                    stage.process(batch)
            finish = getattr(stage, "finish", None)  # GX validates gathered batches at the table's end
            if finish is not None:
                finish()
            if not restored_rows:
                validator.cover_empty(policy.tables[name])
            summary = validator.finish(extra_columns={}, run_name=plan.run_id)
            gx |= {
                "run": True,
                "basis": "run on the restored data",
                "failed": [f for f in summary.get("failed", []) if f.get("table") == name],
                "results_dir": summary.get("results_dir"),
                "seconds": round(time.monotonic() - gx_started, 3),
            }
    entry["gx"] = gx
    entry["seconds"] = round(time.monotonic() - started, 3)
    _write_state(plan.state_dir, f"{CHECKED_DIR}/{name}", entry)
    release_memory()
    log.info(
        "restore drill %s: %s read back, %d rows, checksums %s, GX %s in %.2fs",
        plan.run_id,
        name,
        restored_rows,
        entry["checksums"],
        gx.get("basis", "not applicable"),
        entry["seconds"],
    )
    return entry


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
    """Every table's checks together, plus references; raise :class:`DrillFailed` naming what differs.

    Tables not yet checked (:func:`verify_table`, a mapped task each in the DAG) are checked here
    first, one after the other.
    """
    check_deadline(plan, "before verifying the restored data")
    verified = _verified_state(plan)
    tables: list[str] = verified["tables"]
    restored = finish_restore(plan)
    point = rp.load_point(storage, plan.recovery_point_id, keys)
    manifest = point.manifest
    started = time.monotonic()
    per_table: dict[str, Any] = {}
    for name in tables:
        state = _read_state(plan.state_dir, f"{CHECKED_DIR}/{name}")
        if state is None:
            state = verify_table(
                plan,
                name,
                storage=storage,
                keys=keys,
                policy=policy,
                target=target,
                store=store,
                validator_factory=validator_factory,
                point=point,
            )
        per_table[name] = state
    problems: list[str] = []
    erased = {t: bool(per_table[t].get("erased_since_point")) for t in tables}
    for name in tables:
        entry = per_table[name]
        live_d = entry["live_store"]
        if live_d.get("mismatched_rows"):
            problems.append(
                f"{name}: {live_d['mismatched_rows']} restored row(s) differ from the live store "
                f"although unchanged since the point (columns {sorted(live_d['mismatched_columns'])})"
            )
        if not entry["rows_ok"]:
            problems.append(f"{name}: {entry['restored_rows']} rows restored, {entry['expected_rows']} expected")
        if entry["mismatched_columns"]:
            problems.append(f"{name}: checksum mismatch in column(s) {entry['mismatched_columns']}")
    check_deadline(plan, "before checking references")
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
    gx_tables = [t for t in tables if per_table[t]["gx"].get("basis")]
    if gx_tables:
        restored_outcome = {"failed": [f for t in gx_tables for f in per_table[t]["gx"]["failed"]]}
        validation = compare_validation(manifest.get("validation"), restored_outcome, gx_tables, erased)
        ran = [t for t in gx_tables if per_table[t]["gx"]["run"]]
        validation["inherited_tables"] = [t for t in gx_tables if not per_table[t]["gx"]["run"]]
        validation["run_tables"] = ran
        if ran:
            validation["results_dir"] = str(Path(plan.report_dir) / "validation")
        for t in gx_tables:
            if t in validation.get("tables", {}):
                validation["tables"][t]["basis"] = per_table[t]["gx"]["basis"]
    else:
        validation = {"status": "not_run", "ok": True}
    for t in tables:
        per_table[t].pop("gx", None)
        per_table[t].pop("erased_since_point", None)
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
    snapshot_at = dt.datetime.fromisoformat(verified["snapshot_started_at"])
    out = {
        "verification_ended_at": ended.isoformat(),
        # the tables' own read-back times plus this step's: what verification costs
        "seconds": round(sum(per_table[t].get("seconds", 0) for t in tables) + time.monotonic() - started, 3),
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
            f"restore drill of {plan.recovery_point_id}: the restored data does not match: " + "; ".join(problems)
        )
    log.info(
        "restore drill %s: restored data verified (RTO %.1fs, RPO %.0fs)",
        plan.run_id,
        out["rto_seconds"],
        out["rpo_seconds"],
    )
    return out


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
    restored_failed = {(f["table"], f["key"]): f for f in restored.get("failed", []) if f.get("stage") == "backup"}
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
            and recorded_failed[(t, k)].get("unexpected_count") != restored_failed[(t, k)].get("unexpected_count")
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
                entry["note"] = "rows erased since the point (retention or purge) may have removed the offending rows"
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
    failure = read_failure(report_dir)
    verify_d = _read_state(state, "verify") or {}
    restore_d = collect_restore(state)
    if not restore_d.get("created_tables") and not restore_d.get("tables"):
        restore_d = {}  # the restore never started
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
    elif plan is not None and dt.datetime.fromisoformat(verification["verification_ended_at"]) > plan.deadline_at:
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
            for p in verify_d.get("shredded_partitions_skipped", []) + restore_d.get("shredded_during_drill", [])
        ],
        "validation": verification.get("validation"),
        "target": {"dialect": target.dialect, "conn_id": target.conn_id, "scratch": target.scratch} if target else None,
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

    The per-table steps run table by table, each table restored and then read back (what the
    DAG's mapped tasks do in parallel; on PostgreSQL the tables load one after the other on a
    helper thread, in :func:`load_order`, while the loaded ones are read back), then the checks
    across tables.
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
                raise ConfigurationError(f"run_drill: params name connection {plan.target_conn_id!r} but no target")
        with drill_step(report_dir, "pin_point"):
            pin_point(plan, storage)
            pinned = True
        with drill_step(report_dir, "prepare_target"):
            info = prepare_target(plan, target, store)
        with drill_step(report_dir, "verify_point"):
            verify_point(plan, storage, keys)
        db_target = target_database(info, target)
        with drill_step(report_dir, "restore"):
            point = rp.load_point(storage, plan.recovery_point_id, keys)
            if tombstones is None:
                tombstones = load_tombstones(storage, keys)

        shared: dict[str, Any] = {"storage": storage, "keys": keys, "policy": policy, "target": db_target,
                                  "point": point}

        def restore_one(name: str) -> None:
            with drill_step(report_dir, "restore", table=name):
                restore_table(plan, name, info=info, tombstones=tombstones, **shared)  # type: ignore[arg-type]

        def verify_one(name: str) -> None:
            with drill_step(report_dir, "verify_restored", table=name):
                verify_table(plan, name, store=store, validator_factory=validator_factory, **shared)  # type: ignore[arg-type]

        tables = drill_tables(plan)
        if info.dialect == "postgresql":
            # the loads run back to back on a helper thread while the main thread reads back each
            # table as soon as it is loaded, so the server's and the client's work overlap
            with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore-load") as pool:
                order = load_order(point.manifest, tables)
                loads = {name: pool.submit(restore_one, name) for name in order}
                try:
                    for name in order:
                        loads[name].result()
                        verify_one(name)
                except BaseException:
                    pool.shutdown(cancel_futures=True)  # the table being loaded finishes (or fails) first
                    raise
        else:  # SQLite has one writer: one table at a time
            for name in tables:
                restore_one(name)
                verify_one(name)
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


def prepare_target_task(env: Any, plan: Mapping[str, Any], resolve_target: Callable[[str], DatabaseTarget]) -> dict:
    p = _plan(plan)
    with drill_step(env.report_dir, "prepare_target"):
        return prepare_target(p, _resolve(p.target_conn_id, resolve_target), env.store).as_dict()


def verify_point_task(env: Any, plan: Mapping[str, Any]) -> dict[str, Any]:
    """Returns ids and counts only, and ``tables``: the list the per-table tasks are mapped over."""
    with drill_step(env.report_dir, "verify_point"):
        out = verify_point(_plan(plan), env.storage, env.keys)
    return {k: out[k] for k in ("recovery_point_id", "files_verified", "bytes_verified", "tables")} | {
        "shredded_partitions_skipped": [p["partition"] for p in out["shredded_partitions_skipped"]]
    }


def restore_table_task(
    env: Any,
    plan: Mapping[str, Any],
    target: Mapping[str, Any],
    table: str,
    resolve_target: Callable[[str], DatabaseTarget],
) -> dict[str, Any]:
    """One mapped task instance: restore one table (bounded memory; other tables run alongside)."""
    p = _plan(plan)
    info = TargetInfo.from_dict(target)
    with drill_step(env.report_dir, "restore", table=table):
        out = restore_table(
            p,
            table,
            storage=env.storage,
            keys=env.keys,
            policy=env.policy,
            info=info,
            target=target_database(info, _resolve(info.conn_id, resolve_target)),
        )
    return {k: out[k] for k in ("table", "seconds", "rows_written", "dropped_by_purge_tombstones")}


def verify_table_task(
    env: Any,
    plan: Mapping[str, Any],
    target: Mapping[str, Any],
    table: str,
    resolve_target: Callable[[str], DatabaseTarget],
) -> dict[str, Any]:
    """One mapped task instance: read one restored table back and check it."""
    p = _plan(plan)
    info = TargetInfo.from_dict(target)
    with drill_step(env.report_dir, "verify_restored", table=table):
        out = verify_table(
            p,
            table,
            storage=env.storage,
            keys=env.keys,
            policy=env.policy,
            target=target_database(info, _resolve(info.conn_id, resolve_target)),
            store=env.store,
        )
    return {"table": table, "rows": out["restored_rows"], "checksums": out["checksums"]}


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
