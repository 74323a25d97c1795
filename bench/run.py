"""``make bench``: the performance benchmark of the governance jobs (issue 8).

    python -m bench.run --orders 2000000                 # what `make bench` runs
    python -m bench.run --orders 1000000,5000000 --cases backup,restore_drill   # flat memory
    python -m bench.run --orders 200000 --runs 1 --cases floor,backup --out /tmp/b --keep
    python -m bench.run --orders 2000000 --runs 1 --cases backup --profile backup

For every scale it creates a uniquely named database on the local PostgreSQL, seeds it with
:func:`lomevexi_governance.seed.seed_store` (N orders and proportional items, payments,
shipments, tickets, holds and access-log events), then runs every selected case ``--runs``
times, round-robin (all cases once, then all again), each as its own process tree:

* wall time: ``time.monotonic()`` around the subprocess;
* peak RSS: the sum of the RSS of the process and all its descendants, polled every 50 ms
  with psutil (PostgreSQL server backends are not in the tree: see bench/README.md);
* CPU seconds of the tree (``wait4`` rusage), the host's CPU seconds (the server's included) and load
  average.

Before each run, untimed, the harness settles the machine: ``CHECKPOINT`` and ``sync``, so that
no run pays for the writes of the one before it (``settle_s`` in the JSON).

It writes ``bench-<orders>-<time>.json`` (every run, exact commands), ``.md`` (tables, ratios,
targets met / not met) and ``.svg`` (median wall time per case) under ``--out`` and prints the
markdown table. Databases are dropped at the end unless ``--keep``.

``python -m bench.run worker --spec FILE`` is the child process of the library cases;
``python -m bench.run render RESULTS.json`` recomputes ratios and targets and rewrites the
JSON with its markdown and SVG.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
AIRFLOW = ROOT / "bin" / "airflow"
FORMAT = "lomevexi-bench/1"
DEFAULT_PG = os.environ.get("GOVERNANCE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
DEFAULT_AS_OF = "2026-11-24T00:00:00+00:00"
#: the bench keyring's root key: fixed and public (derived from this text), never a real key
BENCH_ROOT_KEY = hashlib.sha256(b"lomevexi bench root key: public, benchmark only").digest()
#: the incumbents' openssl passphrase (bench only), passed with -pass file:
OPENSSL_PASS = "lomevexi-bench-only"
OPENSSL_CIPHER = ("-aes-256-cbc", "-pbkdf2")
POLL_SECONDS = 0.05
CASE_TIMEOUT = 3 * 3600
MB = 1_000_000
TARGET_ORDERS = 2_000_000
RSS_LIMIT_MB = 400.0
FLAT_LIMIT = 1.3
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class Case:
    id: str
    group: str  # floor | incumbent | project | restore | job
    item: str  # the item (a..f)
    label: str
    what: str
    store_data: bool = True  # reads or writes the whole in-scope store (MB/s is meaningful)
    default: bool = True  # in the default case list (``--cases`` names the others)


CASES: tuple[Case, ...] = (
    Case("floor", "floor", "a", "COPY binary floor",
         "COPY (SELECT <allowed columns>) TO STDOUT (FORMAT binary) of every in-scope table, to /dev/null"),
    Case("pg_dump_gzip", "incumbent", "b", "pg_dump -Fc | openssl",
         "pg_dump -Fc (default gzip) of the in-scope tables | openssl enc -aes-256-cbc -pbkdf2"),
    Case("pg_dump_zstd", "incumbent", "b", "pg_dump -Z0 | zstd | openssl",
         "pg_dump -Fc -Z0 | zstd -3 -T2 | openssl enc -aes-256-cbc -pbkdf2"),
    Case("backup", "project", "c", "backup (library call)",
         "backup.run_backup as the DAG's write task calls it: GX gate, content scan, encrypted Parquet, "
         "checksums, SHA-256, signed manifest, published"),
    Case("backup_dag", "project", "c", "order_backup DAG run",
         "airflow dags test order_backup: preflight, write_and_publish, verify, expire, report, "
         "validation_gate; the run's state must be success"),
    Case("backup_plain", "project", "d", "backup, encryption off",
         "backup.run_backup(encrypt=False), otherwise as 'backup'"),
    Case("backup_2proc", "project", "c", "backup, two processes",
         "backup.run_backup(workers=2): tables written by two processes on one exported snapshot, "
         "otherwise as 'backup' (which uses the policy's recovery_points.workers, 1)", default=False),
    Case("backup_1proc", "project", "c", "backup, one process",
         "backup.run_backup(workers=1): every table in the leader process, otherwise as 'backup' "
         "(the same as 'backup' while the policy's recovery_points.workers is 1)", default=False),
    Case("restore_drill", "restore", "e", "restore drill (+ verification)",
         "restore.run_drill into a fresh PostgreSQL database, verification 'full': signature, SHA-256, "
         "keys, load, row counts and checksums, references, GX, live-store comparison"),
    Case("pg_restore_gzip", "restore", "e", "openssl dec | pg_restore",
         "openssl enc -d | pg_restore of the pg_dump -Fc dump into a fresh database"),
    Case("pg_restore_zstd", "restore", "e", "openssl dec | zstd -d | pg_restore",
         "openssl enc -d | zstd -d | pg_restore of the -Z0 + zstd dump into a fresh database"),
    Case("validation", "job", "f", "validation alone",
         "GX suites (source and backup stage), content scan and reference checks over the store's "
         "batches (source.Snapshot), nothing written"),
    Case("validation_gx", "job", "f", "validation alone, GX engine",
         "as 'validation', with Great Expectations' pandas engine evaluating every expectation on "
         "frames (GxValidator(native=False), the gate before the Arrow metrics): the alternative, "
         "side by side", default=False),
    Case("purge", "job", "f", "purge of one night",
         "purge.run_purge at the logical date on a copy of the store already purged to the day before",
         store_data=False),
    Case("audit", "job", "f", "access audit",
         "python -m lomevexi_governance.audit.bench --events N: the audit engine over N synthetic events",
         store_data=False),
)
CASE_IDS = tuple(c.id for c in CASES)
DEFAULT_CASES = [c.id for c in CASES if c.default]
BY_ID = {c.id: c for c in CASES}
WORKER_CASES = (
    "backup", "backup_plain", "backup_2proc", "backup_1proc", "restore_drill", "validation", "validation_gx", "purge",
)
GROUP_COLORS = {
    "floor": "#7f7f7f", "incumbent": "#d9822b", "project": "#2f6db5", "restore": "#3a9a5b", "job": "#7a5bb5",
}


class CaseFailed(RuntimeError):
    """A measured command exited non-zero or did not do what it must (named in the message)."""


# -- measuring one process tree ------------------------------------------------------------------


@dataclass
class Measured:
    wall_s: float
    exit_code: int
    peak_rss_tree: int
    maxrss_single: int
    cpu_s: float
    host_cpu_busy_pct: float
    host_cpu_s: float
    loadavg_before: tuple[float, float, float]
    samples: int
    timeline: list[tuple[int, int]] = field(default_factory=list)  # (second, max tree RSS in it)
    #: when the peak was sampled (seconds from the start) and the tree's processes then
    peak_at_s: float = 0.0
    peak_processes: list[dict[str, Any]] = field(default_factory=list)
    #: untimed, before the run: CHECKPOINT and sync (Harness.settle)
    settle_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "wall_s": round(self.wall_s, 3),
            "settle_s": round(self.settle_s, 3),
            "exit_code": self.exit_code,
            "peak_rss_tree_mb": round(self.peak_rss_tree / MB, 1),
            "maxrss_single_mb": round(self.maxrss_single / MB, 1),
            "cpu_s": round(self.cpu_s, 2),
            "host_cpu_busy_pct": round(self.host_cpu_busy_pct, 1),
            "host_cpu_s": round(self.host_cpu_s, 2),
            "loadavg_before": [round(x, 2) for x in self.loadavg_before],
            "rss_samples": self.samples,
            "rss_timeline_mb": [[t, round(b / MB)] for t, b in self.timeline],
            "peak_at_s": round(self.peak_at_s, 2),
            "peak_processes": self.peak_processes,
        }


def _tree_rss(proc: Any) -> tuple[int, list[tuple[Any, int]]]:
    """The process tree's RSS, and each process's (psutil process, RSS)."""
    import psutil

    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, []
    parts = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            parts.append((p, p.memory_info().rss))
    return sum(rss for _p, rss in parts), parts


def _describe(parts: list[tuple[Any, int]]) -> list[dict[str, Any]]:
    """The processes of a sample, largest first: pid, name and RSS (no arguments: they may name
    files or databases, never secrets, but a name is enough to tell a child from the case)."""
    import psutil

    out = []
    for p, rss in sorted(parts, key=lambda x: -x[1]):
        name = "?"
        with contextlib.suppress(psutil.Error):
            name = p.name()
        out.append({"pid": p.pid, "name": name, "rss_mb": round(rss / MB, 1)})
    return out


def _busy(times: Any) -> tuple[float, float]:
    total = sum(times)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def measure(argv: Sequence[str], *, env: dict[str, str], log_path: Path, timeout: float = CASE_TIMEOUT) -> Measured:
    """Run ``argv`` as a new process group; wall time, peak tree RSS, CPU, host load."""
    import psutil

    load = os.getloadavg()
    cpu0 = _busy(psutil.cpu_times())
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"$ {shlex.join(argv)}\n".encode())
        log.flush()
        started = time.monotonic()
        proc = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
    peak = 0
    peak_at = 0.0
    peak_processes: list[dict[str, Any]] = []
    samples = 0
    per_second: dict[int, int] = {}
    stop = threading.Event()
    try:
        ps: Any = psutil.Process(proc.pid)
    except psutil.Error:
        ps = None

    def sample() -> None:
        nonlocal peak, peak_at, peak_processes, samples
        while True:
            if ps is not None:
                rss, parts = _tree_rss(ps)
                if rss > peak:  # which processes make it up: a short-lived child shows here
                    peak, peak_at, peak_processes = rss, time.monotonic() - started, _describe(parts)
                second = int(time.monotonic() - started)
                per_second[second] = max(per_second.get(second, 0), rss)
                samples += 1
            if stop.wait(POLL_SECONDS):
                return
            if time.monotonic() - started > timeout:
                _kill_group(proc.pid)

    sampler = threading.Thread(target=sample, name="rss-sampler", daemon=True)
    sampler.start()
    try:
        _pid, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        _kill_group(proc.pid)
        stop.set()
        proc.wait()
        raise
    wall = time.monotonic() - started
    stop.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    _kill_group(proc.pid)  # a pipeline member that outlived its shell
    cpu1 = _busy(psutil.cpu_times())
    busy, total = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    return Measured(
        wall_s=wall,
        exit_code=proc.returncode,
        peak_rss_tree=peak,
        maxrss_single=usage.ru_maxrss * 1024,
        cpu_s=usage.ru_utime + usage.ru_stime,
        host_cpu_busy_pct=100.0 * busy / total if total > 0 else 0.0,
        host_cpu_s=busy,
        loadavg_before=load,
        samples=samples,
        timeline=sorted(per_second.items()),
        peak_at_s=peak_at,
        peak_processes=peak_processes,
    )


def _settled(result: dict[str, Any]) -> bool:
    """Whether the runs of ``result`` were settled first (results since 2026-12-08)."""
    return any("settle_s" in run for s in result["scales"] for c in s["cases"].values() for run in c.get("runs", []))


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(text[-lines:])


# -- the child process of the library cases ------------------------------------------------------


def _w_common(spec: dict[str, Any]) -> tuple[Any, Any, dt.datetime]:
    from lomevexi_governance.policy import load_policy
    from lomevexi_governance.settings import target_from_uri

    policy = load_policy()
    store = target_from_uri(spec["store_uri"], conn_id="store_db")
    return policy, store, dt.datetime.fromisoformat(spec["logical_date"])


def _w_keys(path: str) -> Any:
    from lomevexi_governance.keys import LocalKeyring

    return LocalKeyring(path, BENCH_ROOT_KEY, source="bench keyring")


def _w_backup(spec: dict[str, Any]) -> dict[str, Any]:
    from lomevexi_governance.backup import run_backup
    from lomevexi_governance.storage import storage_for
    from lomevexi_governance.validation import GxValidator

    policy, store, day = _w_common(spec)
    keys = _w_keys(spec["keyring"])
    storage = storage_for(spec["backup_root"])
    validation_dir = Path(spec["report_dir"]) / "validation"
    started = time.monotonic()
    outcome = run_backup(
        policy=policy,
        target=store,
        storage=storage,
        keys=keys,
        logical_date=day,
        run_id=spec["run_id"],
        encrypt=bool(spec["encrypt"]),
        validator_factory=lambda p, tables: GxValidator(p, validation_dir, tables=tables),
        workers=spec.get("workers"),
    )
    call = time.monotonic() - started
    d = outcome.as_dict()
    if d["already_published"]:
        raise CaseFailed(f"{outcome.recovery_point_id} was already published: the backup root must be fresh")
    return {
        "call_s": round(call, 3),
        "rows": d["rows"],
        "bytes": d["bytes"],
        "files": sum(t["files"] for t in d["tables"].values()),
        "recovery_point_id": d["recovery_point_id"],
        "validation_success": bool(outcome.validation.get("success")),
        "violations": len(d["violations"]),
    }


def _w_restore_drill(spec: dict[str, Any]) -> dict[str, Any]:
    from lomevexi_governance.reports import read_json, run_report_dir
    from lomevexi_governance.restore import run_drill
    from lomevexi_governance.settings import target_from_uri
    from lomevexi_governance.storage import storage_for

    policy, store, _day = _w_common(spec)
    target = target_from_uri(spec["target_uri"], conn_id="bench_restore")
    keys = _w_keys(spec["keyring"])
    storage = storage_for(spec["backup_root"])
    params = {"recovery_point": "latest", "target_conn_id": "bench_restore", "verification": spec["verification"]}
    started = time.monotonic()
    summary = run_drill(
        params, policy=policy, storage=storage, keys=keys, store=store,
        report_root=spec["report_root"], run_id=spec["run_id"], target=target,
    )
    call = time.monotonic() - started
    if summary["status"] != "SUCCESSFUL":
        raise CaseFailed(f"restore drill {summary['status']}: {summary.get('failure')}")
    state = Path(run_report_dir(spec["report_root"], "restore_drill", spec["run_id"])) / "state"

    def seconds(name: str) -> float | None:
        path = state / f"{name}.json"
        return read_json(path).get("seconds") if path.exists() else None

    return {
        "call_s": round(call, 3),
        "rows": summary["rows_restored"],
        "bytes": (summary.get("point") or {}).get("bytes_verified"),
        "rto_s": summary["rto_seconds"],
        "verify_point_s": seconds("verify"),
        "restore_s": seconds("restore"),
        "verify_restored_s": seconds("verification"),
        "verification": spec["verification"],
    }


def _w_validation(spec: dict[str, Any]) -> dict[str, Any]:
    """What run_backup checks, without writing: the same checks in the same order per batch.

    Mirrors ``backup.run_backup``'s ``checks_for`` (GX source stage, content scan with masking,
    reference checks against the snapshot's orders/customers, GX backup stage) and its end of
    run (source column sets, empty tables, ``GxValidator.finish`` with results and Data Docs).
    """
    from lomevexi_governance.partitions import PartitionPlanner
    from lomevexi_governance.scan import ContentScanner, ReferenceCheck
    from lomevexi_governance.source import Snapshot
    from lomevexi_governance.validation import GxValidator

    policy, store, day = _w_common(spec)
    started = time.monotonic()
    clock = time.monotonic
    spent: Counter[str] = Counter()
    rows = 0
    validator = GxValidator(policy, Path(spec["report_dir"]) / "validation", tables=None,
                            native=not spec.get("gx_engine"))
    spent["gx_setup"] += clock() - started
    scope = list(policy.backup_tables)
    references = []
    scanners = []
    with Snapshot(store, batch_rows=policy.batch_rows) as snap:
        extra = snap.check_tables(scope)
        t0 = clock()
        planner = PartitionPlanner(policy, day)
        planner.load(snap)
        spent["planner_load"] += clock() - t0
        for table in scope:
            scanner = ContentScanner(table)
            scanners.append(scanner)
            checks: list[tuple[str, Any]] = [("gx_source", validator.source_stage(table)), ("content_scan", scanner)]
            known = {col: planner.known_ids(ref) for col, (ref, _c) in table.references.items()
                     if ref in ("orders", "customers")}
            if known:
                ref_check = ReferenceCheck(table, known)
                references.append(ref_check)
                checks.append(("references", ref_check))
            checks.append(("gx_backup", validator.backup_stage(table)))
            stream = snap.stream(table, ordered=False)
            while True:
                t0 = clock()
                batch = next(stream, None)
                spent["read"] += clock() - t0
                if batch is None:
                    break
                rows += batch.num_rows
                for name, check in checks:
                    t0 = clock()
                    batch = check.process(batch)
                    spent[name] += clock() - t0
            for name, check in checks:
                finish = getattr(check, "finish", None)
                if finish is not None:
                    t0 = clock()
                    finish()
                    spent[name] += clock() - t0
        t0 = clock()
        for table in scope:
            validator.check_source_columns(table, snap.columns(table.name) or [])
            validator.cover_empty(table)
        spent["gx_columns_and_empty"] += clock() - t0
    t0 = clock()
    violations = [v for r in references for v in r.violations()]
    summary = validator.finish(extra_columns=extra, reference_violations=violations, run_name=spec["run_id"])
    spent["gx_results_and_docs"] += clock() - t0
    call = time.monotonic() - started
    checks_s = sum(v for k, v in spent.items() if k not in ("read", "planner_load"))
    return {
        "call_s": round(call, 3),
        "validation_s": round(checks_s, 3),
        "rows": rows,
        "success": bool(summary.get("success")),
        "masked": sum(sum(s.result.as_dict()["masked"].values()) for s in scanners),
        **{f"{k}_s": round(v, 3) for k, v in sorted(spent.items())},
    }


def _w_purge(spec: dict[str, Any]) -> dict[str, Any]:
    from lomevexi_governance.purge import run_purge
    from lomevexi_governance.storage import storage_for

    policy, store, day = _w_common(spec)
    started = time.monotonic()
    outcome = run_purge(
        policy=policy, target=store, storage=storage_for(spec["backup_root"]), keys=_w_keys(spec["keyring"]),
        logical_date=day, run_id=spec["run_id"], dry_run=False, check_guard=False,
    )
    call = time.monotonic() - started
    return {
        "call_s": round(call, 3),
        "rows": int(sum(outcome.purged.values())),
        "purged": {k: int(v) for k, v in outcome.purged.items()},
        "plan_s": round(outcome.plan_seconds, 3),
        "delete_s": round(outcome.delete_seconds, 3),
        "batches": outcome.batches,
        "shredded_keys": len(outcome.shredded_keys),
    }


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "backup": _w_backup,
    "backup_plain": _w_backup,
    "backup_1proc": _w_backup,
    "backup_2proc": _w_backup,
    "restore_drill": _w_restore_drill,
    "validation": _w_validation,
    "validation_gx": _w_validation,
    "purge": _w_purge,
}


def worker_main(argv: Sequence[str]) -> int:
    import logging

    ap = argparse.ArgumentParser(prog="python -m bench.run worker")
    ap.add_argument("--spec", required=True, help="the case's spec (JSON) written by the harness")
    args = ap.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    out = WORKERS[spec["case"]](spec)
    out["maxrss_self_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB, 1)
    Path(spec["result"]).write_text(json.dumps(out, indent=2, sort_keys=True))
    return 0


# -- the harness ------------------------------------------------------------------------------------


@dataclass
class Scale:
    orders: int
    db: str
    uri: str
    rows: dict[str, int] = field(default_factory=dict)  # in-scope tables
    table_bytes: dict[str, int] = field(default_factory=dict)  # pg_table_size, in-scope tables
    all_rows: dict[str, int] = field(default_factory=dict)  # every seeded table
    seed_s: float = 0.0
    db_bytes: int = 0

    @property
    def tag(self) -> str:
        return f"o{self.orders}"

    @property
    def in_scope_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def data_bytes(self) -> int:
        return sum(self.table_bytes.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "orders": self.orders,
            "database": self.db,
            "seed_s": round(self.seed_s, 1),
            "rows_in_scope": self.in_scope_rows,
            "rows": self.rows,
            "rows_all_tables": self.all_rows,
            "table_bytes": self.table_bytes,
            "data_mb_in_scope": round(self.data_bytes / MB, 1),
            "database_mb": round(self.db_bytes / MB, 1),
        }


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


class Harness:
    def __init__(self, opts: argparse.Namespace, work: Path):
        from lomevexi_governance.policy import load_policy

        self.opts = opts
        self.work = work
        self.pg = opts.pg.rstrip("/")
        self.base = f"bench_{uuid.uuid4().hex[:10]}"
        self.policy = load_policy()
        self.tables = list(self.policy.backup_tables)
        self.as_of = dt.datetime.fromisoformat(opts.as_of).astimezone(dt.timezone.utc)
        self.logical = self.as_of  # the nightly run at the data's "now"
        self.databases: list[str] = []
        self.keyring = work / "kms" / "keyring.db"
        self.pass_file = work / "openssl.pass"
        self.tmp = work / "tmp"
        self.logs = work / "logs"
        self.airflow_template: Path | None = None
        self.latest_point: Path | None = None
        self.latest_dump: dict[str, Path] = {}
        self.purge_base: dict[int, str] = {}
        self.server_major = 15
        self.checkpoint = True  # CHECKPOINT before each run (settle); off after it first fails
        # the children see no Airflow setting of the caller: a scratch Airflow home (the library
        # parses connection URIs with Airflow's Connection), the DAG case sets its own
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        self.env.update({
            "GX_ANALYTICS_ENABLED": "false",
            "TMPDIR": str(self.tmp),
            "PYTHONUNBUFFERED": "1",
            "AIRFLOW_HOME": str(work / "airflow-scratch"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{work / 'airflow-scratch' / 'airflow.db'}",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        })
        for d in (self.tmp, self.logs, self.keyring.parent):
            d.mkdir(parents=True, exist_ok=True)
        self.pass_file.write_text(OPENSSL_PASS + "\n")
        self.pass_file.chmod(0o600)

    # -- PostgreSQL -------------------------------------------------------------------------------
    def uri(self, db: str) -> str:
        return f"{self.pg}/{db}"

    @contextlib.contextmanager
    def admin(self) -> Iterator[Any]:
        import psycopg

        conn = psycopg.connect(self.uri("postgres"), autocommit=True, connect_timeout=10)
        try:
            yield conn
        finally:
            conn.close()

    def create_db(self, name: str, template: str | None = None) -> str:
        self.databases.append(name)
        sql = f"CREATE DATABASE {_ident(name)}"
        if template:
            sql += f" TEMPLATE {_ident(template)}"
            if self.server_major >= 15:  # copy the files (WAL_LOG would write the whole copy to the WAL)
                sql += " STRATEGY FILE_COPY"
        with self.admin() as conn:
            conn.execute(sql)
        return name

    def drop_db(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")
        if name in self.databases:
            self.databases.remove(name)

    def drop_all(self) -> None:
        for name in reversed(list(self.databases)):
            try:
                self.drop_db(name)
            except Exception as exc:  # noqa: BLE001 - report and go on dropping the others
                print(f"bench: could not drop database {name}: {exc}", file=sys.stderr)

    # -- setup ------------------------------------------------------------------------------------
    def tools(self) -> dict[str, str]:
        ensure_zstd()
        out = {}
        for tool, args in (
            ("pg_dump", ["--version"]), ("pg_restore", ["--version"]), ("psql", ["--version"]),
            ("zstd", ["--version"]), ("openssl", ["version"]),
        ):
            path = shutil.which(tool)
            if path is None:
                raise SystemExit(f"bench: {tool} is not installed")
            out[tool] = subprocess.run([path, *args], check=False, capture_output=True, text=True).stdout.strip()
        with self.admin() as conn:
            out["server"] = conn.execute("SELECT version()").fetchone()[0]
            server_major = self.server_major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000
        dump_major = int(re.search(r"(\d+)\.", out["pg_dump"]).group(1))  # type: ignore[union-attr]
        if dump_major < server_major:
            raise SystemExit(f"bench: pg_dump {dump_major} is older than the server ({server_major})")
        return out

    def seed(self, orders: int) -> Scale:
        from lomevexi_governance.seed import TABLES, seed_store
        from lomevexi_governance.settings import target_from_uri

        db = self.create_db(f"{self.base}_o{orders}")
        scale = Scale(orders, db, self.uri(db))
        print(f"bench: seeding {orders:,} orders into {db} ...", flush=True)
        started = time.monotonic()
        counts = seed_store(target_from_uri(scale.uri, conn_id="bench_seed"), orders=orders, as_of=self.as_of)
        with contextlib.closing(self._connect(scale.uri)) as conn:
            conn.execute("VACUUM (ANALYZE)")  # no autovacuum of the fresh tables during the runs
            for t in self.tables:
                scale.table_bytes[t.name] = int(
                    conn.execute("SELECT pg_table_size(%s::regclass)", (t.name,)).fetchone()[0]
                )
            scale.db_bytes = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
        scale.seed_s = time.monotonic() - started
        scale.all_rows = {t: int(counts.get(t, 0)) for t in TABLES}
        scale.rows = {t.name: int(counts.get(t.name, 0)) for t in self.tables}
        print(
            f"bench: seeded {sum(counts.values()):,} rows ({scale.in_scope_rows:,} in scope, "
            f"{scale.data_bytes / MB:,.0f} MB) in {scale.seed_s:.0f}s",
            flush=True,
        )
        return scale

    def _connect(self, uri: str) -> Any:
        import psycopg

        return psycopg.connect(uri, autocommit=True)

    def airflow_env(self, home: Path, store_uri: str, backup_root: Path, report_root: Path) -> dict[str, str]:
        env = dict(self.env)
        env.update({
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW_CONN_STORE_DB": store_uri,
            "AIRFLOW_CONN_GOVERNANCE_KMS": json.dumps({
                "conn_type": "generic",
                "password": _b64(BENCH_ROOT_KEY),
                "extra": {"backend": "local", "keyring_path": str(self.keyring)},
            }),
            "AIRFLOW_VAR_GOVERNANCE_BACKUP_ROOT": str(backup_root),
            "AIRFLOW_VAR_GOVERNANCE_REPORT_ROOT": str(report_root),
        })
        return env

    def ensure_airflow_template(self) -> Path:
        """One migrated Airflow home (SQLite metadata); each DAG run gets a fresh copy of its DB."""
        if self.airflow_template is None:
            home = self.work / "airflow-template"
            home.mkdir(parents=True, exist_ok=True)
            env = self.airflow_env(home, "postgresql://unused/unused", home, home)
            proc = subprocess.run(
                [str(AIRFLOW), "db", "migrate"], check=False, env=env, cwd=ROOT, capture_output=True, text=True
            )
            if proc.returncode != 0:
                raise CaseFailed("airflow db migrate failed:\n" + (proc.stdout + proc.stderr)[-3000:])
            self.airflow_template = home
        return self.airflow_template

    def ensure_purge_base(self, scale: Scale) -> str:
        """A copy of the store already purged up to the day before the logical date.

        The due rows of ``logical_date - 1 day`` (computed by ``purge.compute_plan``) are deleted
        in bulk (FK triggers off), then VACUUM ANALYZE: the steady state of a store purged every
        night, so that the measured purge deletes one night's rows. Not measured.
        """
        if scale.orders in self.purge_base:
            return self.purge_base[scale.orders]
        from lomevexi_governance.purge import compute_plan
        from lomevexi_governance.settings import target_from_uri

        started = time.monotonic()
        name = self.create_db(f"{scale.db}_purgebase", template=scale.db)
        plan = compute_plan(self.policy, target_from_uri(self.uri(name), conn_id="bench_purge"),
                            self.logical - dt.timedelta(days=1))
        order = [t for t in plan.tables if t != "orders"] + ["orders"]
        deleted = {}
        with contextlib.closing(self._connect(self.uri(name))) as conn:
            with conn.transaction():
                conn.execute("SET LOCAL session_replication_role = replica")
                for table in order:
                    ids = plan.ids(table)
                    if len(ids):
                        pk = _ident(self.policy.table(table).primary_key)
                        cur = conn.execute(f"DELETE FROM {_ident(table)} WHERE {pk} = ANY(%s)", (ids.tolist(),))
                        deleted[table] = cur.rowcount
            conn.execute("VACUUM (ANALYZE)")
        self.purge_base[scale.orders] = name
        print(f"bench: purge base {name}: pre-purged {deleted} in {time.monotonic() - started:.0f}s", flush=True)
        return name

    # -- commands ----------------------------------------------------------------------------------
    def floor_cmd(self, scale: Scale) -> str:
        parts = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", scale.uri]
        for t in self.tables:
            cols = ", ".join(_ident(c) for c in t.column_names)
            parts += ["-c", f"COPY (SELECT {cols} FROM {_ident(t.name)}) TO STDOUT (FORMAT binary)"]
        return shlex.join(parts) + " > /dev/null"

    def dump_cmd(self, scale: Scale, kind: str, out: Path) -> str:
        tflags = [x for t in self.tables for x in ("-t", f"public.{_ident(t.name)}")]
        enc = shlex.join(["openssl", "enc", *OPENSSL_CIPHER, "-pass", f"file:{self.pass_file}", "-out", str(out)])
        if kind == "gzip":
            return shlex.join(["pg_dump", "-Fc", "-d", scale.uri, *tflags]) + " | " + enc
        return shlex.join(["pg_dump", "-Fc", "-Z0", "-d", scale.uri, *tflags]) + " | zstd -3 -T2 -q -c | " + enc

    def restore_cmd(self, kind: str, dump: Path, target_uri: str) -> str:
        dec = shlex.join(["openssl", "enc", "-d", *OPENSSL_CIPHER, "-pass", f"file:{self.pass_file}", "-in", str(dump)])
        load = shlex.join(["pg_restore", "--no-owner", "--exit-on-error", "-d", target_uri])
        if kind == "gzip":
            return f"{dec} | {load}"
        return f"{dec} | zstd -d -q -c | {load}"

    def shell(self, cmd: str) -> list[str]:
        return ["bash", "-c", "set -euo pipefail; " + cmd]

    # -- running one case once ----------------------------------------------------------------------
    def run_dir(self, scale: Scale, case: str, rep: int | str) -> Path:
        d = self.work / "runs" / f"{scale.tag}-{case}-{rep}"
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        return d

    def settle(self) -> float:
        """Untimed, before every measured run: the server's dirty buffers written (``CHECKPOINT``)
        and the kernel's dirty pages synced, so that no run pays for the writes of the run before
        it (a restore leaves about 2.3 GB to write at 2M orders, the seed and the purge base more).
        Returns the seconds it took."""
        started = time.monotonic()
        if self.checkpoint:
            try:
                with self.admin() as conn:
                    conn.execute("CHECKPOINT")
            except Exception as exc:  # noqa: BLE001 - e.g. a role without pg_checkpoint: sync only, said once
                print(f"bench: CHECKPOINT before each run not possible, syncing only: {exc}", file=sys.stderr)
                self.checkpoint = False
        os.sync()
        return time.monotonic() - started

    def _measure(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Measured:
        settled = self.settle()
        m = measure(argv, env=env or self.env, log_path=log)
        m.settle_s = settled
        if m.exit_code != 0:
            raise CaseFailed(f"exit code {m.exit_code}; log {log}:\n{_tail(log)}")
        return m

    def record(self, m: Measured, command: str, log: Path, **extra: Any) -> dict[str, Any]:
        return m.as_dict() | {"command": command, "log": str(log)} | extra

    def worker_argv(self, spec: dict[str, Any], run_dir: Path) -> tuple[list[str], Path]:
        spec_path = run_dir / "spec.json"
        spec["result"] = str(run_dir / "result.json")
        spec_path.write_text(json.dumps(spec, indent=2, sort_keys=True))
        return [sys.executable, "-m", "bench.run", "worker", "--spec", str(spec_path)], spec_path

    def run_worker(self, case: str, spec: dict[str, Any], run_dir: Path, profile: Path | None = None) -> dict[str, Any]:
        argv, _spec = self.worker_argv(spec, run_dir)
        log = run_dir / "run.log"
        if profile is not None:
            argv = [*py_spy_argv(profile), *argv]
        m = self._measure(argv, log)
        result = json.loads(Path(spec["result"]).read_text())
        return self.record(
            m,
            shlex.join(argv),
            log,
            spec={k: v for k, v in spec.items() if k != "result"},
            rows=result.get("rows"),
            bytes=result.get("bytes"),
            detail=result,
        )

    def case_floor(self, scale: Scale, rep: int) -> dict[str, Any]:
        run_dir = self.run_dir(scale, "floor", rep)
        cmd = self.floor_cmd(scale)
        m = self._measure(self.shell(cmd), run_dir / "run.log")
        return self.record(m, cmd, run_dir / "run.log", rows=scale.in_scope_rows, bytes=None)

    def _dump(self, scale: Scale, rep: int | str, kind: str) -> tuple[dict[str, Any], Path]:
        run_dir = self.run_dir(scale, f"pg_dump_{kind}", rep)
        out = run_dir / f"store.{kind}.dump.enc"
        cmd = self.dump_cmd(scale, kind, out)
        m = self._measure(self.shell(cmd), run_dir / "run.log")
        return self.record(m, cmd, run_dir / "run.log", rows=scale.in_scope_rows, bytes=out.stat().st_size), out

    def _keep_dump(self, kind: str, out: Path) -> None:
        previous = self.latest_dump.get(kind)
        if previous is not None and previous.parent != out.parent:
            shutil.rmtree(previous.parent, ignore_errors=True)
        self.latest_dump[kind] = out

    def case_pg_dump_gzip(self, scale: Scale, rep: int) -> dict[str, Any]:
        rec, out = self._dump(scale, rep, "gzip")
        self._keep_dump("gzip", out)
        return rec

    def case_pg_dump_zstd(self, scale: Scale, rep: int) -> dict[str, Any]:
        rec, out = self._dump(scale, rep, "zstd")
        self._keep_dump("zstd", out)
        return rec

    def backup_spec(self, scale: Scale, run_dir: Path, case: str, rep: int | str, *, encrypt: bool) -> dict[str, Any]:
        return {
            "case": case,
            "store_uri": scale.uri,
            "backup_root": str(run_dir / "backups"),
            "report_dir": str(run_dir / "reports"),
            "keyring": str(self.keyring),
            "logical_date": self.logical.isoformat(),
            "run_id": f"bench__{case}__{scale.tag}_{rep}",
            "encrypt": encrypt,
        }

    def _keep_point(self, run_dir: Path) -> None:
        if self.latest_point is not None and self.latest_point != run_dir:
            shutil.rmtree(self.latest_point, ignore_errors=True)
        self.latest_point = run_dir

    def case_backup(self, scale: Scale, rep: int, profile: Path | None = None) -> dict[str, Any]:
        run_dir = self.run_dir(scale, "backup", rep)
        rec = self.run_worker("backup", self.backup_spec(scale, run_dir, "backup", rep, encrypt=True), run_dir, profile)
        self._keep_point(run_dir)
        return rec

    def case_backup_plain(self, scale: Scale, rep: int, profile: Path | None = None) -> dict[str, Any]:
        run_dir = self.run_dir(scale, "backup_plain", rep)
        spec = self.backup_spec(scale, run_dir, "backup_plain", rep, encrypt=False)
        try:
            return self.run_worker("backup_plain", spec, run_dir, profile)
        finally:
            shutil.rmtree(run_dir / "backups", ignore_errors=True)

    def _backup_with(self, case: str, workers: int, scale: Scale, rep: int, profile: Path | None) -> dict[str, Any]:
        run_dir = self.run_dir(scale, case, rep)
        spec = self.backup_spec(scale, run_dir, case, rep, encrypt=True) | {"workers": workers}
        try:
            return self.run_worker(case, spec, run_dir, profile)
        finally:
            shutil.rmtree(run_dir / "backups", ignore_errors=True)

    def case_backup_1proc(self, scale: Scale, rep: int, profile: Path | None = None) -> dict[str, Any]:
        return self._backup_with("backup_1proc", 1, scale, rep, profile)

    def case_backup_2proc(self, scale: Scale, rep: int, profile: Path | None = None) -> dict[str, Any]:
        return self._backup_with("backup_2proc", 2, scale, rep, profile)

    def case_backup_dag(self, scale: Scale, rep: int) -> dict[str, Any]:
        template = self.ensure_airflow_template()
        run_dir = self.run_dir(scale, "backup_dag", rep)
        home = run_dir / "airflow"
        home.mkdir()
        shutil.copy2(template / "airflow.db", home / "airflow.db")
        env = self.airflow_env(home, scale.uri, run_dir / "backups", run_dir / "reports")
        when = self.logical.isoformat()
        argv = [str(AIRFLOW), "dags", "test", "order_backup", when]
        log = run_dir / "run.log"
        try:
            m = self._measure(argv, log, env)
            state, run_id = dag_run_state(home / "airflow.db", "order_backup", when, env)
            if state != "success":
                raise CaseFailed(f"order_backup run {run_id} ended in state {state!r}; log {log}:\n{_tail(log)}")
            rows, size = manifest_totals(run_dir / "backups")
        finally:
            shutil.rmtree(run_dir / "backups", ignore_errors=True)
        command = (
            "AIRFLOW_HOME=<fresh copy of a migrated home> AIRFLOW_CONN_STORE_DB=<store> "
            "AIRFLOW_CONN_GOVERNANCE_KMS=<bench keyring> AIRFLOW_VAR_GOVERNANCE_BACKUP_ROOT=<fresh> "
            f"{shlex.join(argv)}"
        )
        return self.record(m, command, log, rows=rows, bytes=size, detail={"state": state, "run_id": run_id})

    def point_for_restore(self, scale: Scale) -> Path:
        if self.latest_point is None or not (self.latest_point / "backups").exists():
            run_dir = self.run_dir(scale, "backup", "prep")
            argv, _ = self.worker_argv(self.backup_spec(scale, run_dir, "backup", "prep", encrypt=True), run_dir)
            self._measure(argv, run_dir / "run.log")  # not recorded: only makes the point
            self._keep_point(run_dir)
        assert self.latest_point is not None
        return self.latest_point

    def case_restore_drill(self, scale: Scale, rep: int, profile: Path | None = None) -> dict[str, Any]:
        point = self.point_for_restore(scale)
        run_dir = self.run_dir(scale, "restore_drill", rep)
        target = self.create_db(f"{scale.db}_drill{rep}")
        try:
            spec = {
                "case": "restore_drill",
                "store_uri": scale.uri,
                "target_uri": self.uri(target),
                "backup_root": str(point / "backups"),
                "report_root": str(run_dir / "reports"),
                "keyring": str(self.keyring),
                "logical_date": self.logical.isoformat(),
                "run_id": f"bench__restore_drill__{scale.tag}_{rep}",
                "verification": self.opts.verification,
            }
            return self.run_worker("restore_drill", spec, run_dir, profile)
        finally:
            self.drop_db(target)

    def _pg_restore(self, scale: Scale, rep: int, kind: str) -> dict[str, Any]:
        dump = self.latest_dump.get(kind)
        if dump is None or not dump.exists():
            _rec, dump = self._dump(scale, "prep", kind)
            self._keep_dump(kind, dump)
        run_dir = self.run_dir(scale, f"pg_restore_{kind}", rep)
        target = self.create_db(f"{scale.db}_pgr{kind}{rep}")
        try:
            cmd = self.restore_cmd(kind, dump, self.uri(target))
            m = self._measure(self.shell(cmd), run_dir / "run.log")
            return self.record(m, cmd, run_dir / "run.log", rows=scale.in_scope_rows, bytes=dump.stat().st_size)
        finally:
            self.drop_db(target)

    def case_pg_restore_gzip(self, scale: Scale, rep: int) -> dict[str, Any]:
        return self._pg_restore(scale, rep, "gzip")

    def case_pg_restore_zstd(self, scale: Scale, rep: int) -> dict[str, Any]:
        return self._pg_restore(scale, rep, "zstd")

    def case_validation(self, scale: Scale, rep: int, profile: Path | None = None,
                        case: str = "validation") -> dict[str, Any]:
        run_dir = self.run_dir(scale, case, rep)
        spec = {
            "case": case,
            "store_uri": scale.uri,
            "report_dir": str(run_dir / "reports"),
            "logical_date": self.logical.isoformat(),
            "run_id": f"bench__{case}__{scale.tag}_{rep}",
            "gx_engine": case == "validation_gx",
        }
        return self.run_worker(case, spec, run_dir, profile)

    def case_validation_gx(self, scale: Scale, rep: int, profile: Path | None = None) -> dict[str, Any]:
        return self.case_validation(scale, rep, profile, case="validation_gx")

    def case_purge(self, scale: Scale, rep: int, profile: Path | None = None) -> dict[str, Any]:
        base = self.ensure_purge_base(scale)
        run_dir = self.run_dir(scale, "purge", rep)
        copy = self.create_db(f"{scale.db}_purge{rep}", template=base)
        try:
            spec = {
                "case": "purge",
                "store_uri": self.uri(copy),
                "backup_root": str(run_dir / "backups"),
                "keyring": str(run_dir / "kms" / "keyring.db"),
                "logical_date": self.logical.isoformat(),
                "run_id": f"bench__purge__{scale.tag}_{rep}",
            }
            return self.run_worker("purge", spec, run_dir, profile)
        finally:
            self.drop_db(copy)

    def case_audit(self, scale: Scale, rep: int) -> dict[str, Any]:
        run_dir = self.run_dir(scale, "audit", rep)
        events = str(self.opts.audit_events)
        argv = [sys.executable, "-m", "lomevexi_governance.audit.bench", "--events", events, "--json"]
        log = run_dir / "run.log"
        m = self._measure(argv, log)
        lines = [ln for ln in log.read_text().splitlines() if ln.startswith("{")]
        if not lines:
            raise CaseFailed(f"the audit benchmark printed no JSON result; log {log}")
        result = json.loads(lines[-1])
        return self.record(m, shlex.join(argv), log, rows=result["events"], bytes=None,
                           detail=result | {"call_s": result["seconds"]})

    def run_case(self, case: str, scale: Scale, rep: int) -> dict[str, Any]:
        fn: Callable[[Scale, int], dict[str, Any]] = getattr(self, f"case_{case}")
        return fn(scale, rep)

    def profile(self, case: str, scale: Scale) -> dict[str, Any]:
        """The case once more under py-spy (wall-clock sampling, idle included): where time goes."""
        raw = Path(self.opts.out) / f"profile-{case}-{scale.orders}.txt"
        fn = getattr(self, f"case_{case}")
        rec = fn(scale, "profile", profile=raw)
        anchor = PROFILE_ANCHORS[case]
        return {"case": case, "orders": scale.orders, "wall_s": rec["wall_s"], "raw": str(raw),
                "command": rec["command"]} | summarize_profile(raw, anchor)


def dag_run_state(airflow_db: Path, dag_id: str, when: str, env: dict[str, str]) -> tuple[str | None, str | None]:
    """(state, run_id) of the one run in a fresh Airflow home's metadata DB.

    ``airflow dags test`` exits 0 even when the run failed, so the state is read back: directly
    from the home's SQLite metadata DB (it holds this run only), else as scripts/run_dag.py does.
    """
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(airflow_db)) as conn:
            row = conn.execute(
                "SELECT state, run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
            ).fetchone()
        if row:
            return row[0], row[1]
    except sqlite3.Error:
        pass
    if str(ROOT / "scripts") not in sys.path:
        sys.path.insert(0, str(ROOT / "scripts"))
    from run_dag import run_state

    return run_state(dag_id, when, env=env)


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


def manifest_totals(backup_root: Path) -> tuple[int | None, int | None]:
    """(rows, bytes) of the one published point under ``backup_root``."""
    manifests = sorted((backup_root / "recovery_points").glob("*/manifest.json"))
    if not manifests:
        return None, None
    tables = json.loads(manifests[-1].read_text())["tables"]
    return sum(t["rows"] for t in tables.values()), sum(t["bytes"] for t in tables.values())


def ensure_zstd() -> None:
    """zstd from Debian when it is missing (the incumbent pipeline needs it)."""
    if shutil.which("zstd"):
        return
    print("bench: installing zstd (apt-get install -y zstd)", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", "-qq", "zstd"], check=False, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "zstd"], env=env, check=True)


# -- profiles ----------------------------------------------------------------------------------------

PROFILE_ANCHORS = {
    "backup": "run_backup",
    "backup_plain": "run_backup",
    "backup_1proc": "run_backup",
    "backup_2proc": "run_backup",
    "restore_drill": "run_drill",
    "validation": "_w_validation",
    "validation_gx": "_w_validation",
    "purge": "run_purge",
}
PROFILE_RATE = 100
#: where a sample's time goes: the first frame, from the leaf up, that matches a rule
PHASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("imports", ("importlib._bootstrap",)),
    ("checksums (per-column, checksums.py)", ("lomevexi_governance/checksums.py",)),
    ("GX results + Data Docs (GxValidator.finish)", ("GxValidator.finish", "GxValidator._write_results")),
    ("GX: batch fingerprint (GX hashes every frame, hash_pandas_dataframe)", ("hash_pandas_dataframe",)),
    ("GX: card-number expectation (pandas regex)", ("ColumnValuesNoCardNumber",)),
    ("GX: regex expectations (pandas)", ("ColumnValuesNotMatchRegex", "ColumnValuesMatchRegex")),
    ("GX: unexpected-row index and query",
     ("_pandas_map_condition_index", "_pandas_map_condition_query", "_pandas_column_map_condition_values")),
    ("gate: Arrow metrics (validation.Native.metrics, beyond the shared matchers)", ("Native.metrics",)),
    ("GX: the rest (to_pandas, validation graph, other expectations)", ("lomevexi_governance/validation.py",)),
    ("reference checks (scan.ReferenceCheck)", ("ReferenceCheck.",)),
    ("content scan, masking and the regex matchers the gate shares (scan.py)", ("lomevexi_governance/scan.py",)),
    ("restore: load into target (_Loader)", ("_Loader.",)),
    ("restore: live-store comparison (LiveCompare)", ("LiveCompare.",)),
    ("restore: reference SQL", ("reference_check (",)),
    ("purge: plan", ("compute_plan (",)),
    ("purge: deletes", ("delete_plan (",)),
    ("partition split (TableWriter.add)", ("TableWriter.add",)),
    ("Parquet encode + encrypt + write (TableWriter._flush/close, writer threads)",
     ("TableWriter._flush", "TableWriter._write_row_group", "TableWriter.close")),
    ("key service (keys.py, crypto.py)", ("lomevexi_governance/keys.py", "lomevexi_governance/crypto.py")),
    ("SHA-256 of files (storage)", ("Storage.sha256", "verify_files (")),
    ("partition planning (partitions.py, retention.py)",
     ("lomevexi_governance/partitions.py", "lomevexi_governance/retention.py")),
    ("waiting for the source (prefetch queue)", ("prefetched (",)),
    ("source read: ADBC COPY + conform (source.py)", ("lomevexi_governance/source.py",)),
    ("sign + publish", ("publish_point", "sign_manifest")),
)
#: frames of the harness itself (always 100 % inclusive), left out of the inclusive list
_WRAPPER_FRAMES = ("(<frozen runpy>)", "(bench/run.py)")
_FRAME = re.compile(r"^(?P<fn>.*) \((?P<file>.*?)(?::\d+)?\)$")


def py_spy_argv(out: Path) -> list[str]:
    exe = Path(sys.executable).parent / "py-spy"
    tool = str(exe) if exe.exists() else (shutil.which("py-spy") or "py-spy")
    return [tool, "record", "--idle", "--threads", "--subprocesses", "--nonblocking", "--rate", str(PROFILE_RATE),
            "--format", "raw", "--output", str(out), "--"]


def _frame_name(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", "lib/python3.11/", "/include/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['fn']} ({path})"


def summarize_profile(raw: Path, anchor: str, top: int = 25) -> dict[str, Any]:
    """Top functions of the thread that runs ``anchor`` (inclusive and self), and a phase rollup."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    phases: Counter[str] = Counter()
    other_threads: Counter[str] = Counter()
    main = total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [_frame_name(f) for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        total += n
        if not any(f.startswith(anchor + " ") for f in frames):
            if any("lomevexi_governance/" in f for f in frames):  # library work on another thread
                phase = next((label for f in reversed(frames) for label, pats in PHASES if any(p in f for p in pats)),
                             "other")
                other_threads[phase] += n
            continue
        main += n
        for name in set(frames):
            if not name.endswith(_WRAPPER_FRAMES):
                inclusive[name] += n
        if frames:
            own[frames[-1]] += n
        phase = next((label for f in reversed(frames) for label, pats in PHASES if any(p in f for p in pats)), "other")
        phases[phase] += n

    def table(counter: Counter[str], base: int) -> list[dict[str, Any]]:
        return [{"function": k, "samples": v, "pct": round(100.0 * v / base, 1) if base else 0.0}
                for k, v in counter.most_common(top)]

    return {
        "rate_hz": PROFILE_RATE,
        "samples_total": total,
        "samples_main_thread": main,
        "main_thread_seconds": round(main / PROFILE_RATE, 1),
        "phases": table(phases, main),
        "inclusive": table(inclusive, main),
        "self": table(own, main),
        "other_threads_phases": table(other_threads, sum(other_threads.values())),
        "other_threads_seconds": round(sum(other_threads.values()) / PROFILE_RATE, 1),
    }


# -- summaries, targets, reports ---------------------------------------------------------------------


def _median(values: Sequence[float | int | None]) -> float | None:
    vals = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return statistics.median(vals) if vals else None


def _host_cpu_s(run: dict[str, Any], cpus: int | None) -> float | None:
    """The whole host's CPU seconds during a run: every process, the case's and the PostgreSQL
    server's (and anything else running on the machine). Runs recorded before ``host_cpu_s``
    existed: from the host's busy share, the wall time and ``cpus``."""
    if run.get("host_cpu_s") is not None:
        return run["host_cpu_s"]
    if run.get("host_cpu_busy_pct") is None or not run.get("wall_s") or not cpus:
        return None
    return round(run["host_cpu_busy_pct"] / 100 * cpus * run["wall_s"], 2)


def _case_host_cpu(cases: dict[str, Any], case: str, cpus: int | None) -> float | None:
    c = cases.get(case) or {}
    if c.get("host_cpu_s") is not None:
        return c["host_cpu_s"]
    return _median([_host_cpu_s(r, cpus) for r in c.get("runs", []) if "error" not in r])


def summarize_case(case: Case, runs: list[dict[str, Any]], scale: Scale) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    wall = _median([r["wall_s"] for r in ok])
    rows = _median([r.get("rows") for r in ok])
    size = _median([r.get("bytes") for r in ok])
    details: dict[str, Any] = {}
    for key in sorted({k for r in ok for k in (r.get("detail") or {})}):
        values = [(r.get("detail") or {}).get(key) for r in ok]
        med = _median(values)
        if med is not None:
            details[key] = round(med, 3)
        elif values and all(v == values[0] for v in values) and not isinstance(values[0], (dict, list)):
            details[key] = values[0]
    return {
        "label": case.label,
        "item": case.item,
        "group": case.group,
        "what": case.what,
        "runs_ok": len(ok),
        "runs_failed": len(runs) - len(ok),
        "median_s": round(wall, 3) if wall is not None else None,
        "min_s": min((r["wall_s"] for r in ok), default=None),
        "max_s": max((r["wall_s"] for r in ok), default=None),
        "rows": int(rows) if rows is not None else None,
        "rows_per_s": round(rows / wall) if rows and wall else None,
        "mb_per_s": round(scale.data_bytes / MB / wall, 1) if case.store_data and wall else None,
        "peak_rss_mb": _median([r["peak_rss_tree_mb"] for r in ok]),
        "peak_rss_mb_max": max((r["peak_rss_tree_mb"] for r in ok), default=None),
        "output_mb": round(size / MB, 1) if size is not None else None,
        "cpu_s": _median([r["cpu_s"] for r in ok]),
        "host_cpu_busy_pct": _median([r["host_cpu_busy_pct"] for r in ok]),
        "host_cpu_s": _median([_host_cpu_s(r, os.cpu_count()) for r in ok]),
        "loadavg_1m_before": _median([r["loadavg_before"][0] for r in ok]),
        "detail": details,
        "command": (ok or runs)[0].get("command") if runs else None,
        "errors": [r["error"] for r in runs if "error" in r],
        "runs": runs,
    }


def _get(cases: dict[str, Any], case: str, key: str = "median_s") -> float | None:
    c = cases.get(case)
    return c.get(key) if c else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _validation_share(ratios: dict[str, Any], validation: Any, s: Callable[[str], str]) -> tuple[Any, ...]:
    """The validation target: one process's checks against the one-process backup when it was
    measured (the checks of a multi-process backup are spread over its processes), else the backup."""
    one = ratios.get("validation (in-process checks)/backup_1proc")
    if one is not None:
        detail = f"checks {_fmt(validation)} s (in-process) vs one-process backup {s('backup_1proc')}"
        return one, 0.25, "fraction", detail
    return (ratios["validation (in-process checks)/backup"], 0.25, "fraction",
            f"checks {_fmt(validation)} s (in-process) vs backup {s('backup')}")


def compute_ratios(cases: dict[str, Any]) -> dict[str, float | None]:
    c = _get(cases, "backup")
    d = _get(cases, "backup_plain")
    e = _get(cases, "restore_drill")
    validation = (cases.get("validation") or {}).get("detail", {}).get("validation_s")
    return {
        "backup/floor (c/a)": _ratio(c, _get(cases, "floor")),
        "backup/pg_dump_gzip (c/b)": _ratio(c, _get(cases, "pg_dump_gzip")),
        "backup/pg_dump_zstd (c/b)": _ratio(c, _get(cases, "pg_dump_zstd")),
        "backup/backup_plain (c/d)": _ratio(c, d),
        "encryption overhead (c/d - 1)": round(c / d - 1, 3) if c is not None and d else None,
        "backup_dag/backup": _ratio(_get(cases, "backup_dag"), c),
        "backup/backup_2proc (two processes' speed-up)": _ratio(c, _get(cases, "backup_2proc")),
        "backup_1proc/backup (parallel speed-up)": _ratio(_get(cases, "backup_1proc"), c),
        "restore_drill/pg_restore_zstd": _ratio(e, _get(cases, "pg_restore_zstd")),
        "restore_drill/pg_restore_gzip": _ratio(e, _get(cases, "pg_restore_gzip")),
        "validation (in-process checks)/backup": _ratio(validation, c),
        # the checks run in one process: their share of a backup is against the one-process
        # backup ('backup' since recovery_points.workers is 1; 'backup_1proc' in older results)
        "validation (in-process checks)/backup_1proc": _ratio(validation, _get(cases, "backup_1proc")),
        "validation case wall/backup": _ratio(_get(cases, "validation"), c),
    }


def _target(
    name: str, value: float | None, limit: float, unit: str, detail: str, best: float | None = None
) -> dict[str, Any]:
    """``best``: the same figure from the fastest run of each case (a check on noise, not the verdict)."""
    status = "not measured" if value is None else ("met" if value <= limit else "not met")
    out = {"target": name, "measured": value, "limit": limit, "unit": unit, "status": status, "detail": detail}
    if best is not None:
        out["measured_best_runs"] = best
    return out


def compute_targets(cases: dict[str, Any], ratios: dict[str, Any], cpus: int | None = None) -> list[dict[str, Any]]:
    """Each target's status and numbers. ``cpus``: the host's, for the CPU floors (default: this host)."""
    cpus = cpus or os.cpu_count()

    def s(case: str) -> str:
        v = _get(cases, case)
        return f"{v:.1f} s" if v is not None else "n/a"

    def cpu_txt(a: str, b: str) -> str:
        """Both cases' host CPU time, and the least wall time ``a``'s CPU time allows on this host."""
        ca, cb = _case_host_cpu(cases, a, cpus), _case_host_cpu(cases, b, cpus)
        if ca is None or cb is None or not cpus:
            return ""
        return f"; host CPU {ca:.0f} s vs {cb:.0f} s ({a} >= {ca / cpus:.1f} s on {cpus} cores)"

    def best(a: str, b: str) -> float | None:
        return _ratio(_get(cases, a, "min_s"), _get(cases, b, "min_s"))

    def best_txt(value: float | None, pct: bool = False) -> str:
        if value is None:
            return ""
        return f"; fastest runs: {100 * value:.1f}%" if pct else f"; fastest runs: {value:.2f}x"

    validation = (cases.get("validation") or {}).get("detail", {}).get("validation_s")
    b_zstd, b_gzip, b_floor = best("backup", "pg_dump_zstd"), best("backup", "pg_dump_gzip"), best("backup", "floor")
    b_enc = best("backup", "backup_plain")
    b_enc = round(b_enc - 1, 3) if b_enc is not None else None
    b_restore = best("restore_drill", "pg_restore_zstd")
    return [
        _target("backup <= 1.0 x pg_dump -Z0 | zstd | openssl", ratios["backup/pg_dump_zstd (c/b)"], 1.0, "x",
                f"backup {s('backup')} vs {s('pg_dump_zstd')}{best_txt(b_zstd)}{cpu_txt('backup', 'pg_dump_zstd')}",
                b_zstd),
        _target("backup <= 0.3 x pg_dump -Fc | openssl", ratios["backup/pg_dump_gzip (c/b)"], 0.3, "x",
                f"backup {s('backup')} vs {s('pg_dump_gzip')}{best_txt(b_gzip)}{cpu_txt('backup', 'pg_dump_gzip')}",
                b_gzip),
        _target("backup <= 1.5 x COPY floor", ratios["backup/floor (c/a)"], 1.5, "x",
                f"backup {s('backup')} vs {s('floor')}{best_txt(b_floor)}{cpu_txt('backup', 'floor')}", b_floor),
        _target("encryption overhead <= 5%", ratios["encryption overhead (c/d - 1)"], 0.05, "fraction",
                f"backup {s('backup')} vs {s('backup_plain')} without encryption{best_txt(b_enc, pct=True)}", b_enc),
        _target("backup peak RSS <= 400 MB", _get(cases, "backup", "peak_rss_mb"), RSS_LIMIT_MB, "MB",
                "process tree, median of runs"),
        _target("restore peak RSS <= 400 MB", _get(cases, "restore_drill", "peak_rss_mb"), RSS_LIMIT_MB, "MB",
                "process tree, median of runs"),
        _target("restore incl. verification <= 1.0 x openssl dec | zstd -d | pg_restore",
                ratios["restore_drill/pg_restore_zstd"], 1.0, "x",
                f"drill {s('restore_drill')} vs {s('pg_restore_zstd')}{best_txt(b_restore)}"
                f"{cpu_txt('restore_drill', 'pg_restore_zstd')}", b_restore),
        _target("validation <= 25% of backup time", *_validation_share(ratios, validation, s)),
    ]


def flat_memory(scales: list[dict[str, Any]]) -> dict[str, Any] | None:
    if len(scales) < 2:
        return None
    small, large = scales[0], scales[-1]
    per_case = {}
    for case in CASE_IDS:
        a = _get(small["cases"], case, "peak_rss_mb")
        b = _get(large["cases"], case, "peak_rss_mb")
        if a and b:
            per_case[case] = {"small_mb": a, "large_mb": b, "ratio": round(b / a, 3)}
    targets = [
        _target(f"{case} peak RSS {large['orders']:,} / {small['orders']:,} orders <= {FLAT_LIMIT}",
                per_case.get(case, {}).get("ratio"), FLAT_LIMIT, "x", "process tree, medians")
        for case in ("backup", "restore_drill")
    ]
    return {"small_orders": small["orders"], "large_orders": large["orders"], "cases": per_case, "targets": targets}


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _md(text: str) -> str:
    """A markdown table cell: pipes escaped."""
    return str(text).replace("|", "\\|")


def _note(case: str, c: dict[str, Any]) -> str:
    d = c.get("detail", {})
    if c.get("errors"):
        return f"FAILED {len(c['errors'])} run(s): {c['errors'][0][:120]}"
    if case in ("backup", "backup_plain", "backup_1proc", "backup_2proc"):
        return (f"call {_fmt(d.get('call_s'))} s, {_fmt(d.get('files'), 0)} files, "
                f"validation {'ok' if d.get('validation_success') else 'FAILED'}")
    if case == "backup_dag":
        return f"state {d.get('state', '?')}"
    if case == "restore_drill":
        return (f"verify point {_fmt(d.get('verify_point_s'))} s + load {_fmt(d.get('restore_s'))} s + "
                f"verify restored {_fmt(d.get('verify_restored_s'))} s ({d.get('verification')})")
    if case in ("validation", "validation_gx"):
        gx = (d.get("gx_source_s") or 0) + (d.get("gx_backup_s") or 0)
        return (f"checks {_fmt(d.get('validation_s'))} s in-process (GX stages {_fmt(gx)} s, "
                f"scan {_fmt(d.get('content_scan_s'))} s, results {_fmt(d.get('gx_results_and_docs_s'))} s); "
                f"read {_fmt(d.get('read_s'))} s")
    if case == "purge":
        return (f"{_fmt(c.get('rows'))} rows deleted; plan {_fmt(d.get('plan_s'))} s, "
                f"deletes {_fmt(d.get('delete_s'))} s")
    if case == "audit":
        return f"engine {_fmt(d.get('call_s'), 2)} s (generation untimed inside), {_fmt(d.get('findings'), 0)} findings"
    return ""


def case_table(scale: dict[str, Any], cpus: int | None = None) -> list[str]:
    lines = [
        "| case | item | median s | runs s | rows/s | MB/s | peak RSS MB | output MB | CPU s | host CPU s | notes |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for case in CASE_IDS:
        c = scale["cases"].get(case)
        if c is None:
            continue
        runs = ", ".join(f"{r['wall_s']:.1f}" if "error" not in r else "fail" for r in c["runs"])
        lines.append(
            f"| `{case}` {_md(c['label'])} | {c['item']} | {_fmt(c['median_s'], 2)} | {runs} | "
            f"{_fmt(c['rows_per_s'])} | {_fmt(c['mb_per_s'])} | {_fmt(c['peak_rss_mb'])} | "
            f"{_fmt(c['output_mb'])} | {_fmt(c['cpu_s'])} | {_fmt(_case_host_cpu(scale['cases'], case, cpus))} | "
            f"{_md(_note(case, c))} |"
        )
    return lines


def target_table(targets: list[dict[str, Any]]) -> list[str]:
    lines = ["| target | measured | limit | status | numbers |", "|---|---:|---:|---|---|"]
    for t in targets:
        value = t["measured"]
        if value is None:
            shown = "–"
        elif t["unit"] == "fraction":
            shown = f"{100 * value:.1f}%"
        elif t["unit"] == "x":
            shown = f"{value:.2f}x"
        else:
            shown = f"{value:.0f} {t['unit']}"
        limit = f"{100 * t['limit']:.0f}%" if t["unit"] == "fraction" else (
            f"{t['limit']:g}x" if t["unit"] == "x" else f"{t['limit']:g} {t['unit']}")
        mark = {"met": "**met**", "not met": "**not met**"}.get(t["status"], t["status"])
        lines.append(f"| {_md(t['target'])} | {shown} | {limit} | {mark} | {_md(t['detail'])} |")
    return lines


def peak_lines(scale: dict[str, Any]) -> list[str]:
    """Per case, the run with the highest peak RSS: when it came and which processes held it (a
    one-off peak far above the median, or a short-lived child, shows here)."""
    lines = []
    for case in CASE_IDS:
        c = scale["cases"].get(case)
        runs = [r for r in (c or {}).get("runs", []) if r.get("peak_processes")]
        if not runs:
            continue
        top = max(runs, key=lambda r: r["peak_rss_tree_mb"])
        parts = ", ".join(f"{p['name']} {p['rss_mb']:.0f}" for p in top["peak_processes"] if p["rss_mb"] >= 1)
        lines.append(f"- `{case}`: {top['peak_rss_tree_mb']:.0f} MB in run {top.get('run', '?')} at "
                     f"{top['peak_at_s']:.1f} s (median of the runs {_fmt(c.get('peak_rss_mb'), 0)}): {parts}")
    if not lines:
        return []
    return ["Highest peak RSS of each case (MB, by process):", "", *lines, ""]


def render_markdown(result: dict[str, Any]) -> str:
    host = result["host"]
    out = [
        "# Benchmark: " + ", ".join(format(s["orders"], ",") for s in result["scales"]) + " orders",
        "",
        f"Run {result['started_at']} to {result['finished_at']} ({result['duration_s'] / 60:.1f} min) on "
        f"{host['hostname']}: {host['cpus']} CPUs, {host['mem_gb']} GB RAM. Load average (1, 5, 15 min) at start "
        f"{', '.join(f'{x:.2f}' for x in host['loadavg_start'])}, at end "
        f"{', '.join(f'{x:.2f}' for x in host['loadavg_end'])}; the machine is shared, so the per-case "
        "1-minute load before each run is in the JSON (`loadavg_before`).",
        "",
        f"PostgreSQL: {host['tools'].get('server', '?').split(' on ')[0]}; {host['tools'].get('pg_dump')}; "
        f"{host['tools'].get('zstd', '').split(',')[0].strip('* ')}; "
        f"{host['tools'].get('openssl', '').split(' (')[0]}.",
        "",
        f"Command: `{result['command']}`. {result['settings']['runs']} run(s) per case, round-robin "
        "(every case once, then again); median wall time of the runs. Peak RSS: the whole process tree "
        "(PostgreSQL server backends excluded), median of the runs. MB/s: the in-scope tables' size "
        "(`pg_table_size`) per second. Output: bytes written (dump file, recovery point files) or, for "
        "restores, read. CPU s: the process tree's; host CPU s: the whole host's during the run, the "
        "PostgreSQL server's work included. No case can take less wall time than its host CPU seconds "
        "divided by the cores (the CPU floors in the targets' numbers)."
        + (" Before each run, untimed: `CHECKPOINT` and `sync` (`settle_s` in the JSON)." if _settled(result) else ""),
        "",
    ]
    for s in result["scales"]:
        store = s["store"]
        out += [
            f"## {s['orders']:,} orders",
            "",
            f"Store `{store['database']}`: {store['rows_in_scope']:,} rows in the {len(store['rows'])} in-scope "
            f"tables ({', '.join(f'{k} {v:,}' for k, v in store['rows'].items())}), "
            f"{store['data_mb_in_scope']:,.0f} MB (database {store['database_mb']:,.0f} MB with indexes and "
            f"site_visits); seeded in {store['seed_s']:.0f} s.",
            "",
            *case_table(s, host.get("cpus")),
            "",
            "Ratios: " + "; ".join(f"{k} = {_fmt(v, 3)}" for k, v in s["ratios"].items() if v is not None) + ".",
            "",
            *peak_lines(s),
            "### Targets" + (" (defined at 2,000,000 orders: indicative only at this scale)"
                             if s["orders"] != TARGET_ORDERS else ""),
            "",
            *target_table(s["targets"]),
            "",
        ]
    flat = result.get("flat_memory")
    out += ["## Flat memory", ""]
    if flat:
        out += [
            f"Peak RSS (process tree, median) at {flat['large_orders']:,} vs {flat['small_orders']:,} orders:",
            "",
            "| case | small MB | large MB | ratio |",
            "|---|---:|---:|---:|",
            *[f"| `{k}` | {v['small_mb']:.0f} | {v['large_mb']:.0f} | {v['ratio']:.2f} |"
              for k, v in flat["cases"].items()],
            "",
            *target_table(flat["targets"]),
            "",
        ]
    else:
        out += ["Not measured in this run (one scale). Run `python -m bench.run --orders 1000000,5000000 "
                "--cases backup,restore_drill` for the 5M / 1M ratio.", ""]
    for p in result.get("profiles", []):
        out += [
            f"## Profile: `{p['case']}` at {p['orders']:,} orders (py-spy, wall clock, {p['rate_hz']} Hz)",
            "",
            f"Main thread {p['main_thread_seconds']} s of samples (run wall {p['wall_s']:.1f} s); raw stacks "
            f"`{Path(p['raw']).name}`.",
            "",
            "| where the main thread's time goes | % |",
            "|---|---:|",
            *[f"| {r['function']} | {r['pct']:.1f} |" for r in p["phases"]],
            "",
            "| top functions (inclusive) | % |",
            "|---|---:|",
            *[f"| `{r['function']}` | {r['pct']:.1f} |" for r in p["inclusive"][:15]],
            "",
            "| top functions (self: the Python frame that was running or waiting in C) | % |",
            "|---|---:|",
            *[f"| `{r['function']}` | {r['pct']:.1f} |" for r in p["self"][:15]],
            "",
        ]
    if result.get("errors"):
        out += ["## Errors", "", *[f"- {e}" for e in result["errors"]], ""]
    out += ["## Cases", "", *[f"- `{c.id}` ({c.item}): {c.what}" for c in CASES], ""]
    return "\n".join(out)


def render_svg(result: dict[str, Any]) -> str:
    """Horizontal bars: median wall time per case, one panel per scale."""
    width, left, right, bar_h, gap = 920, 290, 130, 18, 6
    panels = []
    y = 10
    for s in result["scales"]:
        cases = [(cid, s["cases"][cid]) for cid in CASE_IDS if cid in s["cases"]]
        top = max((c["median_s"] or 0) for _cid, c in cases) if cases else 1.0
        top = top or 1.0
        scale_w = width - left - right
        title = f"{s['orders']:,} orders: median wall time per case (s), {result['settings']['runs']} run(s)"
        panels.append(f'<text x="10" y="{y + 16}" font-size="15" font-weight="bold">{escape(title)}</text>')
        y += 30
        for cid, c in cases:
            med = c["median_s"]
            color = GROUP_COLORS.get(c["group"], "#444")
            label = f"{c['label']} ({c['item']})"
            panels.append(f'<text x="{left - 8}" y="{y + bar_h - 5}" text-anchor="end">{escape(label)}</text>')
            if med is None:
                panels.append(f'<text x="{left + 4}" y="{y + bar_h - 5}" fill="#b5453a">failed</text>')
            else:
                w = max(1.0, scale_w * med / top)
                panels.append(
                    f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}">'
                    f"<title>{escape(cid)}: {med:.2f} s</title></rect>"
                )
                rss = c.get("peak_rss_mb")
                extra = f", peak RSS {rss:,.0f} MB" if rss is not None else ""
                panels.append(f'<text x="{left + w + 6:.1f}" y="{y + bar_h - 5}">{med:,.1f} s{extra}</text>')
            y += bar_h + gap
        y += 16
    legend_y = y + 4
    x = 10
    legend = []
    for group, color in GROUP_COLORS.items():
        legend.append(f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" fill="{color}"/>')
        legend.append(f'<text x="{x + 16}" y="{legend_y}">{group}</text>')
        x += 30 + 8 * len(group)
    height = legend_y + 16
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'font-family="system-ui, sans-serif" font-size="12" role="img" '
        'aria-label="Median wall time per benchmark case">'
        "<title>Median wall time per benchmark case</title>"
        f'<rect width="{width}" height="{height}" fill="#fff"/>'
    )
    return head + "".join(panels) + "".join(legend) + "</svg>\n"


# -- main ------------------------------------------------------------------------------------------------


def _orders(text: str) -> list[int]:
    out = []
    for raw in text.split(","):
        part = raw.strip().replace("_", "")
        if not part:
            continue
        value = int(float(part[:-1]) * 1_000_000) if part[-1] in "mM" else int(part)
        if value < 1:
            raise argparse.ArgumentTypeError(f"orders must be positive: {part!r}")
        out.append(value)
    if not out:
        raise argparse.ArgumentTypeError("no scale given")
    return sorted(set(out))


def _cases(text: str) -> list[str]:
    wanted = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in BY_ID]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown case(s) {unknown}; cases: {', '.join(CASE_IDS)}")
    return [c for c in CASE_IDS if c in wanted]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="cases: " + ", ".join(f"{c.id} ({c.item})" for c in CASES),
    )
    ap.add_argument("--orders", type=_orders, default=[TARGET_ORDERS],
                    help="orders in the store; a comma list (1000000,5000000) runs every scale and reports "
                         "the flat-memory ratio (default 2000000)")
    ap.add_argument("--scales", type=_orders, default=None, help="same as a comma list in --orders")
    ap.add_argument("--runs", type=int, default=3, help="runs per case, round-robin (default 3)")
    optional = ", ".join(c for c in CASE_IDS if c not in DEFAULT_CASES)
    ap.add_argument("--cases", type=_cases, default=DEFAULT_CASES,
                    help=f"comma list of cases (default: all but {optional})")
    ap.add_argument("--out", default=str(RESULTS), help="results folder (default bench/results)")
    ap.add_argument("--work", default=None, help="scratch folder for dumps and recovery points (default: a temp dir)")
    ap.add_argument("--pg", default=DEFAULT_PG, help=f"PostgreSQL server URI without database (default {DEFAULT_PG})")
    ap.add_argument("--as-of", default=DEFAULT_AS_OF, help="the data's 'now' and the logical date of the runs")
    ap.add_argument("--audit-events", type=int, default=1_000_000, help="events of the audit case (default 1000000)")
    ap.add_argument("--verification", choices=("full", "sample"), default="full", help="restore drill live-store mode")
    ap.add_argument("--profile", type=lambda t: [c for c in t.split(",") if c], default=[],
                    help=f"after the runs, profile these cases once with py-spy at the largest scale "
                         f"({', '.join(PROFILE_ANCHORS)})")
    ap.add_argument("--keep", action="store_true", help="keep the databases and the scratch folder")
    args = ap.parse_args(argv)
    if args.scales:
        args.orders = args.scales
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    bad = [c for c in args.profile if c not in PROFILE_ANCHORS]
    if bad:
        ap.error(f"--profile: cannot profile {bad}; choose from {', '.join(PROFILE_ANCHORS)}")
    return args


def write_reports(result: dict[str, Any], json_path: Path) -> dict[str, Path]:
    paths = {"json": json_path, "md": json_path.with_suffix(".md"), "svg": json_path.with_suffix(".svg")}
    paths["json"].write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n")
    paths["md"].write_text(render_markdown(result) + "\n")
    paths["svg"].write_text(render_svg(result))
    return paths


def render_main(argv: Sequence[str]) -> int:
    """Recompute ratios and targets of a results JSON and rewrite it with its .md and .svg."""
    ap = argparse.ArgumentParser(prog="python -m bench.run render", description=render_main.__doc__)
    ap.add_argument("json", nargs="+", type=Path)
    for path in ap.parse_args(argv).json:
        result = json.loads(path.read_text())
        for s in result["scales"]:
            s["ratios"] = compute_ratios(s["cases"])
            s["targets"] = compute_targets(s["cases"], s["ratios"], result["host"].get("cpus"))
        result["flat_memory"] = flat_memory(result["scales"])
        for prof in result.get("profiles", []):
            raw = Path(prof["raw"])
            if not raw.exists():
                raw = path.parent / raw.name
            if raw.exists() and prof["case"] in PROFILE_ANCHORS:
                prof.update(summarize_profile(raw, PROFILE_ANCHORS[prof["case"]]))
        print(", ".join(str(p) for p in write_reports(result, path).values()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:
        return worker_main(argv[1:])
    if argv[:1] == ["render"]:
        return render_main(argv[1:])
    import psutil

    opts = parse_args(argv)
    out_dir = Path(opts.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(opts.work) if opts.work else Path(tempfile.mkdtemp(prefix="lomevexi-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AIRFLOW_HOME", str(work / "airflow-scratch"))  # this process parses URIs with Airflow
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    started_wall = dt.datetime.now(dt.timezone.utc)
    started = time.monotonic()
    result: dict[str, Any] = {
        "format": FORMAT,
        "started_at": started_wall.isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "bench.run", *argv]),
        "host": {
            "hostname": socket.gethostname(),
            "cpus": os.cpu_count(),
            "mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": {
            "orders": opts.orders,
            "runs": opts.runs,
            "cases": opts.cases,
            "as_of": opts.as_of,
            "logical_date": opts.as_of,
            "audit_events": opts.audit_events,
            "verification": opts.verification,
            "rss_poll_s": POLL_SECONDS,
            "work": str(work),
        },
        "scales": [],
        "profiles": [],
        "errors": [],
    }
    harness: Harness | None = None
    try:
        harness = Harness(opts, work)
        result["host"]["tools"] = harness.tools()
        for orders in opts.orders:
            scale = harness.seed(orders)
            runs: dict[str, list[dict[str, Any]]] = {c: [] for c in opts.cases}
            for rep in range(1, opts.runs + 1):
                for case in opts.cases:
                    print(f"bench: {orders:,} orders, run {rep}/{opts.runs}: {case} ...", end=" ", flush=True)
                    try:
                        rec = harness.run_case(case, scale, rep) | {"run": rep}
                        print(f"{rec['wall_s']:.2f}s, {rec['peak_rss_tree_mb']:.0f} MB", flush=True)
                    except Exception as exc:  # noqa: BLE001 - recorded; the other cases still run
                        rec = {"run": rep, "error": f"{type(exc).__name__}: {exc}"}
                        result["errors"].append(f"{orders} orders, {case}, run {rep}: {str(exc)[:2000]}")
                        print(f"FAILED: {str(exc)[:500]}", flush=True)
                    runs[case].append(rec)
            cases = {c: summarize_case(BY_ID[c], runs[c], scale) for c in opts.cases}
            ratios = compute_ratios(cases)
            result["scales"].append({
                "orders": orders,
                "store": scale.as_dict(),
                "cases": cases,
                "ratios": ratios,
                "targets": compute_targets(cases, ratios),
            })
            if orders == opts.orders[-1]:
                for case in opts.profile:
                    print(f"bench: profiling {case} at {orders:,} orders with py-spy ...", flush=True)
                    try:
                        result["profiles"].append(harness.profile(case, scale))
                    except (CaseFailed, OSError) as exc:
                        result["errors"].append(f"profile {case}: {exc}")
            if not opts.keep:
                base = harness.purge_base.pop(orders, None)
                if base:
                    harness.drop_db(base)
                harness.drop_db(scale.db)
                harness.latest_point = None
                harness.latest_dump = {}
                shutil.rmtree(work / "runs", ignore_errors=True)
    finally:
        if harness is not None and not opts.keep:
            harness.drop_all()
        if not opts.keep and not opts.work:
            shutil.rmtree(work, ignore_errors=True)
    result["flat_memory"] = flat_memory(result["scales"])
    result["host"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    result["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    result["duration_s"] = round(time.monotonic() - started, 1)
    if opts.keep and harness is not None:
        result["kept"] = {"databases": harness.databases, "work": str(work)}
    stem = f"bench-{'-'.join(str(o) for o in opts.orders)}-{started_wall.strftime('%Y%m%dT%H%M%SZ')}"
    paths = write_reports(result, out_dir / f"{stem}.json")
    print()
    for s in result["scales"]:
        print(f"## {s['orders']:,} orders")
        print("\n".join(case_table(s)))
        print()
        print("\n".join(target_table(s["targets"])))
        print()
    if result["flat_memory"]:
        print("\n".join(target_table(result["flat_memory"]["targets"])))
        print()
    print(f"bench: {result['duration_s'] / 60:.1f} min; results: {', '.join(str(p) for p in paths.values())}")
    if opts.keep and harness is not None:
        print(f"bench: kept databases {harness.databases} and {work}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
