"""Append-only, hash-chained evidence logs (purge ledger, drill history, audit evidence).

Each line is one JSON entry::

    {"seq": 7, "prev": "<hash of entry 6>", "at": "...", ...payload..., "hash": "<sha256>"}

``hash`` is the SHA-256 of the entry's canonical JSON without ``hash``; ``prev`` chains it to the
entry before (64 zeros for the first). :func:`verify` recomputes every hash and link, so an
edited, removed, inserted or reordered entry is detected and named by its sequence number.
Truncating the newest entries leaves a valid shorter chain: each run therefore records the
head (``seq`` and ``hash``) it wrote in its own report, which anchors the chain.

Appends are serialised with a lock file (local storage) and written atomically.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lomevexi_governance.errors import IntegrityError
from lomevexi_governance.storage import LocalStorage, Storage

GENESIS = "0" * 64


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


@dataclass(frozen=True)
class Head:
    seq: int
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash}


class Ledger:
    """A hash-chained JSONL file at ``rel`` in ``storage``."""

    def __init__(self, storage: Storage, rel: str):
        self.storage = storage
        self.rel = rel

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if isinstance(self.storage, LocalStorage):
            lock_path = Path(self.storage.full(self.rel + ".lock"))
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            with open(lock_path, "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        else:  # object stores: one writer per ledger by construction (max_active_runs=1)
            yield

    def _raw(self) -> bytes:
        return self.storage.read_bytes(self.rel) if self.storage.exists(self.rel) else b""

    def entries(self) -> list[dict[str, Any]]:
        out = []
        for n, line in enumerate(self._raw().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                raise IntegrityError(f"{self.storage.describe(self.rel)}: line {n} is not valid JSON") from None
        return out

    def append(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Append one entry (``payload`` must not use the keys seq/prev/hash) and return it."""
        reserved = {"seq", "prev", "hash"} & set(payload)
        if reserved:
            raise ValueError(f"ledger payload may not set {sorted(reserved)}")
        with self._locked():
            raw = self._raw()
            lines = [ln for ln in raw.splitlines() if ln.strip()]
            if lines:
                last = json.loads(lines[-1])
                seq, prev = int(last["seq"]) + 1, last["hash"]
            else:
                seq, prev = 1, GENESIS
            entry = {"seq": seq, "prev": prev, "at": dt.datetime.now(dt.timezone.utc).isoformat(), **payload}
            entry["hash"] = entry_hash(entry)
            line = _canonical(entry) + b"\n"
            self.storage.write_bytes(self.rel, (raw if raw.endswith(b"\n") or not raw else raw + b"\n") + line)
        return entry

    def head(self) -> Head | None:
        entries = self.entries()
        return Head(entries[-1]["seq"], entries[-1]["hash"]) if entries else None

    def verify(self, anchor: Head | None = None) -> dict[str, Any]:
        """Check every hash and link; with ``anchor``, also that the chain still reaches it.

        Returns ``{"ok": True, "entries": n, "head": {...}}`` or raises :class:`IntegrityError`
        naming the first broken entry.
        """
        prev = GENESIS
        expected_seq = 1
        entries = self.entries()
        where = self.storage.describe(self.rel)
        for e in entries:
            seq = e.get("seq")
            if seq != expected_seq:
                raise IntegrityError(f"{where}: entry {expected_seq} is missing or out of order (found seq {seq})")
            if e.get("prev") != prev:
                raise IntegrityError(f"{where}: entry {seq} does not link to the entry before it")
            if entry_hash(e) != e.get("hash"):
                raise IntegrityError(f"{where}: entry {seq} was altered (its hash does not match)")
            prev = e["hash"]
            expected_seq += 1
        if anchor is not None:
            found = next((e for e in entries if e["seq"] == anchor.seq), None)
            if found is None or found["hash"] != anchor.hash:
                raise IntegrityError(
                    f"{where}: the chain no longer contains the recorded head {anchor.seq} (truncated?)"
                )
        head = Head(entries[-1]["seq"], entries[-1]["hash"]).as_dict() if entries else None
        return {"ok": True, "entries": len(entries), "head": head}
