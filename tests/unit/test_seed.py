"""The synthetic store generator: shape, consistency, cleanliness and determinism (SQLite)."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections import defaultdict
from pathlib import Path

import holidays
import pytest

from lomevexi_governance import seed
from lomevexi_governance.errors import ConfigurationError
from lomevexi_governance.policy import load_policy
from lomevexi_governance.settings import sqlite_target

pytestmark = pytest.mark.unit

AS_OF = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
ORDERS = 600
BOUNDARY = AS_OF - dt.timedelta(days=365)
JST = dt.timezone(dt.timedelta(hours=9))

TS = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{6})?$")
PHONE = re.compile(r"^(0[789]0-\d{4}-\d{4}|0\d-\d{4}-\d{4}|0\d{2}-\d{3}-\d{4})$")
POSTAL = re.compile(r"^\d{3}-\d{4}$")
EMAIL = re.compile(r"^[a-z0-9._-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$")
ORDER_NUMBER = re.compile(r"^LMX-(\d{8})-\d{6}$")
DIGIT_RUN = re.compile(r"\d{13,19}")
# card numbers as people type them: groups of digits separated by single spaces or hyphens
SEPARATED_DIGITS = re.compile(r"\d(?:[ -]?\d){12,18}")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_like(text: str, pattern: re.Pattern[str] = DIGIT_RUN) -> bool:
    for m in pattern.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        # every 13-19 digit window of the run
        for length in range(13, min(19, len(digits)) + 1):
            for start in range(len(digits) - length + 1):
                if luhn_ok(digits[start : start + length]):
                    return True
    return False


def parse_ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def rows(db: sqlite3.Connection, sql: str, *params: object) -> list[tuple]:
    return db.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    path = tmp_path_factory.mktemp("seed") / "store.db"
    counts = seed.seed_store(sqlite_target(str(path)), orders=ORDERS, as_of=AS_OF, seed=7)
    return path, counts


@pytest.fixture
def db(seeded: tuple[Path, dict[str, int]]) -> sqlite3.Connection:
    conn = sqlite3.connect(seeded[0])
    yield conn
    conn.close()


def test_row_counts(seeded: tuple[Path, dict[str, int]], db: sqlite3.Connection) -> None:
    _, counts = seeded
    assert list(counts) == list(seed.TABLES)
    for table, count in counts.items():
        assert rows(db, f"SELECT COUNT(*) FROM {table}")[0][0] == count, table
    assert counts["customers"] == round(ORDERS / 3)
    assert counts["orders"] == ORDERS
    assert ORDERS * 1.3 < counts["order_items"] < ORDERS * 2.5
    assert ORDERS <= counts["payments"] < ORDERS * 1.1
    assert ORDERS * 0.85 < counts["shipments"] <= ORDERS
    assert ORDERS * 0.04 < counts["service_tickets"] < ORDERS * 0.14
    assert counts["legal_holds"] >= 3
    business_days = len(
        seed.business_days(load_policy(), (AS_OF - dt.timedelta(days=120)).date(), AS_OF.date())
    )
    assert counts["staff_access_log"] >= 50 * (business_days - 1)
    assert counts["site_visits"] > ORDERS * 0.5


def test_referential_integrity(db: sqlite3.Connection) -> None:
    assert rows(db, "PRAGMA foreign_key_check") == []
    # (child table, column, parent table, parent column, extra condition)
    references = [
        ("orders", "customer_id", "customers", "customer_id", ""),
        ("order_items", "order_id", "orders", "order_id", ""),
        ("payments", "order_id", "orders", "order_id", ""),
        ("shipments", "order_id", "orders", "order_id", ""),
        ("service_tickets", "order_id", "orders", "order_id", ""),
        ("service_tickets", "customer_id", "customers", "customer_id", ""),
        ("legal_holds", "subject_id", "orders", "order_id", "AND c.subject_type = 'order'"),
        ("legal_holds", "subject_id", "customers", "customer_id", "AND c.subject_type = 'customer'"),
        ("site_visits", "customer_id", "customers", "customer_id", ""),
    ]
    for child, column, parent, key, extra in references:
        orphans = rows(
            db,
            f"SELECT COUNT(*) FROM {child} c LEFT JOIN {parent} p ON p.{key} = c.{column} "
            f"WHERE c.{column} IS NOT NULL AND p.{key} IS NULL {extra}",
        )[0][0]
        assert orphans == 0, f"{child}.{column}"

    def count(sql: str) -> int:
        return rows(db, sql)[0][0]

    # every order has items and a payment, at most one payment that did not fail, at most one shipment
    assert count("SELECT COUNT(*) FROM orders WHERE order_id NOT IN (SELECT order_id FROM order_items)") == 0
    assert count("SELECT COUNT(*) FROM orders WHERE order_id NOT IN (SELECT order_id FROM payments)") == 0
    assert count(
        "SELECT COUNT(*) FROM (SELECT order_id FROM payments WHERE status != 'failed' "
        "GROUP BY order_id HAVING COUNT(*) > 1)"
    ) == 0
    assert count("SELECT COUNT(*) - COUNT(DISTINCT order_id) FROM shipments") == 0


def test_customers_are_registered_before_they_buy(db: sqlite3.Connection) -> None:
    late = rows(
        db,
        "SELECT COUNT(*) FROM orders o JOIN customers c USING (customer_id) "
        "WHERE c.created_at > o.ordered_at",
    )[0][0]
    assert late == 0
    assert rows(db, "SELECT COUNT(*) FROM customers WHERE updated_at < created_at")[0][0] == 0


def test_enumerations_follow_the_policy(db: sqlite3.Connection) -> None:
    policy = load_policy()
    checked = 0
    for table in policy.tables.values():
        for column in table.columns:
            if column.values is None:
                continue
            values = {r[0] for r in rows(db, f"SELECT DISTINCT {column.name} FROM {table.name}")}
            values.discard(None) if column.nullable else None
            assert values <= set(column.values), f"{table.name}.{column.name}: {values - set(column.values)}"
            checked += 1
    assert checked >= 15
    # the realistic variety is there
    assert {r[0] for r in rows(db, "SELECT DISTINCT status FROM orders")} == set(seed.ORDER_STATUSES)
    assert {r[0] for r in rows(db, "SELECT DISTINCT method FROM payments")} == {
        "credit_card", "konbini", "bank_transfer", "cash_on_delivery"
    }
    assert {r[0] for r in rows(db, "SELECT DISTINCT category FROM order_items")} == set(seed.CATEGORY_CODES)
    assert len({r[0] for r in rows(db, "SELECT DISTINCT prefecture FROM orders")}) > 20


def test_formats(db: sqlite3.Connection) -> None:
    for (phone,) in rows(db, "SELECT recipient_phone FROM orders"):
        assert PHONE.match(phone), phone
    for (postal,) in rows(db, "SELECT postal_code FROM orders"):
        assert POSTAL.match(postal), postal
    for (email,) in rows(db, "SELECT email FROM customers"):
        assert EMAIL.match(email) and email.isascii(), email
    emails = [r[0] for r in rows(db, "SELECT email FROM customers")]
    assert len(set(emails)) == len(emails)
    assert len({e.split("@")[1] for e in emails}) >= 8
    for (name,) in rows(db, "SELECT recipient_name FROM orders"):
        family, given = name.split(" ")
        assert family and given and not name.isascii()
    assert rows(db, "SELECT COUNT(*) FROM orders WHERE address_line2 IS NULL")[0][0] > 0
    for (line2,) in rows(db, "SELECT address_line2 FROM orders WHERE address_line2 IS NOT NULL"):
        assert re.match(r"^\S+ \d{3,4}$", line2), line2
    for (line1,) in rows(db, "SELECT address_line1 FROM orders"):
        assert re.match(r"^\D+\d+-\d+-\d+$", line1), line1
    for method, brand, last4 in rows(db, "SELECT method, card_brand, card_last4 FROM payments"):
        if method == "credit_card":
            assert brand in {"visa", "mastercard", "jcb", "amex"}
            assert re.fullmatch(r"\d{4}", last4), last4
        else:
            assert brand is None and last4 is None
    for (tracking,) in rows(db, "SELECT tracking_number FROM shipments WHERE tracking_number IS NOT NULL"):
        assert re.fullmatch(r"\d{1,12}", tracking), tracking
    untracked = "SELECT COUNT(*) FROM shipments WHERE status != 'pending' AND tracking_number IS NULL"
    assert rows(db, untracked)[0][0] == 0
    for sku, category, size in rows(db, "SELECT sku, category, size FROM order_items"):
        assert re.fullmatch(r"LMX-[A-Z]{2}-\d{4}-[A-Z0-9]+", sku), sku
        if category == "footwear":
            assert re.fullmatch(r"2\d\.[05]", size), size
        else:
            assert size in {"XS", "S", "M", "L", "XL"}, size
    assert rows(db, "SELECT MIN(quantity), MIN(unit_price_jpy) FROM order_items")[0][0] >= 1
    assert rows(db, "SELECT MIN(unit_price_jpy) FROM order_items")[0][0] >= 0
    for (ip,) in rows(db, "SELECT DISTINCT client_ip FROM staff_access_log"):
        assert re.fullmatch(r"10\.20\.\d{1,3}\.\d{1,3}", ip), ip
    for (path,) in rows(db, "SELECT DISTINCT page_path FROM site_visits"):
        assert path.startswith("/") and path.isascii(), path
    assert rows(db, "SELECT COUNT(*) FROM site_visits WHERE customer_id IS NULL")[0][0] > 0


def test_timestamps_are_iso_utc_text_some_with_fractions(db: sqlite3.Connection) -> None:
    policy = load_policy()
    total = fractions = 0
    for table in policy.tables.values():
        for column in table.columns:
            if column.type != "timestamp":
                continue
            sql = f"SELECT {column.name} FROM {table.name} WHERE {column.name} IS NOT NULL"
            for (value,) in rows(db, sql):
                assert TS.match(value), f"{table.name}.{column.name}: {value!r}"
                assert parse_ts(value) <= AS_OF, f"{table.name}.{column.name} after as_of"
                total += 1
                fractions += "." in value
    assert 0.04 < fractions / total < 0.2


def test_order_numbers(db: sqlite3.Connection) -> None:
    numbers = rows(db, "SELECT order_number, ordered_at FROM orders ORDER BY order_id")
    assert len({n for n, _ in numbers}) == len(numbers)
    for number, ordered_at in numbers:
        m = ORDER_NUMBER.match(number)
        assert m, number
        # the date is the Japanese calendar day of the order
        assert m.group(1) == parse_ts(ordered_at).astimezone(JST).strftime("%Y%m%d")


def test_orders_are_consistent(db: sqlite3.Connection) -> None:
    import numpy as np

    totals = dict(
        rows(db, "SELECT order_id, SUM(quantity * unit_price_jpy) FROM order_items GROUP BY order_id")
    )
    jp = holidays.Japan(years=range(2023, 2028))
    hol = np.array(sorted(jp), dtype="datetime64[D]")
    start = AS_OF - dt.timedelta(days=3 * 365.25)
    shipments = {
        r[0]: r[1:] for r in rows(db, "SELECT order_id, status, shipped_at, delivered_at FROM shipments")
    }
    for order_id, status, ordered_at, completed_at, total, updated_at in rows(
        db, "SELECT order_id, status, ordered_at, completed_at, total_amount_jpy, updated_at FROM orders"
    ):
        assert total == totals[order_id]
        ordered = parse_ts(ordered_at)
        assert start <= ordered < AS_OF
        assert parse_ts(updated_at) >= ordered
        if status in {"completed", "cancelled", "returned"}:
            assert completed_at is not None and parse_ts(completed_at) > ordered
        else:
            assert completed_at is None, status
        ship = shipments.get(order_id)
        if status == "cancelled":
            assert ship is None
        if status in {"shipped", "delivered", "completed", "returned"}:
            assert ship is not None and ship[1] is not None, (order_id, status)
            day = np.datetime64(ordered.astimezone(JST).date(), "D")
            shipped_day = np.datetime64(parse_ts(ship[1]).astimezone(JST).date(), "D")
            assert 1 <= np.busday_count(day, shipped_day, holidays=hol) <= 3
            if ship[2] is not None:
                delivered_day = np.datetime64(parse_ts(ship[2]).astimezone(JST).date(), "D")
                assert 7 <= np.busday_count(day, delivered_day, holidays=hol) <= 15
        if status in {"delivered", "completed"}:
            assert ship[0] == "delivered" and ship[2] is not None
        if status == "returned":
            assert ship[0] == "returned"
    # recent orders are still moving
    recent = rows(db, "SELECT DISTINCT status FROM orders WHERE completed_at IS NULL")
    assert {r[0] for r in recent} <= {"placed", "shipped", "delivered"}
    # payments follow their orders
    for status, paid_at, amount, total in rows(
        db,
        "SELECT p.status, p.paid_at, p.amount_jpy, o.total_amount_jpy "
        "FROM payments p JOIN orders o USING (order_id)",
    ):
        assert amount == total
        assert (paid_at is None) == (status in {"authorized", "failed"})


def test_retention_spread_and_boundary(db: sqlite3.Connection) -> None:
    closed = [
        parse_ts(r[0]) for r in rows(db, "SELECT completed_at FROM orders WHERE completed_at IS NOT NULL")
    ]
    past = [c for c in closed if c <= BOUNDARY]
    assert 0.35 < len(past) / len(closed) < 0.65
    near = [c for c in closed if abs(c - BOUNDARY) <= dt.timedelta(days=3)]
    assert len(near) >= 5
    assert BOUNDARY in closed  # exactly on the boundary: due (<=)
    assert any(dt.timedelta(0) < c - BOUNDARY <= dt.timedelta(seconds=1) for c in closed)  # just not due
    assert any(dt.timedelta(0) < BOUNDARY - c <= dt.timedelta(seconds=1) for c in closed)  # just due
    # spread over the whole period
    years = {c.year for c in closed}
    assert len(years) >= 3


def test_past_retention_orders_are_protected_by_holds_and_open_tickets(db: sqlite3.Connection) -> None:
    boundary = BOUNDARY.strftime("%Y-%m-%d %H:%M:%S")
    active_order_hold = rows(
        db, "SELECT COUNT(*) FROM legal_holds h JOIN orders o ON o.order_id = h.subject_id "
        "WHERE h.subject_type = 'order' AND h.released_at IS NULL AND o.completed_at <= ?", boundary
    )[0][0]
    assert active_order_hold >= 1
    active_customer_hold = rows(
        db, "SELECT COUNT(*) FROM legal_holds h JOIN orders o ON o.customer_id = h.subject_id "
        "WHERE h.subject_type = 'customer' AND h.released_at IS NULL AND o.completed_at <= ?", boundary
    )[0][0]
    assert active_customer_hold >= 1
    assert rows(db, "SELECT COUNT(*) FROM legal_holds WHERE released_at IS NOT NULL")[0][0] >= 1
    assert rows(db, "SELECT COUNT(*) FROM legal_holds WHERE released_at <= placed_at")[0][0] == 0
    open_on_old = rows(
        db, "SELECT COUNT(*) FROM service_tickets t JOIN orders o USING (order_id) "
        "WHERE t.status = 'open' AND o.completed_at <= ?", boundary
    )[0][0]
    assert open_on_old >= 1


def test_service_tickets(db: sqlite3.Connection) -> None:
    tickets = rows(
        db,
        "SELECT t.order_id, t.customer_id, o.customer_id, t.status, t.subject, t.body, t.attachment_count, "
        "t.opened_at, t.closed_at, t.updated_at, o.ordered_at "
        "FROM service_tickets t LEFT JOIN orders o USING (order_id)"
    )
    linked = [t for t in tickets if t[0] is not None]
    assert len(linked) > len(tickets) / 2 and len(linked) < len(tickets)
    open_share = sum(t[3] == "open" for t in tickets) / len(tickets)
    assert 0 < open_share < 0.15
    japanese = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
    for ticket in tickets:
        order_id, customer, order_customer, status, subject, body, attachments = ticket[:7]
        opened, closed, updated, ordered = ticket[7:]
        if order_id is not None:
            assert customer == order_customer
            assert parse_ts(opened) >= parse_ts(ordered)
        assert japanese.search(subject) and japanese.search(body)
        assert 0 <= attachments <= 3
        assert (closed is None) == (status == "open")
        if closed is not None:
            assert parse_ts(closed) >= parse_ts(opened)
        assert parse_ts(updated) >= parse_ts(opened)
    bodies = [t[5] for t in tickets]
    assert any("\n" in b for b in bodies)
    # returns, exchanges and warranty claims come after the parcel arrived
    early = rows(
        db,
        "SELECT COUNT(*) FROM service_tickets t JOIN shipments s USING (order_id) "
        "WHERE t.kind IN ('return', 'exchange', 'warranty') "
        "AND (s.delivered_at IS NULL OR t.opened_at < s.delivered_at)",
    )[0][0]
    assert early == 0
    assert len({t[4] for t in tickets}) >= 6


def test_staff_access_is_benign(db: sqlite3.Connection) -> None:
    policy = load_policy()
    bh = policy.business_hours
    jp = holidays.Japan(years=range(2026, 2027))
    events = rows(
        db, "SELECT occurred_at, staff_id, staff_role, action, resource, record_id, record_count, outcome "
        "FROM staff_access_log ORDER BY event_id"
    )
    roles: dict[str, str] = {}
    denied: dict[str, list[dt.datetime]] = defaultdict(list)
    previous = None
    for occurred_at, staff_id, role, action, resource, record_id, count, outcome in events:
        at = parse_ts(occurred_at)
        assert AS_OF - dt.timedelta(days=121) <= at < AS_OF
        assert previous is None or at >= previous
        previous = at
        local = at.astimezone(JST)
        assert local.weekday() < 5 and local.date() not in jp, occurred_at
        assert bh.start <= local.time() < bh.end, occurred_at
        assert re.fullmatch(r"S\d{4}", staff_id)
        assert roles.setdefault(staff_id, role) == role  # one role per staff member
        category = policy.data_categories[resource]
        grant = policy.roles[role]
        if action in {"update", "delete"}:
            assert category in grant.write, (role, action, resource)
        else:
            assert category in grant.read, (role, action, resource)
        if action in {"view", "update"}:
            assert count == 1 and record_id is not None
        else:
            assert action in {"search", "export"} and record_id is None and 1 <= count <= 200
        if outcome == "denied":
            denied[staff_id].append(at)
    assert "engineering" not in set(roles.values())
    assert {"customer_service", "logistics", "finance", "security_admin"} <= set(roles.values())
    assert 10 <= len(roles) <= 20
    for times in denied.values():
        for i in range(len(times) - 4):
            assert times[i + 4] - times[i] > dt.timedelta(minutes=10)
    n_denied = sum(len(t) for t in denied.values())
    assert 0 < n_denied < len(events) * 0.02
    actions = {r[0] for r in rows(db, "SELECT DISTINCT action FROM staff_access_log")}
    assert actions == {"view", "search", "export", "update"}


def test_no_card_numbers_and_emails_only_in_customers(db: sqlite3.Connection) -> None:
    policy = load_policy()
    for table in policy.tables.values():
        for column in table.columns:
            if column.type != "string":
                continue
            pattern = SEPARATED_DIGITS if column.free_text else DIGIT_RUN
            sql = f"SELECT {column.name} FROM {table.name} WHERE {column.name} IS NOT NULL"
            for (value,) in rows(db, sql):
                assert not card_like(value, pattern), f"{table.name}.{column.name}"
                if (table.name, column.name) != ("customers", "email"):
                    assert "@" not in value, f"{table.name}.{column.name}"


def test_luhn_helper_finds_a_card_number() -> None:
    assert card_like("カード番号は4111111111111111です")
    assert card_like("4111 1111 1111 1111", SEPARATED_DIGITS)
    assert not card_like("090-1234-5678 と 123456789012", SEPARATED_DIGITS)


def test_same_seed_same_data_other_seed_other_data(
    tmp_path: Path, seeded: tuple[Path, dict[str, int]]
) -> None:
    def dump(path: Path) -> dict[str, list[tuple]]:
        conn = sqlite3.connect(path)
        try:
            return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in seed.TABLES}
        finally:
            conn.close()

    again = tmp_path / "again.db"
    seed.seed_store(sqlite_target(str(again)), orders=ORDERS, as_of=AS_OF, seed=7)
    assert dump(again) == dump(seeded[0])
    other = tmp_path / "other.db"
    seed.seed_store(sqlite_target(str(other)), orders=ORDERS, as_of=AS_OF, seed=8)
    assert dump(other)["orders"] != dump(seeded[0])["orders"]


def test_create_schema_and_refusals(tmp_path: Path) -> None:
    target = sqlite_target(str(tmp_path / "schema.db"))
    seed.create_schema(target)
    conn = sqlite3.connect(target.path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        conn.close()
    assert tables == set(seed.TABLES)
    assert {"orders_completed_at", "staff_access_log_occurred_at", "site_visits_visited_at"} <= indexes
    with pytest.raises(ConfigurationError, match="already has the table"):
        seed.create_schema(target)
    with pytest.raises(ConfigurationError, match="already has the table"):
        seed.seed_store(target, orders=10, as_of=AS_OF)
    counts = seed.seed_store(target, orders=40, as_of=AS_OF, create=False)
    assert counts["orders"] == 40
    with pytest.raises(ConfigurationError, match="already has rows"):
        seed.seed_store(target, orders=10, as_of=AS_OF, create=False)
    with pytest.raises(ConfigurationError, match="lacks the table"):
        seed.seed_store(sqlite_target(str(tmp_path / "empty.db")), orders=10, as_of=AS_OF, create=False)


def test_bad_arguments(tmp_path: Path) -> None:
    target = sqlite_target(str(tmp_path / "bad.db"))
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        seed.seed_store(target, orders=10, as_of=dt.datetime(2026, 11, 24))
    with pytest.raises(ConfigurationError, match="orders"):
        seed.seed_store(target, orders=0, as_of=AS_OF)
    with pytest.raises(ConfigurationError, match="years"):
        seed.seed_store(target, orders=10, as_of=AS_OF, years=0)


@pytest.mark.parametrize("orders", [1, 5])
def test_tiny_stores(tmp_path: Path, orders: int) -> None:
    path = tmp_path / f"tiny{orders}.db"
    counts = seed.seed_store(sqlite_target(str(path)), orders=orders, as_of=AS_OF, seed=orders)
    assert counts["orders"] == orders and counts["customers"] >= 1
    conn = sqlite3.connect(path)
    try:
        late = conn.execute(
            "SELECT COUNT(*) FROM orders o JOIN customers c USING (customer_id) WHERE c.created_at > o.ordered_at"
        ).fetchone()[0]
        assert late == 0
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def test_as_of_in_another_zone_is_the_same_instant(tmp_path: Path) -> None:
    import pendulum

    as_of_values = [AS_OF, AS_OF.astimezone(JST), pendulum.datetime(2026, 11, 24, 9, tz="Asia/Tokyo")]
    dumps = []
    for i, as_of in enumerate(as_of_values):
        path = tmp_path / f"zone{i}.db"
        seed.seed_store(sqlite_target(str(path)), orders=30, as_of=as_of)
        conn = sqlite3.connect(path)
        try:
            dumps.append(conn.execute("SELECT * FROM orders").fetchall())
        finally:
            conn.close()
    assert dumps[0] == dumps[1] == dumps[2]


def test_format_timestamps_matches_python() -> None:
    import numpy as np

    values = [
        dt.datetime(2026, 11, 24, tzinfo=dt.UTC),
        dt.datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=dt.UTC),
        dt.datetime(2000, 3, 1, 0, 0, 0, 1, tzinfo=dt.UTC),
        dt.datetime(1969, 12, 31, 12, 30, 5, tzinfo=dt.UTC),
    ]
    us = np.array([seed._to_us(v) for v in values], dtype=np.int64)
    expected = [
        v.strftime("%Y-%m-%d %H:%M:%S") + (f".{v.microsecond:06d}" if v.microsecond else "") for v in values
    ]
    assert seed.format_timestamps(us).to_pylist() == expected
    null = np.array([False, True, False, False])
    pg = seed.format_timestamps(us, null, "+00").to_pylist()
    assert pg == [expected[0] + "+00", None, expected[2] + "+00", expected[3] + "+00"]


def test_copy_payload_escapes_text() -> None:
    import numpy as np
    import pyarrow as pa

    chunk = (
        seed._Chunk("service_tickets")
        .integer("ticket_id", np.array([1, 2], dtype=np.int64), np.array([False, True]))
        .text("body", pa.array(["一行目\n二行目\tタブ\\バックスラッシュ", None]))
        .timestamp("opened_at", np.array([seed._to_us(AS_OF), 0], dtype=np.int64), np.array([False, True]))
    )
    payload = seed._copy_payload(chunk).decode("utf-8")
    assert payload == (
        "1\t一行目\\n二行目\\tタブ\\\\バックスラッシュ\t2026-11-24 00:00:00+00\n\\N\t\\N\t\\N\n"
    )


def test_contract_statements_and_deferred_foreign_keys() -> None:
    statements = seed.contract_statements()
    assert sum(s.startswith("CREATE TABLE") for s in statements) == len(seed.TABLES)
    assert not any("--" in s for s in statements)
    orders = next(s for s in statements if s.startswith("CREATE TABLE orders"))
    ddl, keys, foreign = seed._deferred_constraints(orders)
    assert not re.search(r"REFERENCES|PRIMARY|UNIQUE", ddl)
    assert "order_number     TEXT        NOT NULL," in ddl
    assert keys == [
        "ALTER TABLE orders ADD PRIMARY KEY (order_id)",
        "ALTER TABLE orders ADD UNIQUE (order_number)",
    ]
    assert foreign == ["ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers (customer_id)"]


def test_cli_prints_counts_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cli.db"
    argv = ["--db", f"sqlite:///{path}", "--orders", "60", "--as-of", "2026-11-24", "--seed", "3"]
    assert seed.main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"^orders\s+60$", out, re.MULTILINE)
    conn = sqlite3.connect(path)
    try:
        email = conn.execute("SELECT email FROM customers LIMIT 1").fetchone()[0]
        name = conn.execute("SELECT recipient_name FROM orders LIMIT 1").fetchone()[0]
        newest = conn.execute("SELECT MAX(ordered_at) FROM orders").fetchone()[0]
    finally:
        conn.close()
    assert email not in out and name not in out
    assert parse_ts(newest) < AS_OF
