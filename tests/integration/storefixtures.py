"""Hand-built store contents with the awkward values real stores hold.

Japanese text, emoji, NULLs, fractional-second timestamps; optional planted minimization
problems (card numbers in several notations, a full number in card_last4, a malformed phone,
an e-mail address in a name field, extra columns).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 23, 16, 0, tzinfo=UTC)

# Luhn-valid test numbers, as they would be typed
PLANTED_CARDS = {
    "4111111111111111": "カード番号は4111111111111111です。確認をお願いします🙏",
    "5555555555554444": "支払いカード 5555 5555 5555 4444 が使えません",
    "378282246310005": "アメックス 3782-822463-10005 で決済しました",
    "3530111333300000": "ＪＣＢ：３５３０－１１１３－３３３０－００００ です",
}
PLANTED_LAST4 = "4012888888881881"


def _ts(days: float, micro: int = 0) -> dt.datetime:
    return (NOW - dt.timedelta(days=days)).replace(microsecond=micro)


def store_rows(n_orders: int = 60, planted: bool = False) -> dict[str, list[dict[str, Any]]]:
    names = ["山田 花子", "佐藤 太郎", "鈴木 一郎", "髙橋 美咲", "渡邊 健", "小林 さくら🌸"]
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in (
        "customers", "orders", "order_items", "payments", "shipments", "service_tickets", "legal_holds",
        "staff_access_log")}
    for c in range(1, 11):
        rows["customers"].append({"customer_id": c, "email": f"user{c}@example.jp",
                                  "created_at": _ts(1000, 123456 * (c % 2)), "updated_at": _ts(30)})
    for o in range(1, n_orders + 1):
        completed = None if o % 7 == 0 else _ts(700 - o * 10, 500 * o if o % 3 == 0 else 0)
        rows["orders"].append({
            "order_id": o, "order_number": f"LMX-20250101-{o:06d}", "customer_id": 1 + o % 10,
            "status": "placed" if completed is None else "completed", "ordered_at": _ts(720 - o * 10),
            "completed_at": completed, "total_amount_jpy": 1000 * o, "recipient_name": names[o % len(names)],
            "recipient_phone": "090-1234-5678" if o % 2 else "03-1234-5678", "postal_code": "150-0041",
            "prefecture": "東京都", "city": "渋谷区", "address_line1": f"神南1-{o}-3",
            "address_line2": None if o % 2 else f"グランメゾン渋谷 {o:03d}号室",
            "updated_at": _ts(5, 999999 if o == 1 else 0),
        })
        rows["order_items"].append({"order_item_id": o, "order_id": o, "sku": f"LMX-TP-{o:04d}", "category": "tops",
                                    "style": "リネンシャツ", "size": "M", "color": "紺", "quantity": 1,
                                    "unit_price_jpy": 1000 * o})
        rows["payments"].append({"payment_id": o, "order_id": o, "method": "credit_card" if o % 2 else "konbini",
                                 "card_brand": "visa" if o % 2 else None, "card_last4": "1881" if o % 2 else None,
                                 "amount_jpy": 1000 * o, "status": "captured", "paid_at": _ts(719 - o * 10),
                                 "updated_at": _ts(5)})
        rows["shipments"].append({"shipment_id": o, "order_id": o, "carrier": "yamato",
                                  "tracking_number": f"{400000000000 + o}", "status": "delivered",
                                  "shipped_at": _ts(718 - o * 10), "delivered_at": _ts(710 - o * 10),
                                  "updated_at": _ts(5)})
    for t in range(1, 9):
        closed = t % 4 != 0
        rows["service_tickets"].append({
            "ticket_id": t, "customer_id": 1 + t % 10, "order_id": t * 5 if t % 3 else None, "kind": "inquiry",
            "status": "closed" if closed else "open", "subject": "サイズ交換について",
            "body": "Mサイズを注文しましたが、Lサイズに交換できますか？よろしくお願いいたします😊",
            "attachment_count": t % 3, "opened_at": _ts(400 - t), "closed_at": _ts(390 - t) if closed else None,
            "updated_at": _ts(390 - t),
        })
    rows["legal_holds"] = [
        {"hold_id": 1, "subject_type": "order", "subject_id": 2, "reason": "訴訟対応", "placed_at": _ts(500), "released_at": None},
        {"hold_id": 2, "subject_type": "customer", "subject_id": 5, "reason": "税務調査", "placed_at": _ts(500), "released_at": _ts(10)},
    ]
    for e in range(1, 21):
        rows["staff_access_log"].append({
            "event_id": e, "occurred_at": _ts(3 - e / 10, 250000), "staff_id": f"S{e % 4:04d}",
            "staff_role": "customer_service", "action": "view", "resource": "orders", "record_id": e,
            "record_count": 1, "client_ip": "10.20.0.5", "outcome": "allowed",
        })
    if planted:
        for i, (_num, text) in enumerate(PLANTED_CARDS.items()):
            rows["service_tickets"][i]["body"] = text
        rows["payments"][0]["card_last4"] = PLANTED_LAST4
        rows["orders"][2]["recipient_phone"] = "090-1234-567"
        rows["orders"][4]["recipient_name"] = "山田 yamada.hanako@example.jp"
    return rows


def to_sql_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        return text + (f".{value.microsecond:06d}" if value.microsecond else "")
    return value


def load_sqlite(path: str, rows: dict[str, list[dict[str, Any]]], extra_columns: bool = False) -> None:
    import sqlite3

    conn = sqlite3.connect(path)
    for table, data in rows.items():
        if not data:
            continue
        cols = list(data[0])
        conn.executemany(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [tuple(to_sql_value(r[c]) for c in cols) for r in data],
        )
    if extra_columns:
        conn.execute("ALTER TABLE orders ADD COLUMN marketing_segment TEXT DEFAULT 'ファッション好き'")
        conn.execute("ALTER TABLE customers ADD COLUMN birthday TEXT DEFAULT '1990-01-01'")
    conn.commit()
    conn.close()


def load_postgres(uri: str, rows: dict[str, list[dict[str, Any]]], extra_columns: bool = False) -> None:
    import psycopg

    with psycopg.connect(uri) as conn:
        for table, data in rows.items():
            if not data:
                continue
            cols = list(data[0])
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})",
                    [tuple(r[c] for c in cols) for r in data],
                )
        if extra_columns:
            conn.execute("ALTER TABLE orders ADD COLUMN marketing_segment TEXT DEFAULT 'ファッション好き'")
            conn.execute("ALTER TABLE customers ADD COLUMN birthday TEXT DEFAULT '1990-01-01'")
