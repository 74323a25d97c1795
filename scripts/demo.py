"""`make demo`: seed the embedded store and run one whole nightly cycle of every DAG.

The cycle runs each DAG with `airflow dags test` for the same night, in the order the
scheduler would (backup, purge, drill, audit), checks that every run ended in `success`, and
prints where the recovery point and the reports are. Rerunning is safe: the store is seeded
only once, and every job is idempotent for its logical date.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from run_dag import main as run_dag  # noqa: E402

#: (dag id, run conf) in the order of one night
CYCLE: list[tuple[str, dict | None]] = [
    ("order_backup", None),
    ("retention_purge", {"dry_run": False}),
    ("restore_drill", {"recovery_point": "latest"}),
    ("access_audit", None),
]


def _env_path(var: str) -> Path:
    value = os.environ[var]
    return Path(value[len("sqlite:///"):] if value.startswith("sqlite:///") else value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=3000, help="orders in the synthetic store")
    parser.add_argument("--date", default=None, help="the night to run (YYYY-MM-DD, Asia/Tokyo); default today")
    args = parser.parse_args(argv)

    import pendulum

    from lomevexi_governance import seed
    from lomevexi_governance.settings import target_from_uri

    night = pendulum.parse(args.date, tz="Asia/Tokyo") if args.date else pendulum.today("Asia/Tokyo")
    # order_backup's schedule: 01:00 Asia/Tokyo; the other jobs use the same logical date
    logical = night.replace(hour=1).in_timezone("UTC")
    logical_iso = logical.isoformat()

    store_uri = os.environ["AIRFLOW_CONN_STORE_DB"]
    store = target_from_uri(store_uri, "store_db")
    if store.is_sqlite and not Path(store.path or "").exists():
        Path(store.path or "").parent.mkdir(parents=True, exist_ok=True)
        counts = seed.seed_store(store, orders=args.orders, as_of=logical.subtract(hours=1))
        print(f"seeded the embedded store {store.path}: " + ", ".join(f"{t}={n}" for t, n in counts.items()))
    else:
        print(f"using the existing store {store.describe()}")

    dags_dir = Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER", ROOT / "dags"))
    failures = 0
    for dag_id, conf in CYCLE:
        if not (dags_dir / f"{dag_id}.py").exists():
            continue
        argv_ = [dag_id, logical_iso, "--quiet"]
        if conf is not None:
            argv_ += ["--conf", json.dumps(conf)]
        failures += run_dag(argv_)

    report_root = _env_path("AIRFLOW_VAR_GOVERNANCE_REPORT_ROOT")
    backup_root = _env_path("AIRFLOW_VAR_GOVERNANCE_BACKUP_ROOT")
    print()
    print(f"night of {night.to_date_string()} (logical date {logical_iso})")
    print(f"  recovery points: {backup_root / 'recovery_points'}")
    for summary in sorted(report_root.glob("*/*/summary.json")):
        if summary.stat().st_mtime >= dt.datetime.now().timestamp() - 3600:
            print(f"  report: {summary}")
    for html in sorted(report_root.glob("**/*.html")):
        if "data_docs" not in html.parts and html.stat().st_mtime >= dt.datetime.now().timestamp() - 3600:
            print(f"  html:   {html}")
    print("browse it all in the Airflow UI: make ui  (then open http://localhost:8080, Governance)")
    if failures:
        print(f"{failures} DAG run(s) did not succeed; see the logs above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
