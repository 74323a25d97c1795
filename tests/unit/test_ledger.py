"""The purge ledger as evidence: hash chain, tombstone files, anchors, and no purged values."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lomevexi_governance import purge
from lomevexi_governance.errors import IntegrityError
from lomevexi_governance.ledger import Head, Ledger
from lomevexi_governance.reports import write_json_atomic
from lomevexi_governance.settings import sqlite_target
from lomevexi_governance.storage import storage_for

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DDL = (ROOT / "include/lomevexi_governance/sql/store_schema.sql").read_text()
D = dt.datetime(2026, 11, 23, 16, tzinfo=dt.UTC)


def _ts(d: dt.datetime) -> str:
    return d.strftime("%Y-%m-%d %H:%M:%S")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Three old orders (one with items), one recent; an old site visit."""
    path = tmp_path / "store.db"
    conn = sqlite3.connect(path)
    conn.executescript(DDL)
    conn.execute("INSERT INTO customers VALUES (1, 'a@example.jp', ?, ?)", (_ts(D), _ts(D)))
    for oid, days in ((1, 800), (2, 700), (3, 600), (4, 10)):
        done = _ts(D - dt.timedelta(days=days))
        conn.execute(
            "INSERT INTO orders VALUES (?, ?, 1, 'completed', ?, ?, 100, ?, '090-1234-5678', '100-0001', "
            "'東京都', '千代田区', '1-1', NULL, ?)",
            (oid, f"LMX-SECRET-{oid}", done, done, f"秘密 太郎{oid}", done),
        )
    conn.execute("INSERT INTO order_items VALUES (7001, 1, 'SKU', 'tops', 'tee', 'M', 'red', 1, 100)")
    conn.execute(
        "INSERT INTO site_visits VALUES (1, 'sess-secret', NULL, 'mobile', 'Safari', '/x', ?)",
        (_ts(D - dt.timedelta(days=200)),),
    )
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def backup_root(tmp_path: Path) -> Path:
    return tmp_path / "backups"


def _purge(store: Path, backup_root: Path, keyring, policy, run_id: str, **kw):
    return purge.run_purge(
        policy=policy,
        target=sqlite_target(str(store)),
        storage=storage_for(str(backup_root)),
        keys=keyring,
        logical_date=kw.pop("at", D),
        run_id=run_id,
        dry_run=kw.pop("dry_run", False),
        check_guard=False,
        **kw,
    )


def _lines(backup_root: Path) -> list[str]:
    return (backup_root / purge.LEDGER_REL).read_text().splitlines()


def _write_lines(backup_root: Path, lines: list[str]) -> None:
    (backup_root / purge.LEDGER_REL).write_text("\n".join(lines) + "\n")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lomevexi_governance.purge", "verify-ledger", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_entries_chain_and_carry_the_evidence(store, backup_root, keyring, policy) -> None:
    _purge(store, backup_root, keyring, policy, "dry", dry_run=True)
    out = _purge(store, backup_root, keyring, policy, "real")
    entries = Ledger(storage_for(str(backup_root)), purge.LEDGER_REL).entries()
    assert [(e["event"], e["dry_run"]) for e in entries] == [
        ("purge_begin", True),
        ("purge_complete", True),
        ("purge_begin", False),
        ("purge_complete", False),
    ]
    begin = entries[2]
    assert begin["run_id"] == "real" and begin["logical_date"] == D.isoformat()
    assert {(i["rule"], i["table"], i["count"]) for i in begin["items"]} >= {
        ("orders: completed_at + 365 days <= logical date", "orders", 3),
        ("cascade of orders", "order_items", 1),
        ("site_visits: visited_at + 90 days <= logical date", "site_visits", 1),
    }
    assert set(begin["tombstones"]) == {"orders", "order_items", "site_visits"}
    assert begin["rules"]["orders"]["days"] == 365
    assert entries[3]["deleted"]["orders"] == 3 and entries[3]["shredded_keys"] == []
    assert out.ledger_head == {"seq": 4, "hash": entries[3]["hash"]}
    result = purge.verify_ledger(storage_for(str(backup_root)), [Head(**out.ledger_head)])
    assert result["ok"] and result["entries"] == 4 and result["tombstone_files"] == 3
    assert result["incomplete_attempts"] == []
    cli = _cli("--backup-root", str(backup_root))
    assert cli.returncode == 0, cli.stderr


def test_no_purged_value_in_any_evidence(store, backup_root, keyring, policy, tmp_path) -> None:
    out = _purge(store, backup_root, keyring, policy, "real")
    s = purge.summary(out, dag_id="retention_purge", verification={"ok": True})
    texts = [p.read_text() for p in backup_root.joinpath("ledger").rglob("*") if p.is_file()]
    texts += [json.dumps(s), purge.render_html(s)]
    for text in texts:
        for secret in ("LMX-SECRET", "秘密", "sess-secret", "090-1234-5678", "a@example.jp"):
            assert secret not in text
        assert '"7001"' not in text and ":7001" not in text  # the item's primary key, only ever hashed
    hasher = keyring.tombstone_hasher()
    tombs = purge.load_tombstones(storage_for(str(backup_root)), keyring)
    assert tombs["order_items"] == {hasher("order_items", 7001)}
    assert tombs["orders"] == {hasher("orders", i) for i in (1, 2, 3)}


def test_an_edited_entry_is_detected(store, backup_root, keyring, policy) -> None:
    _purge(store, backup_root, keyring, policy, "real")
    lines = _lines(backup_root)
    entry = json.loads(lines[0])
    entry["counts"]["orders"] = 2  # someone lowers a count
    lines[0] = json.dumps(entry)
    _write_lines(backup_root, lines)
    with pytest.raises(IntegrityError, match="entry 1 was altered"):
        purge.verify_ledger(storage_for(str(backup_root)))
    with pytest.raises(IntegrityError):
        purge.load_tombstones(storage_for(str(backup_root)), keyring)
    cli = _cli("--backup-root", str(backup_root))
    assert cli.returncode == 1 and "altered" in cli.stderr


def test_a_rehashed_entry_breaks_the_link_of_the_next(store, backup_root, keyring, policy) -> None:
    from lomevexi_governance.ledger import entry_hash

    _purge(store, backup_root, keyring, policy, "real")
    lines = _lines(backup_root)
    entry = json.loads(lines[0])
    entry["counts"]["orders"] = 2
    entry["hash"] = entry_hash(entry)  # the forger recomputes the entry's own hash
    lines[0] = json.dumps(entry)
    _write_lines(backup_root, lines)
    with pytest.raises(IntegrityError, match="entry 2 does not link"):
        purge.verify_ledger(storage_for(str(backup_root)))


def test_a_removed_entry_is_detected(store, backup_root, keyring, policy) -> None:
    _purge(store, backup_root, keyring, policy, "one")
    _purge(store, backup_root, keyring, policy, "two")
    lines = _lines(backup_root)
    assert len(lines) == 4
    _write_lines(backup_root, lines[:1] + lines[2:])
    with pytest.raises(IntegrityError, match="missing or out of order"):
        purge.verify_ledger(storage_for(str(backup_root)))


def test_a_truncated_tail_is_detected_by_the_heads_in_the_reports(
    store, backup_root, keyring, policy, tmp_path
) -> None:
    report_root = tmp_path / "reports"
    for run_id in ("one", "two"):
        out = _purge(store, backup_root, keyring, policy, run_id)
        write_json_atomic(
            report_root / "retention_purge" / run_id / "summary.json",
            purge.summary(out, dag_id="retention_purge", verification={"ok": True}),
        )
    assert _cli("--backup-root", str(backup_root), "--report-root", str(report_root)).returncode == 0
    _write_lines(backup_root, _lines(backup_root)[:2])  # drop run "two" entirely: still a valid chain
    assert purge.verify_ledger(storage_for(str(backup_root)))["ok"]
    anchors = purge.anchors_from_reports(report_root)
    with pytest.raises(IntegrityError, match="truncated"):
        purge.verify_ledger(storage_for(str(backup_root)), anchors)
    cli = _cli("--backup-root", str(backup_root), "--report-root", str(report_root))
    assert cli.returncode == 1 and "truncated" in cli.stderr


def test_an_edited_or_removed_tombstone_file_is_detected(store, backup_root, keyring, policy) -> None:
    _purge(store, backup_root, keyring, policy, "real")
    storage = storage_for(str(backup_root))
    ref = json.loads(_lines(backup_root)[0])["tombstones"]["orders"]
    path = backup_root / ref["path"]
    doc = json.loads(path.read_text())
    doc["hashes"] = doc["hashes"][1:]  # "un-purge" one order
    doc["count"] -= 1
    path.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="altered"):
        purge.load_tombstones(storage, keyring)
    with pytest.raises(IntegrityError, match="altered"):
        purge.verify_ledger(storage)
    path.unlink()
    with pytest.raises(IntegrityError, match="missing"):
        purge.verify_ledger(storage)


def test_purge_fails_closed_on_a_tampered_ledger(store, backup_root, keyring, policy) -> None:
    _purge(store, backup_root, keyring, policy, "one", at=D - dt.timedelta(days=250))  # orders 1 and 2
    lines = _lines(backup_root)
    _write_lines(backup_root, lines[1:])
    with pytest.raises(IntegrityError):
        _purge(store, backup_root, keyring, policy, "two")
    conn = sqlite3.connect(store)
    assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 2  # order 3 and the recent one


def test_a_crashed_attempt_is_reported_as_incomplete_not_as_tampering(store, backup_root, keyring, policy) -> None:
    def crash(where: str) -> None:
        if where == "after_begin":
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        _purge(store, backup_root, keyring, policy, "one", fault=crash)
    result = purge.verify_ledger(storage_for(str(backup_root)))
    assert result["ok"] and [a["run_id"] for a in result["incomplete_attempts"]] == ["one"]
    _purge(store, backup_root, keyring, policy, "one")
    result = purge.verify_ledger(storage_for(str(backup_root)))
    assert len(result["incomplete_attempts"]) == 1  # the crashed attempt stays visible as evidence
    assert result["entries"] == 3
