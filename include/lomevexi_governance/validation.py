"""The minimization gate: Great Expectations suites run on the data of every backup.

* One Expectation Suite per backed-up table, as GX 1.x JSON in ``expectations/`` (reviewed like
  code; ``python -m lomevexi_governance.validation generate`` rewrites them from the policy and a
  test fails when they drift apart).
* Every expectation carries ``meta.stage``: ``source`` expectations run on what the store holds
  (the exact column set, and "no card numbers" on the raw batch, before masking); ``backup``
  expectations run on the data about to be written (after masking). Each batch is validated as
  it streams through, so validation holds one batch at a time; results are summed per
  expectation over all batches.
* Results keep counts only: GX's ``partial_unexpected_list`` and every other value-bearing field
  are dropped by a whitelist before anything is stored (no customer value in results, Data Docs,
  logs or XCom). Offending rows are identified by primary key in the content scan's report.
* One ephemeral GX context per validator (no shared ``gx/`` folder); analytics off.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from lomevexi_governance.policy import Policy, Table, load_policy
from lomevexi_governance.reports import write_json_atomic
from lomevexi_governance.scan import CARD_CANDIDATE, EMAIL_ANYWHERE, EMAIL_COLUMN, FORMATS, TextMatcher, find_cards

log = logging.getLogger(__name__)

EXPECTATIONS_ENV = "GOVERNANCE_EXPECTATIONS_DIR"
SOURCE, BACKUP = "source", "backup"
#: the suite of a table's two stages together, for frames the content scan left untouched
BOTH = "source+backup"
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

            text = column.astype("string")
            # the RE2 prefilter on the column's Arrow data (per distinct value when it repeats
            # itself), then the exact check (groupings, Luhn) on the few candidates
            found = TextMatcher(pa.array(text.array)).matches(CARD_CANDIDATE)
            candidates = np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)
            ok = pd.Series(~candidates, index=column.index)
            if candidates.any():
                ok[candidates] = [not find_cards(v) for v in text[candidates]]
            return ok

    class ExpectColumnValuesToNotContainCardNumber(ColumnMapExpectation):
        """Expect no payment-card number (13-19 digits passing Luhn, spaces/hyphens allowed)."""

        map_metric = "column_values.no_card_number"
        success_keys = ("mostly",)

    globals()["ExpectColumnValuesToNotContainCardNumber"] = ExpectColumnValuesToNotContainCardNumber
    globals()["ColumnValuesNoCardNumber"] = ColumnValuesNoCardNumber


def expectation_stages(meta: dict[str, Any] | None) -> list[str]:
    """The stages an expectation runs in (``meta.stage``; backup when it names none)."""
    return list((meta or {}).get("stage", [BACKUP]))


def build_suite(data: dict[str, Any], stage: str) -> Any:
    """The GX suite of one stage (``SOURCE``, ``BACKUP``) or of both together (``BOTH``)."""
    import great_expectations as gx
    from great_expectations.expectations.registry import get_expectation_impl

    _register_card_expectation()
    wanted = {SOURCE, BACKUP} if stage == BOTH else {stage}
    expectations = [
        get_expectation_impl(e["type"])(**e["kwargs"], meta=e.get("meta"))
        for e in data["expectations"]
        if wanted & set(expectation_stages(e.get("meta")))
    ]
    return gx.ExpectationSuite(name=f"{data['name']}.{stage}", expectations=expectations, meta=data.get("meta"))


# -- running ---------------------------------------------------------------------------------


@dataclass
class _Agg:
    type: str
    kwargs: dict[str, Any]
    meta: dict[str, Any]
    stage: str
    success: bool = True
    element_count: int = 0
    unexpected_count: int = 0
    missing_count: int = 0
    observed: Any = None
    batches: int = 0

    def add(self, result: Any) -> None:
        self.batches += 1
        self.success = self.success and bool(result.success)
        r = result.result or {}
        self.element_count += int(r.get("element_count") or 0)
        self.unexpected_count += int(r.get("unexpected_count") or 0)
        self.missing_count += int(r.get("missing_count") or 0)
        if self.type == "expect_table_columns_to_match_set":
            # column names only: the store's schema, never its values
            self.observed = r.get("observed_value")

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
#: suites, measured on 1,000 rows) on top of about 1.4 s per million rows, so write batches are
#: gathered into large frames: at 131,072 rows a run cost 4.4 s per million rows, at 1,048,576
#: 1.8 s. Both limits bound memory (the frame shares the Arrow buffers: strings stay Arrow-backed).
#: Scan + GX of every in-scope table of a 300k-order store (2,731,956 rows, 3 alternating runs):
#: 6.86 s at 262,144 rows / 48 MiB, 6.04 s at 524,288 / 96 MiB, 5.23 s at 1,048,576 / 192 MiB;
#: peak RSS of that run streaming from the store: 592, 588 and 735 MB. At 2M orders on PostgreSQL
#: (``make bench``) the step to 524,288 / 96 MiB cost 714 -> 825 MB for validation alone and
#: 946 -> 1,000 MB for the one-process backup.
GX_BATCH_ROWS = 524_288
GX_BATCH_BYTES = 96 << 20


class _StageCheck:
    """A BatchCheck running one stage of a table's suite on all of its rows, a bounded batch at a time.

    A backup stage may *lead* the same table's source stage (``GxValidator.backup_stage`` pairs
    them): the source stage then only gathers, and the backup stage validates both stages'
    frames at once, in one GX run when every gathered masked batch is the raw batch itself (the
    content scan returns a batch unchanged when it masks nothing), else each stage on its own.
    Both see the same batches in the same order (the checks between them never drop one).
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
        self.definition = validator._definition(table, stage)
        #: the source stage this backup stage validates along with its own batches
        self.follower: _StageCheck | None = None
        #: the backup stage that validates this source stage's batches
        self.leader: _StageCheck | None = None
        self._pending: list[pa.RecordBatch] = []
        self._rows = 0
        self._bytes = 0

    @property
    def pending_rows(self) -> int:
        return self._rows

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if self.definition is not None:
            self._pending.append(batch)
            self._rows += batch.num_rows
            self._bytes += batch.nbytes
            if self.leader is None and (self._rows >= self.batch_rows or self._bytes >= self.batch_bytes):
                self.finish()
        return batch

    def _take(self) -> list[pa.RecordBatch]:
        pending, self._pending, self._rows, self._bytes = self._pending, [], 0, 0
        return pending

    def finish(self) -> None:
        """Validate what is gathered (called at the end of the table, too).

        A led source stage leaves its batches to its leader, which validates them in its own
        ``finish`` (``GxValidator.finish`` fails when a leader never did).
        """
        if self.leader is not None:
            return
        mine = self._take()
        follower = self.follower
        raw = follower._take() if follower is not None else []
        if mine and len(raw) == len(mine) and all(a is b for a, b in zip(raw, mine, strict=True)):
            both = self.validator._definition(self.table, BOTH)
            self.validator._run(self.table.name, BOTH, both, _frame(mine))
            return
        if raw and follower is not None:
            self.validator._run(self.table.name, SOURCE, follower.definition, _frame(raw))
        if mine:
            self.validator._run(self.table.name, self.stage, self.definition, _frame(mine))


def _frame(batches: list[pa.RecordBatch]) -> Any:
    return pa.Table.from_batches(batches).to_pandas()


@dataclass
class GxValidator:
    policy: Policy
    out_dir: Path
    tables: Sequence[str] | None = None
    aggregates: dict[tuple[str, str, str], _Agg] = field(default_factory=dict)
    reference_violations: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.execution_engine import pandas_execution_engine

        # GX fingerprints every in-memory batch (hash_pandas_dataframe, ~6% of a backup) for a
        # batch marker this project never reads; frames above the threshold are not hashed.
        pandas_execution_engine.HASH_THRESHOLD = 0

        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        self.out_dir = Path(self.out_dir)
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self._source = self.context.data_sources.add_pandas("lomevexi_batches")
        self._suites = {t.name: load_suite_json(t.name) for t in self.policy.backup_tables
                        if self.tables is None or t.name in self.tables}
        self._definitions: dict[tuple[str, str], Any] = {}
        #: source stages waiting for their table's backup stage to lead them
        self._unled: dict[str, _StageCheck] = {}
        self._led: list[_StageCheck] = []

    def _definition(self, table: Table, stage: str) -> Any:
        import great_expectations as gx

        key = (table.name, stage)
        if key not in self._definitions:
            suite = build_suite(self._suites[table.name], stage)
            if not suite.expectations:
                self._definitions[key] = None
                return None
            suite = self.context.suites.add(suite)
            asset = self._source.add_dataframe_asset(f"{table.name}.{stage}")
            batch_def = asset.add_batch_definition_whole_dataframe("batch")
            self._definitions[key] = self.context.validation_definitions.add(
                gx.ValidationDefinition(name=f"{table.name}.{stage}", data=batch_def, suite=suite)
            )
        return self._definitions[key]

    def _run(self, table: str, stage: str, definition: Any, frame: Any) -> None:
        """One GX run of ``stage``'s suite (``BOTH``: each result counts for each stage it is in)."""
        result = definition.run(batch_parameters={"dataframe": frame}, result_format=RESULT_FORMAT)
        # GX keeps the last batch of every asset (with its frame) in the engine's batch cache;
        # release it now, or every table's last frame stays in memory until the end
        batches = self._source.get_execution_engine().batch_manager
        batches.reset_batch_cache()
        batches.batch_data_cache.clear()
        for r in result.results:
            cfg = r.expectation_config
            meta = dict(cfg.meta or {})
            stages = [s for s in (SOURCE, BACKUP) if s in expectation_stages(meta)] if stage == BOTH else [stage]
            for s in stages:
                k = (table, s, meta.get("key", cfg.type))
                agg = self.aggregates.get(k)
                if agg is None:
                    kwargs = {kk: v for kk, v in cfg.kwargs.items() if kk != "batch_id"}
                    agg = self.aggregates[k] = _Agg(cfg.type, kwargs, meta, s)
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
        """The source stage's check; the table's next ``backup_stage`` leads it (see _StageCheck)."""
        check = _StageCheck(self, table, SOURCE)
        if check.definition is not None:
            self._unled[table.name] = check
        return check

    def backup_stage(self, table: Table) -> _StageCheck:
        """The backup stage's check, leading the table's source stage check made before it, if any."""
        check = _StageCheck(self, table, BACKUP)
        source = self._unled.pop(table.name, None)
        if source is not None and check.definition is not None:
            check.follower, source.leader = source, check
            self._led.append(source)
        return check

    def check_source_columns(self, table: Table, present: Sequence[str]) -> None:
        """The exact column set, checked on what the store has (an empty frame of its columns)."""
        import pandas as pd

        definition = self._definition(table, SOURCE)
        if definition is None:
            return
        self._run(table.name, SOURCE, definition, pd.DataFrame({c: pd.Series([], dtype="object") for c in present}))

    def cover_empty(self, table: Table) -> None:
        """A table with no rows still gets its backup-stage suite run (on an empty frame)."""
        if any(t == table.name and stage == BACKUP for (t, stage, _k) in self.aggregates):
            return
        definition = self._definition(table, BACKUP)
        if definition is not None:
            from lomevexi_governance.source import arrow_schema

            self._run(table.name, BACKUP, definition, arrow_schema(table).empty_table().to_pandas())

    # -- results -----------------------------------------------------------------------------
    def finish(self, *, extra_columns: dict[str, list[str]], reference_violations: list[dict[str, Any]] | None = None,
               run_name: str = "run") -> dict[str, Any]:
        unvalidated = sorted({c.table.name for c in self._led if c.pending_rows})
        if unvalidated:
            raise RuntimeError(
                "Great Expectations never validated the source stage of the last batches of "
                f"{', '.join(unvalidated)}: the backup stage that leads it was not finished"
            )
        self.reference_violations = list(reference_violations or [])
        failed = [
            {"table": t, "column": a.column(), "expectation": a.type, "key": a.meta.get("key"), "stage": stage,
             "unexpected_count": a.unexpected_count, "element_count": a.element_count}
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
