"""Lomevexi data governance: the library the Airflow DAGs call.

Nothing here imports Airflow at module level except :mod:`lomevexi_governance.airflow_glue`,
so every piece can be used and tested without a running Airflow.
"""

__version__ = "0.1.0"
