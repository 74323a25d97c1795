"""The Governance view's app (plugins/governance_view) through FastAPI's TestClient.

The fixture site is what the DAGs leave behind, produced with the library's own code on a
tiny SQLite store full of customer data (names, e-mail addresses, phone numbers, addresses,
card numbers typed into tickets): two real recovery points (signed, encrypted; the first
through the DAG's task functions, with the Great Expectations gate and its Data Docs), a real
verification, a real purge with its hash-chained ledger, tombstones and report, a real access
audit, and drill history entries appended to the real drill ledger.

Authentication is Airflow's own: tokens come from the configured auth manager (the simple
auth manager) and are checked by ``airflow.api_fastapi.core_api.security.get_user``. Only the
revoked-token lookup (a metadata-database query) is replaced by an in-memory set; the e2e
test exercises the real one.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import create_sqlite_store
from tests.integration.storefixtures import PLANTED_CARDS, PLANTED_LAST4, load_sqlite, store_rows

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))  # as Airflow does for its plugins folder

D1 = dt.datetime(2026, 11, 22, 16, tzinfo=dt.timezone.utc)
D2 = dt.datetime(2026, 11, 23, 16, tzinfo=dt.timezone.utc)
RP1, RP2 = "rp-20261122T160000Z", "rp-20261123T160000Z"
BACKUP_RUN = "scheduled__2026-11-23T16:00:00+00:00"
BACKUP_RUN_1 = "scheduled__2026-11-22T16:00:00+00:00"
PURGE_RUN = "asset_triggered__2026-11-23T16:05:00+00:00"
DRILL_RUNS = [f"scheduled__2026-11-{d:02d}T18:00:00+00:00" for d in (8, 15, 22)]
AUDIT_RUN = "scheduled__2026-11-23T21:00:00+00:00"
#: customer values in the store (and a secret) that must never appear in any response
FORBIDDEN = [
    *PLANTED_CARDS,
    PLANTED_LAST4,
    "5555 5555 5555 4444",
    "山田",
    "佐藤",
    "花子",
    "user1@example.jp",
    "@example.jp",
    "yamada.hanako",
    "090-1234-5678",
    "03-1234-5678",
    "神南",
    "グランメゾン",
    "渋谷区",
    "150-0041",
    "LMX-20250101-",
    "リネンシャツ",
    "Mサイズを注文",
    "訴訟対応",
    "10.20.0.5",
    "400000000001",
]


@dataclass
class Site:
    root: Path
    backup_root: Path
    report_root: Path
    root_key_b64: str
    backup_folder: str
    purge_folder: str
    drill_folders: list[str]
    audit_folder: str


def _folder(run_id: str) -> str:
    from lomevexi_governance.reports import path_safe

    return path_safe(run_id)


def _build_site(root: Path) -> Site:
    """Run the library the way the DAGs do and keep what they wrote."""
    from lomevexi_governance import backup, purge
    from lomevexi_governance import recovery_points as rp
    from lomevexi_governance.audit import job
    from lomevexi_governance.audit.periods import Period
    from lomevexi_governance.keys import LocalKeyring
    from lomevexi_governance.ledger import Ledger
    from lomevexi_governance.policy import load_policy
    from lomevexi_governance.reports import write_json_atomic, write_text_atomic
    from lomevexi_governance.restore import render_html as drill_html
    from lomevexi_governance.runtime import TaskEnv
    from lomevexi_governance.settings import sqlite_target
    from lomevexi_governance.storage import storage_for

    backup_root, report_root = root / "backups", root / "reports"
    store = create_sqlite_store(root / "store.db")
    load_sqlite(str(store), store_rows(n_orders=40, planted=True))  # tickets name orders up to 40
    root_key = os.urandom(32)
    keys = LocalKeyring(root / "kms" / "keyring.db", root_key)
    policy = load_policy()
    storage = storage_for(str(backup_root))
    target = sqlite_target(str(store), "store_db")

    # the older point: the library alone (no GX gate), verified
    backup.run_backup(policy=policy, target=target, storage=storage, keys=keys, logical_date=D1, run_id=BACKUP_RUN_1)
    rp.verify_point(storage, keys, RP1, by=BACKUP_RUN_1)

    # the newer point: order_backup's own tasks (GX gate, Data Docs, verification, summary.json)
    conn = types.SimpleNamespace(
        conn_id="governance_kms",
        password=base64.b64encode(root_key).decode(),
        extra_dejson={"backend": "local", "keyring_path": str(root / "kms" / "keyring.db")},
    )
    env = TaskEnv(
        dag_id="order_backup",
        run_id=BACKUP_RUN,
        logical_date=D2,
        backup_root=str(backup_root),
        report_root=str(report_root),
        store=target,
        kms_connection=conn,
    )
    outcome = backup.write_task(env)
    verified = backup.verify_task(env, outcome)
    expired = backup.expire_task(env)
    backup.report_task(env, outcome, verified, expired)
    # a later check of the older point found a problem (recorded as the DAGs record it)
    rp.record(
        storage,
        "verifications",
        RP1,
        {
            "recovery_point_id": RP1,
            "ok": False,
            "by": "manual__check",
            "verified_at": D2.isoformat(),
            "error": f"recovery point {RP1!r}: file data/orders/x.parquet does not match its manifest",
        },
    )

    # the purge: the real one (no guard: the test store is not the point's store), report and evidence
    out = purge.run_purge(
        policy=policy,
        target=target,
        storage=storage,
        keys=keys,
        logical_date=D2,
        run_id=PURGE_RUN,
        dry_run=False,
        check_guard=False,
    )
    verification = purge.verify_ledger(storage)
    s = purge.summary(out, dag_id="retention_purge", verification=verification)
    purge_dir = report_root / "retention_purge" / _folder(PURGE_RUN)
    write_json_atomic(purge_dir / "summary.json", s)
    write_text_atomic(purge_dir / "report.html", purge.render_html(s))

    # drills: history entries in the real drill ledger, the catalog record, summary + report
    history = Ledger(storage_for(str(report_root)), "restore_drill/history.jsonl")
    for i, run_id in enumerate(DRILL_RUNS):
        status = "FAILED" if i == 1 else "SUCCESSFUL"
        rto, rpo = (None, None) if status == "FAILED" else (120.5 + 60 * i, 7200.0 + 3600 * i)
        tables = {"orders": {"expected_rows": 40, "restored_rows": 40, "checksums": "ok", "rows_ok": True}}
        summary = {
            "dag_id": "restore_drill",
            "run_id": run_id,
            "status": status,
            "recovery_point_id": RP2,
            "triggered_by": "schedule",
            "verification": "full",
            "rto_seconds": rto,
            "rpo_seconds": rpo,
            "rows_restored": None if rto is None else 40,
            "rows_expected": 40,
            "tables": tables,
            "started_at": D2.isoformat(),
            "finished_at": (D2 + dt.timedelta(minutes=3)).isoformat(),
            "failure": {"step": "restore_tables", "status": "FAILED", "error": "scratch database unreachable"}
            if status == "FAILED"
            else None,
            "shredded_partitions_skipped": [],
            "params": {"recovery_point": "latest"},
        }
        entry = history.append(
            {
                k: summary[k]
                for k in (
                    "dag_id",
                    "run_id",
                    "recovery_point_id",
                    "status",
                    "triggered_by",
                    "rto_seconds",
                    "rpo_seconds",
                    "rows_restored",
                    "tables",
                )
            }
            | {"failure": summary["failure"] and {"step": "restore_tables", "error": "scratch database unreachable"}}
        )
        summary["history"] = {"seq": entry["seq"], "hash": entry["hash"]}
        drill_dir = report_root / "restore_drill" / _folder(run_id)
        write_json_atomic(drill_dir / "summary.json", summary)
        write_text_atomic(drill_dir / "report.html", drill_html(summary))
        rp.record(
            storage,
            "drills",
            RP2,
            {
                "recovery_point_id": RP2,
                "run_id": run_id,
                "status": status,
                "finished_at": summary["finished_at"],
                "rto_seconds": rto,
                "rpo_seconds": rpo,
                "rows_restored": summary["rows_restored"],
                "failure": None,
            },
        )
    # what a drill leaves behind that must never be served: the restored copy, its state files
    shutil.copy(store, report_root / "restore_drill" / _folder(DRILL_RUNS[-1]) / "restored.sqlite")
    (report_root / "restore_drill" / _folder(DRILL_RUNS[-1]) / "state").mkdir()
    shutil.copy(store, report_root / "restore_drill" / _folder(DRILL_RUNS[-1]) / "state" / "restore.json")

    # the access audit: the real job functions over the store's staff access log
    run = {"run_id": AUDIT_RUN, "dag_id": "access_audit", "logical_date": D2, "triggered_by": "schedule"}
    periods = [
        job.audit_period(
            target=target, policy=policy, period=p, report_root=report_root, run=run, airflow_audit_file=None
        )
        for p in (
            Period("daily", dt.date(2026, 11, 22), dt.date(2026, 11, 22)),
            Period("custom", dt.date(2026, 11, 20), dt.date(2026, 11, 23)),
        )
    ]
    job.write_run_summary(
        report_root=report_root,
        run=run,
        params={},
        periods=periods,
        airflow_audit_file=None,
        alerts={"status": "not configured", "high_findings": 0, "sent": [], "failed": []},
    )

    # a secret next to the roots, for the path-traversal tests
    (root / "outside-secret.txt").write_text("TOP-SECRET-OUTSIDE")
    return Site(
        root,
        backup_root,
        report_root,
        base64.b64encode(root_key).decode(),
        _folder(BACKUP_RUN),
        _folder(PURGE_RUN),
        [_folder(r) for r in DRILL_RUNS],
        _folder(AUDIT_RUN),
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    started = time.monotonic()
    built = _build_site(tmp_path_factory.mktemp("governance_site"))
    print(f"governance fixture site built in {time.monotonic() - started:.1f}s")
    return built


# -- Airflow auth ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_manager():
    from airflow.api_fastapi.app import create_auth_manager

    return create_auth_manager()


@pytest.fixture
def revoked(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Revoked token ids, in memory instead of the metadata database."""
    from airflow.models.revoked_token import RevokedToken

    ids: set[str] = set()
    monkeypatch.setattr(RevokedToken, "is_revoked", classmethod(lambda cls, jti, session=None: jti in ids))
    return ids


def token(auth_manager: Any, user: str = "compliance", role: str = "viewer", **kw: Any) -> str:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return auth_manager.generate_jwt(SimpleAuthManagerUser(username=user, role=role), **kw)


@pytest.fixture
def client(site: Site, monkeypatch: pytest.MonkeyPatch, revoked: set[str], auth_manager: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from governance_view.app import create_app

    monkeypatch.setenv("AIRFLOW_VAR_GOVERNANCE_BACKUP_ROOT", str(site.backup_root))
    monkeypatch.setenv("AIRFLOW_VAR_GOVERNANCE_REPORT_ROOT", str(site.report_root))
    with TestClient(create_app()) as c:
        yield c


@pytest.fixture
def auth(auth_manager: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(auth_manager)}"}


API = [
    "/api/me",
    "/api/overview",
    "/api/recovery-points",
    f"/api/recovery-points/{RP2}",
    "/api/validations",
    "/api/purge-ledger",
    "/api/drills",
    "/api/audits",
    "/api/runs",
    f"/api/runs/order_backup/{BACKUP_RUN}",
]
PAGES = ["/", f"/recovery-points/{RP2}", f"/runs/order_backup/{BACKUP_RUN}"]


# -- access ----------------------------------------------------------------------------------


def test_anonymous_requests_are_refused(client: Any, site: Site) -> None:
    files = [
        f"/files/retention_purge/{site.purge_folder}/report.html",
        f"/files/order_backup/{site.backup_folder}/data-docs/index.html",
        "/audits/daily/2026-11-22/report.html",
        f"/data-docs/{site.backup_folder}",
    ]
    for path in API + PAGES + files:
        r = client.get(path)
        assert r.status_code == 401, (path, r.status_code)
        assert RP2 not in r.text and "rp-" not in r.text
    page = client.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 401 and "Sign in" in page.text
    assert client.get("/api/recovery-points").json() == {"detail": "Not authenticated"}


def test_bad_tokens_are_refused(client: Any, auth_manager: Any, revoked: set[str]) -> None:
    import jwt

    assert client.get("/api/me", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403
    forged = jwt.encode({"sub": "admin", "role": "admin", "exp": time.time() + 600}, "another-secret-" * 5, "HS512")
    assert client.get("/api/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 403
    expired = token(auth_manager, expiration_time_in_seconds=-120)
    assert client.get("/api/me", headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    good = token(auth_manager)
    assert client.get("/api/me", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    revoked.add(jwt.decode(good, options={"verify_signature": False})["jti"])
    assert client.get("/api/me", headers={"Authorization": f"Bearer {good}"}).status_code == 403


def test_every_project_role_may_read_through_header_or_ui_cookie(client: Any, auth_manager: Any) -> None:
    for user, role in (("admin", "admin"), ("compliance", "viewer"), ("oncall", "op")):
        me = client.get("/api/me", headers={"Authorization": f"Bearer {token(auth_manager, user, role)}"})
        assert me.status_code == 200 and me.json()["user"] == user and me.json()["role"] == role
        assert set(me.json()["readable_dags"]) == {"order_backup", "retention_purge", "restore_drill", "access_audit"}
    client.cookies.set("_token", token(auth_manager, "compliance", "viewer"))
    try:
        page = client.get("/")
        assert page.status_code == 200 and "compliance" in page.text
    finally:
        client.cookies.clear()


def test_the_auth_manager_decides(
    client: Any, auth_manager: Any, auth: dict[str, str], site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The view asks the auth manager: the custom view "Governance", then read access per DAG."""
    seen: list[str] = []

    def custom_view(*, method: str, resource_name: str, user: Any) -> bool:
        seen.append(f"{method} {resource_name}")
        return user.get_name() != "intern"

    def dag(*, method: str, access_entity: Any, details: Any, user: Any) -> bool:
        return details.id != "retention_purge"

    monkeypatch.setattr(auth_manager, "is_authorized_custom_view", custom_view)
    monkeypatch.setattr(auth_manager, "is_authorized_dag", dag)
    intern = {"Authorization": f"Bearer {token(auth_manager, 'intern', 'viewer')}"}
    assert client.get("/api/overview", headers=intern).status_code == 403
    assert "GET Governance" in seen
    assert client.get("/api/purge-ledger", headers=auth).status_code == 403
    assert client.get(f"/files/retention_purge/{site.purge_folder}/report.html", headers=auth).status_code == 403
    overview = client.get("/api/overview", headers=auth).json()
    assert overview["purge_ledger"] is None and overview["recovery_points"]
    assert all(r["dag_id"] != "retention_purge" for r in overview["runs"])
    page = client.get("/", headers=auth).text
    assert 'id="purge-ledger"' not in page and 'id="recovery-points"' in page


# -- content ---------------------------------------------------------------------------------


def test_recovery_points_are_listed_with_their_records(client: Any, auth: dict[str, str], site: Site) -> None:
    points = client.get("/api/recovery-points", headers=auth).json()["recovery_points"]
    assert [p["id"] for p in points] == [RP2, RP1]  # newest first
    new, old = points
    manifest = json.loads((site.backup_root / "recovery_points" / RP2 / "manifest.json").read_text())
    assert new["size_bytes"] == sum(t["bytes"] for t in manifest["tables"].values()) > 0
    assert new["rows"] == sum(t["rows"] for t in manifest["tables"].values())
    assert {t["name"]: t["rows"] for t in new["tables"]} == {n: t["rows"] for n, t in manifest["tables"].items()}
    assert new["table_count"] == 8 and new["encrypted"] is True and new["signature"]["algorithm"] == "ed25519"
    assert new["created_at"] and 0 <= new["age_seconds"] < 3600
    assert new["verification"]["ok"] is True and new["verification"]["level"] == "ok"
    assert new["last_drill"]["status"] == "SUCCESSFUL" and new["last_drill"]["rto_seconds"] == 240.5
    assert new["last_drill"]["run_url"] == f"runs/restore_drill/{_folder(DRILL_RUNS[-1])}"
    assert old["verification"]["ok"] is False and "does not match its manifest" in old["verification"]["error"]
    assert old["last_drill"] is None
    detail = client.get(f"/api/recovery-points/{RP2}", headers=auth).json()
    assert {t["name"] for t in detail["tables_detail"]} == set(manifest["tables"])
    assert client.get("/api/recovery-points/rp-20990101T000000Z", headers=auth).status_code == 404
    assert client.get("/api/recovery-points/..%2F..%2Fetc", headers=auth).status_code == 404


def test_overview_page_lists_points_reports_and_runs(client: Any, auth: dict[str, str], site: Site) -> None:
    page = client.get("/", headers=auth)
    assert page.status_code == 200
    html = page.text
    for needle in (
        RP1,
        RP2,
        "Verification failed".lower(),
        "Chain intact",
        "Hash chain verified",
        "Drill history verified",
        "Evidence log verified",
        "<svg",
        "<polyline",
        "policy drill deadline",
        f'href="/runs/order_backup/{site.backup_folder}"',
        f'href="/runs/retention_purge/{site.purge_folder}"',
        f'href="/files/retention_purge/{site.purge_folder}/report.html"',
        f'href="/data-docs/{site.backup_folder}"',
        'href="/audits/daily/2026-11-22/report.html"',
        'href="/audits/custom/2026-11-20_2026-11-23/findings.csv"',
    ):
        assert needle.lower() in html.lower(), needle
    for run in DRILL_RUNS:
        assert f'href="/runs/restore_drill/{_folder(run)}"' in html
    assert "<script" not in html.lower()
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["cache-control"] == "no-store"


def test_each_run_has_a_report_page(client: Any, auth: dict[str, str], site: Site) -> None:
    runs = client.get("/api/runs", headers=auth).json()["runs"]
    by_dag: dict[str, list[str]] = {}
    for r in runs:
        by_dag.setdefault(r["dag_id"], []).append(r["run_id"])
        assert r["url"] == f"runs/{r['dag_id']}/{r['folder']}"
    assert by_dag["order_backup"] == [BACKUP_RUN]
    assert by_dag["retention_purge"] == [PURGE_RUN]
    assert sorted(by_dag["restore_drill"]) == sorted(DRILL_RUNS)
    assert by_dag["access_audit"] == [AUDIT_RUN]
    for r in runs:
        for run_ref in (r["run_id"], r["folder"]):  # the Airflow run id (DAG run tab) or the folder name
            page = client.get(f"/runs/{r['dag_id']}/{run_ref}", headers=auth)
            assert page.status_code == 200, (r["dag_id"], run_ref)
            assert r["run_id"] in page.text
    backup = client.get(f"/api/runs/order_backup/{BACKUP_RUN}", headers=auth).json()
    assert backup["recovery_point_id"] == RP2
    assert backup["detail"]["validation"]["data_docs_url"] == f"data-docs/{site.backup_folder}"
    assert backup["detail"]["masked"].get("service_tickets.body") == 4
    purge_run = client.get(f"/api/runs/retention_purge/{PURGE_RUN}", headers=auth).json()
    assert purge_run["facts"]["rows_purged"] > 0 and purge_run["detail"]["ledger"]["ok"] is True
    assert client.get("/runs/order_backup/manual__never", headers=auth).status_code == 404
    other = client.get("/runs/some_other_dag/manual__1", headers=auth)
    assert other.status_code == 404 and "not one of the governance DAGs" in other.text


def test_validation_and_data_docs(client: Any, auth: dict[str, str], site: Site) -> None:
    v = client.get("/api/validations", headers=auth).json()["validations"][0]
    assert v["run_id"] == BACKUP_RUN and v["recovery_point_id"] == RP2
    assert v["success"] is False and v["level"] == "fail"  # planted card numbers fail the gate
    assert any(f["expectation"] == "expect_column_values_to_not_contain_card_number" for f in v["failed"])
    assert {t["name"] for t in v["tables"]} >= {"orders", "customers", "service_tickets"}
    docs = client.get(f"/api/data-docs/{site.backup_folder}", headers=auth).json()
    assert {(p["table"], p["stage"]) for p in docs["pages"]} >= {("orders", "source"), ("orders", "backup")}
    index = client.get(f"/{docs['gx_index_url']}", headers=auth)
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert "https:" not in index.headers["content-security-policy"]  # no CDN script ever runs here
    for p in docs["pages"]:
        for key in ("validation_url", "suite_url"):
            if p.get(key):
                assert client.get(f"/{p[key]}", headers=auth).status_code == 200, p[key]
    css = client.get(
        f"/files/order_backup/{site.backup_folder}/data-docs/static/styles/data_docs_default_styles.css", headers=auth
    )
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_purge_ledger_is_verified(client: Any, auth: dict[str, str]) -> None:
    ledger = client.get("/api/purge-ledger", headers=auth).json()
    ver = ledger["verification"]
    assert ver["ok"] is True and ver["entries"] == ledger["total"] >= 2
    assert ver["tombstone_files"] > 0 and ver["head_hash"] == ledger["entries"][0]["hash"]
    events = [e["event"] for e in ledger["entries"]]
    assert events[-1] == "purge_begin" and "purge_complete" in events
    begin = ledger["entries"][-1]
    assert begin["run_id"] == PURGE_RUN and begin["rows"] > 0 and begin["dry_run"] is False


def test_a_tampered_purge_ledger_is_shown_broken(
    client: Any, auth: dict[str, str], site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "backups"
    shutil.copytree(site.backup_root, copy)
    ledger = copy / "ledger" / "purge.jsonl"
    lines = ledger.read_text().splitlines()
    first = json.loads(lines[0])
    first["counts"] = {k: 0 for k in first["counts"]}  # someone hides what was deleted
    lines[0] = json.dumps(first, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    ledger.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("AIRFLOW_VAR_GOVERNANCE_BACKUP_ROOT", str(copy))
    ver = client.get("/api/purge-ledger", headers=auth).json()["verification"]
    assert ver["ok"] is False and "entry 1 was altered" in ver["error"]
    page = client.get("/", headers=auth).text
    assert "does NOT verify" in page and "Chain broken" in page


def test_drill_history_and_trend(client: Any, auth: dict[str, str]) -> None:
    drills = client.get("/api/drills", headers=auth).json()
    assert drills["verification"]["ok"] is True and drills["total"] == 3
    assert [e["run_id"] for e in drills["entries"]] == DRILL_RUNS[::-1]
    assert [e["status"] for e in drills["entries"]] == ["SUCCESSFUL", "FAILED", "SUCCESSFUL"]
    assert drills["entries"][1]["failure"]["step"] == "restore_tables"
    assert [p["rto_seconds"] for p in drills["trend"]] == [120.5, 240.5]
    assert [p["rpo_seconds"] for p in drills["trend"]] == [7200.0, 14400.0]
    assert drills["policy"]["drill_timeout_seconds"] > 0


def test_access_audits_are_listed_and_served(client: Any, auth: dict[str, str], site: Site) -> None:
    audits = client.get("/api/audits", headers=auth).json()
    labels = {p["period_label"] for p in audits["periods"]}
    assert labels == {"daily/2026-11-22", "custom/2026-11-20_2026-11-23"}
    assert audits["evidence"] == {"ok": True, "entries": 2}
    custom = next(p for p in audits["periods"] if p["kind"] == "custom")
    assert custom["event_count"] == 20 and custom["integrity"] == {"report.html": True, "findings.csv": True}
    report = client.get(f"/{custom['report_url']}", headers=auth)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "script-src" not in report.headers["content-security-policy"]
    csv = client.get(f"/{custom['csv_url']}", headers=auth)
    assert csv.status_code == 200 and csv.headers["content-disposition"].startswith("attachment")
    assert csv.text.startswith("finding_id,")
    run = client.get(f"/api/runs/access_audit/{AUDIT_RUN}", headers=auth).json()
    assert {p["label"] for p in run["detail"]["periods"]} == labels


def test_path_traversal_and_unlisted_files_are_refused(client: Any, auth: dict[str, str], site: Site) -> None:
    drill = site.drill_folders[-1]
    docs = f"/files/order_backup/{site.backup_folder}/data-docs"
    (site.report_root / "order_backup" / site.backup_folder / "validation" / "data_docs" / "leak.html").symlink_to(
        site.root / "outside-secret.txt"
    )
    bad = [
        f"{docs}/..%2F..%2Fsummary.json",
        f"{docs}/%2e%2e/%2e%2e/summary.json",
        f"{docs}/..%2F..%2F..%2F..%2F..%2Foutside-secret.txt",
        f"{docs}/%2Fetc%2Fpasswd",
        f"{docs}/leak.html",  # a symlink out of the site
        f"{docs}/../results/orders.source.json",
        f"{docs}/",
        "/files/order_backup/..%2F..%2F/data-docs/index.html",
        f"/files/restore_drill/{drill}/restored.sqlite",
        f"/files/restore_drill/{drill}/state%2Frestore.json",
        f"/files/restore_drill/{drill}/summary.json",
        f"/files/restore_drill/..%2Frestore_drill%2F{drill}/report.html",
        "/files/..%2F..%2Foutside-secret.txt/x/report.html",
        "/audits/..%2F..%2F/x/report.html",
        "/audits/daily/..%2F..%2F..%2Foutside-secret.txt/report.html",
        "/audits/daily/2026-11-22/summary.json",
        "/audits/daily/2026-11-22/..%2F..%2F..%2Fevidence.jsonl",
        f"/runs/restore_drill/..%2F..%2Fretention_purge%2F{site.purge_folder}",
        "/runs/restore_drill/..%2F..%2F..%2F..%2Foutside-secret.txt",
        f"/data-docs/..%2F{site.backup_folder}",
        "/recovery-points/..%2F..%2Fledger",
    ]
    for path in bad:
        r = client.get(path, headers=auth)
        assert r.status_code in (404, 405, 422), (path, r.status_code)
        for marker in ("TOP-SECRET-OUTSIDE", "SQLite format", "root:x:"):
            assert marker not in r.text, path


def test_no_customer_data_and_no_secret_in_any_response(client: Any, auth: dict[str, str], site: Site) -> None:
    """Crawl every page, API answer and served file; none holds a customer value or the root key."""
    seen: set[str] = set()
    queue = [*API, *PAGES, "/api/runs?dag_id=restore_drill", f"/api/data-docs/{site.backup_folder}"]
    bodies = 0
    while queue:
        path = queue.pop()
        if path in seen or not path.startswith("/"):
            continue
        seen.add(path)
        r = client.get(path, headers=auth)
        assert r.status_code == 200, path
        text = r.text
        bodies += 1
        for value in [*FORBIDDEN, site.root_key_b64, str(site.root / "kms")]:
            assert value not in text, (path, value)
        if "text/html" in r.headers["content-type"] and not path.startswith("/files/order_backup"):
            queue += [h for h in re.findall(r'href="(/[^"#]*)', text) if not h.startswith("/static")]
        elif "application/json" in r.headers["content-type"]:
            queue += [
                f"/{u}"
                for u in re.findall(
                    r'"(?:url|run_url|report_url|csv_url|data_docs_url|validation_url|'
                    r'suite_url|report_html_url|gx_index_url)":"([^"]+)"',
                    text,
                )
            ]
    assert bodies > 30, sorted(seen)
    # the Data Docs pages of the run, every one
    docs = client.get(f"/api/data-docs/{site.backup_folder}", headers=auth).json()
    for p in docs["pages"]:
        for key in ("validation_url", "suite_url"):
            text = client.get(f"/{p[key]}", headers=auth).text
            for value in FORBIDDEN:
                assert value not in text, (p[key], value)


def test_a_fresh_install_shows_empty_states(
    client: Any, auth: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing_backup, missing_reports = tmp_path / "nothing" / "backups", tmp_path / "nothing" / "reports"
    monkeypatch.setenv("AIRFLOW_VAR_GOVERNANCE_BACKUP_ROOT", str(missing_backup))
    monkeypatch.setenv("AIRFLOW_VAR_GOVERNANCE_REPORT_ROOT", str(missing_reports))
    overview = client.get("/api/overview", headers=auth).json()
    assert overview["recovery_points"] == [] and overview["runs"] == [] and overview["validations"] == []
    assert overview["purge_ledger"]["exists"] is False and overview["drills"]["exists"] is False
    assert overview["configuration"]["backup_root"]["available"] is False
    page = client.get("/", headers=auth)
    assert page.status_code == 200
    assert "No recovery point has been published yet" in page.text and "Nothing to show yet" in page.text
    assert not (tmp_path / "nothing").exists()  # a read-only view creates nothing
    assert client.get("/api/drills", headers=auth).json()["entries"] == []


def test_plugin_registration_and_cheap_import() -> None:
    """The entry point registers the app and the views, and imports nothing heavy."""
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import airflow.plugins_manager; before = set(sys.modules); "
        "import governance_plugin as g; "
        "heavy = sorted(m.split('.')[0] for m in set(sys.modules) - before if m.split('.')[0] in "
        "('pandas', 'pyarrow', 'numpy', 'great_expectations', 'cryptography', 'lomevexi_governance', 'sqlalchemy')); "
        "p = g.GovernancePlugin; "
        "print({'heavy': heavy, 'apps': [(a['url_prefix'], a['name']) for a in p.fastapi_apps], "
        "'views': [(v['name'], v['destination'], v['href'], v.get('url_route')) for v in p.external_views]})"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(PLUGINS)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    got = eval(out.stdout.strip().splitlines()[-1])
    assert got["heavy"] == []
    assert got["apps"] == [("/governance", "Governance")]
    assert ("Governance", "nav", "/governance/", "governance") in got["views"]
    assert ("Governance report", "dag_run", "/governance/runs/{DAG_ID}/{RUN_ID}", "governance-report") in got["views"]


def test_airflow_does_not_load_the_package_modules_as_plugins() -> None:
    """Only governance_plugin.py is a plugin file; the package's modules are ignored by Airflow."""
    from airflow._shared.module_loading.file_discovery import find_path_from_directory

    for syntax in ("glob", "regexp"):
        files = {
            Path(f).relative_to(PLUGINS).as_posix() for f in find_path_from_directory(PLUGINS, ".airflowignore", syntax)
        }
        assert {f for f in files if f.endswith(".py")} == {"governance_plugin.py"}, (syntax, files)


def test_public_icon_holds_nothing(client: Any) -> None:
    r = client.get("/static/governance.svg")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in r.text and "rp-" not in r.text
