"""Content scan: card numbers masked (Luhn), formats checked, primary keys reported, never values."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lomevexi_governance.scan import ContentScanner, find_cards, luhn_ok, mask_text
from lomevexi_governance.source import arrow_schema

pytestmark = pytest.mark.unit

VISA = "4111111111111111"
MC = "5555555555554444"
AMEX = "378282246310005"  # 15 digits
JCB = "3530111333300000"


@pytest.mark.parametrize(
    "text",
    [
        f"カード番号は{VISA}です",
        "カード 4111 1111 1111 1111 でお願いします",
        "番号：4111-1111-1111-1111。",
        "４１１１　１１１１　１１１１　１１１１",  # full-width digits and spaces
        "４１１１－１１１１－１１１１－１１１１🙏",
        f"amex {AMEX[:4]} {AMEX[4:10]} {AMEX[10:]}",
        f"JCB:{JCB}",
    ],
)
def test_card_numbers_are_masked_to_the_last_four(text):
    masked, n = mask_text(text)
    assert n == 1
    digits = "".join(c for c in masked if c.isdigit())
    assert len(digits) == 4
    assert "*" in masked


def test_non_luhn_and_short_numbers_are_left_alone():
    for text in ["注文番号 LMX-20261124-000123", "090-1234-5678", "4111111111111112", "123456789012", "追跡番号 123456789012"]:
        assert mask_text(text) == (text, 0), text


def test_two_cards_in_one_text():
    masked, n = mask_text(f"{VISA} と {MC[:4]}-{MC[4:8]}-{MC[8:12]}-{MC[12:]}")
    assert n == 2 and VISA not in masked and "4444" in masked


def test_luhn():
    assert luhn_ok([int(c) for c in VISA]) and not luhn_ok([int(c) for c in VISA[:-1] + "2"])
    assert find_cards("x") == []


def _batch(policy, table, rows):
    t = policy.table(table)
    schema = arrow_schema(t)
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return t, pa.RecordBatch.from_pydict(cols, schema=schema)


def test_scanner_masks_and_reports_keys_not_values(policy):
    t, batch = _batch(policy, "payments", [
        {"payment_id": 1, "order_id": 1, "method": "credit_card", "card_brand": "visa", "card_last4": VISA,
         "amount_jpy": 100, "status": "captured"},
        {"payment_id": 2, "order_id": 1, "method": "konbini", "card_brand": None, "card_last4": None,
         "amount_jpy": 100, "status": "captured"},
    ])
    scanner = ContentScanner(t)
    out = scanner.process(batch)
    assert out.column("card_last4").to_pylist() == ["1111", None]
    report = scanner.result.as_dict()
    assert report["masked"] == {"payments.card_last4": 1}
    assert VISA not in repr(report)
    rules = {(v["column"], v["rule"]): v for v in report["violations"]}
    assert rules[("card_last4", "card_number")]["primary_keys"] == [1]
    assert ("updated_at", "not_null") in rules  # the test rows omit it: reported, rows still kept
    assert out.num_rows == 2
    assert out is not batch


def test_a_batch_with_nothing_to_mask_is_returned_itself(policy):
    # the GX gate validates both stages in one run only when the scan hands on the raw batch
    t, batch = _batch(policy, "payments", [
        {"payment_id": 2, "order_id": 1, "method": "konbini", "card_brand": None, "card_last4": None,
         "amount_jpy": 100, "status": "captured"},
    ])
    assert ContentScanner(t).process(batch) is batch


def test_malformed_phone_and_email_in_name_are_reported(policy):
    good = {"order_id": 1, "order_number": "LMX-1", "customer_id": 1, "status": "completed", "total_amount_jpy": 1,
            "recipient_name": "山田 花子", "recipient_phone": "090-1234-5678", "postal_code": "150-0001",
            "prefecture": "東京都", "city": "渋谷区", "address_line1": "神南1-2-3"}
    rows = [
        good,
        good | {"order_id": 2, "recipient_phone": "090-1234-567"},
        good | {"order_id": 3, "recipient_phone": "03-1234-5678"},
        good | {"order_id": 4, "recipient_phone": "0120-123-456"},
        good | {"order_id": 5, "recipient_phone": "090-123-4567"},
        good | {"order_id": 6, "recipient_name": "山田 hanako@example.jp"},
        good | {"order_id": 7, "postal_code": "1500001", "prefecture": "東京"},
    ]
    t, batch = _batch(policy, "orders", rows)
    scanner = ContentScanner(t)
    scanner.process(batch)
    rules = {(v["column"], v["rule"]): v["primary_keys"] for v in scanner.result.as_dict()["violations"]}
    assert rules[("recipient_phone", "format_jp_phone")] == [2, 5]
    assert rules[("recipient_name", "email_outside_customers_email")] == [6]
    assert rules[("postal_code", "format_jp_postal_code")] == [7]
    assert rules[("prefecture", "value_set")] == [7]
    assert "hanako" not in repr(scanner.result.as_dict())


def test_identifiers_that_happen_to_pass_luhn_are_not_cards():
    # 14 digits that pass Luhn, but grouped as an order number (8-6) or a date and a serial
    assert mask_text("LMX-20250101-000005") == ("LMX-20250101-000005", 0)
    assert mask_text("注文 LMX-20261124-000123 について") == ("注文 LMX-20261124-000123 について", 0)
    # the same digits typed as a card would be are masked
    assert mask_text("4111-1111-1111-1111")[1] == 1
    assert mask_text("4222 2222 2222 2")[1] == 1  # 13-digit Visa, 4-4-4-1


@pytest.mark.parametrize(("distinct", "by_dictionary"), [(3, True), (50, True), (500, False), (20_000, False)])
def test_text_matcher_equals_the_row_by_row_regex_on_repeating_and_unique_columns(distinct, by_dictionary):
    import pyarrow.compute as pc

    from lomevexi_governance.scan import CARD_CANDIDATE, EMAIL_ANYWHERE, TextMatcher

    base = ["shipped", f"カード {VISA}", "a@b.example", None, "注文番号 LMX-20261124-000123"]
    values = [base[i % len(base)] if i % 7 else f"v{i % distinct}" for i in range(20_000)]
    arr = pa.array(values, type=pa.string())
    matcher = TextMatcher(arr)
    assert (matcher._encoded is not None) == by_dictionary  # at most 5 % distinct in the first 4,096 rows
    for pattern in (CARD_CANDIDATE, EMAIL_ANYWHERE, r"^v\d+$"):
        expected = pc.fill_null(pc.match_substring_regex(arr, pattern), False)
        assert matcher.matches(pattern).equals(expected), pattern


@pytest.mark.parametrize("column", ["phones", "emails", "sliced"])
def test_values_whose_digits_run_together_are_searched_in_separated_blocks_not_one_by_one(column, monkeypatch):
    """11-digit phone numbers back to back make every block of a column hold a 13-19 digit run,
    and every value of an e-mail column matches the prefilter: the matcher's results stay exactly
    the row-by-row regex, and only the values of blocks with a real match are searched one by one."""
    import pyarrow.compute as pc

    from lomevexi_governance import scan

    phones = [f"090{i * 7919 % 10**8:08d}" for i in range(20_000)]
    for i in (5, 9_000, 19_999):
        phones[i] = VISA if i != 9_000 else "x@y.example"
    emails = [f"user{i}@shop{i % 97}.example.jp" for i in range(20_000)]
    emails[123] = f"{VISA}@cards.example"
    values = {"phones": phones, "emails": emails, "sliced": [None, *phones]}[column]
    arr = pa.array(values, type=pa.string())
    if column == "sliced":
        arr = arr.slice(1)
    expected = {p: pc.fill_null(pc.match_substring_regex(arr, p), False)
                for p in (scan.CARD_CANDIDATE, scan.EMAIL_ANYWHERE)}
    one_by_one = []
    search = pc.match_substring_regex

    def counting(strings, pattern):
        if len(strings) >= len(arr):
            one_by_one.append(len(strings))
        return search(strings, pattern)

    monkeypatch.setattr(scan.pc, "match_substring_regex", counting)
    matcher = scan.TextMatcher(arr)
    assert matcher._encoded is None
    for pattern, want in expected.items():
        assert matcher.matches(pattern).equals(want), pattern
    assert matcher.count_cards() == (2 if column != "emails" else 1)
    if column == "emails":
        # every value is an address: the combined prefilter is skipped, addresses are searched as
        # a whole column, card numbers block-wise
        assert one_by_one == [len(arr)]
    else:
        assert one_by_one == []


def test_a_card_number_repeated_in_a_repeating_column_is_masked_in_every_row():
    from lomevexi_governance.policy import load_policy

    table = load_policy().table("service_tickets")
    schema = arrow_schema(table)
    n = 10_000
    rows = {}
    for f in schema:
        if pa.types.is_int64(f.type):
            rows[f.name] = pa.array(range(n), type=pa.int64())
        elif pa.types.is_timestamp(f.type):
            rows[f.name] = pa.nulls(n, type=f.type)
        else:
            rows[f.name] = pa.array(["ok"] * n, type=pa.string())
    rows["body"] = pa.array([f"card {VISA}" if i % 2 else "thanks" for i in range(n)], type=pa.string())
    batch = pa.RecordBatch.from_pydict(rows, schema=schema)
    scanner = ContentScanner(table)
    out = scanner.process(batch)
    assert scanner.result.masked["body"] == n // 2
    assert not any(VISA in v for v in out.column("body").to_pylist())


def test_the_one_pass_prefilter_matches_exactly_the_rows_either_pattern_matches():
    import pyarrow.compute as pc

    from lomevexi_governance.scan import CARD_CANDIDATE, CARD_OR_EMAIL, EMAIL_ANYWHERE

    values = ["shipped", f"カード {VISA}", "a@b.example", None, "注文番号 LMX-20261124-000123", "", "@", "a@b",
              f"{VISA} と x.y@shop.co.jp", "４１１１　１１１１　１１１１　１１１１", "4111-1111-1111-1", "mail: Taro@Example.JP。",
              "090-1234-5678", "1234567890123", "123456789012"]
    arr = pa.array(values, type=pa.string())
    either = pc.or_(pc.match_substring_regex(arr, CARD_CANDIDATE), pc.match_substring_regex(arr, EMAIL_ANYWHERE))
    assert pc.match_substring_regex(arr, CARD_OR_EMAIL).equals(either)
    assert either.to_pylist() == [False, True, True, None, False, False, False, False, True, True, True, True,
                                  False, True, False]


def test_a_column_with_a_card_or_an_email_is_still_checked_for_both(policy):
    """The one-pass prefilter only skips a column holding neither; a hit runs each check."""
    good = {"order_id": 1, "order_number": "LMX-1", "customer_id": 1, "status": "completed", "total_amount_jpy": 1,
            "recipient_name": "山田 花子", "recipient_phone": "090-1234-5678", "postal_code": "150-0001",
            "prefecture": "東京都", "city": "渋谷区", "address_line1": "神南1-2-3"}
    rows = [good, good | {"order_id": 2, "address_line1": f"神南 {VISA}"},
            good | {"order_id": 3, "address_line1": "神南 taro@example.jp"}]
    t, batch = _batch(policy, "orders", rows)
    scanner = ContentScanner(t)
    out = scanner.process(batch)
    rules = {(v["column"], v["rule"]): v["primary_keys"] for v in scanner.result.as_dict()["violations"]}
    assert rules[("address_line1", "card_number")] == [2]
    assert rules[("address_line1", "email_outside_customers_email")] == [3]
    assert out.column("address_line1")[1].as_py() == "神南 ************1111"
    assert not any(c == "recipient_name" for c, _ in rules)


@pytest.mark.parametrize("ids", [
    [1, 2, 3, 5, 8, 13],  # dense: looked up in a bitmap
    [-7, -3, 0, 4],  # negative keys, still dense
    [3, 10**12, 2**62],  # sparse: binary search
    [-(2**63), 0, 2**63 - 1],  # the int64 extremes: binary search
    [],
])
def test_key_set_membership_equals_isin_whichever_lookup_it_uses(ids):
    import numpy as np

    from lomevexi_governance.scan import KeySet

    keys = np.array(ids, dtype=np.int64)
    probes = np.array([*ids, -1, 0, 4, 6, 7, 9, 14, 10**12 + 1, 2**63 - 1, -(2**63), 2**62 - 1, -8], dtype=np.int64)
    key_set = KeySet(keys)
    assert (key_set.bitmap is not None) == (len(ids) > 0 and ids[-1] - ids[0] < 10**6)
    assert key_set.contains(probes).tolist() == np.isin(probes, keys).tolist()


def test_reference_check_reports_orphans_by_key_and_skips_nulls(policy):
    import numpy as np

    from lomevexi_governance.scan import ReferenceCheck

    table = policy.table("payments")
    rows = [{"payment_id": 10 + i, "order_id": order_id} for i, order_id in enumerate([1, 2, None, 99, 3, 0])]
    schema = arrow_schema(table, ["payment_id", "order_id"])
    batch = pa.RecordBatch.from_pylist(rows, schema=schema)
    check = ReferenceCheck(table, {"order_id": np.array([1, 2, 3], dtype=np.int64)})
    assert check.process(batch) is batch
    assert check.violations() == [{"table": "payments", "column": "order_id", "rule": "reference", "count": 2,
                                   "primary_keys": [13, 15], "primary_keys_truncated": False}]
