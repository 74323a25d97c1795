"""The staff access audit (policy III.1 access control, III.2 audit, IV early warning).

Modules, in the order the ``access_audit`` DAG uses them:

``periods``     which days a run audits (daily, weekly and monthly roll-ups, custom windows)
``airflow_log`` Airflow's own audit log through the REST API (``airflow_api`` connection)
``reader``      ``staff_access_log`` rows of a period as Arrow batches (SQLite or PostgreSQL)
``rules``       the vectorized rule engine: findings, totals, histograms
``report``      summary.json, findings.csv and the self-contained HTML report
``charts``      inline SVG charts for the report
``evidence``    hash-chained append-only logs (report evidence, sent alerts)
``notify``      one e-mail per high-severity finding, never twice
``job``         the steps above as functions the DAG's tasks call
``bench``       ``python -m lomevexi_governance.audit.bench``: the engine on a synthetic large day

This package imports nothing heavy on import: pyarrow and numpy load with ``rules``/``reader``,
which only tasks, tests and the benchmark import.
"""
