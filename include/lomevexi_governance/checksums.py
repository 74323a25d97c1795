"""Order-independent per-column checksums of table data.

A column's checksum is ``sum(mix(h(pk), h(value))) mod 2**64`` over its rows, where ``h`` is a
64-bit hash of the canonical value (int64, UTF-8 text, or UTC microseconds; NULL has its own
value). It does not depend on row order, so a restored table checks against the manifest
however the database returns it; sums of files add up to the table's; and the contribution of
rows dropped on restore (purge tombstones) can be subtracted exactly. It detects a changed,
missing, duplicated or moved value; the files' SHA-256 is what detects tampering.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MASK64 = (1 << 64) - 1
_NULL = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_K = np.uint64(0xD6E8FEB86659FD93)
ROWS = "__rows__"


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, vectorised (uint64 arithmetic wraps)."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * _C1
        x = x ^ (x >> np.uint64(27))
        x = x * _C2
        return x ^ (x >> np.uint64(31))


_P = np.uint64(0x100000001B3)  # odd, so invertible modulo 2**64
_P_INV = np.uint64(pow(int(_P), -1, 1 << 64))
#: recorded in every manifest, so a verifier knows how the checksums were computed
ALGORITHM = "splitmix64-sum/poly64-utf8/1"


_POWERS: list[np.ndarray] = [np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64)]


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``P**j`` and ``P**-j`` for ``j < n`` (cached, grown geometrically)."""
    if len(_POWERS[0]) < n:
        size = max(n, 2 * len(_POWERS[0]))
        with np.errstate(over="ignore"):
            for i, base in enumerate((_P, _P_INV)):
                table = np.full(size, base, dtype=np.uint64)
                table[0] = 1
                _POWERS[i] = np.cumprod(table)
    return _POWERS[0][:n], _POWERS[1][:n]


def _string_hashes(arr: pa.Array) -> np.ndarray:
    """64-bit hash of every UTF-8 value, straight from the Arrow buffers (no Python objects).

    ``h = sum((b_j + 1) * P**j) mod 2**64`` over a value's bytes, computed for all values at once
    from one prefix sum over the data buffer (``P**-start`` shifts each value back to position 0),
    then mixed with the value's length by splitmix64.
    """
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    n = len(arr)
    buffers = arr.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4).astype(np.int64)
    start, end = int(offsets[0]), int(offsets[-1])
    if buffers[2] is not None and end > start:
        data = np.frombuffer(buffers[2], dtype=np.uint8)[start:end].astype(np.uint64)
    else:
        data = np.zeros(0, dtype=np.uint64)
    rel = offsets - start
    powers, inverse = _powers(len(data) + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(len(data) + 1, dtype=np.uint64)
        np.cumsum((data + np.uint64(1)) * powers[:-1], out=prefix[1:])
        h = (prefix[rel[1:]] - prefix[rel[:-1]]) * inverse[rel[:-1]]
        lengths = (rel[1:] - rel[:-1]).astype(np.uint64)
        return _mix(h ^ (lengths * _K))


def value_hashes(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        h = _string_hashes(arr.fill_null(""))
    elif pa.types.is_timestamp(t):
        h = _mix(arr.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).fill_null(0).to_numpy().view(np.uint64))
    elif pa.types.is_integer(t):
        h = _mix(arr.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64).view(np.uint64))
    elif pa.types.is_boolean(t):
        h = _mix(arr.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64))
    else:
        raise TypeError(f"no checksum for Arrow type {t}")
    return np.where(valid, h, _NULL).astype(np.uint64)


def _sum64(values: np.ndarray) -> int:
    # numpy's uint64 sum wraps modulo 2**64, which is exactly the checksum's arithmetic
    return int(np.sum(values, dtype=np.uint64)) & MASK64


def batch_checksums(batch: pa.RecordBatch | pa.Table, primary_key: str) -> dict[str, int]:
    """``{column: checksum}`` for one batch, plus ``__rows__``: the row count."""
    pk = value_hashes(batch.column(primary_key))
    out: dict[str, int] = {ROWS: batch.num_rows}
    with np.errstate(over="ignore"):
        row_key = _mix(pk ^ _K)
        for name in batch.schema.names:
            h = value_hashes(batch.column(name))
            out[name] = _sum64(_mix(row_key + h))
    return out


def combine(parts: Iterable[Mapping[str, int]], sign: int = 1) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in parts:
        for k, v in part.items():
            if k == ROWS:
                total[k] = total.get(k, 0) + sign * v
            else:
                total[k] = (total.get(k, 0) + sign * v) & MASK64
    return total


def subtract(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    """``a - b``: e.g. a file's checksums less the rows a restore dropped."""
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) - v if k == ROWS else (out.get(k, 0) - v) & MASK64
    return out


def to_hex(sums: Mapping[str, int]) -> dict[str, str | int]:
    return {k: (v if k == ROWS else f"{v:016x}") for k, v in sums.items()}


def from_hex(sums: Mapping[str, str | int]) -> dict[str, int]:
    return {k: (int(v) if k == ROWS else int(str(v), 16)) for k, v in sums.items()}


def table_checksums(batches: Iterable[pa.RecordBatch], primary_key: str, columns: list[str]) -> dict[str, int]:
    total: dict[str, int] = {ROWS: 0, **{c: 0 for c in columns}}
    for batch in batches:
        total = combine([total, batch_checksums(batch.select(columns), primary_key)])
    return total


def is_null_mask(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.is_null(arr).to_numpy(zero_copy_only=False), dtype=bool)
