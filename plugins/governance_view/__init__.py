"""The Governance view of the Airflow UI (see ``docs/governance-view.md``).

A FastAPI app (:mod:`.app`) the api-server mounts under ``/governance``, rendering what the
governance DAGs wrote (:mod:`.data`), for users the Airflow auth manager lets in (:mod:`.auth`).
``plugins/governance_plugin.py`` registers it.
"""
