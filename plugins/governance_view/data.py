"""Read-only data layer of the Governance view: recovery points, runs, ledgers, audits.

Everything is read at request time from the two roots the DAGs write to (Airflow Variables
``governance_backup_root`` and ``governance_report_root``). Nothing here writes, creates a
folder, takes a lock or needs key material: signatures are *not* verified here (that needs
the KMS); the view shows the verification the DAGs recorded in the catalog instead.

What leaves this module is built field by field from allow-lists: ids, counts, statuses,
timings, table and column names, hashes. Never a value read from the store, never a file
path or a connection description (they can name hosts and users), never a whole JSON
document passed through. A missing folder or file is an empty state, not an error.

Heavy modules (pyarrow, numpy via :mod:`lomevexi_governance.recovery_points`) are imported
inside the functions that need them, so importing the plugin stays cheap.
"""


# the plugin is loaded by every Airflow process and must stay cheap to import.
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BACKUP_ROOT_VAR = "governance_backup_root"
REPORT_ROOT_VAR = "governance_report_root"

ORDER_BACKUP, RETENTION_PURGE, RESTORE_DRILL, ACCESS_AUDIT = (
    "order_backup",
    "retention_purge",
    "restore_drill",
    "access_audit",
)
DAGS: tuple[str, ...] = (ORDER_BACKUP, RETENTION_PURGE, RESTORE_DRILL, ACCESS_AUDIT)
DAG_TITLES = {
    ORDER_BACKUP: "Order backup",
    RETENTION_PURGE: "Retention purge",
    RESTORE_DRILL: "Restore drill",
    ACCESS_AUDIT: "Access audit",
}
AUDIT_KINDS = ("daily", "weekly", "monthly", "custom")
PURGE_LEDGER_REL = "ledger/purge.jsonl"
DRILL_HISTORY_REL = f"{RESTORE_DRILL}/history.jsonl"
AUDIT_EVIDENCE = "evidence.jsonl"

#: the only files of a run or audit-period folder the view serves (never state/, restored
#: databases, raw validation results or anything else a run leaves behind)
SERVED_RUN_FILES = {"report.html": "text/html; charset=utf-8"}
SERVED_AUDIT_FILES = {"report.html": "text/html; charset=utf-8", "findings.csv": "text/csv; charset=utf-8"}
#: file types of the Great Expectations Data Docs site
DATA_DOCS_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".otf": "font/otf",
    ".ttf": "font/ttf",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
}

#: one path segment as the DAGs write them (``reports.path_safe``, audit period labels)
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
#: one path segment inside the Data Docs site (GX puts raw run names such as
#: ``manual__2026-11-24T22:08:47.290341+00:00`` into folder names)
_DOCS_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._:+@=-]{0,254}$")
_POINT_ID = re.compile(r"^rp-\d{8}T\d{6}Z$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_TEXT_LIMIT = 500


# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sources:
    """Where the DAGs write: the backup root (local path or ``s3://``) and the report root."""

    backup_root: str | None
    report_root: str | None

    @classmethod
    def from_airflow(cls) -> Sources:
        """Read both roots now (``AIRFLOW_VAR_*`` first, then Airflow's Variable store)."""
        return cls(_variable(BACKUP_ROOT_VAR), _variable(REPORT_ROOT_VAR))


def _variable(key: str) -> str | None:
    value = os.environ.get(f"AIRFLOW_VAR_{key.upper()}")
    if value:
        return value.strip()
    # in the api-server (a "server" process context) the Task SDK's Variable asks the configured
    # secrets backends, then the metadata database, like every other Airflow component
    from airflow.sdk import Variable

    found = Variable.get(key, default=None)
    return str(found).strip() if found else None


def path_safe(run_id: str) -> str:
    """The folder name a run's reports live in (same rule as ``lomevexi_governance.reports``)."""
    return _UNSAFE.sub("_", run_id).strip("._")


def is_segment(value: str) -> bool:
    return bool(_SEGMENT.match(value))


def safe_join(base: Path, parts: Iterable[str], pattern: re.Pattern[str] = _SEGMENT) -> Path | None:
    """``base/part/...`` if every part is a plain segment and the real path stays inside ``base``.

    Returns None for ``..``, absolute parts, empty parts, odd characters, or a symlink that
    leads out of ``base``. The caller still checks that the result is a file.
    """
    parts = list(parts)
    if not parts or any(not pattern.match(p) for p in parts):
        return None
    try:
        root = base.resolve(strict=True)
        target = root.joinpath(*parts).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not target.is_relative_to(root) or target == root:
        return None
    return target


# -- small, defensive converters -----------------------------------------------------------


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _text(value: Any, limit: int = _TEXT_LIMIT) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ident(value: Any) -> str | None:
    """An identifier (table, column, rule, key id): short, no control characters."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 200 or any(ord(c) < 32 for c in text):
        return None
    return text


def parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _iso(value: Any) -> str | None:
    parsed = parse_time(value)
    return parsed.astimezone(dt.timezone.utc).isoformat() if parsed else None


def _counts(value: Any) -> dict[str, int]:
    """``{identifier: count}``, anything else dropped."""
    if not isinstance(value, Mapping):
        return {}
    out = {}
    for k, v in value.items():
        key, n = _ident(k), _int(v)
        if key is not None and n is not None:
            out[key] = n
    return dict(sorted(out.items()))


def _idents(value: Any, limit: int = 200) -> list[str]:
    if not isinstance(value, (list, tuple)):
        return []
    return [i for i in (_ident(v) for v in value[:limit]) if i is not None]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _status(level: str, label: str) -> dict[str, str]:
    """``level`` is one of ok, warn, fail, info, none (what the page colours)."""
    return {"level": level, "label": label}


# -- the data layer ------------------------------------------------------------------------


_POINT_CACHE: dict[tuple[str, str, int, int], dict[str, Any]] = {}
_LEDGER_CACHE: dict[tuple[Any, ...], dict[str, Any]] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_MAX = 512


def _cached(cache: dict[Any, dict[str, Any]], key: Any, build: Any) -> dict[str, Any]:
    with _CACHE_LOCK:
        hit = cache.get(key)
    if hit is not None:
        return hit
    value = build()
    with _CACHE_LOCK:
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[key] = value
    return value


class GovernanceData:
    """Everything the view shows, computed from :class:`Sources` at call time."""

    def __init__(self, sources: Sources, now: dt.datetime | None = None):
        self.sources = sources
        self.now = now or dt.datetime.now(dt.timezone.utc)
        self._storage: Any = None

    # -- roots -----------------------------------------------------------------------------

    @property
    def report_root(self) -> Path | None:
        """The report root as a local folder, or None (not set, not a local path, or missing)."""
        value = self.sources.report_root
        if not value:
            return None
        if value.startswith("file://"):
            value = value[len("file://") :]
        if "://" in value or not os.path.isabs(value):
            return None
        path = Path(value)
        return path if path.is_dir() else None

    def backup_storage(self) -> Any:
        """The backup root's :class:`Storage`, or None when it is not set or not there yet.

        ``storage_for`` creates a missing local root; a read-only view must not, so a local
        root is only opened once it exists.
        """
        if self._storage is not None:
            return self._storage
        value = self.sources.backup_root
        if not value:
            return None
        local = value[len("file://") :] if value.startswith("file://") else value
        if "://" not in local:
            if not os.path.isabs(local) or not os.path.isdir(local):
                return None
        from lomevexi_governance.storage import storage_for

        self._storage = storage_for(value)
        return self._storage

    def configuration(self) -> dict[str, Any]:
        """Which roots are configured and readable (no paths: they are not needed to sign off)."""
        backup = self.sources.backup_root
        report = self.sources.report_root
        return {
            "backup_root": {
                "configured": bool(backup),
                "kind": "object store" if backup and "://" in backup and not backup.startswith("file://") else "local",
                "available": self.backup_storage() is not None,
            },
            "report_root": {"configured": bool(report), "available": self.report_root is not None},
        }

    # -- recovery points -------------------------------------------------------------------

    def _point_summary(self, storage: Any, point_id: str) -> dict[str, Any]:
        from lomevexi_governance import recovery_points as rp

        rel = f"{rp.point_dir(point_id)}/{rp.MANIFEST}"
        try:
            info = storage.filesystem.get_file_info(storage.full(rel))
            key = (str(storage.root), point_id, int(info.size or 0), int(info.mtime_ns or 0))
        except (OSError, AttributeError):
            key = (str(storage.root), point_id, 0, 0)

        def build() -> dict[str, Any]:
            from lomevexi_governance.errors import IntegrityError, NotFound

            try:
                point = rp.load_point(storage, point_id, None, verify=False)
            except (IntegrityError, NotFound) as exc:
                return {"id": point_id, "readable": False, "error": _text(exc)}
            return summarize_manifest(point_id, point.manifest, point.signature)

        return _cached(_POINT_CACHE, key, build)

    def recovery_points(self) -> list[dict[str, Any]]:
        """Published points, newest first, with recorded verification and last drill."""
        storage = self.backup_storage()
        if storage is None:
            return []
        from lomevexi_governance import recovery_points as rp

        out = []
        for point_id in reversed(rp.list_points(storage)):
            out.append(self._point_with_records(storage, point_id))
        return out

    def recovery_point(self, point_id: str) -> dict[str, Any] | None:
        if not _POINT_ID.match(point_id):
            return None
        storage = self.backup_storage()
        if storage is None:
            return None
        from lomevexi_governance import recovery_points as rp

        if point_id not in rp.list_points(storage):
            return None
        return self._point_with_records(storage, point_id, detail=True)

    def _point_with_records(self, storage: Any, point_id: str, detail: bool = False) -> dict[str, Any]:
        from lomevexi_governance import recovery_points as rp

        summary = dict(self._point_summary(storage, point_id))
        if not detail:
            summary.pop("tables_detail", None)
        created = parse_time(summary.get("created_at"))
        summary["age_seconds"] = max(0.0, (self.now - created).total_seconds()) if created else None
        summary["verification"] = verification_record(_record(storage, rp, "verifications", point_id))
        summary["last_drill"] = drill_record(_record(storage, rp, "drills", point_id), self.report_root)
        try:
            summary["active_pins"] = len(rp.active_pins(storage, point_id, self.now))
        except (OSError, ValueError, KeyError):
            summary["active_pins"] = None
        summary["url"] = f"recovery-points/{point_id}"
        summary["dag_run_url"] = _run_url(ORDER_BACKUP, summary.get("dag_run_id"), self.report_root)
        return summary

    # -- runs ------------------------------------------------------------------------------

    def _run_dirs(self, dag_id: str) -> list[Path]:
        root = self.report_root
        if root is None or dag_id not in DAGS:
            return []
        base = root / dag_id
        try:
            children = [p for p in base.iterdir() if p.is_dir() and is_segment(p.name)]
        except OSError:
            return []
        runs = [p for p in children if (p / "summary.json").is_file()]
        return sorted(runs, key=lambda p: _mtime(p / "summary.json"), reverse=True)

    def runs(self, dag_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """DAG runs that wrote a report, newest first (``limit`` per DAG)."""
        out = []
        for dag in DAGS if dag_id is None else (dag_id,):
            for folder in self._run_dirs(dag)[:limit]:
                summary = _read_json(folder / "summary.json")
                if summary is not None:
                    out.append(run_record(dag, folder, summary))
        out.sort(key=lambda r: r.get("written_at") or "", reverse=True)
        return out

    def run_folder(self, dag_id: str, run_id: str) -> Path | None:
        root = self.report_root
        if root is None or dag_id not in DAGS:
            return None
        folder = safe_join(root / dag_id, [path_safe(run_id)])
        if folder is None or not folder.is_dir() or not (folder / "summary.json").is_file():
            return None
        return folder

    def run(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        """One run's report: headline facts plus the DAG-specific detail."""
        folder = self.run_folder(dag_id, run_id)
        if folder is None:
            return None
        summary = _read_json(folder / "summary.json")
        if summary is None:
            return None
        record = run_record(dag_id, folder, summary)
        record["detail"] = RUN_DETAIL[dag_id](summary, folder)
        return record

    def run_file(self, dag_id: str, folder_name: str, name: str) -> tuple[Path, str] | None:
        if name not in SERVED_RUN_FILES or not is_segment(folder_name):
            return None
        folder = self.run_folder(dag_id, folder_name)
        if folder is None:
            return None
        path = safe_join(folder, [name])
        return (path, SERVED_RUN_FILES[name]) if path is not None and path.is_file() else None

    def data_docs_file(self, folder_name: str, rel: str) -> tuple[Path, str] | None:
        """A file of an order_backup run's Great Expectations Data Docs site."""
        folder = self.run_folder(ORDER_BACKUP, folder_name) if is_segment(folder_name) else None
        if folder is None:
            return None
        site = folder / "validation" / "data_docs"
        parts = rel.split("/") if rel else []
        path = safe_join(site, parts, _DOCS_SEGMENT)
        if path is None or not path.is_file():
            return None
        kind = DATA_DOCS_TYPES.get(path.suffix.lower())
        return (path, kind) if kind else None

    def data_docs_pages(self, folder_name: str) -> dict[str, Any] | None:
        """The Data Docs pages of one order_backup run, per table and stage (source, backup).

        GX's own index.html draws its lists with scripts from public CDNs, which the view does
        not load; its validation-result and expectation-suite pages are plain HTML and read
        fine without them, so the view links to those directly.
        """
        folder = self.run_folder(ORDER_BACKUP, folder_name) if is_segment(folder_name) else None
        if folder is None:
            return None
        site = folder / "validation" / "data_docs"
        if not (site / "index.html").is_file():
            return None
        summary = _read_json(folder / "summary.json") or {}
        base = f"files/{ORDER_BACKUP}/{folder.name}/data-docs"
        pages: dict[tuple[str, str], dict[str, Any]] = {}
        for path in sorted((site / "validations").glob("*/*/*/*/*/*.html")):
            rel = path.relative_to(site)
            _kind, _suite, table, stage, run_dir, stamp, _file = (*rel.parts[:6], rel.parts[-1])
            if run_dir == "__none__" or not all(_DOCS_SEGMENT.match(p) for p in rel.parts):
                continue  # intermediate validations GX records without a run name
            entry = pages.setdefault((table, stage), {"table": table, "stage": stage, "stamp": ""})
            if stamp > entry["stamp"]:
                entry |= {"stamp": stamp, "validation_url": f"{base}/{rel.as_posix()}"}
        for (table, stage), entry in pages.items():
            for candidate in sorted((site / "expectations").glob(f"*/{table}/{stage}.html")):
                entry["suite_url"] = f"{base}/{candidate.relative_to(site).as_posix()}"
        tables = {t["name"]: t for t in (validation_record(summary.get("validation"), folder) or {}).get("tables", [])}
        rows = []
        for (table, stage), entry in sorted(pages.items()):
            rows.append(
                {
                    "table": table,
                    "stage": stage,
                    "validated_at": _text(entry["stamp"], 40),
                    "validation_url": entry.get("validation_url"),
                    "suite_url": entry.get("suite_url"),
                    "table_success": (tables.get(table) or {}).get("success"),
                }
            )
        return {
            "dag_id": ORDER_BACKUP,
            "run_id": _text(summary.get("run_id"), 250) or folder.name,
            "folder": folder.name,
            "run_url": f"runs/{ORDER_BACKUP}/{folder.name}",
            "gx_index_url": f"{base}/index.html",
            "pages": rows,
        }

    # -- validation ------------------------------------------------------------------------

    def validations(self, limit: int = 10) -> list[dict[str, Any]]:
        """The minimization gate of the latest order_backup runs, newest first."""
        out = []
        for folder in self._run_dirs(ORDER_BACKUP):
            summary = _read_json(folder / "summary.json")
            if summary is None:
                continue
            v = validation_record(summary.get("validation"), folder)
            if v is None:
                continue
            v |= {
                "dag_id": ORDER_BACKUP,
                "run_id": _text(summary.get("run_id")) or folder.name,
                "folder": folder.name,
                "logical_date": _iso(summary.get("logical_date")),
                "recovery_point_id": _point(summary.get("recovery_point_id")),
                "run_url": f"runs/{ORDER_BACKUP}/{folder.name}",
            }
            out.append(v)
            if len(out) >= limit:
                break
        return out

    # -- purge ledger ----------------------------------------------------------------------

    def purge_ledger(self, limit: int = 100) -> dict[str, Any]:
        storage = self.backup_storage()
        if storage is None or not storage.exists(PURGE_LEDGER_REL):
            return {"exists": False, "verification": None, "entries": [], "total": 0}
        from lomevexi_governance.errors import IntegrityError
        from lomevexi_governance.ledger import Ledger

        verification = self._verify_purge_ledger(storage)
        try:
            entries = Ledger(storage, PURGE_LEDGER_REL).entries()
        except IntegrityError as exc:
            return {"exists": True, "verification": verification, "entries": [], "total": 0, "error": _text(exc)}
        rows = [purge_entry(e) for e in reversed(entries)]
        report_root = self.report_root
        for row in rows:
            row["run_url"] = _run_url(RETENTION_PURGE, row["run_id"], report_root)
        return {"exists": True, "verification": verification, "entries": rows[:limit], "total": len(rows)}

    def _verify_purge_ledger(self, storage: Any) -> dict[str, Any]:
        """The purge's own verification: hash chain, heads recorded by runs, tombstone files."""
        from lomevexi_governance.errors import IntegrityError, NotFound

        report_root = self.report_root
        try:
            info = storage.filesystem.get_file_info(storage.full(PURGE_LEDGER_REL))
            anchors_sig = tuple((p.name, _mtime(p / "summary.json")) for p in self._run_dirs(RETENTION_PURGE))
            key: tuple[Any, ...] | None = (str(storage.root), int(info.size or 0), int(info.mtime_ns or 0), anchors_sig)
        except (OSError, AttributeError):
            key = None

        def build() -> dict[str, Any]:
            started = dt.datetime.now(dt.timezone.utc)
            try:
                from lomevexi_governance import purge

                anchors = purge.anchors_from_reports(report_root) if report_root is not None else []
                result = purge.verify_ledger(storage, anchors)
            except (IntegrityError, NotFound) as exc:
                return {"ok": False, "error": _text(exc), "checked_at": started.isoformat()}
            except (ValueError, KeyError, TypeError) as exc:  # a malformed entry or tombstone file
                return {
                    "ok": False,
                    "error": f"the purge ledger is malformed ({type(exc).__name__})",
                    "checked_at": started.isoformat(),
                }
            head = result.get("head") or {}
            return {
                "ok": bool(result.get("ok")),
                "entries": _int(result.get("entries")),
                "head_seq": _int(head.get("seq")),
                "head_hash": _ident(head.get("hash")),
                "anchors": _int(result.get("anchors")),
                "tombstone_files": _int(result.get("tombstone_files")),
                "incomplete_attempts": [
                    {"seq": _int(a.get("seq")), "run_id": _text(a.get("run_id"))}
                    for a in result.get("incomplete_attempts") or []
                    if isinstance(a, Mapping)
                ],
                "checked_at": started.isoformat(),
            }

        return build() if key is None else _cached(_LEDGER_CACHE, ("purge", *key), build)

    # -- drills ----------------------------------------------------------------------------

    def drills(self, limit: int = 100) -> dict[str, Any]:
        """Drill history (the hash-chained ledger the drills append to), newest first."""
        root = self.report_root
        if root is None or not (root / DRILL_HISTORY_REL).is_file():
            return {"exists": False, "verification": None, "entries": [], "total": 0, "trend": []}
        from lomevexi_governance.errors import IntegrityError
        from lomevexi_governance.ledger import Ledger
        from lomevexi_governance.storage import storage_for

        storage = storage_for(str(root))
        ledger = Ledger(storage, DRILL_HISTORY_REL)
        try:
            result = ledger.verify()
            head = result.get("head") or {}
            verification: dict[str, Any] = {
                "ok": True,
                "entries": _int(result.get("entries")),
                "head_seq": _int(head.get("seq")),
                "head_hash": _ident(head.get("hash")),
            }
        except IntegrityError as exc:
            verification = {"ok": False, "error": _text(exc)}
        try:
            entries = ledger.entries()
        except IntegrityError:
            entries = []
        rows = [drill_entry(e, self) for e in entries]
        trend = [
            {
                "at": r["at"],
                "rto_seconds": r["rto_seconds"],
                "rpo_seconds": r["rpo_seconds"],
                "status": r["status"],
                "run_id": r["run_id"],
            }
            for r in rows
            if r["at"] and (r["rto_seconds"] is not None or r["rpo_seconds"] is not None)
        ]
        rows.reverse()
        return {
            "exists": True,
            "verification": verification,
            "entries": rows[:limit],
            "total": len(rows),
            "trend": trend[-60:],
        }

    # -- access audit ----------------------------------------------------------------------

    def audits(self, limit: int = 60) -> dict[str, Any]:
        root = self.report_root
        if root is None or not (root / ACCESS_AUDIT).is_dir():
            return {"exists": False, "periods": [], "evidence": None}
        base = root / ACCESS_AUDIT
        periods = []
        for kind in AUDIT_KINDS:
            try:
                labels = [p for p in (base / kind).iterdir() if p.is_dir() and is_segment(p.name)]
            except OSError:
                continue
            for folder in labels:
                summary = _read_json(folder / "summary.json")
                if summary is not None:
                    periods.append(audit_period(kind, folder, summary))
        periods.sort(key=lambda p: (p.get("end_utc") or "", AUDIT_KINDS.index(p["kind"])), reverse=True)
        return {"exists": True, "periods": periods[:limit], "total": len(periods), "evidence": self._audit_evidence()}

    def audit_file(self, kind: str, label: str, name: str) -> tuple[Path, str] | None:
        root = self.report_root
        if root is None or kind not in AUDIT_KINDS or name not in SERVED_AUDIT_FILES:
            return None
        path = safe_join(root / ACCESS_AUDIT, [kind, label, name])
        return (path, SERVED_AUDIT_FILES[name]) if path is not None and path.is_file() else None

    def _audit_evidence(self) -> dict[str, Any] | None:
        root = self.report_root
        if root is None:
            return None
        path = root / ACCESS_AUDIT / AUDIT_EVIDENCE
        if not path.is_file():
            return None
        from lomevexi_governance.audit.evidence import verify_chain
        from lomevexi_governance.errors import IntegrityError

        try:
            return {"ok": True, "entries": verify_chain(path)}
        except IntegrityError as exc:
            return {"ok": False, "error": _text(exc)}

    # -- policy ----------------------------------------------------------------------------

    def policy(self) -> dict[str, Any]:
        """The policy in force (its digest and the limits the view compares against)."""
        from lomevexi_governance.errors import PolicyError
        from lomevexi_governance.policy import load_policy

        try:
            policy = load_policy()
        except (PolicyError, OSError) as exc:
            return {"ok": False, "error": _text(exc)}
        return {
            "ok": True,
            "sha256": policy.sha256,
            "drill_timeout_seconds": policy.drill_timeout_minutes * 60,
            "backup_retention_days": _int(getattr(policy, "backup_retention_days", None)),
        }


# -- records (allow-listed projections of what the DAGs wrote) -----------------------------


def _point(value: Any) -> str | None:
    return value if isinstance(value, str) and _POINT_ID.match(value) else None


def _record(storage: Any, rp: Any, kind: str, point_id: str) -> dict[str, Any] | None:
    try:
        return rp.read_record(storage, kind, point_id)
    except (ValueError, OSError):
        return {"unreadable": True}


def summarize_manifest(point_id: str, manifest: Mapping[str, Any], signature: Mapping[str, Any]) -> dict[str, Any]:
    tables = []
    rows = size = files = 0
    for name, t in sorted((manifest.get("tables") or {}).items()):
        if not isinstance(t, Mapping) or _ident(name) is None:
            continue
        t_rows, t_bytes = _int(t.get("rows")) or 0, _int(t.get("bytes")) or 0
        t_files = t.get("files") if isinstance(t.get("files"), list) else []
        tables.append(
            {
                "name": name,
                "rows": t_rows,
                "bytes": t_bytes,
                "files": len(t_files),
                "partitions": len({f.get("partition") for f in t_files if isinstance(f, Mapping)}),
                "columns": len(t.get("schema") or []),
                "extra_columns_ignored": _idents(t.get("extra_columns_ignored")),
            }
        )
        rows, size, files = rows + t_rows, size + t_bytes, files + len(t_files)
    source = manifest.get("source") if isinstance(manifest.get("source"), Mapping) else {}
    watermarks = [parse_time(v) for v in (source.get("watermark") or {}).values()] if source else []
    watermark = max((w for w in watermarks if w), default=None)
    validation = manifest.get("validation") if isinstance(manifest.get("validation"), Mapping) else {}
    return {
        "id": point_id,
        "readable": True,
        "logical_date": _iso(manifest.get("logical_date")),
        "created_at": _iso(manifest.get("created_at")),
        "dag_run_id": _text(manifest.get("dag_run_id")),
        "encrypted": _bool(manifest.get("encrypted")),
        "format": _ident(manifest.get("format")),
        "epoch_unit": _ident(manifest.get("epoch_unit")),
        "policy_sha256": _ident(manifest.get("policy_sha256")),
        "snapshot_started_at": _iso(source.get("snapshot_started_at")) if source else None,
        "source_dialect": _ident(source.get("dialect")) if source else None,
        "watermark": watermark.astimezone(dt.timezone.utc).isoformat() if watermark else None,
        "size_bytes": size,
        "rows": rows,
        "files": files,
        "table_count": len(tables),
        "tables": [{"name": t["name"], "rows": t["rows"]} for t in tables],
        "tables_detail": tables,
        "partitions": len(manifest.get("partitions") or {}),
        "validation_success": _bool(validation.get("success")),
        "signature": {
            "algorithm": _ident(signature.get("algorithm")),
            "key_id": _ident(signature.get("key_id")),
            "public_key_sha256_16": _ident(signature.get("public_key_sha256_16")),
        },
    }


def verification_record(rec: Mapping[str, Any] | None) -> dict[str, Any]:
    if rec is None:
        return {"state": "not verified", "ok": None, **_status("warn", "not verified")}
    if rec.get("unreadable"):
        return {"state": "unreadable", "ok": False, **_status("fail", "record unreadable")}
    ok = rec.get("ok") is True
    return {
        "state": "verified" if ok else "failed",
        "ok": ok,
        "verified_at": _iso(rec.get("verified_at")),
        "by": _text(rec.get("by"), 200),
        "files": _int(rec.get("files")),
        "bytes": _int(rec.get("bytes")),
        "error": None if ok else _text(rec.get("error")),
        **_status("ok" if ok else "fail", "verified" if ok else "verification failed"),
    }


def drill_level(status: Any) -> str:
    return {"SUCCESSFUL": "ok", "FAILED": "fail", "TIMED_OUT": "fail"}.get(str(status), "warn")


def drill_record(rec: Mapping[str, Any] | None, report_root: Path | None) -> dict[str, Any] | None:
    if rec is None:
        return None
    if rec.get("unreadable"):
        return {"status": "UNREADABLE", **_status("fail", "record unreadable")}
    run_id = _text(rec.get("run_id"), 250)
    status = _ident(rec.get("status")) or "UNKNOWN"
    out = {
        "status": status,
        "run_id": run_id,
        "finished_at": _iso(rec.get("finished_at")),
        "rto_seconds": _num(rec.get("rto_seconds")),
        "rpo_seconds": _num(rec.get("rpo_seconds")),
        "rows_restored": _int(rec.get("rows_restored")),
        "failure": _text(rec.get("failure")),
        **_status(drill_level(status), status.replace("_", " ").lower()),
    }
    out["run_url"] = _run_url(RESTORE_DRILL, run_id, report_root)
    return out


def _run_url(dag_id: str, run_id: str | None, report_root: Path | None) -> str | None:
    if not run_id or report_root is None:
        return None
    folder = path_safe(run_id)
    if not is_segment(folder) or not (report_root / dag_id / folder / "summary.json").is_file():
        return None
    return f"runs/{dag_id}/{folder}"


def validation_record(v: Any, folder: Path | None) -> dict[str, Any] | None:
    if not isinstance(v, Mapping):
        return None
    tables = []
    for name, t in sorted((v.get("tables") or {}).items()):
        if isinstance(t, Mapping) and _ident(name):
            tables.append(
                {
                    "name": name,
                    "evaluated": _int(t.get("evaluated")),
                    "failed": _int(t.get("failed")),
                    "success": _bool(t.get("success")),
                }
            )
    failed = []
    for f in v.get("failed") or []:
        if isinstance(f, Mapping):
            failed.append(
                {
                    "table": _ident(f.get("table")),
                    "column": _ident(f.get("column")),
                    "expectation": _ident(f.get("expectation")),
                    "stage": _ident(f.get("stage")),
                    "unexpected_count": _int(f.get("unexpected_count")),
                    "element_count": _int(f.get("element_count")),
                }
            )
    success = _bool(v.get("success"))
    docs = None
    if folder is not None and (folder / "validation" / "data_docs" / "index.html").is_file():
        docs = f"data-docs/{folder.name}"
    return {
        "success": success,
        "engine": _ident(v.get("engine")),
        "tables": tables,
        "evaluated": sum(t["evaluated"] or 0 for t in tables),
        "failed_count": sum(t["failed"] or 0 for t in tables) if tables else len(failed),
        "failed": failed[:200],
        "extraneous_columns": {
            t: _idents(cols) for t, cols in (v.get("extraneous_columns") or {}).items() if _ident(t)
        },
        "data_docs_url": docs,
        **(
            _status("ok", "passed")
            if success
            else _status("fail", "failed")
            if success is False
            else _status("none", "unknown")
        ),
    }


def purge_entry(e: Mapping[str, Any]) -> dict[str, Any]:
    event = _ident(e.get("event")) or "?"
    counts = _counts(e.get("counts") or e.get("deleted"))
    shredded = _idents(e.get("shredded_keys"))
    epochs = []
    for ep in e.get("epochs") or []:
        if isinstance(ep, Mapping):
            epochs.append({"label": _ident(ep.get("label")), "keys": len(ep.get("key_ids") or [])})
    return {
        "seq": _int(e.get("seq")),
        "at": _iso(e.get("at")),
        "event": event,
        "run_id": _text(e.get("run_id"), 250),
        "logical_date": _iso(e.get("logical_date")),
        "recovery_point_id": _point(e.get("recovery_point_id")),
        "dry_run": _bool(e.get("dry_run")),
        "counts": counts,
        "rows": sum(counts.values()),
        "protected": _counts(e.get("protected")),
        "shredded_keys": len(shredded),
        "epochs": epochs,
        "would_shred": len(e.get("would_shred") or []),
        "hash": _ident(e.get("hash")),
        "prev": _ident(e.get("prev")),
    }


def drill_entry(e: Mapping[str, Any], data: GovernanceData) -> dict[str, Any]:
    status = _ident(e.get("status")) or "UNKNOWN"
    run_id = _text(e.get("run_id"), 250)
    failure = e.get("failure") if isinstance(e.get("failure"), Mapping) else None
    tables = e.get("tables") if isinstance(e.get("tables"), Mapping) else {}
    checksums_ok = all(isinstance(t, Mapping) and t.get("checksums") in ("ok", "not_verified") for t in tables.values())
    return {
        "seq": _int(e.get("seq")),
        "at": _iso(e.get("at")),
        "run_id": run_id,
        "recovery_point_id": _point(e.get("recovery_point_id")),
        "status": status,
        "triggered_by": _text(e.get("triggered_by"), 120),
        "rto_seconds": _num(e.get("rto_seconds")),
        "rpo_seconds": _num(e.get("rpo_seconds")),
        "rows_restored": _int(e.get("rows_restored")),
        "tables": len(tables),
        "checksums_ok": checksums_ok if tables else None,
        "failure": {"step": _ident(failure.get("step")), "error": _text(failure.get("error"))} if failure else None,
        "hash": _ident(e.get("hash")),
        "run_url": _run_url(RESTORE_DRILL, run_id, data.report_root),
        **_status(drill_level(status), status.replace("_", " ").lower()),
    }


def audit_period(kind: str, folder: Path, s: Mapping[str, Any]) -> dict[str, Any]:
    period = s.get("period") if isinstance(s.get("period"), Mapping) else {}
    by_severity = _counts(s.get("findings_by_severity"))
    high = by_severity.get("high", 0)
    total = _int(s.get("findings_total")) or 0
    files = s.get("files") if isinstance(s.get("files"), Mapping) else {}
    integrity = {}
    for name in SERVED_AUDIT_FILES:
        expected = (files.get(name) or {}).get("sha256") if isinstance(files.get(name), Mapping) else None
        integrity[name] = _file_matches(folder / name, expected)
    label = f"{kind}/{folder.name}"
    out = {
        "kind": kind,
        "period_label": label,
        "period": folder.name,
        "start_date": _text(period.get("start_date"), 20),
        "end_date": _text(period.get("end_date"), 20),
        "start_utc": _iso(period.get("start_utc")),
        "end_utc": _iso(period.get("end_utc")),
        "timezone": _ident(period.get("timezone")),
        "run_id": _text(s.get("run_id"), 250),
        "event_count": _int(s.get("event_count")),
        "allowed_count": _int(s.get("allowed_count")),
        "denied_count": _int(s.get("denied_count")),
        "outside_business_hours_count": _int(s.get("outside_business_hours_count")),
        "staff_count": _int(s.get("staff_count")),
        "findings_total": total,
        "findings_by_severity": by_severity,
        "findings_by_rule": _counts(s.get("findings_by_rule")),
        "integrity": integrity,
        "report_url": f"audits/{kind}/{folder.name}/report.html" if (folder / "report.html").is_file() else None,
        "csv_url": f"audits/{kind}/{folder.name}/findings.csv" if (folder / "findings.csv").is_file() else None,
    }
    if high:
        out |= _status("fail", f"{high} high")
    elif total:
        out |= _status("warn", f"{total} finding{'s' if total != 1 else ''}")
    else:
        out |= _status("ok", "no findings")
    return out


def _file_matches(path: Path, expected: Any) -> bool | None:
    """Whether ``path`` still has the SHA-256 its summary recorded (None: nothing recorded)."""
    if not isinstance(expected, str) or not path.is_file():
        return None
    import hashlib

    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest() == expected


# -- runs ----------------------------------------------------------------------------------


def run_record(dag_id: str, folder: Path, s: Mapping[str, Any]) -> dict[str, Any]:
    written = _mtime(folder / "summary.json")
    record: dict[str, Any] = {
        "dag_id": dag_id,
        "dag_title": DAG_TITLES[dag_id],
        "run_id": _text(s.get("run_id"), 250) or folder.name,
        "folder": folder.name,
        "logical_date": _iso(s.get("logical_date")),
        "written_at": dt.datetime.fromtimestamp(written, dt.timezone.utc).isoformat() if written else None,
        "recovery_point_id": _point(s.get("recovery_point_id")),
        "url": f"runs/{dag_id}/{folder.name}",
        "report_html_url": f"files/{dag_id}/{folder.name}/report.html" if (folder / "report.html").is_file() else None,
    }
    record |= RUN_HEADLINE[dag_id](s, folder)
    return record


def _backup_headline(s: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    v = s.get("validation") if isinstance(s.get("validation"), Mapping) else {}
    ver = s.get("verification") if isinstance(s.get("verification"), Mapping) else {}
    gate = _bool(v.get("success"))
    verified = _bool(ver.get("ok"))
    if verified is False:
        st = _status("fail", "verification failed")
    elif gate is False:
        st = _status("fail", "minimization gate failed")
    elif gate and verified:
        st = _status("ok", "published and verified")
    else:
        st = _status("warn", "incomplete")
    docs = folder / "validation" / "data_docs" / "index.html"
    return st | {
        "facts": {
            "rows": _int(s.get("rows")),
            "bytes": _int(s.get("bytes")),
            "duration_seconds": _num(s.get("duration_seconds")),
            "already_published": _bool(s.get("already_published")),
        },
        "data_docs_url": f"data-docs/{folder.name}" if docs.is_file() else None,
    }


def _purge_headline(s: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    dry = _bool(s.get("dry_run"))
    purged = _counts(s.get("purged"))
    due = _counts(s.get("due"))
    ledger = s.get("ledger") if isinstance(s.get("ledger"), Mapping) else {}
    ver = ledger.get("verification") if isinstance(ledger.get("verification"), Mapping) else {}
    shredded = len(s.get("shredded_keys") or [])
    if ver and ver.get("ok") is False:
        st = _status("fail", "ledger did not verify")
    elif dry:
        st = _status("info", "dry run")
    else:
        st = _status("ok", "purged")
    return st | {
        "facts": {
            "dry_run": dry,
            "rows_due": sum(due.values()),
            "rows_purged": sum(purged.values()),
            "shredded_keys": shredded,
            "duration_seconds": _num(s.get("duration_seconds")),
        }
    }


def _drill_headline(s: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    status = _ident(s.get("status")) or "UNKNOWN"
    return _status(drill_level(status), status.replace("_", " ").lower()) | {
        "facts": {
            "rto_seconds": _num(s.get("rto_seconds")),
            "rpo_seconds": _num(s.get("rpo_seconds")),
            "rows_restored": _int(s.get("rows_restored")),
            "rows_expected": _int(s.get("rows_expected")),
            "triggered_by": _text(s.get("triggered_by"), 120),
        }
    }


def _audit_headline(s: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    alerts = s.get("alerts") if isinstance(s.get("alerts"), Mapping) else {}
    total = _int(s.get("findings_total")) or 0
    high = _int(alerts.get("high_findings")) or 0
    if alerts.get("failed"):
        st = _status("fail", "alerts failed")
    elif high:
        st = _status("fail", f"{high} high finding{'s' if high != 1 else ''}")
    elif total:
        st = _status("warn", f"{total} finding{'s' if total != 1 else ''}")
    else:
        st = _status("ok", "no findings")
    return st | {
        "facts": {
            "periods": len(s.get("periods") or []),
            "event_count": _int(s.get("event_count")),
            "findings_total": total,
            "alerts": _text(alerts.get("status"), 60),
            "airflow_audit_log": _text(s.get("airflow_audit"), 60)
            if not isinstance(s.get("airflow_audit"), Mapping)
            else _text(s["airflow_audit"].get("status"), 60),
        }
    }


RUN_HEADLINE = {
    ORDER_BACKUP: _backup_headline,
    RETENTION_PURGE: _purge_headline,
    RESTORE_DRILL: _drill_headline,
    ACCESS_AUDIT: _audit_headline,
}


def _backup_detail(s: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    tables = []
    for name, t in sorted((s.get("tables") or {}).items()):
        if isinstance(t, Mapping) and _ident(name):
            tables.append(
                {
                    "name": name,
                    "rows": _int(t.get("rows")),
                    "bytes": _int(t.get("bytes")),
                    "files": _int(t.get("files")),
                }
            )
    ver = s.get("verification") if isinstance(s.get("verification"), Mapping) else None
    expired = s.get("expired") if isinstance(s.get("expired"), Mapping) else {}
    violations = []
    for v in s.get("violations") or []:
        if isinstance(v, Mapping):
            violations.append(
                {
                    "table": _ident(v.get("table")),
                    "column": _ident(v.get("column")),
                    "rule": _ident(v.get("rule")),
                    "count": _int(v.get("count")),
                }
            )
    return {
        "tables": tables,
        "validation": validation_record(s.get("validation"), folder),
        "verification": verification_record(ver) if ver is not None else None,
        "extraneous_columns": {
            t: _idents(cols) for t, cols in (s.get("extraneous_columns") or {}).items() if _ident(t)
        },
        "masked": _counts(s.get("masked")),
        "violations": violations,
        "expired_points": [
            _point(e.get("recovery_point_id")) for e in expired.get("expired") or [] if isinstance(e, Mapping)
        ],
        "destroyed_keys": _int(expired.get("destroyed_keys")),
    }


def _purge_detail(s: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    ledger = s.get("ledger") if isinstance(s.get("ledger"), Mapping) else {}
    ver = ledger.get("verification") if isinstance(ledger.get("verification"), Mapping) else {}
    head = ledger.get("head") if isinstance(ledger.get("head"), Mapping) else {}
    guard = s.get("guard") if isinstance(s.get("guard"), Mapping) else {}
    due, purged = _counts(s.get("due")), _counts(s.get("purged"))
    return {
        "tables": [{"name": t, "due": due.get(t), "purged": purged.get(t)} for t in sorted(set(due) | set(purged))],
        "protected": _counts(s.get("protected")),
        "skipped_changed_since_plan": _counts(s.get("skipped_changed_since_plan")),
        "shredded_keys": _idents(s.get("shredded_keys"), 500),
        "would_shred": _idents(s.get("would_shred"), 500),
        "shredded_epochs": _idents(s.get("shredded_epochs"), 500),
        "batches": _int(s.get("batches")),
        "plan_seconds": _num(s.get("plan_seconds")),
        "delete_seconds": _num(s.get("delete_seconds")),
        "rows_per_second": _num(s.get("rows_per_second")),
        "guard": {
            "ok": _bool(guard.get("ok")),
            "same_policy": _bool(guard.get("same_policy")),
            "verified_at": _iso(guard.get("verified_at")),
            "error": _text(guard.get("error")),
        },
        "ledger": {
            "head_seq": _int(head.get("seq")),
            "head_hash": _ident(head.get("hash")),
            "ok": _bool(ver.get("ok")),
            "entries": _int(ver.get("entries")),
            "tombstone_files": _int(ver.get("tombstone_files")),
        },
    }


def _drill_detail(s: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    tables = []
    for name, t in sorted((s.get("tables") or {}).items()):
        if isinstance(t, Mapping) and _ident(name):
            v = t.get("validation") if isinstance(t.get("validation"), Mapping) else {}
            tables.append(
                {
                    "name": name,
                    "expected_rows": _int(t.get("expected_rows")),
                    "restored_rows": _int(t.get("restored_rows")),
                    "checksums": _ident(t.get("checksums")),
                    "skipped_shredded_rows": _int(t.get("skipped_shredded_rows")),
                    "dropped_by_purge_tombstones": _int(t.get("dropped_by_purge_tombstones")),
                    "validation": _ident(v.get("status")),
                }
            )
    point = s.get("point") if isinstance(s.get("point"), Mapping) else {}
    sig = point.get("signature") if isinstance(point.get("signature"), Mapping) else {}
    failure = s.get("failure") if isinstance(s.get("failure"), Mapping) else None
    restore = s.get("restore") if isinstance(s.get("restore"), Mapping) else {}
    history = s.get("history") if isinstance(s.get("history"), Mapping) else {}
    return {
        "tables": tables,
        "verification_mode": _ident(s.get("verification")),
        "started_at": _iso(s.get("started_at")),
        "finished_at": _iso(s.get("finished_at")),
        "timeout_minutes": _num(s.get("timeout_minutes")),
        "signature_ok": _bool(sig.get("ok")),
        "files_verified": _int(point.get("files_verified")),
        "bytes_verified": _int(point.get("bytes_verified")),
        "restore_seconds": _num(restore.get("seconds")),
        "rows_per_second": _num(restore.get("rows_per_second")),
        "shredded_partitions_skipped": len(s.get("shredded_partitions_skipped") or []),
        "failure": {
            "step": _ident(failure.get("step")),
            "status": _ident(failure.get("status")),
            "error": _text(failure.get("error")),
        }
        if failure
        else None,
        "history_seq": _int(history.get("seq")),
        "history_hash": _ident(history.get("hash")),
    }


def _audit_detail(s: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    periods = []
    for p in s.get("periods") or []:
        if not isinstance(p, Mapping):
            continue
        label = _text(p.get("label"), 80) or ""
        kind, _, name = label.partition("/")
        ok = kind in AUDIT_KINDS and is_segment(name)
        periods.append(
            {
                "label": label,
                "kind": kind if ok else None,
                "event_count": _int(p.get("event_count")),
                "denied_count": _int(p.get("denied_count")),
                "findings_total": _int(p.get("findings_total")),
                "findings_by_severity": _counts(p.get("findings_by_severity")),
                "report_url": f"audits/{kind}/{name}/report.html" if ok else None,
                "csv_url": f"audits/{kind}/{name}/findings.csv" if ok else None,
            }
        )
    alerts = s.get("alerts") if isinstance(s.get("alerts"), Mapping) else {}
    return {
        "periods": periods,
        "alerts": {
            "status": _text(alerts.get("status"), 60),
            "high_findings": _int(alerts.get("high_findings")),
            "sent": len(alerts.get("sent") or []),
            "already_sent": len(alerts.get("already_sent") or []),
            "not_sent": len(alerts.get("not_sent") or []),
            "failed": len(alerts.get("failed") or []),
        },
    }


RUN_DETAIL = {
    ORDER_BACKUP: _backup_detail,
    RETENTION_PURGE: _purge_detail,
    RESTORE_DRILL: _drill_detail,
    ACCESS_AUDIT: _audit_detail,
}
