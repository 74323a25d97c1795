"""The gate's two ways of computing an expectation's metrics give the same counts and verdicts.

Expectations of the committed suites are evaluated on the Arrow batches (GX decides from the
summed metrics); ``GxValidator(native=False)`` has GX's pandas engine evaluate every one of them
on frames, as the gate did before. Both run here over the same adversarial batches of every
backed-up table (nulls where none may be, values outside their sets, full-width digits, card
numbers in every grouping, e-mail addresses, negative amounts, an extra store column, an empty
table, a batch large enough for the per-distinct-value path) and must agree on every
expectation of every stage.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import subprocess
import sys

import pyarrow as pa
import pytest

from lomevexi_governance import scan
from lomevexi_governance.scan import ContentScanner
from lomevexi_governance.source import arrow_schema
from lomevexi_governance.validation import BACKUP, SOURCE, GxValidator, generate_suite

pytestmark = pytest.mark.unit

WHEN = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
TEXTS = [
    "", " ", "東京都", "大阪府", "山田 花子", "placed", "completed", "visa", "jcb", "credit_card", "inquiry",
    "closed", "logistics", "view", "orders", "allowed", "yamato", "tops", "order", "bogus", "PLACED",
    "090-1234-5678", "09012345678", "０９０-１２３４-５６７８", "03-1234-5678", "0120-123-456", "12-3456-7890",
    "123-4567", "１２３-４５６７", "1234567", "1234", "４２４２", "12345", "12a4",
    "hanako@example.co.jp", "a.b+c@mail.example.com", "x@y", "foo@bar.c0m", "連絡先 taro@example.jp まで",
    "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "４１１１１１１１１１１１１１１１",
    "378282246310005", "3782 822463 10005", "paid with 5555 5555 5555 4444, refund please",
    "4111 1111 1111 1112", "LMX-20261124-000123", "tel 090 1234 5678", "1234 5678 9012 3456 7890 12",
]
INTS = [-5, -1, 0, 1, 2, 7, 10**9]
PLAIN_TEXTS = [t for t in TEXTS if t.isascii()]


def _batch(table, rows: int, rng: random.Random, *, pool: list[str] | None = None) -> pa.RecordBatch:
    schema = arrow_schema(table)
    columns = []
    for f in schema:
        col = table.column(f.name)
        null_share = 0.05 if col.nullable else 0.01  # a few NULLs where none may be, too
        values: list[object] = []
        for _ in range(rows):
            if rng.random() < null_share:
                values.append(None)
            elif col.type == "int64":
                values.append(rng.choice(INTS))
            elif col.type == "timestamp":
                values.append(WHEN + dt.timedelta(minutes=rng.randrange(10_000)))
            elif col.values is not None and rng.random() < 0.8:
                values.append(rng.choice(col.values))
            else:
                values.append(rng.choice(pool or TEXTS))
        columns.append(pa.array(values, type=f.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _run(policy, out, batches: dict[str, list[pa.RecordBatch]], *, native: bool):
    validator = GxValidator(policy, out, native=native)
    for table in policy.backup_tables:
        source, scanner, backup = validator.source_stage(table), ContentScanner(table), validator.backup_stage(table)
        for batch in batches.get(table.name, []):
            backup.process(scanner.process(source.process(batch)))
        source.finish()
        backup.finish()
        present = table.column_names + (["marketing_opt_in"] if table.name == "customers" else [])
        validator.check_source_columns(table, present)
        validator.cover_empty(table)
    summary = validator.finish(extra_columns={"customers": ["marketing_opt_in"]})
    verdicts = {k: (a.success, a.element_count, a.unexpected_count, a.missing_count)
                for k, a in validator.aggregates.items()}
    return verdicts, summary


@pytest.fixture
def adversarial(policy) -> dict[str, list[pa.RecordBatch]]:
    rng = random.Random(20261207)
    batches = {t.name: [_batch(t, n, rng) for n in (120, 37, 1)] for t in policy.backup_tables
               if t.name != "legal_holds"}  # legal_holds: no rows at all
    # large and repetitive: regexes run once per distinct value (scan.DICT_SHARE)
    staff = policy.tables["staff_access_log"]
    batches["staff_access_log"].append(_batch(staff, 3 * scan.DICT_SAMPLE, rng, pool=TEXTS[:12] + TEXTS[40:42]))
    # plain text only (ASCII, no newline): formats are matched with their plain patterns
    for table in policy.backup_tables:
        if table.name in batches:
            batches[table.name].append(_batch(table, 60, rng, pool=PLAIN_TEXTS))
    return batches


def test_arrow_metrics_and_gx_engine_agree_on_every_expectation(policy, tmp_path, adversarial):
    arrow, arrow_summary = _run(policy, tmp_path / "arrow", adversarial, native=True)
    gx, gx_summary = _run(policy, tmp_path / "gx", adversarial, native=False)
    assert arrow == gx
    everything = sum(len(generate_suite(policy, t)["expectations"]) for t in policy.backup_tables)
    # every expectation of both stages of every table, each computed the one way or the other
    assert len(arrow) == sum(
        len(e["meta"]["stage"]) for t in policy.backup_tables for e in generate_suite(policy, t)["expectations"]
    ) > everything
    assert arrow_summary["metrics_by"] == {"arrow": len(arrow)}
    assert gx_summary["metrics_by"] == {"great_expectations": len(gx)}
    # the data really fails and passes things, in both stages
    failed = {(t, stage, key) for (t, stage, key), v in arrow.items() if not v[0]}
    assert ("customers", SOURCE, "columns") in failed  # the extra store column
    assert ("orders", SOURCE, "recipient_name.no_card_number") in failed  # raw card numbers
    assert ("orders", BACKUP, "recipient_name.no_card_number") not in failed  # masked before writing
    assert ("orders", BACKUP, "recipient_phone.format_jp_phone") in failed
    assert ("payments", BACKUP, "card_brand.value_set") in failed
    assert ("order_items", BACKUP, "quantity.min") in failed
    assert ("orders", BACKUP, "order_number.not_null") in failed
    assert ("staff_access_log", BACKUP, "staff_id.no_email") in failed
    assert arrow["legal_holds", BACKUP, "hold_id.not_null"] == (True, 0, 0, 0)  # empty: vacuously true
    assert arrow_summary["success"] is False and gx_summary["failed"] == arrow_summary["failed"]


def _edited_suites(policy, tmp_path, monkeypatch):
    """The committed suites plus expectations with `mostly`, strict bounds and a type the
    Arrow evaluation does not know (GX's engine runs that one, in the same validation)."""
    directory = tmp_path / "expectations"
    directory.mkdir()
    for table in policy.backup_tables:
        suite = generate_suite(policy, table)
        if table.name == "orders":
            extra = [
                ("expect_column_values_to_not_be_null", "order_number.mostly_not_null",
                 {"column": "order_number", "mostly": 0.9}),
                ("expect_column_values_to_match_regex", "recipient_phone.mostly_phone",
                 {"column": "recipient_phone", "regex": r"^0\d", "mostly": 0.5}),
                ("expect_column_values_to_be_between", "total_amount_jpy.strict",
                 {"column": "total_amount_jpy", "min_value": 0, "max_value": 7, "strict_min": True}),
                ("expect_column_values_to_be_in_set", "prefecture.mostly_tokyo",
                 {"column": "prefecture", "value_set": ["東京都"], "mostly": 0.3}),
                ("expect_column_value_lengths_to_be_between", "order_number.length",
                 {"column": "order_number", "min_value": 2}),
            ]
            suite["expectations"] += [{"type": t, "kwargs": kw, "meta": {"key": key, "stage": [BACKUP]}}
                                      for t, key, kw in extra]
        (directory / f"{table.name}.json").write_text(json.dumps(suite, ensure_ascii=False))
    monkeypatch.setenv("GOVERNANCE_EXPECTATIONS_DIR", str(directory))


def test_mostly_strict_bounds_and_unknown_types_give_gx_verdicts(policy, tmp_path, monkeypatch, adversarial):
    _edited_suites(policy, tmp_path, monkeypatch)
    arrow, summary = _run(policy, tmp_path / "arrow", adversarial, native=True)
    gx, _ = _run(policy, tmp_path / "gx", adversarial, native=False)
    assert arrow == gx
    assert summary["metrics_by"] == {"arrow": len(arrow) - 1, "great_expectations": 1}
    assert arrow["orders", BACKUP, "order_number.mostly_not_null"][0] is True  # ~1 % NULLs, mostly 0.9
    assert arrow["orders", BACKUP, "order_number.not_null"][0] is False
    assert arrow["orders", BACKUP, "order_number.length"][0] is False  # "" and " " are too short


def test_a_column_the_data_lacks_fails_its_expectations(policy, tmp_path):
    table = policy.tables["service_tickets"]
    validator = GxValidator(policy, tmp_path / "v", tables=["service_tickets"])
    validator.check_source_columns(table, [c for c in table.column_names if c != "body"])
    summary = validator.finish(extra_columns={})
    failed = {f["key"]: f for f in summary["failed"]}
    assert set(failed) == {"columns", "body.no_card_number"}
    assert failed["body.no_card_number"]["error"] == "column 'body' is not in the data"
    # the column set's result shows the store's columns (names only), as GX reports them
    observed = validator.aggregates["service_tickets", SOURCE, "columns"].observed
    assert set(observed) == set(table.column_names) - {"body"}


def test_matchers_are_shared_by_batch_object_and_forgotten_on_request(policy):
    table = policy.tables["orders"]
    batch = _batch(table, 5, random.Random(3))
    same = scan.matcher_for(batch, "city")
    assert scan.matcher_for(batch, "city") is same
    assert scan.matcher_for(_batch(table, 5, random.Random(3)), "city") is not same  # equal data, other batch
    scan.forget_matchers()
    assert scan.matcher_for(batch, "city") is not same
    scan.forget_matchers()
    assert not scan._matchers.entries


def test_a_columns_dictionary_verdict_is_sampled_every_few_batches_and_changes_no_result(monkeypatch):
    samples: list[int] = []
    real = scan.repeats
    monkeypatch.setattr(scan, "repeats", lambda arr: samples.append(len(arr)) or real(arr))
    scan.forget_matchers()
    n = 2 * scan.DICT_SAMPLE
    statuses = pa.array(["paid", "shipped", "4111 1111 1111 1111", None] * (n // 4))
    unique = pa.array([f"{i:08d} 4111111111111111" if i % 97 == 0 else f"row {i}" for i in range(n)])
    for i in range(2 * scan.DICT_RESAMPLE):  # the same schema's batches: a verdict per column
        # the unique column's data in every batch after the first: the remembered verdict
        # ("repeating") is wrong for it, which costs time and never changes a result
        batch = pa.RecordBatch.from_arrays([statuses if i == 0 else unique], names=["c"])
        matcher = scan.matcher_for(batch, "c")
        fresh = scan.TextMatcher(batch.column("c"), repeating=False)
        assert matcher.count_cards() == fresh.count_cards()
        assert matcher.cards().equals(fresh.cards())
        assert matcher.count(scan.CARD_CANDIDATE) == fresh.count(scan.CARD_CANDIDATE)
        assert (matcher._encoded is not None) == (i < scan.DICT_RESAMPLE)  # sampled again at 8
    assert len(samples) == 2
    scan.forget_matchers()
    assert not scan._matchers.verdicts


def test_the_scan_and_both_stages_run_each_pattern_once_per_batch_and_column(policy, monkeypatch):
    runs: list[tuple[int, str]] = []
    real = scan._regex

    def counting(values, pattern, **kwargs):
        runs.append((id(values), pattern))
        return real(values, pattern, **kwargs)

    monkeypatch.setattr(scan, "_regex", counting)
    table = policy.tables["orders"]
    validator = GxValidator(policy, "unused", tables=["orders"])
    source, scanner, backup = validator.source_stage(table), ContentScanner(table), validator.backup_stage(table)
    batch = _batch(table, 50, random.Random(1), pool=["東京都", "山田 花子", "090-1234-5678", "123-4567"])
    kept = [batch]  # ids stay unique while the arrays live
    assert backup.process(scanner.process(source.process(batch))) is batch
    assert runs and len(runs) == len(set(runs))
    text_columns = [c for c in table.columns if c.type == "string"]
    # clean text: one combined card/e-mail pass per column, plus each format twice (the scan's
    # RE2 form, ASCII digits, and GX's Python semantics, any decimal digit); nothing else
    assert len(runs) == len(text_columns) + 2 * sum(1 for c in text_columns if c.format)
    assert kept


@pytest.mark.parametrize(("phones", "plain"), [
    (["090-1234-5678", "03-1234-5678", "12-3456-7890", None], True),
    (["090-1234-5678", "０９０-１２３４-５６７８", "03-1234-5678", None], False),  # full-width digits
    (["090-1234-5678", "03-1234-5678\n", "12-3456-7890", None], False),  # a final newline
])
def test_a_format_runs_once_on_plain_text_and_with_pythons_meaning_otherwise(policy, monkeypatch, phones, plain):
    import re

    from lomevexi_governance.validation import re2_pattern

    runs: list[str] = []
    real = scan._regex

    def counting(values, pattern, **kwargs):
        runs.append(pattern)
        return real(values, pattern, **kwargs)

    monkeypatch.setattr(scan, "_regex", counting)
    table = policy.tables["orders"]
    regex = scan.FORMATS["jp_phone"]
    column = pa.array(phones * 20, type=pa.string())
    batch = _batch(table, len(column), random.Random(2), pool=PLAIN_TEXTS)
    batch = batch.set_column(batch.schema.get_field_index("recipient_phone"), batch.schema.field("recipient_phone"),
                             column)
    validator = GxValidator(policy, "unused", tables=["orders"])
    ContentScanner(table).process(batch)
    validator.backup_stage(table).process(batch)
    key = ("orders", BACKUP, "recipient_phone.format_jp_phone")
    agg = validator.aggregates[key]
    assert agg.unexpected_count == sum(1 for v in column.to_pylist() if v is not None and not re.search(regex, v))
    # the scan's pattern once; the gate's translation (Python's digits, a final newline) only when needed
    assert runs.count(regex) == 1 and runs.count(re2_pattern(regex)) == (0 if plain else 1)


def test_arrow_metrics_never_import_great_expectations(tmp_path):
    """A backup worker computes metrics only; GX is loaded by the leader's finish."""
    code = """
import sys, datetime as dt
import pyarrow as pa
from lomevexi_governance.policy import load_policy
from lomevexi_governance.scan import ContentScanner
from lomevexi_governance.source import arrow_schema
from lomevexi_governance.validation import GxValidator
policy = load_policy()
table = policy.tables["payments"]
schema = arrow_schema(table)
row = {"payment_id": 1, "order_id": 2, "method": "konbini", "amount_jpy": 500, "status": "captured",
       "updated_at": dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)}
batch = pa.RecordBatch.from_pylist([row], schema=schema)
v = GxValidator(policy, sys.argv[1], tables=["payments"])
v.backup_stage(table).process(ContentScanner(table).process(v.source_stage(table).process(batch)))
assert "great_expectations" not in sys.modules, "metrics imported GX"
summary = v.finish(extra_columns={})
assert "great_expectations" in sys.modules and summary["success"], summary
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


@pytest.mark.parametrize("regex", [
    *__import__("lomevexi_governance.scan", fromlist=["FORMATS"]).FORMATS.values(),
    __import__("lomevexi_governance.scan", fromlist=["EMAIL_ANYWHERE"]).EMAIL_ANYWHERE,
    r"^\d+$", r"[\d-]{3}\Z", r"\D", r"^(?:LMX)-\d{8}-\d{6}$", r"[^0-9]", r"a|b$", r"\$\d", r"[$]",
    r"^1$|^\d{4}$", r"(?:\d{3}-)+\d$", r"\d{2,}?",
])
def test_re2_patterns_match_what_python_matches(regex):
    import re

    import pyarrow.compute as pc

    from lomevexi_governance.validation import re2_pattern

    pattern = re2_pattern(regex)
    assert pattern is not None
    texts = [t + suffix for t in TEXTS for suffix in ("", "\n", "\n\n", " ", "$")] + ["１２３４", "٣٤٥", "$1"]
    ours = pc.fill_null(pc.match_substring_regex(pa.array(texts), pattern), False).to_pylist()
    assert ours == [re.search(regex, t) is not None for t in texts]
    # on plain text (ASCII, no newline) the plain translation matches what Python matches, too
    plain = re2_pattern(regex, plain=True)
    assert plain is not None
    texts = [t + suffix for t in PLAIN_TEXTS for suffix in ("", " ", "$", "0", "a")] + ["$1", "1\r", "\t2"]
    ours = pc.fill_null(pc.match_substring_regex(pa.array(texts), plain), False).to_pylist()
    assert ours == [re.search(regex, t) is not None for t in texts]


def test_a_formats_plain_translation_is_the_content_scans_own_pattern():
    """So the gate's format expectation and the scan's format check share one pass on plain text."""
    from lomevexi_governance.validation import re2_pattern

    for regex in scan.FORMATS.values():
        assert re2_pattern(regex, plain=True) == regex
    assert re2_pattern(r"^\d{3}\Z", plain=True) == r"^\d{3}\z"


@pytest.mark.parametrize("regex", [
    r"\w+", r"\s", r"\bx", r"(?i)x", r"(?a)\d", r"(?=a)", r"(a)\1", r"a{,3}", r"a*+", r"[[a]]", "x\\",
    # a count with a leading zero is a count in Python, text in RE2; a ``$`` something may follow
    r"^\d{04}$", r"a{1,02}", r"a$\n", r"a$[^x]", r"((a$)|c)\n", r"(a$)|b", r"[\D]",
    # what Python itself rejects (GX reports it failing): RE2 would accept these
    r"a\z", r"\Qa.b\E", r"[\d-z]", r"^*",
])
def test_patterns_without_an_exact_re2_form_stay_with_gx(regex):
    from lomevexi_governance.validation import re2_pattern

    assert re2_pattern(regex) is None
    assert re2_pattern(regex, plain=True) is None


def test_block_wise_search_finds_exactly_the_rows_a_row_wise_search_finds():
    """Blocks without a match are skipped; blocks with one (or with a match spanning two values)
    are searched row by row; anchored patterns always go row by row."""
    import numpy as np
    import pyarrow.compute as pc

    from lomevexi_governance.scan import BLOCK_ROWS, CARD_CANDIDATE, CARD_OR_EMAIL, EMAIL_ANYWHERE, FORMATS, _regex

    rng = random.Random(7)
    clean = ["山田 花子", "東京都港区", "LMX-TP-0042", "", "090-1234-5678", "1234", "56789012"]
    for hits in (0, 1, 3, 40, 600):
        values = [rng.choice(clean) for _ in range(6 * BLOCK_ROWS + 17)]
        for i in rng.sample(range(len(values)), hits):
            values[i] = rng.choice(TEXTS)
        values[5] = None
        arr = pa.array(values).slice(3)  # an offset into the buffers, too
        for pattern in (CARD_OR_EMAIL, CARD_CANDIDATE, EMAIL_ANYWHERE, FORMATS["jp_phone"]):
            expected = np.asarray(pc.fill_null(pc.match_substring_regex(arr, pattern), False).to_numpy(zero_copy_only=False))
            assert (_regex(arr, pattern) == expected).all(), (hits, pattern)


def test_a_digit_is_what_pythons_re_takes_for_one():
    """RE2's own ``\\p{Nd}`` follows a newer Unicode than this Python's ``re``: not used."""
    import re

    import pyarrow.compute as pc

    from lomevexi_governance.validation import re2_pattern

    candidates = [chr(cp) for cp in range(0x110000) if chr(cp).isdecimal() or unicodedata_nd(cp)]
    candidates += ["a", "٫", "²", "①", "十"]
    pattern = re2_pattern(r"^\d$")
    assert pattern is not None
    ours = pc.match_substring_regex(pa.array(candidates), pattern).to_pylist()
    assert ours == [re.search(r"^\d$", c) is not None for c in candidates]


def unicodedata_nd(cp: int) -> bool:
    return 0x11F50 <= cp <= 0x11F59 or 0x1E4F0 <= cp <= 0x1E4F9  # Nd in RE2's tables, not in Python 3.11's


@pytest.mark.parametrize(("kwargs", "is_native"), [
    ({"min_value": 0}, True), ({"max_value": 3, "strict_max": True}, True), ({}, False),
    ({"min_value": 5, "max_value": 1}, False), ({"min_value": "0"}, False), ({"min_value": True}, False),
])
def test_between_arguments_gx_rejects_stay_with_gx(policy, kwargs, is_native):
    from lomevexi_governance.validation import native

    e = {"type": "expect_column_values_to_be_between", "kwargs": {"column": "quantity", **kwargs}}
    assert (native(e, policy.tables["order_items"]) is not None) is is_native
