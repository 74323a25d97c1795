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

MASK64 = (1 << 64) - 1
_NULL = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_K = np.uint64(0xD6E8FEB86659FD93)
ROWS = "__rows__"


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, vectorised, computed in ``x`` itself (a writable uint64 temporary:
    its values are replaced) with one scratch array; uint64 arithmetic wraps."""
    t = np.right_shift(x, np.uint64(30))
    np.bitwise_xor(x, t, out=x)
    np.multiply(x, _C1, out=x)
    np.right_shift(x, np.uint64(27), out=t)
    np.bitwise_xor(x, t, out=x)
    np.multiply(x, _C2, out=x)
    np.right_shift(x, np.uint64(31), out=t)
    np.bitwise_xor(x, t, out=x)
    return x


_P = np.uint64(0x100000001B3)  # odd, so invertible modulo 2**64
_P_INV = np.uint64(pow(int(_P), -1, 1 << 64))
#: recorded in every manifest, so a verifier knows how the checksums were computed
ALGORITHM = "splitmix64-sum/poly64-utf8/1"


#: text is hashed in windows of about this many bytes, so temporary arrays (8 bytes per byte of
#: text) and the cached power tables stay bounded whatever the table size. A window's working
#: set (a few arrays of 8 bytes per byte of text) should stay in a core's L2 cache: 128 KiB was
#: the fastest of 16 KiB ... 1 MiB here (``make bench-checksums``).
WINDOW_BYTES = 1 << 17
_POWERS: list[np.ndarray] = [np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64)]


def _power_tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``P**j`` and ``P**-j`` for ``j < n``: cached up to one window, computed afresh beyond it."""
    if n <= len(_POWERS[0]):
        return _POWERS[0][:n], _POWERS[1][:n]
    size = max(n, min(2 * len(_POWERS[0]), WINDOW_BYTES + 1))
    tables = []
    with np.errstate(over="ignore"):
        for base in (_P, _P_INV):
            table = np.full(size, base, dtype=np.uint64)
            table[0] = 1
            tables.append(np.cumprod(table))
    if size <= WINDOW_BYTES + 1:  # only a value longer than a window is not cached
        _POWERS[0], _POWERS[1] = tables
    return tables[0][:n], tables[1][:n]


def _hash_window(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Hashes of the values whose bytes are ``data`` (``offsets`` relative to ``data``)."""
    powers, inverse = _power_tables(len(data) + 1)
    with np.errstate(over="ignore"):
        terms = data.astype(np.uint64)
        terms += np.uint64(1)
        terms *= powers[:-1]
        prefix = np.zeros(len(data) + 1, dtype=np.uint64)
        np.cumsum(terms, out=prefix[1:])
        starts = offsets[:-1]
        h = prefix[offsets[1:]]
        h -= prefix[starts]
        h *= inverse[starts]
        h ^= (offsets[1:] - starts).astype(np.uint64) * _K
        return _mix(h)


def _string_hashes(arr: pa.Array) -> np.ndarray:
    """64-bit hash of every UTF-8 value, straight from the Arrow buffers (no Python objects).

    ``h = sum((b_j + 1) * P**j) mod 2**64`` over a value's bytes, computed for many values at once
    from a prefix sum over the data buffer (``P**-start`` shifts each value back to position 0),
    then mixed with the value's length by splitmix64. Values are taken in windows of about
    ``WINDOW_BYTES`` of text; a value's hash does not depend on its window.
    """
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    n = len(arr)
    buffers = arr.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4).astype(np.int64)
    raw = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, dtype=np.uint8)
    out = np.empty(n, dtype=np.uint64)
    i = 0
    while i < n:
        # the values from i whose bytes fit in one window (at least one value)
        j = int(np.searchsorted(offsets, offsets[i] + WINDOW_BYTES, side="right")) - 1
        j = min(max(j, i + 1), n)
        start, end = int(offsets[i]), int(offsets[j])
        out[i:j] = _hash_window(raw[start:end], offsets[i : j + 1] - start)
        i = j
    return out


def value_hashes(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The 64-bit hash of every value of ``arr``, NULL included, as a new (writable) array."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        h = _string_hashes(arr.fill_null(""))
    elif pa.types.is_timestamp(t):
        h = _mix(arr.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).fill_null(0).to_numpy().astype(np.uint64))
    elif pa.types.is_integer(t) or pa.types.is_boolean(t):
        # int64 -> uint64 keeps the bits (two's complement), as the hash is defined
        h = _mix(arr.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64))
    else:
        raise TypeError(f"no checksum for Arrow type {t}")
    if arr.null_count:
        valid = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        h = np.where(valid, h, _NULL)
    return h


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
            h += row_key
            out[name] = _sum64(_mix(h))
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
