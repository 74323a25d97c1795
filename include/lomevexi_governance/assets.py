"""Airflow Assets shared between DAGs (so no DAG file imports another)."""

from __future__ import annotations

from airflow.sdk import Asset

#: Emitted by ``order_backup`` once a recovery point is published and verified; schedules
#: ``retention_purge`` so that keys are only shredded after a fresh point reflects the holds.
RECOVERY_POINT = Asset(name="lomevexi_recovery_point", uri="lomevexi-governance://recovery-points/verified")
