"""The GX stages of a table: a backup stage leading its source stage gives the results of two
independent stages, in one GX run when the content scan masked nothing."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from lomevexi_governance.scan import ContentScanner
from lomevexi_governance.source import arrow_schema
from lomevexi_governance.validation import BACKUP, BOTH, SOURCE, GxValidator

pytestmark = pytest.mark.unit

CARD = "4111 1111 1111 1111"


def _tickets(policy, n: int, card_at: int | None = None) -> pa.RecordBatch:
    table = policy.tables["service_tickets"]
    schema = arrow_schema(table)
    when = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    rows = []
    for i in range(n):
        row = {
            "ticket_id": i + 1, "customer_id": 10 + i % 7, "order_id": None if i % 3 else 100 + i,
            "kind": "inquiry", "status": "closed", "subject": f"size question {i}",
            "body": f"paid with {CARD}, please refund" if i == card_at else f"does size {i % 30} run small?",
            "attachment_count": i % 2,
        }
        for f in schema:
            if f.name not in row:
                row[f.name] = when if pa.types.is_timestamp(f.type) else None
        rows.append(row)
    return pa.RecordBatch.from_pylist(rows, schema=schema)


def _validate(policy, tmp_path, batches, *, paired: bool, batch_rows: int = 40):
    table = policy.tables["service_tickets"]
    validator = GxValidator(policy, tmp_path / ("paired" if paired else "alone"), tables=["service_tickets"])
    runs: list[str] = []
    real_run = validator._run

    def counting(t, stage, definition, frame):
        runs.append(stage)
        real_run(t, stage, definition, frame)

    validator._run = counting  # type: ignore[method-assign]
    source = validator.source_stage(table)
    if not paired:
        validator._unled.clear()  # as if the stages belonged to different validations
    backup = validator.backup_stage(table)
    assert (backup.follower is source) is paired
    scanner = ContentScanner(table)
    for check in (source, backup):
        check.batch_rows = batch_rows
    for batch in batches:
        backup.process(scanner.process(source.process(batch)))
    source.finish()
    backup.finish()
    results = {k: (a.success, a.element_count, a.unexpected_count, a.missing_count)
               for k, a in validator.aggregates.items()}
    return results, runs, validator


def test_untouched_batches_are_validated_once_for_both_stages(policy, tmp_path):
    batches = [_tickets(policy, 25), _tickets(policy, 25), _tickets(policy, 7)]
    paired, runs, _ = _validate(policy, tmp_path, batches, paired=True)
    alone, alone_runs, _ = _validate(policy, tmp_path, batches, paired=False)
    assert paired == alone
    assert {stage for (_t, stage, _k) in paired} == {SOURCE, BACKUP}
    assert all(ok for ok, *_ in paired.values())
    assert runs == [BOTH, BOTH]  # 50 rows reach the limit of 40, then the last 7
    assert sorted(alone_runs) == [BACKUP, BACKUP, SOURCE, SOURCE]
    assert paired["service_tickets", SOURCE, "body.no_card_number"][1] == 57


def test_a_masked_batch_is_validated_raw_by_the_source_stage_and_masked_by_the_backup_stage(policy, tmp_path):
    batches = [_tickets(policy, 25), _tickets(policy, 25, card_at=3), _tickets(policy, 7)]
    paired, runs, _ = _validate(policy, tmp_path, batches, paired=True)
    alone, _, _ = _validate(policy, tmp_path, batches, paired=False)
    assert paired == alone
    # the card number is in the store (source stage) and nowhere in the backup (masked)
    assert paired["service_tickets", SOURCE, "body.no_card_number"][:3] == (False, 57, 1)
    assert paired["service_tickets", BACKUP, "body.no_card_number"][:3] == (True, 57, 0)
    assert runs == [SOURCE, BACKUP, BOTH]  # the frame holding the masked batch runs each stage


def test_a_led_source_stage_left_unvalidated_fails_the_results(policy, tmp_path):
    table = policy.tables["service_tickets"]
    validator = GxValidator(policy, tmp_path / "v", tables=["service_tickets"])
    source = validator.source_stage(table)
    validator.backup_stage(table)
    source.process(_tickets(policy, 5))
    source.finish()  # the leader's finish never comes
    with pytest.raises(RuntimeError, match="service_tickets"):
        validator.finish(extra_columns={})
