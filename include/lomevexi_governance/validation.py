"""The minimization gate: Great Expectations suites decided on the data of every backup.

* One Expectation Suite per backed-up table, as GX 1.x JSON in ``expectations/`` (reviewed like
  code; ``python -m lomevexi_governance.validation generate`` rewrites them from the policy and a
  test fails when they drift apart).
* Every expectation carries ``meta.stage``: ``source`` expectations run on what the store holds
  (the exact column set, and "no card numbers" on the raw batch, before masking); ``backup``
  expectations run on the data about to be written (after masking). Each batch is checked as
  it streams through, so validation holds one batch at a time.
* Metrics in Arrow, verdicts by GX: for the expectation types the suites use, each batch's
  metrics (rows, nulls, unexpected rows) are counted on the Arrow batch, sharing the content
  scan's regex passes, and summed per expectation; at the end GX's own ``_validate`` decides each
  expectation from the totals, and GX writes the validation results and Data Docs. Any other
  expectation (another type, other arguments, a regex without an exact RE2 form) is evaluated by
  GX's pandas engine on bounded frames, as every expectation once was. ``GxValidator(native=False)``
  evaluates everything that way; a test holds both ways to the same counts and verdicts.
* Results keep counts only: GX's ``partial_unexpected_list`` and every other value-bearing field
  are dropped by a whitelist before anything is stored (no customer value in results, Data Docs,
  logs or XCom). Offending rows are identified by primary key in the content scan's report.
* One ephemeral GX context per validator (no shared ``gx/`` folder), made on first use; analytics
  off.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import logging
import os
import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from lomevexi_governance.policy import Policy, Table, load_policy
from lomevexi_governance.reports import write_json_atomic
from lomevexi_governance.scan import (
    EMAIL_ANYWHERE,
    EMAIL_COLUMN,
    FORMATS,
    TextMatcher,
    matcher_for,
)

log = logging.getLogger(__name__)

EXPECTATIONS_ENV = "GOVERNANCE_EXPECTATIONS_DIR"
SOURCE, BACKUP = "source", "backup"
#: BASIC: counts only (SUMMARY adds value counts of unexpected values and a per-row index
#: query, both value-bearing and together about a quarter of GX's time)
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0, "return_unexpected_index_query": False}
#: the only result fields ever kept (counts, and column names for the column-set expectation)
_RESULT_KEYS = ("element_count", "unexpected_count", "missing_count")
CARD_EXPECTATION = "expect_column_values_to_not_contain_card_number"

def expectations_dir() -> Path:
    env = os.environ.get(EXPECTATIONS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "expectations"


# -- suites --------------------------------------------------------------------------------


def generate_suite(policy: Policy, table: Table) -> dict[str, Any]:
    """The suite the policy implies for ``table`` (used to write ``expectations/*.json``)."""
    exps: list[dict[str, Any]] = []

    def add(kind: str, key: str, stages: list[str], **kwargs: Any) -> None:
        exps.append({"type": kind, "kwargs": kwargs, "meta": {"key": key, "stage": stages}})

    add("expect_table_columns_to_match_set", "columns", [SOURCE, BACKUP],
        column_set=table.column_names, exact_match=True)
    for col in table.columns:
        if not col.nullable:
            add("expect_column_values_to_not_be_null", f"{col.name}.not_null", [BACKUP], column=col.name)
        if col.values is not None:
            add("expect_column_values_to_be_in_set", f"{col.name}.value_set", [BACKUP],
                column=col.name, value_set=list(col.values))
        if col.min is not None:
            add("expect_column_values_to_be_between", f"{col.name}.min", [BACKUP],
                column=col.name, min_value=col.min)
        if col.format in FORMATS:
            add("expect_column_values_to_match_regex", f"{col.name}.format_{col.format}", [BACKUP],
                column=col.name, regex=FORMATS[col.format])
        if col.type == "string":
            add(CARD_EXPECTATION, f"{col.name}.no_card_number", [SOURCE, BACKUP], column=col.name)
            if (table.name, col.name) != EMAIL_COLUMN and col.sensitivity != "communication":
                add("expect_column_values_to_not_match_regex", f"{col.name}.no_email", [BACKUP],
                    column=col.name, regex=EMAIL_ANYWHERE)
    return {
        "name": f"lomevexi.{table.name}",
        "expectations": exps,
        "meta": {
            "table": table.name,
            "generated_from": "include/lomevexi_governance/policy.yaml",
            "notes": "Minimization gate (policy I.2, II.1). Regenerate with "
            "`python -m lomevexi_governance.validation generate` after changing the policy.",
        },
    }


def suite_path(table: str) -> Path:
    return expectations_dir() / f"{table}.json"


def load_suite_json(table: str) -> dict[str, Any]:
    path = suite_path(table)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        from lomevexi_governance.errors import ConfigurationError

        raise ConfigurationError(f"no expectation suite for table {table!r} at {path}") from None


# -- the custom expectation ----------------------------------------------------------------


def _register_card_expectation() -> None:
    """Register ``expect_column_values_to_not_contain_card_number`` with GX (once)."""
    from great_expectations.expectations import registry

    if CARD_EXPECTATION in registry._registered_expectations:
        return
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.expectation import ColumnMapExpectation
    from great_expectations.expectations.metrics import (
        ColumnMapMetricProvider,
        column_condition_partial,
    )

    class ColumnValuesNoCardNumber(ColumnMapMetricProvider):
        condition_metric_name = "column_values.no_card_number"

        @column_condition_partial(engine=PandasExecutionEngine)
        def _pandas(cls, column: Any, **kwargs: Any) -> Any:
            import numpy as np
            import pandas as pd

            # the same check as the Arrow metrics: the RE2 prefilter on the column's Arrow data
            # (per distinct value when it repeats itself), then the exact check (groupings, Luhn)
            found = TextMatcher(pa.array(column.astype("string").array)).cards()
            return pd.Series(~np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool), index=column.index)

    class ExpectColumnValuesToNotContainCardNumber(ColumnMapExpectation):
        """Expect no payment-card number (13-19 digits passing Luhn, spaces/hyphens allowed)."""

        map_metric = "column_values.no_card_number"
        success_keys = ("mostly",)

    globals()["ExpectColumnValuesToNotContainCardNumber"] = ExpectColumnValuesToNotContainCardNumber
    globals()["ColumnValuesNoCardNumber"] = ColumnValuesNoCardNumber


def expectation_stages(meta: dict[str, Any] | None) -> list[str]:
    """The stages an expectation runs in (``meta.stage``; backup when it names none)."""
    return list((meta or {}).get("stage", [BACKUP]))


def expectation_key(e: dict[str, Any]) -> str:
    """An expectation's key in results: ``meta.key``, else its type."""
    return str((e.get("meta") or {}).get("key", e["type"]))


def build_suite(data: dict[str, Any], stage: str, keys: Sequence[str] | None = None) -> Any:
    """The GX suite of one stage (``SOURCE``, ``BACKUP``); ``keys`` keeps
    only those expectations (the ones Great Expectations evaluates on frames, see :func:`native`)."""
    import great_expectations as gx

    expectations = [
        gx_expectation(e)
        for e in data["expectations"]
        if stage in expectation_stages(e.get("meta")) and (keys is None or expectation_key(e) in keys)
    ]
    return gx.ExpectationSuite(name=f"{data['name']}.{stage}", expectations=expectations, meta=data.get("meta"))


def gx_expectation(e: dict[str, Any]) -> Any:
    """The GX Expectation object of one suite entry (JSON)."""
    from great_expectations.expectations.registry import get_expectation_impl

    _register_card_expectation()
    return get_expectation_impl(e["type"])(**e["kwargs"], meta=e.get("meta"))


# -- evaluation: Arrow metrics, Great Expectations' decision ---------------------------------
#
# Great Expectations decides an expectation from its metrics: a column-map expectation from the
# row count, the null count and its map metric's unexpected count (``_validate``), the column
# set from ``table.columns``. GX's pandas engine computes those metrics on pandas frames, with a
# fixed cost per run and a frame copy per expectation: about 60 % of the minimization checks'
# time at 2M orders (bench, session 6), for counts the content scan already computes in Arrow.
# So the metrics of the expectation types below are computed here, on the Arrow batches, with
# the same RE2 patterns and the same card check (and shared with the content scan through
# ``scan.matcher_for``: a pattern runs once per batch and column), summed over every batch of
# the table; GX's own ``_validate`` then decides each expectation from the totals (``mostly``,
# vacuous truth: GX's rules, not ours), and GX writes the results and Data Docs. Any other
# expectation, or these with arguments not listed, is run by GX on frames, as before.
# ``tests/unit/test_validation_engines.py`` checks, on adversarial data, that both ways give the
# same counts and verdicts.

_MAP_ARGS = {"column", "mostly"}
_NATIVE_ARGS: dict[str, set[str]] = {
    "expect_table_columns_to_match_set": {"column_set", "exact_match"},
    "expect_column_values_to_not_be_null": _MAP_ARGS,
    "expect_column_values_to_be_in_set": _MAP_ARGS | {"value_set"},
    "expect_column_values_to_be_between": _MAP_ARGS | {"min_value", "max_value", "strict_min", "strict_max"},
    "expect_column_values_to_match_regex": _MAP_ARGS | {"regex"},
    "expect_column_values_to_not_match_regex": _MAP_ARGS | {"regex"},
    CARD_EXPECTATION: _MAP_ARGS,
}
_NUMBER_TYPES = ("int64",)


#: escapes whose meaning differs between Python's ``re`` (Unicode) and RE2 (ASCII) or that RE2
#: lacks; a pattern using one is left to GX's engine
_UNPORTABLE_ESCAPES = set("wWsSbBuUNpPgkxXQECz0123456789")
#: a repeat count with a leading zero: a count in Python, literal text in RE2
_LEADING_ZERO_COUNT = re.compile(r"\{0\d|\{\d*,0\d")
#: any ``(?`` group but a plain non-capturing one
_SPECIAL_GROUP = re.compile(r"\(\?(?!:)")


@functools.cache
def _python_digits() -> str:
    """Python's ``\\d`` (str patterns) as RE2 class ranges: every code point ``re`` takes for a
    decimal digit in this Python's Unicode version (RE2's ``\\p{Nd}`` follows its own version)."""
    ranges: list[tuple[int, int]] = []
    for cp in range(0x110000):
        if chr(cp).isdecimal():  # what ``re`` tests for ``\d`` (test_validation_engines checks)
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges)


def re2_pattern(regex: str, *, plain: bool = False) -> str | None:
    """The RE2 pattern matching exactly what Python's ``re.search(regex, s)`` matches, as GX's
    pandas engine applies it (``str.contains``), or None when no simple translation exists.

    ``plain=True``: the pattern that matches the same on *plain* text only, ASCII without a
    newline (see :meth:`scan.TextMatcher.count`). There Python's ``\\d`` is RE2's ``\\d`` and
    ``$`` is RE2's ``$`` (the end: no final newline to skip), so the pattern is the regex itself
    but for ``\\Z`` (RE2's ``\\z``): the same text as the content scan's own pattern for the same
    format, whose result the matcher then shares. None exactly when the full translation is.

    Python's ``\\d`` is any decimal digit of its Unicode tables (RE2's ``\\d`` is ASCII only), so
    it becomes those code points; ``$`` also matches before a final newline, so a ``$`` that ends
    the pattern or one of its top-level alternatives becomes ``\\n?\\z`` (which consumes that newline:
    harmless at the end, where only the yes/no of a search is used); ``\\Z`` is RE2's ``\\z``.
    Anything else that differs or that RE2 cannot do (``\\w``, ``\\s``, ``\\b``, back-references,
    look-arounds, inline flags, ``{,n}``, counts with leading zeros, a ``$`` followed by more
    pattern, ``\\D`` inside a set) returns None, as does a pattern Python itself rejects (GX
    reports that as a failed expectation, as it always has).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "possible nested set": refused below
            re.compile(regex)
    except re.error:
        return None
    if "{," in regex or _LEADING_ZERO_COUNT.search(regex) or _SPECIAL_GROUP.search(regex):
        return None  # look-arounds, named groups, inline flags (``(?a)`` makes ``\\d`` ASCII)
    out: list[str] = []
    i, in_class, depth = 0, False, 0
    while i < len(regex):
        ch = regex[i]
        if ch == "\\":
            nxt = regex[i + 1]  # re.compile rejects a trailing backslash
            if nxt in _UNPORTABLE_ESCAPES or (in_class and nxt in "DZ"):
                return None
            if nxt in "dD" and plain:
                out.append(ch + nxt)
            elif nxt == "d":
                out.append(_python_digits() if in_class else f"[{_python_digits()}]")
            elif nxt == "D":
                out.append(f"[^{_python_digits()}]")
            else:
                out.append("\\z" if nxt == "Z" else ch + nxt)
            i += 2
            continue
        if in_class:
            if ch == "]" and not (out and out[-1] in ("[", "[^")):
                in_class = False
            elif ch == "[":
                return None  # nested sets / set operations: Python warns, RE2 differs
            out.append(ch)
        elif ch == "[":
            in_class = True
            if regex.startswith("[^", i):
                out.append("[^")
                i += 2
                continue
            out.append(ch)
        elif ch == "$":
            # only where nothing can follow it: the pattern's end (after closing groups), or
            # the end of a top-level alternative
            rest = regex[i + 1 :]
            if rest.strip(")") and not (depth == 0 and rest.startswith("|")):
                return None
            out.append("$" if plain else "(?:\\n?\\z)")
        else:
            depth += {"(": 1, ")": -1}.get(ch, 0)
            out.append(ch)
        i += 1
    if in_class:
        return None
    pattern = "".join(out)
    try:  # what RE2 cannot compile (possessive quantifiers, atomic groups, ...) stays with GX
        pc.match_substring_regex(pa.array([""]), pattern)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return pattern


@dataclass(frozen=True)
class Native:
    """One expectation whose metrics are computed on Arrow batches."""

    key: str
    type: str
    kwargs: dict[str, Any]
    meta: dict[str, Any]
    #: a regex expectation's pattern, in RE2 (:func:`re2_pattern`), and the same for plain text
    pattern: str = ""
    plain_pattern: str = ""

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")

    def metrics(self, batch: pa.RecordBatch) -> tuple[int, int, int]:
        """``(rows, nulls, unexpected)`` of ``batch``, as GX's map metrics count them: the
        unexpected rows among the non-null ones (not-null: the nulls themselves)."""
        name = self.column
        assert name is not None
        arr = batch.column(name)
        rows, nulls = len(arr), arr.null_count
        kw = self.kwargs
        if self.type == "expect_column_values_to_not_be_null":
            return rows, 0, nulls
        if self.type == "expect_column_values_to_be_in_set":
            known = matcher_for(batch, name).count_in(kw["value_set"])
            return rows, nulls, rows - nulls - known
        if self.type == "expect_column_values_to_be_between":
            tests = []
            if kw.get("min_value") is not None:
                tests.append((pc.greater if kw.get("strict_min") else pc.greater_equal)(arr, kw["min_value"]))
            if kw.get("max_value") is not None:
                tests.append((pc.less if kw.get("strict_max") else pc.less_equal)(arr, kw["max_value"]))
            inside = pc.and_(*tests) if len(tests) == 2 else tests[0]  # native() wants a bound
            return rows, nulls, rows - nulls - int(pc.fill_null(inside, False).true_count)
        matcher = matcher_for(batch, name)
        if self.type == "expect_column_values_to_match_regex":
            return rows, nulls, rows - nulls - matcher.count(self.pattern, plain=self.plain_pattern)
        if self.type == "expect_column_values_to_not_match_regex":
            return rows, nulls, matcher.count(self.pattern, plain=self.plain_pattern)
        if self.type == CARD_EXPECTATION:
            return rows, nulls, matcher.count_cards()
        raise AssertionError(self.type)


def native(e: dict[str, Any], table: Table) -> Native | None:
    """The Arrow evaluation of suite entry ``e`` on ``table``, or None when GX must run it."""
    kwargs = dict(e.get("kwargs") or {})
    allowed = _NATIVE_ARGS.get(e["type"])
    if allowed is None or not set(kwargs) <= allowed:
        return None
    n = Native(expectation_key(e), e["type"], kwargs, dict(e.get("meta") or {}))
    if n.type == "expect_table_columns_to_match_set":
        return n if isinstance(kwargs.get("column_set"), list) else None
    name = n.column
    if not isinstance(name, str) or name not in table.column_names:
        return None  # GX reports the missing column as it always has
    ctype = table.column(name).type
    if n.type == "expect_column_values_to_be_in_set":
        values = kwargs.get("value_set")
        if ctype != "string" or not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            return None
    elif n.type == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if ctype not in _NUMBER_TYPES or not all(b is None or type(b) in (int, float) for b in (low, high)):
            return None
        if (low is None and high is None) or (low is not None and high is not None and low > high):
            return None  # GX rejects these arguments: its own engine reports them
    elif n.type in ("expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex"):
        regex = kwargs.get("regex")
        if ctype != "string" or not isinstance(regex, str) or (pattern := re2_pattern(regex)) is None:
            return None
        n = dataclasses.replace(n, pattern=pattern, plain_pattern=re2_pattern(regex, plain=True) or "")
    elif n.type == CARD_EXPECTATION and ctype != "string":
        return None
    return n


@dataclass
class _Agg:
    """An expectation's metrics summed over every batch of a table, and its verdict.

    ``success`` stays None for an expectation evaluated in Arrow until ``decide`` asks GX; a
    GX-run expectation (frames) gets GX's verdict per frame, all of which must pass.
    """

    type: str
    kwargs: dict[str, Any]
    meta: dict[str, Any]
    stage: str
    success: bool | None = None
    element_count: int = 0
    unexpected_count: int = 0
    missing_count: int = 0
    observed: Any = None
    batches: int = 0
    engine: str = "great_expectations"
    #: distinct column lists seen (column-set expectation evaluated in Arrow)
    observed_columns: list[list[str]] = field(default_factory=list)
    #: why an Arrow-evaluated expectation could not be evaluated (it fails)
    error: str | None = None

    def add(self, result: Any) -> None:
        """One GX result of a frame."""
        self.batches += 1
        self.success = (True if self.success is None else self.success) and bool(result.success)
        r = result.result or {}
        self.element_count += int(r.get("element_count") or 0)
        self.unexpected_count += int(r.get("unexpected_count") or 0)
        self.missing_count += int(r.get("missing_count") or 0)
        if self.type == "expect_table_columns_to_match_set":
            # column names only: the store's schema, never its values
            self.observed = r.get("observed_value")

    def add_batch(self, n: Native, batch: pa.RecordBatch) -> None:
        """The Arrow metrics of one batch."""
        self.batches += 1
        if n.type == "expect_table_columns_to_match_set":
            names = list(batch.schema.names)
            if names not in self.observed_columns:
                self.observed_columns.append(names)
            self.observed = names
            return
        if n.column not in batch.schema.names:
            # as GX's engine does for a column the data lacks: the expectation fails
            self.error = f"column {n.column!r} is not in the data"
            return
        rows, nulls, unexpected = n.metrics(batch)
        self.element_count += rows
        self.missing_count += nulls
        self.unexpected_count += unexpected

    def decide(self) -> None:
        """GX's verdict on the summed metrics (an Arrow-evaluated expectation, once)."""
        if self.success is not None:
            return
        if self.error is not None:
            self.success = False
            return
        expectation = gx_expectation({"type": self.type, "kwargs": self.kwargs, "meta": self.meta})
        options = {"result_format": RESULT_FORMAT}
        if self.type == "expect_table_columns_to_match_set":
            verdicts = [expectation._validate({"table.columns": c}, runtime_configuration=options)
                        for c in self.observed_columns or [[]]]
            self.success = all(bool(v["success"]) for v in verdicts)
            # column names only, as GX reports them (of a failing column list, if any)
            shown = next((v for v in verdicts if not v["success"]), verdicts[-1])
            self.observed = (shown.get("result") or {}).get("observed_value", self.observed)
            return
        metrics = {
            "table.row_count": self.element_count,
            "column_values.nonnull.unexpected_count": self.missing_count,
            # not-null's own map metric is the null count (set after the generic one)
            f"{expectation.map_metric}.unexpected_count": self.unexpected_count,
            f"{expectation.map_metric}.unexpected_values": [],
        }
        self.success = bool(expectation._validate(metrics, runtime_configuration=options)["success"])

    def column(self) -> str | None:
        return self.kwargs.get("column")

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"element_count": self.element_count}
        if self.type == "expect_table_columns_to_match_set":
            out = {"observed_value": self.observed}
        else:
            out |= {
                "unexpected_count": self.unexpected_count,
                "missing_count": self.missing_count,
                "unexpected_percent": (
                    100.0 * self.unexpected_count / self.element_count if self.element_count else 0.0
                ),
            }
        return out


#: Great Expectations has a fixed cost per validation run (about 0.4 s for a table's two stage
#: suites, measured on 1,000 rows) on top of about 1.4 s per million rows, so the batches of the
#: expectations GX runs itself are gathered into large frames: at 131,072 rows a run cost 4.4 s
#: per million rows, at 1,048,576 1.8 s. Both limits bound memory (the frame shares the Arrow
#: buffers: strings stay Arrow-backed). With the committed suites every expectation is evaluated
#: in Arrow and no frame is ever gathered.
GX_BATCH_ROWS = 524_288
GX_BATCH_BYTES = 96 << 20


class _StageCheck:
    """A BatchCheck running one stage of a table's suite on all of its rows.

    Expectations evaluated in Arrow (:func:`native`) add each batch's metrics as it passes;
    the others are gathered into bounded frames that GX validates (at the limits and at
    ``finish``, the table's end).
    """

    def __init__(
        self,
        validator: GxValidator,
        table: Table,
        stage: str,
        batch_rows: int = GX_BATCH_ROWS,
        batch_bytes: int = GX_BATCH_BYTES,
    ):
        self.validator = validator
        self.table = table
        self.stage = stage
        self.batch_rows = batch_rows
        self.batch_bytes = batch_bytes
        self.native: list[Native] = []
        by_gx: list[str] = []
        for e in validator._suites[table.name]["expectations"]:
            if stage not in expectation_stages(e.get("meta")):
                continue
            n = native(e, table) if validator.native else None
            if n is None:
                by_gx.append(expectation_key(e))
            else:
                self.native.append(n)
        self.definition = validator._definition(table, stage, by_gx) if by_gx else None
        self._pending: list[pa.RecordBatch] = []
        self._rows = 0
        self._bytes = 0

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        for n in self.native:
            self.validator._aggregate(self.table.name, self.stage, n).add_batch(n, batch)
        if self.definition is not None:
            self._pending.append(batch)
            self._rows += batch.num_rows
            self._bytes += batch.nbytes
            if self._rows >= self.batch_rows or self._bytes >= self.batch_bytes:
                self.finish()
        return batch

    def finish(self) -> None:
        """Let GX validate what is gathered (called at the end of the table, too)."""
        pending, self._pending, self._rows, self._bytes = self._pending, [], 0, 0
        if pending:
            self.validator._run(self.table.name, self.stage, self.definition, _frame(pending))


def _frame(batches: list[pa.RecordBatch]) -> Any:
    return pa.Table.from_batches(batches).to_pandas()


@dataclass
class GxValidator:
    """The minimization gate of one run: the tables' GX suites, evaluated batch by batch.

    ``native=False`` has GX's pandas engine evaluate every expectation on frames (the reference
    the Arrow metrics are tested against, and the bench's ``validation_gx`` case).
    Nothing of GX is imported until an expectation needs GX's engine or ``finish`` writes the
    results, so a backup worker process that only computes Arrow metrics never loads it.
    """

    policy: Policy
    out_dir: Path
    tables: Sequence[str] | None = None
    aggregates: dict[tuple[str, str, str], _Agg] = field(default_factory=dict)
    reference_violations: list[dict[str, Any]] = field(default_factory=list)
    native: bool = True

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self._suites = {t.name: load_suite_json(t.name) for t in self.policy.backup_tables
                        if self.tables is None or t.name in self.tables}
        self._definitions: dict[tuple[str, str, tuple[str, ...]], Any] = {}
        self._gx: tuple[Any, Any] | None = None

    def _context(self) -> tuple[Any, Any]:
        """The ephemeral GX context and its pandas data source (made once, on first use)."""
        if self._gx is None:
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig
            from great_expectations.execution_engine import pandas_execution_engine

            # GX fingerprints every in-memory batch (hash_pandas_dataframe, ~6% of a backup) for
            # a batch marker this project never reads; frames above the threshold are not hashed.
            pandas_execution_engine.HASH_THRESHOLD = 0
            logging.getLogger("great_expectations").setLevel(logging.WARNING)
            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            self._gx = (context, context.data_sources.add_pandas("lomevexi_batches"))
        return self._gx

    @property
    def context(self) -> Any:
        return self._context()[0]

    def _definition(self, table: Table, stage: str, keys: Sequence[str]) -> Any:
        """The GX validation definition of ``stage``'s expectations ``keys`` on ``table``."""
        import great_expectations as gx

        key = (table.name, stage, tuple(keys))
        if key not in self._definitions:
            context, source = self._context()
            name = f"{table.name}.{stage}.{len(self._definitions)}"
            suite = context.suites.add(build_suite(self._suites[table.name], stage, keys))
            asset = source.add_dataframe_asset(name)
            batch_def = asset.add_batch_definition_whole_dataframe("batch")
            self._definitions[key] = context.validation_definitions.add(
                gx.ValidationDefinition(name=name, data=batch_def, suite=suite)
            )
        return self._definitions[key]

    def _aggregate(self, table: str, stage: str, n: Native) -> _Agg:
        k = (table, stage, n.key)
        agg = self.aggregates.get(k)
        if agg is None:
            agg = self.aggregates[k] = _Agg(n.type, n.kwargs, n.meta, stage, engine="arrow")
        return agg

    def _run(self, table: str, stage: str, definition: Any, frame: Any) -> None:
        """One GX run of ``stage``'s GX-evaluated expectations on a frame."""
        result = definition.run(batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT)
        # GX keeps the last batch of every asset (with its frame) in the engine's batch cache;
        # release it now, or every table's last frame stays in memory until the end
        batches = self._context()[1].get_execution_engine().batch_manager
        batches.reset_batch_cache()
        batches.batch_data_cache.clear()
        for r in result.results:
            cfg = r.expectation_config
            meta = dict(cfg.meta or {})
            k = (table, stage, meta.get("key", cfg.type))
            agg = self.aggregates.get(k)
            if agg is None:
                kwargs = {kk: v for kk, v in cfg.kwargs.items() if kk != "batch_id"}
                agg = self.aggregates[k] = _Agg(cfg.type, kwargs, meta, stage)
            agg.add(r)

    # -- results of other processes -----------------------------------------------------------
    def take(self, table: str) -> dict[tuple[str, str, str], _Agg]:
        """Remove and return ``table``'s aggregates (a backup worker hands them to the leader)."""
        mine = {k: a for k, a in self.aggregates.items() if k[0] == table}
        for k in mine:
            del self.aggregates[k]
        return mine

    def merge(self, aggregates: dict[tuple[str, str, str], _Agg]) -> None:
        """Add aggregates computed by a backup worker (counts only; tables never overlap)."""
        for k, agg in aggregates.items():
            if k in self.aggregates:
                raise ValueError(f"validation results of {k[0]}.{k[2]} ({k[1]}) arrived twice")
            self.aggregates[k] = agg

    # -- BatchCheck factories --------------------------------------------------------------
    def source_stage(self, table: Table) -> _StageCheck:
        """The source stage: what the store holds, before masking."""
        return _StageCheck(self, table, SOURCE)

    def backup_stage(self, table: Table) -> _StageCheck:
        """The backup stage: the rows about to be written (masked)."""
        return _StageCheck(self, table, BACKUP)

    def _run_on_empty(self, table: Table, stage: str, schema: pa.Schema) -> None:
        check = _StageCheck(self, table, stage)
        check.process(pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema))
        check.finish()

    def check_source_columns(self, table: Table, present: Sequence[str]) -> None:
        """The source stage on the store's own column list (no rows): the exact column set."""
        from lomevexi_governance.source import arrow_schema

        known = arrow_schema(table)
        fields = [known.field(c) if c in known.names else pa.field(c, pa.string()) for c in present]
        self._run_on_empty(table, SOURCE, pa.schema(fields))

    def cover_empty(self, table: Table) -> None:
        """A table with no rows still gets its backup-stage suite run (on an empty batch)."""
        if any(t == table.name and stage == BACKUP for (t, stage, _k) in self.aggregates):
            return
        from lomevexi_governance.source import arrow_schema

        self._run_on_empty(table, BACKUP, arrow_schema(table))

    # -- results -----------------------------------------------------------------------------
    def finish(self, *, extra_columns: dict[str, list[str]], reference_violations: list[dict[str, Any]] | None = None,
               run_name: str = "run") -> dict[str, Any]:
        for agg in self.aggregates.values():
            agg.decide()
        self.reference_violations = list(reference_violations or [])
        failed = [
            {"table": t, "column": a.column(), "expectation": a.type, "key": a.meta.get("key"), "stage": stage,
             "unexpected_count": a.unexpected_count, "element_count": a.element_count}
            | ({"error": a.error} if a.error else {})
            for (t, stage, _k), a in sorted(self.aggregates.items())
            if not a.success
        ]
        for ref in self.reference_violations:
            failed.append({"table": ref["table"], "column": ref["column"], "expectation": "reference",
                           "key": f"{ref['column']}.reference", "stage": BACKUP,
                           "unexpected_count": ref["count"], "element_count": None})
        per_table: dict[str, dict[str, Any]] = {}
        for (t, _stage, _k), a in self.aggregates.items():
            entry = per_table.setdefault(t, {"success": True, "evaluated": 0, "failed": 0})
            entry["evaluated"] += 1
            if not a.success:
                entry["success"] = False
                entry["failed"] += 1
        for ref in self.reference_violations:
            per_table.setdefault(ref["table"], {"success": True, "evaluated": 0, "failed": 0})
            per_table[ref["table"]]["success"] = False
            per_table[ref["table"]]["failed"] += 1
        success = not failed
        results_dir = self.out_dir
        files = self._write_results(results_dir, run_name)
        summary = {
            "success": success,
            "engine": "great_expectations",
            # how the metrics were computed: on Arrow batches (GX decided from them) or by GX's
            # pandas engine on frames; expectations per way, over every table and stage
            "metrics_by": dict(sorted(Counter(a.engine for a in self.aggregates.values()).items())),
            "tables": per_table,
            "failed": failed,
            "extraneous_columns": extra_columns,
            "results_dir": str(results_dir),
            "results": files,
            "data_docs": str(results_dir / "data_docs" / "index.html"),
        }
        write_json_atomic(results_dir / "validation_summary.json", summary)
        return summary

    def _write_results(self, out_dir: Path, run_name: str) -> dict[str, str]:
        from great_expectations.core import (
            ExpectationSuiteValidationResult,
            ExpectationValidationResult,
        )
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )
        from great_expectations.expectations.expectation_configuration import (
            ExpectationConfiguration,
        )

        out_dir.mkdir(parents=True, exist_ok=True)
        self.context.add_data_docs_site(
            site_name="compliance",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(out_dir.resolve() / "data_docs")},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        run_time = dt.datetime.now(dt.timezone.utc)
        files: dict[str, str] = {}
        by_suite: dict[tuple[str, str], list[_Agg]] = {}
        for (t, stage, _k), a in sorted(self.aggregates.items()):
            by_suite.setdefault((t, stage), []).append(a)
        for (t, stage), aggs in by_suite.items():
            results = [
                ExpectationValidationResult(
                    success=a.success,
                    expectation_config=ExpectationConfiguration(type=a.type, kwargs=a.kwargs, meta=a.meta),
                    result=a.result(),
                )
                for a in aggs
            ]
            evaluated = len(results)
            ok = sum(1 for r in results if r.success)
            suite_name = f"lomevexi.{t}.{stage}"
            suite_result = ExpectationSuiteValidationResult(
                success=ok == evaluated,
                results=results,
                suite_name=suite_name,
                statistics={"evaluated_expectations": evaluated, "successful_expectations": ok,
                            "unsuccessful_expectations": evaluated - ok,
                            "success_percent": 100.0 * ok / evaluated if evaluated else 100.0},
                meta={"table": t, "stage": stage, "batches": max(a.batches for a in aggs),
                      "metrics_by": dict(sorted(Counter(a.engine for a in aggs).items())),
                      "run_id": RunIdentifier(run_name=run_name, run_time=run_time)},
            )
            path = out_dir / "results" / f"{t}.{stage}.json"
            write_json_atomic(path, _scrub(suite_result.to_json_dict()))
            files[f"{t}.{stage}"] = str(path)
            key = ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
                run_id=RunIdentifier(run_name=run_name, run_time=run_time),
                batch_identifier=f"{t}-{stage}",
            )
            self.context.validation_results_store.set(key, suite_result)
        self.context.build_data_docs(site_names=["compliance"])
        return files


def _scrub(obj: Any) -> Any:
    """Drop every value-bearing field GX may add (whitelist of result keys)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == "result" and isinstance(v, dict):
                keep = (*_RESULT_KEYS, "unexpected_percent", "observed_value")
                out[k] = {rk: rv for rk, rv in v.items() if rk in keep}
                if "observed_value" in out[k] and not isinstance(out[k]["observed_value"], list):
                    out[k].pop("observed_value")
            else:
                out[k] = _scrub(v)
        return out
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    return obj


def write_suites(policy: Policy | None = None, directory: Path | None = None) -> list[Path]:
    policy = policy or load_policy()
    directory = directory or expectations_dir()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for table in policy.backup_tables:
        path = directory / f"{table.name}.json"
        text = json.dumps(generate_suite(policy, table), indent=2, ensure_ascii=False) + "\n"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Great Expectations suites for the minimization gate")
    parser.add_argument("command", choices=["generate"])
    args = parser.parse_args(argv)
    if args.command == "generate":
        for path in write_suites():
            print(path)


if __name__ == "__main__":
    main()
