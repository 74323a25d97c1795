"""Per-run report folders and atomic JSON/text writes.

Every DAG run writes ``<report_root>/<dag_id>/<run id, made path-safe>/summary.json``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def path_safe(run_id: str) -> str:
    """``manual__2026-11-24T01:00:00+00:00`` -> ``manual__2026-11-24T01_00_00_00_00``."""
    safe = _UNSAFE.sub("_", run_id).strip("._")
    if not safe:
        raise ValueError("run id is empty after making it path-safe")
    return safe


def run_report_dir(report_root: str | os.PathLike[str], dag_id: str, run_id: str) -> Path:
    return Path(report_root) / dag_id / path_safe(run_id)


def json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True, default=json_default) + "\n"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> str:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename). Returns its SHA-256."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return hashlib.sha256(data).hexdigest()


def write_text_atomic(path: str | os.PathLike[str], text: str) -> str:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> str:
    return write_text_atomic(path, dumps(obj))


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
