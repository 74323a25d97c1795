"""What a task needs at run time, gathered once from the Airflow context.

:func:`lomevexi_governance.airflow_glue.task_env` builds a :class:`TaskEnv` from the task context
(connections and variables are read there, at run time); tests build one directly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from lomevexi_governance.keys import KeyService, keyring_from_connection
from lomevexi_governance.policy import Policy, load_policy
from lomevexi_governance.reports import run_report_dir
from lomevexi_governance.settings import DatabaseTarget
from lomevexi_governance.storage import Storage, storage_for


@dataclass
class TaskEnv:
    dag_id: str
    run_id: str
    logical_date: dt.datetime
    backup_root: str
    report_root: str
    store: DatabaseTarget | None = None
    kms_connection: Any = field(default=None, repr=False)
    triggered_by: str | None = None
    run_type: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    policy_path: str | None = None

    @cached_property
    def policy(self) -> Policy:
        return load_policy(self.policy_path)

    @cached_property
    def storage(self) -> Storage:
        return storage_for(self.backup_root)

    @cached_property
    def keys(self) -> KeyService:
        if self.kms_connection is None:
            from lomevexi_governance.errors import ConfigurationError

            raise ConfigurationError("connection 'governance_kms' is not configured")
        return keyring_from_connection(self.kms_connection)

    @property
    def report_dir(self) -> Path:
        return run_report_dir(self.report_root, self.dag_id, self.run_id)

    def require_store(self) -> DatabaseTarget:
        if self.store is None:
            from lomevexi_governance.errors import ConfigurationError

            raise ConfigurationError("connection 'store_db' is not configured")
        return self.store
