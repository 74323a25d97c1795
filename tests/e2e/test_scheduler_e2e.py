"""A real Airflow, driven through its REST API the way on-call drives it.

`airflow scheduler`, `airflow dag-processor` and `airflow api-server` run as separate processes
(LocalExecutor) on a PostgreSQL metadata database of their own, against a small PostgreSQL store
(another database of its own, so ``order_backup`` writes its tables from worker processes sharing
one exported snapshot, inside a real task), with the keyring, backups and reports in a temporary
folder. On-call logs in (simple auth
manager, JWT from ``POST /auth/token``), unpauses each DAG and triggers it with a logical date
and a conf, then waits for the run to succeed:

``order_backup`` -> ``retention_purge`` (``{"dry_run": false}``) -> ``restore_drill``
(``{"recovery_point": "latest"}``).

The scheduler's own cron and asset scheduling is off (``[scheduler] use_job_schedule``):
unpausing ``order_backup`` would otherwise start a scheduled run for the latest 01:00 tick,
whose newer recovery point would make the purge guard (rightly) refuse the triggered date.
Everything else is the production path: the scheduler queues and runs the tasks, the tasks
reach the API server's Execution API with their JWTs, connections and variables come from
``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*``.

Every process is started in its own process group and the whole group is stopped in teardown,
pass or fail; the metadata database is dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import PG_ADMIN, ROOT, governance_env
from tests.integration.storefixtures import load_postgres, store_rows

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(420)]

LOGICAL_DATE = "2026-11-23T16:00:00+00:00"  # 2026-11-24 01:00 Asia/Tokyo, an order_backup tick
#: the nightly cycle, in order, with the conf on-call gives each trigger
CYCLE: list[tuple[str, dict[str, Any]]] = [
    ("order_backup", {}),
    ("retention_purge", {"dry_run": False}),
    ("restore_drill", {"recovery_point": "latest"}),
]
USERS = "admin:admin,compliance:viewer,oncall:op"
STARTUP_TIMEOUT = 120
RUN_TIMEOUT = 150
BUDGET_SECONDS = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Timings:
    started: float = field(default_factory=time.monotonic)
    marks: list[tuple[str, float]] = field(default_factory=list)
    _last: float = field(default_factory=time.monotonic)

    def mark(self, what: str) -> None:
        now = time.monotonic()
        self.marks.append((what, now - self._last))
        print(f"[e2e] {what}: {now - self._last:.1f}s (total {now - self.started:.1f}s)")
        self._last = now

    @property
    def total(self) -> float:
        return time.monotonic() - self.started


@dataclass
class Cluster:
    url: str
    env: dict[str, str]
    home: Path
    tmp: Path
    logs: dict[str, Path] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)

    def start(self, name: str, *args: str) -> None:
        log = self.logs[name] = self.home / f"{name}.out"
        with open(log, "wb") as out:
            self.procs[name] = subprocess.Popen(
                [str(ROOT / "bin" / "airflow"), *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: teardown stops it and its children
            )

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"airflow {name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs.get(name)
        return path.read_text(errors="replace")[-chars:] if path and path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
            # the group may outlive its leader (task processes, API workers): kill what is left
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def task_log_tails(self, dag_id: str, chars: int = 2500) -> str:
        found = sorted((self.home / "logs").glob(f"dag_id={dag_id}/**/*.log"))
        return "\n".join(f"--- {p.relative_to(self.home)}\n{p.read_text(errors='replace')[-chars:]}" for p in found)


@pytest.fixture
def metadata_db() -> Iterator[str]:
    """A database of its own for Airflow's metadata on the local PostgreSQL; dropped afterwards."""
    import psycopg

    name = f"airflow_e2e_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # fail, never skip
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN}: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        server = PG_ADMIN.split("://", 1)[1].rsplit("/", 1)[0]
        yield f"postgresql+psycopg2://{server}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def cluster(tmp_path: Path, metadata_db: str, pg_store: str) -> Iterator[Cluster]:
    home = tmp_path / "airflow"
    home.mkdir()
    load_postgres(pg_store, store_rows())
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = governance_env(home, tmp_path, pg_store, os.urandom(32))
    env.update(
        {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_db,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DEFAULT_TIMEZONE": "UTC",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": USERS,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            # shared by the scheduler (signs task tokens) and the API server (checks them)
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # see the module docstring
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        }
    )
    c = Cluster(url=url, env=env, home=home, tmp=tmp_path)
    timings = c.timings
    try:
        migrate = subprocess.run(
            [str(ROOT / "bin" / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True, timeout=240
        )
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
        timings.mark("airflow db migrate (PostgreSQL)")
        c.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port))
        c.start("scheduler", "scheduler")
        c.start("dag-processor", "dag-processor")
        yield c
    finally:
        c.stop()
        timings.mark("processes stopped")
        if any(p.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL, None) for p in c.procs.values()):
            for name in c.procs:
                print(f"--- airflow {name} (tail)\n{c.tail(name)}")


class Api:
    """The REST API as on-call uses it: a JWT from the simple auth manager, then /api/v2."""

    def __init__(self, cluster: Cluster):
        import httpx

        self.cluster = cluster
        self.http = httpx.Client(base_url=cluster.url, timeout=30)

    def wait_until_up(self) -> None:
        import httpx

        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            self.cluster.check_alive()
            try:
                if self.http.get("/api/v2/monitor/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the API server did not come up:\n{self.cluster.tail('api-server')}")
            time.sleep(1)

    def token(self, user: str) -> str:
        passwords = json.loads(Path(self.cluster.env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())
        resp = self.http.post("/auth/token", json={"username": user, "password": passwords[user]})
        assert resp.status_code == 201, resp.text
        return resp.json()["access_token"]

    def call(self, method: str, path: str, token: str, **kw: Any) -> Any:
        return self.http.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kw)

    def wait_for_dags(self, token: str, dag_ids: list[str]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        missing = list(dag_ids)
        while missing:
            self.cluster.check_alive()
            missing = [d for d in missing if self.call("GET", f"/api/v2/dags/{d}", token).status_code != 200]
            if not missing:
                break
            if time.monotonic() > deadline:
                errors = self.call("GET", "/api/v2/importErrors", token).json()
                raise AssertionError(f"DAGs never parsed: {missing}; import errors: {errors}\n"
                                     f"{self.cluster.tail('dag-processor')}")
            time.sleep(1)

    def run_to_completion(self, token: str, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        resp = self.call("PATCH", f"/api/v2/dags/{dag_id}", token, json={"is_paused": False})
        assert resp.status_code == 200 and resp.json()["is_paused"] is False, resp.text
        run_id = f"e2e__{dag_id}__{uuid.uuid4().hex[:6]}"
        resp = self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", token,
                         json={"dag_run_id": run_id, "logical_date": LOGICAL_DATE, "conf": conf})
        assert resp.status_code == 200, resp.text
        assert resp.json()["conf"] == conf
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            self.cluster.check_alive()
            run = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", token).json()
            if run["state"] in ("success", "failed"):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(2)
        if run["state"] != "success":
            tis = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", token).json()
            states = {t["task_id"]: t["state"] for t in tis.get("task_instances", [])}
            raise AssertionError(
                f"{dag_id} run {run_id} ended {run['state']!r} (tasks: {states})\n"
                f"{self.cluster.task_log_tails(dag_id)}\n--- scheduler\n{self.cluster.tail('scheduler')}"
            )
        return run


def _summary(tmp: Path, dag_id: str, run_id: str) -> dict[str, Any]:
    from lomevexi_governance.reports import run_report_dir

    path = run_report_dir(tmp / "reports", dag_id, run_id) / "summary.json"
    assert path.exists(), f"no {path}"
    return json.loads(path.read_text())


def test_nightly_cycle_through_scheduler_and_rest_api(cluster: Cluster) -> None:
    timings = cluster.timings
    missing = [d for d, _conf in CYCLE if not (ROOT / "dags" / f"{d}.py").exists()]
    assert not missing, f"DAG files missing from dags/: {missing}"

    api = Api(cluster)
    api.wait_until_up()
    timings.mark("api-server, scheduler, dag-processor up")
    oncall = api.token("oncall")
    api.wait_for_dags(oncall, [d for d, _c in CYCLE])
    errors = api.call("GET", "/api/v2/importErrors", oncall).json()
    assert errors["total_entries"] == 0, errors
    timings.mark("DAGs parsed by the dag-processor")

    # compliance reads, it does not trigger
    viewer = api.token("compliance")
    assert api.call("GET", "/api/v2/dags/order_backup", viewer).status_code == 200
    denied = api.call("POST", "/api/v2/dags/order_backup/dagRuns", viewer,
                      json={"logical_date": LOGICAL_DATE, "conf": {}})
    assert denied.status_code == 403, denied.text

    runs = {}
    for dag_id, conf in CYCLE:
        runs[dag_id] = api.run_to_completion(oncall, dag_id, conf)
        timings.mark(f"{dag_id} run succeeded")

    tmp = cluster.tmp
    backup = _summary(tmp, "order_backup", runs["order_backup"]["dag_run_id"])
    assert backup["recovery_point_id"] == "rp-20261123T160000Z"
    assert backup["verification"]["ok"] is True and backup["validation"]["success"] is True
    assert (tmp / "backups" / "recovery_points" / "rp-20261123T160000Z" / "manifest.json").exists()
    purge = _summary(tmp, "retention_purge", runs["retention_purge"]["dag_run_id"])
    assert purge["dry_run"] is False and purge["recovery_point_id"] == "rp-20261123T160000Z"
    assert purge["purged"].get("orders", 0) > 0, purge["purged"]
    drill = _summary(tmp, "restore_drill", runs["restore_drill"]["dag_run_id"])
    assert drill["status"] == "SUCCESSFUL", drill.get("failure")

    print("[e2e] timings: " + ", ".join(f"{what} {secs:.1f}s" for what, secs in timings.marks))
    assert timings.total < BUDGET_SECONDS, f"the end-to-end cycle took {timings.total:.0f}s"
