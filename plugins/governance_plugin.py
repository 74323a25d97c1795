"""Airflow plugin: the **Governance** view in the Airflow UI.

Registers the view's FastAPI app (``plugins/governance_view``) under ``/governance`` and two
external views that embed it in the UI:

* **Governance** in the navigation bar: the overview of recovery points, validation results,
  the purge ledger, restore drills with the RTO/RPO trend and the access-audit reports;
* **Governance report**, a tab on every DAG run: that run's governance report (a run of a
  DAG that is not one of the governance DAGs says so).

Plugin apps are mounted without Airflow's authentication: the app checks the caller's Airflow
JWT and role itself (``governance_view/auth.py``). Loading this module is cheap (FastAPI
only, no I/O): the scheduler and workers load plugins too.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from governance_view.app import app

URL_PREFIX = "/governance"


class GovernancePlugin(AirflowPlugin):
    name = "lomevexi_governance"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Governance"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {
            "name": "Governance",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "governance",
            "nav_top_level": True,
            "icon": f"{URL_PREFIX}/static/governance.svg",
            "icon_dark_mode": f"{URL_PREFIX}/static/governance.svg?dark=true",
        },
        {
            "name": "Governance report",
            "href": f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "governance-report",
            "icon": f"{URL_PREFIX}/static/governance.svg",
            "icon_dark_mode": f"{URL_PREFIX}/static/governance.svg?dark=true",
        },
    ]
