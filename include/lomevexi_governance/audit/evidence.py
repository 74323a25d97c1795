"""Append-only, hash-chained JSON-lines logs: the audit evidence log and the sent-alerts record.

Every line of ``evidence.jsonl`` is one compact JSON object with ``seq`` (1, 2, ...) and
``prev_sha256``: the SHA-256 of the previous line's bytes (without its newline), or 64 zeros
for the first line. Changing, removing or reordering any line breaks the chain, which
:func:`verify_chain` reports by line number. Appends take an exclusive ``flock`` and are
fsynced, so concurrent runs cannot interleave and a crash never leaves half a line behind
(a torn last line is reported by :func:`verify_chain`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lomevexi_governance.errors import IntegrityError
from lomevexi_governance.reports import fsync_dir, json_default

GENESIS = "0" * 64


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=json_default)


def line_sha256(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def read_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return [ln for ln in text.split("\n") if ln]


def verify_chain(path: str | os.PathLike[str]) -> int:
    """Check every link of a hash-chained log; return the number of entries."""
    p = Path(path)
    prev = GENESIS
    lines = read_lines(p)
    for n, ln in enumerate(lines, start=1):
        try:
            obj = json.loads(ln)
        except ValueError:
            raise IntegrityError(f"{p}: line {n} is not valid JSON (torn or edited)") from None
        if obj.get("prev_sha256") != prev:
            raise IntegrityError(f"{p}: line {n} does not chain to line {n - 1} (prev_sha256 mismatch)")
        if obj.get("seq") != n:
            raise IntegrityError(f"{p}: line {n} has seq {obj.get('seq')!r}, expected {n}")
        prev = line_sha256(ln)
    return len(lines)


def append_chained(
    path: str | os.PathLike[str],
    entry: dict[str, Any],
    *,
    skip_if: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any]:
    """Append ``entry`` (plus ``seq`` and ``prev_sha256``) and return what was written.

    With ``skip_if``, an existing entry for which it returns true is returned instead and
    nothing is appended (a retried task does not record the same evidence twice). The chain
    is verified before appending: a broken log fails loudly rather than growing.
    """
    p = Path(path)
    with locked(p):
        verify_chain(p)
        lines = read_lines(p)
        if skip_if is not None:
            for ln in lines:
                old = json.loads(ln)
                if skip_if(old):
                    return dict(old)
        record = {
            **entry,
            "seq": len(lines) + 1,
            "prev_sha256": line_sha256(lines[-1]) if lines else GENESIS,
        }
        data = (_line(record) + "\n").encode("utf-8")
        new = not p.exists()
        fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            fsync_dir(p.parent)
        return record


def read_entries(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in read_lines(Path(path))]
