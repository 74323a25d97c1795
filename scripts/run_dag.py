"""Run one DAG with `airflow dags test` and fail unless the run ended in the expected state.

`airflow dags test` exits 0 even when the run failed, so this script reads the run's final
state from Airflow (`airflow dags list-runs -o json`) and exits non-zero on any other state.

    python scripts/run_dag.py order_backup 2026-11-24T16:00:00+00:00 [--conf '{"dry_run": false}']
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = str(ROOT / "bin" / "airflow")


def run_state(dag_id: str, logical_date: str, env: dict[str, str] | None = None) -> tuple[str | None, str | None]:
    """(state, run_id) of the newest run of ``dag_id`` at ``logical_date``."""
    import pendulum

    out = subprocess.run(
        [AIRFLOW, "dags", "list-runs", dag_id, "-o", "json"],
        check=True, capture_output=True, text=True, env=env,
    ).stdout
    # the CLI may print log lines first; the JSON document is the line that starts with "["
    runs: list[dict] = []
    for line in out.splitlines():
        if line.startswith("[{") or line.strip() == "[]":
            runs = json.loads(line)
            break
    wanted = pendulum.parse(logical_date)
    matches = [r for r in runs if r.get("logical_date") and pendulum.parse(r["logical_date"]) == wanted]
    if not matches:
        return None, None
    newest = max(matches, key=lambda r: r.get("start_date") or "")
    return newest.get("state"), newest.get("run_id")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dag_id")
    parser.add_argument("logical_date")
    parser.add_argument("--conf", default=None, help="run conf as JSON")
    parser.add_argument("--expect", default="success", help="expected final state (default success)")
    parser.add_argument("--quiet", action="store_true", help="send the task logs to a file")
    args = parser.parse_args(argv)

    cmd = [AIRFLOW, "dags", "test", args.dag_id, args.logical_date]
    if args.conf:
        cmd += ["-c", args.conf]
    started = time.monotonic()
    log_dir = Path(os.environ.get("GOV_LOCAL", ROOT / ".local")) / "demo-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{args.dag_id}.log"
    with open(log_file, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh if args.quiet else None, stderr=subprocess.STDOUT if args.quiet else None)
    state, run_id = run_state(args.dag_id, args.logical_date)
    seconds = time.monotonic() - started
    ok = proc.returncode == 0 and state == args.expect
    print(f"{'ok ' if ok else 'FAIL'} {args.dag_id:<16} run={run_id} state={state} ({seconds:.0f}s)"
          + (f" log: {log_file}" if args.quiet else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
