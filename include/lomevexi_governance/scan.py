"""Content scan of the data about to be written: card numbers masked, row rules checked.

Runs on every record batch in the backup's write path, vectorised with ``pyarrow.compute``
(RE2) so it costs little even on millions of rows; only the rare rows that look like they
hold a card number go through Python for the Luhn check.

* A payment-card number (13 to 19 digits passing the Luhn check, optionally separated by
  spaces or hyphens, ASCII or full-width digits) in any text column is masked: every digit but
  the last four becomes ``*``. In ``payments.card_last4`` the value becomes its last four
  digits. Counted per ``table.column``.
* Row rules (NOT NULL, value sets, formats, minimums, e-mail addresses outside
  ``customers.email``) are counted per ``table.column`` with the offending rows' primary keys,
  never their values. The rows are still written: a backup never drops data.

The Great Expectations suites (``expectations/``) are the formal record of the same rules.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lomevexi_governance.policy import Table

#: at most this many primary keys are kept per rule and column (the count is always exact)
MAX_KEYS = 1000

_DIGIT = "[0-9０-９]"
_SEP = "[ \\-‐－　]"
# RE2 prefilter: the shapes card numbers are written in (see card_grouping). Rows that match go
# through the exact check (whole groups, Luhn) in Python, so this only has to be a superset.
_D4 = f"{_DIGIT}{{4}}"
CARD_CANDIDATE = (
    f"{_DIGIT}{{13,19}}"
    f"|{_D4}{_SEP}{_D4}{_SEP}{_D4}{_SEP}{_DIGIT}{{1,4}}"
    f"|{_D4}{_SEP}{_DIGIT}{{6}}{_SEP}{_DIGIT}{{4,5}}"
)
_CARD_RUN = re.compile(f"{_DIGIT}(?:{_SEP}?{_DIGIT})*")
_GROUP = re.compile(_DIGIT + "+")

#: One regex per format, valid for RE2 (pyarrow, this scan) and Python ``re`` (the GX suites). The
#: two read ``\d`` and ``$`` differently: RE2 takes ASCII digits and the true end, Python any
#: decimal digit and also the end before a final newline, so a full-width ``１２３-４５６７`` is a
#: format violation in the scan's report but passes the GX expectation (whose Python reading the
#: gate keeps, see ``validation.re2_pattern``). No look-arounds: RE2 has none.
FORMATS: dict[str, str] = {
    # Japanese domestic numbers, hyphens optional: mobile/IP 050/070/080/090 (11 digits);
    # landlines (10 digits, area code of 1-4 digits after the 0, whose first three digits are
    # never a mobile prefix); toll free 0120 and 0800
    "jp_phone": r"^(?:0[5789]0-?\d{4}-?\d{4}"
    r"|0\d-\d{4}-\d{4}"
    r"|0(?:[1-46]\d|[5789][1-9])(?:-\d{3}|\d-\d{2}|\d{2}-\d)-\d{4}"
    r"|0(?:[1-46]\d|[5789][1-9])\d{7}|0120-?\d{3}-?\d{3}|0800-?\d{3}-?\d{4})$",
    "jp_postal_code": r"^\d{3}-\d{4}$",
    "card_last4": r"^\d{4}$",
    "email": r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}$",
}
EMAIL_ANYWHERE = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
EMAIL_COLUMN = ("customers", "email")
#: a row matches this iff it matches CARD_CANDIDATE or EMAIL_ANYWHERE (both are unanchored): one
#: RE2 pass instead of two over a column that holds neither, which is nearly every column, at
#: the cost of one pass; a column with a hit is then matched with each pattern on its own
CARD_OR_EMAIL = f"(?:{CARD_CANDIDATE})|(?:{EMAIL_ANYWHERE})"


#: a text column whose first DICT_SAMPLE rows hold at most DICT_SHARE distinct values is matched
#: through its dictionary: each distinct value once, then mapped back to the rows. RE2 costs
#: about 55 ns a row whatever the pattern, dictionary encoding about 15, so a column of statuses,
#: roles or prefectures costs a quarter; a column of unique values is matched row by row
DICT_SAMPLE = 4096
DICT_SHARE = 0.05
#: batches of one column that reuse the sample's verdict (:func:`matcher_for`) before the next
#: batch is sampled again. The sample hashes 4096 values: 36-88 us a column and batch on the
#: 2M-order bench store (a 65,536-row batch of statuses then costs about 1.1 ms to encode), and
#: 0.54 s of the 10.6 s of checks at 2M orders when every batch was sampled. Either verdict
#: gives the same results; a wrong one costs time until the next sample.
DICT_RESAMPLE = 8


def repeats(arr: pa.Array) -> bool:
    """Whether ``arr`` is long and its first :data:`DICT_SAMPLE` values hold at most
    :data:`DICT_SHARE` distinct ones (so it is matched through its dictionary)."""
    if len(arr) < 2 * DICT_SAMPLE:
        return False
    distinct = pc.count_distinct(arr.slice(0, DICT_SAMPLE), mode="only_valid").as_py()
    return bool(distinct <= DICT_SAMPLE * DICT_SHARE)


class TextMatcher:
    """Regex matches over the rows of one text column (nulls never match).

    ``matches(p)`` equals ``fill_null(match_substring_regex(arr, p), False)`` row for row; when
    the column repeats itself (see :data:`DICT_SHARE`) it is computed on the distinct values,
    encoded once and reused by every pattern asked of the same column. Every result is kept, so
    the checks that share a matcher (:func:`matcher_for`: the content scan and the gate's stages)
    run each pattern once. Card candidates and e-mail addresses are first looked for together
    (:data:`CARD_OR_EMAIL`): a column that holds neither costs one pass for both, and a column
    with a few hits runs each pattern on those rows only; in a column where nearly every value
    hits (e-mail addresses) each pattern is searched on its own.
    """

    def __init__(self, arr: pa.Array | pa.ChunkedArray, *, repeating: bool | None = None):
        """``repeating``: whether to match through the dictionary (default: :func:`repeats`)."""
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        self.arr = arr
        self._encoded: pa.DictionaryArray | None = None
        if repeating is None:
            repeating = repeats(arr)
        if repeating and len(arr) >= 2 * DICT_SAMPLE:
            self._encoded = pc.dictionary_encode(arr)
        #: the array patterns run on: the distinct values, or the rows themselves
        self._values = self._encoded.dictionary if self._encoded is not None else arr
        self._hits: dict[str, np.ndarray] = {}  # pattern -> matches over ``_values`` (bool)
        self._sets: dict[tuple[Any, ...], pa.BooleanArray] = {}  # value set -> ``_values`` in it
        self._cards: np.ndarray | None = None  # card numbers over ``_values``
        self._frequencies: np.ndarray | None = None  # rows per distinct value (dictionary path)
        self._unfiltered = False  # the one-pass prefilter hits too many blocks to be worth it
        self._plain: bool | None = None  # every value ASCII without a newline (plain_text)

    def _values_matching(self, pattern: str) -> np.ndarray:
        hits = self._hits.get(pattern)
        if hits is not None:
            return hits
        values = self._values
        combined = None
        if pattern in (CARD_CANDIDATE, EMAIL_ANYWHERE) and not self._unfiltered:
            combined = self._hits.get(CARD_OR_EMAIL)
            if combined is None:
                # the prefilter is worth its pass only over values that mostly hold neither (an
                # e-mail column: every value hits, and each pattern is better searched block-wise
                # on its own than the combination row by row)
                combined = _regex(values, CARD_OR_EMAIL, rows=False)
                if combined is None:
                    self._unfiltered = True
                else:
                    self._hits[CARD_OR_EMAIL] = combined
        if combined is not None:
            candidates = np.flatnonzero(combined)
            hits = np.zeros(len(values), dtype=bool)
            if len(candidates) * 2 > len(values):  # mostly hits: one pass over all of them
                hits = _regex(values, pattern)
            elif len(candidates):
                hits[candidates] = _regex(values.take(pa.array(candidates)), pattern)
        else:
            hits = _regex(values, pattern)
        self._hits[pattern] = hits
        return hits

    def matches(self, pattern: str) -> pa.BooleanArray:
        hits = self._values_matching(pattern)
        if self._encoded is not None:
            return pc.fill_null(pc.take(pa.array(hits), self._encoded.indices), False)
        return pa.array(hits)

    def any(self, pattern: str) -> bool:
        return bool(self._values_matching(pattern).any())

    def _in(self, values: Sequence[Any]) -> pa.BooleanArray:
        key = tuple(values)
        found = self._sets.get(key)
        if found is None:
            found = self._sets[key] = pc.fill_null(
                pc.is_in(self._values, value_set=pa.array(values, type=self.arr.type)), False)
        return found

    def is_in(self, values: Sequence[Any]) -> pa.BooleanArray:
        """Rows whose value is one of ``values`` (nulls: False), through the distinct values."""
        found = self._in(values)
        if self._encoded is not None:
            return pc.fill_null(pc.take(found, self._encoded.indices), False)
        return found

    def _rows(self, hits: np.ndarray | pa.BooleanArray) -> int:
        """How many rows have a value marked in ``hits`` (one flag per value of ``_values``)."""
        flags = hits if isinstance(hits, np.ndarray) else np.asarray(hits.to_numpy(zero_copy_only=False), dtype=bool)
        if self._encoded is None:
            return int(np.count_nonzero(flags))
        if self._frequencies is None:
            indices = pc.fill_null(self._encoded.indices, len(self._values)).to_numpy(zero_copy_only=False)
            self._frequencies = np.bincount(indices, minlength=len(self._values) + 1)[: len(self._values)]
        return int(self._frequencies[flags].sum())

    def count(self, pattern: str, *, plain: str | None = None) -> int:
        """Rows matching ``pattern`` (without building the per-row result).

        ``plain``: a pattern that matches exactly what ``pattern`` matches in plain text (ASCII,
        no newline), run instead when every value is plain text. The gate's translation of a
        Python format regex and the content scan's RE2 spelling of the same format are two
        patterns that differ only outside plain text, so one pass serves both.
        """
        if plain and plain != pattern and self.plain_text():
            pattern = plain
        return self._rows(self._values_matching(pattern))

    def plain_text(self) -> bool:
        """Whether every value is ASCII without a newline (nulls' bytes, if any, count too)."""
        if self._plain is None:
            values = self._values
            if not pa.types.is_string(values.type):
                self._plain = False
            elif values.buffers()[2] is None:  # no bytes at all: empty strings and nulls
                self._plain = True
            else:
                offsets = _offsets(values)
                data = np.frombuffer(values.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
                self._plain = not len(data) or bool(data.max() < 0x80 and not (data == 0x0A).any())
        return self._plain

    def count_in(self, values: Sequence[Any]) -> int:
        """Rows whose value is one of ``values``."""
        return self._rows(self._in(values))

    def count_cards(self) -> int:
        """Rows holding a payment-card number."""
        return self._rows(self._card_values())

    def _card_values(self) -> np.ndarray:
        if self._cards is None:
            hits = np.zeros(len(self._values), dtype=bool)
            candidates = np.flatnonzero(self._values_matching(CARD_CANDIDATE))
            if len(candidates):
                texts = self._values.take(pa.array(candidates)).to_pylist()
                hits[candidates] = [bool(find_cards(t)) for t in texts]
            self._cards = hits
        return self._cards

    def cards(self) -> pa.BooleanArray:
        """Rows holding a payment-card number (:func:`find_cards`): the RE2 prefilter, then the
        exact check (groupings, Luhn) on the few candidates, each distinct value once."""
        found = pa.array(self._card_values())
        if self._encoded is not None:
            return pc.fill_null(pc.take(found, self._encoded.indices), False)
        return found


#: rows per block of the block-wise search (see :func:`_regex`)
BLOCK_ROWS = 512
#: above this share of blocks with a match, the rows are matched one by one
BLOCK_HIT_SHARE = 0.25
_ANCHORS = ("^", "$", "\\A", "\\z", "\\b", "\\B", "(?m")


@overload
def _regex(values: pa.Array, pattern: str) -> np.ndarray: ...
@overload
def _regex(values: pa.Array, pattern: str, *, rows: bool) -> np.ndarray | None: ...
def _regex(values: pa.Array, pattern: str, *, rows: bool = True) -> np.ndarray | None:
    """Whether each value contains a match of ``pattern`` (RE2; nulls: False): block-wise
    (:func:`_search_blocks`) where that works, else value by value. ``rows=False``: None rather
    than a value-by-value search of values that nearly all match block-wise."""
    if _block_searchable(values, pattern):
        found = _search_blocks(values, pattern)
        if found is not None or not rows:
            return found
    return _flags(pc.match_substring_regex(values, pattern))


def _block_searchable(values: pa.Array, pattern: str) -> bool:
    return (len(values) >= 2 * BLOCK_ROWS and pa.types.is_string(values.type) and values.buffers()[2] is not None
            and not any(a in pattern for a in _ANCHORS))


def _search_blocks(values: pa.StringArray, pattern: str) -> np.ndarray | None:
    """:func:`_regex` of a pattern without anchors or word boundaries, block-wise, or None when
    nearly every block matches.

    Each block of :data:`BLOCK_ROWS` consecutive values is searched as one string, their bytes
    back to back in the array's own data buffer (no copy). A value holding a match makes its
    block match, so a block without a match holds no matching value; RE2 then scans about 1-2 ns
    a byte instead of paying its ~50 ns call per value. A match may also span two values (two
    11-digit phone numbers back to back are a 22-digit run): when too many blocks match, the
    blocks are built again with a newline between the values (one copy, ~10 ns a value) and
    searched once more. Only blocks with a match are then searched value by value.
    """
    hit = _flags(pc.match_substring_regex(_blocks(values, separated=False), pattern))
    if hit.mean() > BLOCK_HIT_SHARE:
        hit = _flags(pc.match_substring_regex(_blocks(values, separated=True), pattern))
    if hit.mean() > BLOCK_HIT_SHARE:
        return None
    n = len(values)
    out = np.zeros(n, dtype=bool)
    if hit.any():  # the rows of those blocks, in one call (RE2 compiles per call)
        at = (np.flatnonzero(hit)[:, None] * BLOCK_ROWS + np.arange(BLOCK_ROWS)).ravel()
        at = at[at < n]
        out[at] = _flags(pc.match_substring_regex(values.take(pa.array(at)), pattern))
    return out


def _blocks(values: pa.StringArray, *, separated: bool) -> pa.StringArray:
    """The values in blocks of :data:`BLOCK_ROWS`, each block one string: the values' bytes back
    to back (a view of the data buffer), or joined with a newline (a copy). A null adds its bytes,
    if any: a block is only ever a superset of its values' matches."""
    n = len(values)
    offsets = _offsets(values)
    starts = np.arange(0, n, BLOCK_ROWS)
    if not separated:
        bounds = np.append(offsets[starts], offsets[n]).astype(np.int32)
        return pa.Array.from_buffers(pa.string(), len(starts), [None, pa.py_buffer(bounds), values.buffers()[2]])
    plain = pa.Array.from_buffers(pa.string(), n, [None, *values.buffers()[1:3]], offset=values.offset)
    lists = pa.ListArray.from_arrays(pa.array(np.append(starts, n), type=pa.int32()), plain)
    return pc.binary_join(lists, "\n")


def _offsets(values: pa.StringArray) -> np.ndarray:
    """The value offsets of a string array into its data buffer (``len + 1`` of them, a view)."""
    n = len(values)
    return np.frombuffer(values.buffers()[1], dtype=np.int32, count=values.offset + n + 1)[values.offset :]


def _flags(found: pa.BooleanArray) -> np.ndarray:
    return np.asarray(pc.fill_null(found, False).to_numpy(zero_copy_only=False), dtype=bool)


#: how many batches per thread keep their matchers: a batch and its masked copy
_MATCHER_BATCHES = 2
_matchers = threading.local()


def matcher_for(batch: pa.RecordBatch, name: str) -> TextMatcher:
    """The :class:`TextMatcher` of column ``name`` of this very batch object.

    The checks of one batch (the gate's source stage, the content scan, the gate's backup
    stage) run on the same batch object when masking changed nothing, so they share the
    matcher and each pattern runs once per batch and column. The cache is per thread and holds
    the last :data:`_MATCHER_BATCHES` batches (a strong reference, so an id is never reused
    while its entry lives).
    """
    entries: OrderedDict[int, tuple[pa.RecordBatch, dict[str, TextMatcher]]] | None = getattr(
        _matchers, "entries", None)
    if entries is None:
        entries = _matchers.entries = OrderedDict()
    entry = entries.get(id(batch))
    if entry is None or entry[0] is not batch:
        entry = entries[id(batch)] = (batch, {})
        while len(entries) > _MATCHER_BATCHES:
            entries.popitem(last=False)
    else:
        entries.move_to_end(id(batch))
    matcher = entry[1].get(name)
    if matcher is None:
        arr = batch.column(name)
        matcher = entry[1][name] = TextMatcher(arr, repeating=_repeating(batch.schema.names, name, arr))
    return matcher


def _repeating(names: list[str], name: str, arr: pa.Array) -> bool:
    """:func:`repeats` of column ``name``, sampled on every :data:`DICT_RESAMPLE`-th batch of a
    schema's column on this thread and remembered in between."""
    verdicts: dict[tuple[tuple[str, ...], str], tuple[bool, int]] | None = getattr(_matchers, "verdicts", None)
    if verdicts is None:
        verdicts = _matchers.verdicts = {}
    key = (tuple(names), name)
    verdict, uses = verdicts.get(key, (False, DICT_RESAMPLE))
    if uses >= DICT_RESAMPLE:
        if len(verdicts) >= 256:  # bounded: a thread that saw many schemas starts over
            verdicts.clear()
        verdict, uses = repeats(arr), 0
    verdicts[key] = (verdict, uses + 1)
    return verdict


def forget_matchers() -> None:
    """Drop this thread's cached matchers (and the batches they hold) and sampled verdicts."""
    _matchers.entries = OrderedDict()
    _matchers.verdicts = {}


def _digit_value(ch: str) -> int:
    return unicodedata.digit(ch)


def luhn_ok(digits: list[int]) -> bool:
    total = 0
    for i, digit in enumerate(reversed(digits)):
        value = digit * 2 if i % 2 == 1 else digit
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def card_grouping(sizes: list[int]) -> bool:
    """Whether digit groups split by separators are written the way card numbers are.

    One unbroken run of 13-19 digits, or the printed groupings: 4-4-4-4 (plus a last group of
    1-3 for 17-19 digits, or 4-4-4-1 for 13), Amex 4-6-5 and Diners 4-6-4. An order number such as
    ``LMX-20261124-000123`` (8-6) or a phone number (3-4-4) is not a card however its digits sum.
    """
    total = sum(sizes)
    if not 13 <= total <= 19:
        return False
    if len(sizes) == 1:
        return True
    if sizes in ([4, 6, 5], [4, 6, 4]):
        return True
    return all(s == 4 for s in sizes[:-1]) and 1 <= sizes[-1] <= 4


def find_cards(text: str) -> list[tuple[int, int]]:
    """Spans of card numbers in ``text``: 13-19 digits in a card grouping, passing Luhn."""
    spans: list[tuple[int, int]] = []
    for run in _CARD_RUN.finditer(text):
        groups = [(m.start() + run.start(), m.end() + run.start()) for m in _GROUP.finditer(run.group())]
        i = 0
        while i < len(groups):
            found = None
            digits: list[int] = []
            sizes: list[int] = []
            # the longest span of whole groups starting at i that is a valid card number
            for j in range(i, len(groups)):
                digits += [_digit_value(c) for c in text[groups[j][0] : groups[j][1]]]
                sizes.append(groups[j][1] - groups[j][0])
                if len(digits) > 19:
                    break
                if card_grouping(sizes) and luhn_ok(digits):
                    found = j
            if found is None:
                i += 1
                continue
            spans.append((groups[i][0], groups[found][1]))
            i = found + 1
    return spans


def mask_text(text: str) -> tuple[str, int]:
    """Mask every card number in ``text`` except its last four digits."""
    spans = find_cards(text)
    if not spans:
        return text, 0
    chars = list(text)
    for start, end in spans:
        positions = [k for k in range(start, end) if chars[k].isdigit()]
        for k in positions[:-4]:
            chars[k] = "*"
    return "".join(chars), len(spans)


def last4(text: str) -> str:
    digits = [c for c in text if c.isdigit()]
    return "".join(str(_digit_value(c)) for c in digits[-4:])


@dataclass
class RuleHits:
    count: int = 0
    primary_keys: list[Any] = field(default_factory=list)

    def add(self, keys: Iterable[Any], n: int) -> None:
        self.count += n
        room = MAX_KEYS - len(self.primary_keys)
        if room > 0:
            self.primary_keys.extend(list(keys)[:room])


@dataclass
class ScanResult:
    table: str
    rows: int = 0
    masked: dict[str, int] = field(default_factory=dict)  # column -> card numbers masked
    violations: dict[tuple[str, str], RuleHits] = field(default_factory=dict)  # (column, rule)

    def hit(self, column: str, rule: str, keys: Iterable[Any], n: int) -> None:
        self.violations.setdefault((column, rule), RuleHits()).add(keys, n)

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "rows": self.rows,
            "masked": {f"{self.table}.{c}": n for c, n in sorted(self.masked.items()) if n},
            "violations": [
                {
                    "table": self.table,
                    "column": col,
                    "rule": rule,
                    "count": hits.count,
                    "primary_keys": hits.primary_keys,
                    "primary_keys_truncated": hits.count > len(hits.primary_keys),
                }
                for (col, rule), hits in sorted(self.violations.items())
            ],
        }


class ContentScanner:
    """Scans and masks the batches of one table; accumulates a :class:`ScanResult`."""

    def __init__(self, table: Table, *, mask: bool = True):
        self.table = table
        self.mask = mask
        self.result = ScanResult(table.name)
        self._text_cols = [c for c in table.columns if c.type == "string"]

    def _keys(self, batch: pa.RecordBatch, mask: pa.Array) -> tuple[list[Any], int]:
        filtered = pc.filter(batch.column(self.table.primary_key), mask)
        return filtered.to_pylist()[:MAX_KEYS], len(filtered)

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Check ``batch`` and return it with card numbers masked (``batch`` itself when none is)."""
        self.result.rows += batch.num_rows
        columns = {name: batch.column(name) for name in batch.schema.names}
        for col in self.table.columns:
            arr = columns[col.name]
            if not col.nullable and arr.null_count:
                self.result.hit(col.name, "not_null", *self._keys(batch, pc.is_null(arr)))
            if col.values is not None:
                if col.type == "string":
                    text = matcher_for(batch, col.name)
                    if text.count_in(col.values) < len(arr) - arr.null_count:
                        bad = pc.and_(pc.is_valid(arr), pc.invert(text.is_in(col.values)))
                        self.result.hit(col.name, "value_set", *self._keys(batch, bad))
                else:
                    bad = pc.and_(pc.is_valid(arr), pc.invert(pc.is_in(arr, value_set=pa.array(col.values))))
                    if pc.any(bad).as_py():
                        self.result.hit(col.name, "value_set", *self._keys(batch, bad))
            if col.min is not None:
                bad = pc.less(arr, col.min)
                if pc.any(bad).as_py():
                    self.result.hit(col.name, f"min_{col.min}", *self._keys(batch, pc.fill_null(bad, False)))
        masked = False
        for col in self._text_cols:
            raw = columns[col.name]
            text = matcher_for(batch, col.name)
            arr = self._mask_cards(batch, col.name, raw, text)
            if arr is not raw:
                masked = True
                text = TextMatcher(arr)
            columns[col.name] = arr
            if col.format in FORMATS and text.count(FORMATS[col.format]) < len(arr) - arr.null_count:
                bad = pc.and_(pc.is_valid(arr), pc.invert(text.matches(FORMATS[col.format])))
                self.result.hit(col.name, f"format_{col.format}", *self._keys(batch, bad))
            if (self.table.name, col.name) != EMAIL_COLUMN and col.sensitivity != "communication":
                if text.any(EMAIL_ANYWHERE):
                    self.result.hit(col.name, "email_outside_customers_email",
                                    *self._keys(batch, text.matches(EMAIL_ANYWHERE)))
        if not masked:
            return batch
        return pa.RecordBatch.from_arrays([columns[n] for n in batch.schema.names], schema=batch.schema)

    def _mask_cards(self, batch: pa.RecordBatch, name: str, arr: pa.Array, matcher: TextMatcher) -> pa.Array:
        if not matcher.any(CARD_CANDIDATE):
            return arr
        candidates = matcher.matches(CARD_CANDIDATE)
        idx = np.flatnonzero(np.asarray(candidates.to_numpy(zero_copy_only=False), dtype=bool))
        values = arr.to_pylist()
        masked_rows: list[int] = []
        cards = 0
        for i in idx:
            text = values[i]
            if name == "card_last4" and self.table.name == "payments":
                new, n = (last4(text), 1) if find_cards(text) else (text, 0)
            else:
                new, n = mask_text(text)
            if n:
                values[i] = new
                masked_rows.append(int(i))
                cards += n
        if not masked_rows:
            return arr
        self.result.masked[name] = self.result.masked.get(name, 0) + cards
        keys = batch.column(self.table.primary_key).take(pa.array(masked_rows)).to_pylist()
        self.result.hit(name, "card_number", keys, len(masked_rows))
        if not self.mask:
            return arr
        return pa.array(values, type=arr.type)


#: a reference check looks keys up in a bitmap over ``[min, max]`` of the referenced keys when it
#: is at most this many bytes per key (ids handed out by a sequence are dense: about one byte
#: a key) or at most BITMAP_MIN_BYTES, else by binary search; at 2M orders a lookup cost ~100 ns
#: by binary search, ~5 in the bitmap
BITMAP_BYTES_PER_KEY = 8
BITMAP_MIN_BYTES = 4096


class KeySet:
    """Membership of int64 keys in a sorted array of primary keys, vectorised."""

    def __init__(self, ids: np.ndarray):
        self.ids = np.asarray(ids, dtype=np.int64)
        self.bitmap: np.ndarray | None = None
        self.low = self.high = 0
        if len(self.ids):
            low, high = int(self.ids[0]), int(self.ids[-1])
            if high - low + 1 <= max(BITMAP_BYTES_PER_KEY * len(self.ids), BITMAP_MIN_BYTES):
                self.low, self.high = low, high
                self.bitmap = np.zeros(high - low + 1, dtype=bool)
                self.bitmap[self.ids - low] = True

    def contains(self, values: np.ndarray) -> np.ndarray:
        """Whether each value is one of the keys (``values``: int64)."""
        if not len(self.ids):
            return np.zeros(len(values), dtype=bool)
        if self.bitmap is not None:
            inside = (values >= self.low) & (values <= self.high)
            return inside & self.bitmap[np.where(inside, values - self.low, 0)]
        idx = np.clip(np.searchsorted(self.ids, values), 0, len(self.ids) - 1)
        return self.ids[idx] == values


class ReferenceCheck:
    """Cheap referential checks inside one snapshot: every reference points at an existing row.

    ``known`` maps a column to the sorted primary keys of the table it references (orders,
    customers), loaded once per snapshot. Orphans are counted with their primary keys.
    """

    def __init__(self, table: Table, known: dict[str, np.ndarray]):
        self.table = table
        self.known = {column: KeySet(ids) for column, ids in known.items()}
        self.hits: dict[str, RuleHits] = {}

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        for column, key_set in self.known.items():
            arr = batch.column(column)
            values = np.asarray(arr.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
            present = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            orphan = present & ~key_set.contains(values)
            if orphan.any():
                keys = batch.column(self.table.primary_key).filter(pa.array(orphan)).to_pylist()
                self.hits.setdefault(column, RuleHits()).add(keys, int(orphan.sum()))
        return batch

    def violations(self) -> list[dict[str, Any]]:
        return [
            {"table": self.table.name, "column": col, "rule": "reference", "count": h.count,
             "primary_keys": h.primary_keys, "primary_keys_truncated": h.count > len(h.primary_keys)}
            for col, h in sorted(self.hits.items())
        ]
