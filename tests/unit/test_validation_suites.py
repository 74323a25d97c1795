"""The committed Great Expectations suites are the ones the policy implies, and they load."""

from __future__ import annotations

import json

import pytest

from lomevexi_governance.validation import BACKUP, SOURCE, build_suite, generate_suite, load_suite_json, suite_path

pytestmark = pytest.mark.unit


def test_committed_suites_match_the_policy(policy):
    for table in policy.backup_tables:
        committed = json.loads(suite_path(table.name).read_text())
        assert committed == generate_suite(policy, table), (
            f"expectations/{table.name}.json is out of date: run `python -m lomevexi_governance.validation generate`"
        )


def test_suites_load_into_gx_with_both_stages(policy):
    data = load_suite_json("service_tickets")
    source = build_suite(data, SOURCE)
    backup = build_suite(data, BACKUP)
    assert {e.expectation_type for e in source.expectations} == {
        "expect_table_columns_to_match_set", "expect_column_values_to_not_contain_card_number"}
    assert len(backup.expectations) > len(source.expectations)
