"""The policy file: scope, classes, retention, and a strict loader."""

from __future__ import annotations

import pytest

from lomevexi_governance.errors import PolicyError
from lomevexi_governance.policy import load_policy, parse_policy, policy_path

pytestmark = pytest.mark.unit

CONTRACT_COLUMNS = {
    "customers": ["customer_id", "email", "created_at", "updated_at"],
    "payments": ["payment_id", "order_id", "method", "card_brand", "card_last4", "amount_jpy", "status",
                 "paid_at", "updated_at"],
}


def test_tables_in_scope_match_the_issue(policy):
    assert [t.name for t in policy.backup_tables] == [
        "customers", "orders", "order_items", "payments", "shipments", "service_tickets", "legal_holds",
        "staff_access_log",
    ]
    assert not policy.table("site_visits").backup


def test_allowed_columns_are_exactly_the_contracts(policy):
    from tests.conftest import DDL

    for table in policy.tables.values():
        block = DDL.split(f"CREATE TABLE {table.name} (", 1)[1].split(");", 1)[0]
        contract = [line.split()[0] for line in block.strip().splitlines() if line.strip() and not line.strip().startswith("--")]
        assert table.column_names == contract, table.name


def test_sensitive_columns_have_their_classes(policy):
    orders = policy.table("orders")
    assert orders.column("recipient_phone").sensitivity == "contact"
    assert policy.table("payments").column("card_last4").sensitivity == "payment"
    assert policy.table("service_tickets").column("body").sensitivity == "communication"
    assert policy.table("customers").column("email").sensitivity == "contact"


def test_nullable_follows_the_contract(policy):
    assert policy.table("orders").column("completed_at").nullable
    assert not policy.table("orders").column("recipient_name").nullable
    assert policy.table("service_tickets").column("order_id").nullable


def test_retention_rules(policy):
    assert policy.retention["orders"].days == 365 and policy.retention["orders"].clock == "completed_at"
    assert policy.retention["service_tickets"].clock == "closed_at"
    assert policy.retention["site_visits"].days == 90
    assert policy.retention["staff_access_log"].days == 3 * 365
    assert "customers" not in policy.retention
    assert policy.backup_retention_days == 35


def test_business_hours_default_to_tokyo(policy):
    bh = policy.business_hours
    assert bh.timezone == "Asia/Tokyo" and bh.weekdays == (0, 1, 2, 3, 4)
    assert (bh.start.hour, bh.end.hour) == (9, 18)


def test_customer_service_may_not_read_payments(policy):
    assert "payment" not in policy.roles["customer_service"].read
    assert policy.data_categories["payments"] == "payment"


def test_unknown_column_setting_is_rejected():
    text = policy_path().read_text().replace("email: {type: string, class: contact, format: email}",
                                             "email: {type: string, class: contact, fromat: email}")
    with pytest.raises(PolicyError, match=r"tables.customers.columns.email has unknown setting"):
        parse_policy(text)


def test_bad_class_and_bad_yaml_are_named():
    text = policy_path().read_text().replace("email: {type: string, class: contact,", "email: {type: string, class: secret,")
    with pytest.raises(PolicyError, match=r"tables.customers.columns.email.class"):
        parse_policy(text)
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_policy("tables: [unclosed")


def test_missing_policy_file(tmp_path):
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "nope.yaml")


def test_backups_write_with_one_process_unless_the_policy_says_more():
    """recovery_points.workers: 1 in the shipped policy and when the setting is left out."""
    text = policy_path().read_text()
    assert parse_policy(text).backup_workers == 1
    without = text.replace("\n  workers: 1\n", "\n")
    assert without != text and parse_policy(without).backup_workers == 1
    assert parse_policy(text.replace("\n  workers: 1\n", "\n  workers: 3\n")).backup_workers == 3
