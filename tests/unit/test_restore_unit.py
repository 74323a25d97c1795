"""restore_drill library pieces that need no database server and no Airflow run."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest

from lomevexi_governance import recovery_points as rp
from lomevexi_governance import restore
from lomevexi_governance.errors import ConfigurationError, KeyMaterialError, NotFound
from lomevexi_governance.keys import KeyInfo
from lomevexi_governance.source import TIMESTAMP, parse_timestamps
from lomevexi_governance.storage import LocalStorage

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
UTC = dt.UTC


# -- params and points -------------------------------------------------------------------------


def test_params_defaults_and_normalisation(policy):
    p = restore.parse_params({}, policy)
    assert p == restore.DrillParams("latest", None, None, False, "full")
    p = restore.parse_params(
        {
            "recovery_point": " rp-20261123T160000Z ",
            "tables": ["order_items", "orders", "orders"],
            "target_conn_id": "",
            "keep_restored": True,
            "verification": "sample",
        },
        policy,
    )
    # parents before children, duplicates dropped, empty connection id means scratch
    assert p.tables == ("orders", "order_items")
    assert p.recovery_point == "rp-20261123T160000Z" and p.target_conn_id is None and p.keep_restored


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"tables": ["orders", "site_visits"]}, "unknown table(s) ['site_visits']"),
        ({"target_conn_id": "store_db"}, "is the live store"),
        ({"verification": "everything"}, "'verification' must be one of"),
        ({"keep_restored": "yes"}, "'keep_restored' must be true or false"),
        ({"recovery_point": 3}, "'recovery_point' must be"),
        ({"root_key": "c2VjcmV0"}, "unknown param(s) ['root_key']"),
    ],
)
def test_params_are_rejected_with_a_precise_message(policy, raw, message):
    with pytest.raises(ConfigurationError) as exc:
        restore.parse_params(raw, policy)
    assert message in str(exc.value)


def _fake_points(tmp_path: Path, ids: list[str]) -> LocalStorage:
    storage = LocalStorage(str(tmp_path / "backups"))
    for point_id in ids:
        storage.write_bytes(f"{rp.point_dir(point_id)}/{rp.MANIFEST}", b"{}")
    return storage


def test_latest_is_the_newest_point_and_unknown_ids_list_the_available(tmp_path):
    storage = _fake_points(tmp_path, ["rp-20261121T160000Z", "rp-20261122T160000Z"])
    assert restore.resolve_point(storage, "latest") == "rp-20261122T160000Z"
    assert restore.resolve_point(storage, "rp-20261121T160000Z") == "rp-20261121T160000Z"
    with pytest.raises(NotFound) as exc:
        restore.resolve_point(storage, "rp-20200101T000000Z")
    assert "unknown recovery point 'rp-20200101T000000Z'" in str(exc.value)
    assert "available: rp-20261122T160000Z, rp-20261121T160000Z" in str(exc.value)
    with pytest.raises(ConfigurationError, match="available: rp-20261122T160000Z"):
        restore.resolve_point(storage, "yesterday")


def test_no_point_at_all_is_a_clear_error(tmp_path):
    with pytest.raises(NotFound, match="no recovery point is published"):
        restore.resolve_point(_fake_points(tmp_path, []), "latest")


# -- conventions of the restored database ------------------------------------------------------


def test_sqlite_timestamps_are_the_stores_iso_text_in_utc():
    values = [
        dt.datetime(2026, 11, 24, 1, 2, 3, tzinfo=UTC),
        dt.datetime(2026, 11, 24, 1, 2, 3, 450000, tzinfo=UTC),
        None,
        dt.datetime(2026, 11, 24, 1, 2, 3, 1, tzinfo=UTC),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    arr = pa.array(values, type=TIMESTAMP)
    text = restore.sqlite_timestamp_text(arr)
    assert text.to_pylist() == [
        "2026-11-24 01:02:03",
        "2026-11-24 01:02:03.450000",
        None,
        "2026-11-24 01:02:03.000001",
        "1969-12-31 23:59:59.999999",
    ]
    assert parse_timestamps(text, "t.c").equals(arr)  # read back exactly


def test_tables_follow_the_store_contract(policy):
    recorded = {
        "primary_key": "order_id",
        "schema": [
            {"name": c.name, "type": c.type, "class": c.sensitivity, "nullable": c.nullable}
            for c in policy.table("orders").columns
        ],
    }
    table = restore.recorded_table(policy, "orders", recorded)
    ddl = restore.create_table_sql(table, schema="drill_abc", relaxed={"recipient_phone"})
    assert ddl.startswith('CREATE TABLE "drill_abc"."orders" (')
    assert '"order_id" BIGINT NOT NULL PRIMARY KEY' in ddl
    assert '"completed_at" TIMESTAMPTZ,' in ddl  # nullable in the contract
    assert '"ordered_at" TIMESTAMPTZ NOT NULL' in ddl
    assert '"recipient_phone" TEXT,' in ddl  # NOT NULL already violated at backup time: kept nullable
    assert '"recipient_name" TEXT NOT NULL' in ddl


def test_a_column_unknown_to_todays_policy_is_restored_as_recorded(policy):
    recorded = {
        "primary_key": "customer_id",
        "schema": [
            {"name": "customer_id", "type": "int64", "class": "operational", "nullable": False},
            {"name": "loyalty_tier", "type": "string", "class": "operational", "nullable": True},
        ],
    }
    table = restore.recorded_table(policy, "customers", recorded)
    assert table.column_names == ["customer_id", "loyalty_tier"]
    assert restore.recorded_schema(table).field("loyalty_tier").type == pa.string()


def test_load_order_is_smallest_first_by_the_points_rows_then_by_name():
    manifest = {"tables": {"orders": {"rows": 300}, "payments": {"rows": 310}, "customers": {"rows": 100},
                           "legal_holds": {"rows": 0}, "shipments": {"rows": 300}}}
    tables = ["customers", "legal_holds", "orders", "payments", "shipments"]
    assert restore.load_order(manifest, tables) == ["legal_holds", "customers", "orders", "shipments", "payments"]
    # only the drill's tables, whatever else the point holds
    assert restore.load_order(manifest, ["payments", "orders"]) == ["orders", "payments"]


def test_drill_schema_is_stable_per_run_and_never_a_store_name():
    assert restore.drill_schema("manual__1") == restore.drill_schema("manual__1")
    assert restore.drill_schema("manual__1") != restore.drill_schema("manual__2")
    assert restore.drill_schema("x").startswith("drill_")


# -- keys: shredded by retention, or lost ------------------------------------------------------


class FakeKeys:
    def __init__(self, infos: dict[str, KeyInfo | None]):
        self.infos = infos

    def info(self, key_id: str) -> KeyInfo | None:
        return self.infos.get(key_id)


def _point(files: list[dict]) -> rp.PointRef:
    return rp.PointRef(
        "rp-20261123T160000Z",
        {
            "encrypted": True,
            "partitions": {"epoch-2025-W48": {"key_prefix": "epoch/2025-W48"}, "open": {"key_prefix": "rp/x/open"}},
            "tables": {"orders": {"files": files}},
        },
        {},
    )


def _file(partition: str, prefix: str, rows: int = 3) -> dict:
    return {
        "path": f"data/orders/{partition}/part-00000.parquet",
        "partition": partition,
        "rows": rows,
        "key_ids": {c: f"{prefix}/{c}" for c in ("contact", "footer", "operational")},
        "checksums": {"__rows__": rows},
    }


def _active(key_id: str) -> KeyInfo:
    return KeyInfo(key_id, "active", "2026-01-01", "r")


def _destroyed(key_id: str, reason: str) -> KeyInfo:
    return KeyInfo(key_id, "destroyed", "2026-01-01", "r", "2026-11-30T00:00:00+00:00", reason, "purge-run")


def test_retention_shredded_epoch_is_skipped_and_reported():
    files = [_file("epoch-2025-W48", "epoch/2025-W48", 4), _file("open", "rp/x/open", 7)]
    infos = {
        f"epoch/2025-W48/{c}": _destroyed(f"epoch/2025-W48/{c}", "retention: epoch 2025-W48 ended")
        for c in ("contact", "footer", "operational")
    }
    infos |= {f"rp/x/open/{c}": _active(f"rp/x/open/{c}") for c in ("contact", "footer", "operational")}
    restore_files, shredded = restore.classify_files(_point(files), FakeKeys(infos), ["orders"])
    assert [f["partition"] for f in restore_files["orders"]] == ["open"]
    assert len(shredded) == 1
    entry = shredded[0]
    assert entry["partition"] == "epoch-2025-W48" and entry["erased_by"] == "retention"
    assert entry["tables"] == {"orders": 4} and entry["key_prefix"] == "epoch/2025-W48"


def test_a_destroyed_key_that_is_not_retention_names_the_key():
    infos = {f"rp/x/open/{c}": _active(f"rp/x/open/{c}") for c in ("contact", "footer", "operational")}
    infos["rp/x/open/contact"] = _destroyed("rp/x/open/contact", "recovery point rp-x expired")
    with pytest.raises(KeyMaterialError) as exc:
        restore.classify_files(_point([_file("open", "rp/x/open")]), FakeKeys(infos), ["orders"])
    assert "'rp/x/open/contact'" in str(exc.value)
    assert "data/orders/open/part-00000.parquet" in str(exc.value)
    assert "not crypto-shredding" in str(exc.value)


def test_a_missing_key_names_the_key():
    infos = {f"rp/x/open/{c}": _active(f"rp/x/open/{c}") for c in ("contact", "operational")}
    with pytest.raises(KeyMaterialError, match="key 'rp/x/open/footer'.*missing"):
        restore.classify_files(_point([_file("open", "rp/x/open")]), FakeKeys(infos), ["orders"])


def test_a_partly_destroyed_epoch_is_key_loss_not_shredding():
    infos = {f"epoch/2025-W48/{c}": _active(f"epoch/2025-W48/{c}") for c in ("contact", "footer", "operational")}
    infos["epoch/2025-W48/contact"] = _destroyed("epoch/2025-W48/contact", "retention: epoch 2025-W48 ended")
    with pytest.raises(KeyMaterialError, match="'epoch/2025-W48/contact'.*other keys are intact"):
        restore.classify_files(_point([_file("epoch-2025-W48", "epoch/2025-W48")]), FakeKeys(infos), ["orders"])


def test_an_epoch_key_destroyed_for_another_reason_is_not_retention():
    infos = {
        f"epoch/2025-W48/{c}": _destroyed(f"epoch/2025-W48/{c}", "operator cleanup")
        for c in ("contact", "footer", "operational")
    }
    with pytest.raises(KeyMaterialError, match="epoch/2025-W48/contact"):
        restore.classify_files(_point([_file("epoch-2025-W48", "epoch/2025-W48")]), FakeKeys(infos), ["orders"])


# -- purge tombstones --------------------------------------------------------------------------


def test_tombstone_mask_drops_exactly_the_tombstoned_keys(keyring):
    hasher = keyring.tombstone_hasher()
    tombstones = {"orders": {hasher("orders", 2), hasher("orders", 5)}, "payments": {hasher("payments", 3)}}
    mask = restore.tombstone_mask("orders", pa.array([1, 2, 3, 4, 5], pa.int64()), tombstones, hasher)
    assert mask.tolist() == [False, True, False, False, True]
    # a tombstone of another table never matches (the hash includes the table name)
    assert not restore.tombstone_mask("order_items", pa.array([2, 3], pa.int64()), tombstones, hasher).any()


# -- Great Expectations: restored outcome vs the one recorded at backup ------------------------

RECORDED = {
    "success": False,
    "tables": {"orders": {"success": False}, "payments": {"success": True}},
    "failed": [
        {"table": "orders", "key": "recipient_phone.format_jp_phone", "stage": "backup", "unexpected_count": 2},
        {"table": "orders", "key": "order_number.no_card_number", "stage": "source", "unexpected_count": 1},
        {
            "table": "payments",
            "key": "order_id.reference",
            "stage": "backup",
            "expectation": "reference",
            "unexpected_count": 1,
        },
    ],
}


def _restored(*failed: tuple[str, str, int]) -> dict:
    return {"failed": [{"table": t, "key": k, "stage": "backup", "unexpected_count": n} for t, k, n in failed]}


def test_same_outcome_matches_and_reports_pre_existing_problems():
    out = restore.compare_validation(
        RECORDED, _restored(("orders", "recipient_phone.format_jp_phone", 2)), ["orders", "payments"], {}
    )
    assert out["ok"] and out["status"] == "match"
    assert out["tables"]["orders"]["pre_existing_failures"] == ["recipient_phone.format_jp_phone"]
    assert out["source_stage_findings_at_backup"][0]["key"] == "order_number.no_card_number"


def test_a_new_failure_on_restore_differs():
    out = restore.compare_validation(
        RECORDED,
        _restored(("orders", "recipient_phone.format_jp_phone", 2), ("payments", "status.value_set", 1)),
        ["orders", "payments"],
        {},
    )
    assert not out["ok"] and out["tables"]["payments"]["new_failures"] == ["status.value_set"]


def test_a_vanished_failure_differs_unless_rows_were_erased():
    out = restore.compare_validation(RECORDED, _restored(), ["orders", "payments"], {})
    assert not out["ok"] and out["tables"]["orders"]["no_longer_failing"] == ["recipient_phone.format_jp_phone"]
    out = restore.compare_validation(RECORDED, _restored(), ["orders", "payments"], {"orders": True})
    assert out["ok"] and "erased" in out["tables"]["orders"]["note"]


def test_a_changed_count_differs_when_nothing_was_erased():
    out = restore.compare_validation(
        RECORDED, _restored(("orders", "recipient_phone.format_jp_phone", 3)), ["orders"], {}
    )
    assert not out["ok"] and out["tables"]["orders"]["unexpected_count_changed"] == ["recipient_phone.format_jp_phone"]


def test_no_recorded_outcome_is_reported_not_failed():
    out = restore.compare_validation({"success": True, "failed": []}, _restored(), ["orders"], {})
    assert out["ok"] and out["status"] == "not_recorded"


# -- outcome and report ------------------------------------------------------------------------


def _state(report_dir: Path, name: str, data: dict) -> None:
    (report_dir / "state").mkdir(parents=True, exist_ok=True)
    (report_dir / "state" / f"{name}.json").write_text(json.dumps(data))


def test_a_failure_before_the_plan_still_writes_a_failed_summary_and_history(tmp_path):
    report_dir = tmp_path / "reports" / "restore_drill" / "manual__x"
    restore.record_failure(report_dir, "validate_params", NotFound("unknown recovery point 'rp-1'; available: none"))
    summary = restore.finish_drill(
        report_dir=report_dir,
        report_root=str(tmp_path / "reports"),
        storage=None,
        run_id="manual__x",
        params={"recovery_point": "rp-1"},
        triggered_by="alice",
    )
    assert summary["status"] == "FAILED" and summary["triggered_by"] == "alice"
    assert "unknown recovery point" in summary["failure"]["error"]
    assert json.loads((report_dir / "summary.json").read_text())["status"] == "FAILED"
    history = (tmp_path / "reports" / "restore_drill" / "history.jsonl").read_text().splitlines()
    assert json.loads(history[-1])["status"] == "FAILED"
    with pytest.raises(restore.DrillFailed, match="unknown recovery point"):
        restore.raise_for_status(summary)


def test_a_timeout_is_timed_out_and_foreign_errors_never_leak_their_text(tmp_path):
    report_dir = tmp_path / "r"
    restore.record_failure(report_dir, "restore", restore.DrillTimedOut("timed out while restoring orders"))
    restore.record_failure(report_dir, "teardown_target", ValueError("山田 花子 090-1234-5678"))
    failure = restore.read_failure(report_dir)
    assert failure["status"] == "TIMED_OUT" and failure["step"] == "restore"
    assert failure["later"][0]["error"] == "ValueError (see the task log)"  # the value never reaches a report
    summary = restore.finish_drill(report_dir=report_dir, report_root=str(tmp_path), storage=None, run_id="r")
    with pytest.raises(restore.DrillTimedOut):
        restore.raise_for_status(summary)


def test_an_incomplete_drill_is_never_successful(tmp_path):
    report_dir = tmp_path / "r"
    _state(report_dir, "verify", {"tables": ["orders"]})
    summary = restore.finish_drill(report_dir=report_dir, report_root=str(tmp_path), storage=None, run_id="r")
    assert summary["status"] == "FAILED"


def test_the_html_report_escapes_and_holds_no_values():
    summary = {
        "status": "FAILED",
        "recovery_point_id": "rp-1",
        "failure": {"step": "verify_point", "error": "file data/<x>.parquet does not match"},
        "tables": {
            "orders": {
                "rows_in_point": 3,
                "expected_rows": 3,
                "restored_rows": 2,
                "rows_ok": False,
                "checksums": "mismatch",
                "mismatched_columns": ["city"],
                "references": [],
            }
        },
    }
    page = restore.render_html(summary)
    assert "data/&lt;x&gt;.parquet" in page and "<x>" not in page
    assert 'class="FAILED"' in page and "city" in page


# -- the DAG's deadline hook -------------------------------------------------------------------


def test_the_load_tasks_execution_timeout_is_the_time_left_in_the_drill():
    spec = importlib.util.spec_from_file_location("restore_drill_dag", ROOT / "dags" / "restore_drill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    deadline = dt.datetime.now(UTC) + dt.timedelta(minutes=10)
    task = SimpleNamespace(execution_timeout=dt.timedelta(hours=6))
    ti = SimpleNamespace(xcom_pull=lambda task_ids: {"deadline": deadline.isoformat()})
    module._drill_deadline({"ti": ti, "task": task})
    assert dt.timedelta(minutes=9) < task.execution_timeout <= dt.timedelta(minutes=10)
    ti = SimpleNamespace(xcom_pull=lambda task_ids: {"deadline": "2020-01-01T00:00:00+00:00"})
    module._drill_deadline({"ti": ti, "task": task})
    assert task.execution_timeout == dt.timedelta(seconds=1)  # already late: times out at once


# -- the time limit and retries ------------------------------------------------------------------


def test_the_deadline_comes_from_the_policy_file(tmp_path):
    from lomevexi_governance.policy import DEFAULT_POLICY_PATH, parse_policy

    text = DEFAULT_POLICY_PATH.read_text(encoding="utf-8").replace("timeout_minutes: 60", "timeout_minutes: 7")
    assert "timeout_minutes: 7" in text
    policy = parse_policy(text)
    storage = _fake_points(tmp_path, ["rp-20261122T160000Z"])
    plan = restore.plan_drill({}, policy=policy, storage=storage, report_dir=tmp_path / "r", run_id="manual__t")
    started = dt.datetime.fromisoformat(plan.started_at)
    assert plan.deadline_at - started == dt.timedelta(minutes=7) and plan.recovery_point_id == "rp-20261122T160000Z"
    assert json.loads((tmp_path / "r" / "state" / "plan.json").read_text())["deadline"] == plan.deadline


def test_a_retried_step_forgets_its_earlier_failure_and_airflow_timeouts_become_timed_out(tmp_path):
    class AirflowTaskTimeout(BaseException):  # what Airflow raises when execution_timeout fires
        pass

    with pytest.raises(ConfigurationError), restore.drill_step(tmp_path, "restore"):
        raise ConfigurationError("target unreachable")
    assert restore.read_failure(tmp_path)["step"] == "restore"
    with restore.drill_step(tmp_path, "restore"):  # the retry succeeds
        pass
    assert restore.read_failure(tmp_path) is None
    with pytest.raises(restore.DrillTimedOut), restore.drill_step(tmp_path, "verify_restored"):
        raise AirflowTaskTimeout()
    failure = restore.read_failure(tmp_path)
    assert failure["status"] == "TIMED_OUT" and failure["step"] == "verify_restored"


def test_a_point_whose_checksums_this_version_cannot_compute_fails_clearly():
    from lomevexi_governance import checksums

    ok = rp.PointRef("rp-1", {"checksum_algorithm": checksums.ALGORITHM}, {})
    restore.check_checksum_algorithm(ok)
    with pytest.raises(restore.IntegrityError, match="an algorithm the manifest does not name"):
        restore.check_checksum_algorithm(rp.PointRef("rp-1", {}, {}))


# -- streaming: the live-store merge and the prefetch helper ------------------------------------

SNAPSHOT_AT = dt.datetime(2026, 11, 1, tzinfo=UTC)


def _tiny_table():
    from lomevexi_governance.policy import Column, Table

    return Table(
        name="tiny",
        backup=True,
        primary_key="id",
        columns=(
            Column("id", "int64", "operational"),
            Column("v", "string", "operational", nullable=True),
            Column("updated_at", "timestamp", "operational"),
        ),
    )


def _rows(table, keys, value=lambda k: f"v{k}", updated=lambda k: SNAPSHOT_AT) -> list[pa.RecordBatch]:
    schema = restore.recorded_schema(table)
    return pa.RecordBatch.from_pydict(
        {"id": keys, "v": [value(k) for k in keys], "updated_at": [updated(k) for k in keys]}, schema=schema
    )


def test_the_full_live_comparison_is_a_key_ordered_merge_across_gaps_and_batch_boundaries():
    table = _tiny_table()
    store_keys = [*range(1, 5), *range(8, 21)]
    store = _rows(
        table,
        store_keys,
        value=lambda k: "changed" if k == 9 else f"v{k}",
        updated=lambda k: SNAPSHOT_AT + dt.timedelta(days=1) if k == 3 else SNAPSHOT_AT,
    )
    pulled = []

    def ordered():  # the store in key order, 5 rows a batch; records how far it was read
        for i in range(0, store.num_rows, 5):
            pulled.append(i)
            yield store.slice(i, 5)

    live = restore.LiveCompare(
        table, None, SNAPSHOT_AT, mode="full", sample_rows=0, expected_rows=10, ordered_store=ordered
    )
    restored = _rows(table, list(range(1, 11)))
    for i in range(0, 10, 3):
        live.process(restored.slice(i, 3))
        assert len(pulled) <= i // 5 + 2  # the store is read along with the restored rows, not ahead
    stats = live.finish()
    assert stats["absent_from_store"] == 3  # 5, 6, 7: deleted from the store since the point
    assert stats["missing_from_restore"] == 10  # 11..20: never in the point
    assert stats["changed_since_point"] == 1  # 3: updated_at after the point
    assert stats["mismatched_rows"] == 1 and stats["mismatched_columns"] == {"v": 1}
    assert stats["mismatched_primary_keys"] == [9]  # keys, never values
    assert stats["rows_compared"] == 6 and stats["rows_checked"] == 10


def test_a_store_that_is_not_in_key_order_fails_naming_the_table():
    table = _tiny_table()
    store = _rows(table, [1, 3, 2])
    live = restore.LiveCompare(
        table, None, SNAPSHOT_AT, mode="full", sample_rows=0, expected_rows=3, ordered_store=lambda: iter([store])
    )
    with pytest.raises(restore.IntegrityError, match="store table tiny"):
        live.process(_rows(table, [1, 2, 3]))


def test_the_first_failure_of_parallel_tables_is_the_root_cause(tmp_path):
    restore.record_failure(tmp_path, "restore", restore.IntegrityError("file a"), table="orders")
    restore.record_failure(tmp_path, "restore", restore.IntegrityError("file b"), table="payments")
    failure = restore.read_failure(tmp_path)
    assert failure["table"] == "orders" and failure["error"] == "file a"
    assert [f["table"] for f in failure["later"]] == ["payments"]


def test_point_files_are_read_a_column_chunk_at_a_time(tmp_path, monkeypatch):
    """Encrypted or not, a recovery-point file is opened with crypto.READ_OPTIONS (not
    pre-buffered: a drill decodes one file while it reads back another table)."""
    import os

    import pyarrow.parquet as pq

    from lomevexi_governance import crypto
    from lomevexi_governance.keys import LocalKeyring

    opened: list[dict[str, object]] = []

    def recording(source: object, **kwargs: object) -> str:
        opened.append(kwargs)
        return "file"

    monkeypatch.setattr(pq, "ParquetFile", recording)
    storage = LocalStorage(str(tmp_path))
    (tmp_path / "part.parquet").write_bytes(b"PAR1")
    keys = LocalKeyring(tmp_path / "keyring.db", os.urandom(32))
    assert restore._open_file(storage, keys, "part.parquet", encrypted=True) == "file"
    assert restore._open_file(storage, keys, "part.parquet", encrypted=False) == "file"
    assert len(opened) == 2
    for kwargs in opened:
        assert {k: kwargs.get(k) for k in crypto.READ_OPTIONS} == {"pre_buffer": False, "buffer_size": 1 << 20}
