"""End-to-end fixtures: a running ``airflow api-server`` and a headless Chromium.

``governance_api_server`` starts ``bin/airflow api-server`` (one worker) on a free port with a
fresh ``AIRFLOW_HOME`` (SQLite metadata, migrated first), the simple auth manager with the
project's users (``admin:admin,compliance:viewer,oncall:op``; passwords in the home's
``simple_auth_manager_passwords.json``) and the Variables ``governance_backup_root`` /
``governance_report_root`` pointing at a fixture root. That root holds what a real night
leaves: a tiny SQLite store backed up by ``airflow dags test order_backup`` (a real, signed,
encrypted recovery point, its run report, validation results and Great Expectations Data
Docs). The backup runs while the server starts, in another Airflow home, so the two never
contend for one SQLite metadata database. The server runs in its own process group, which
teardown stops, pass or fail.

``chromium`` is Debian's ``chromium`` driven through its ``chromedriver`` by Selenium
(``make browser`` installs both): headless, sandbox and GPU off, no background networking,
and a fresh profile per test.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import ROOT, airflow_base_env, create_sqlite_store, governance_env, run_dag
from tests.integration.storefixtures import load_sqlite, store_rows

ARTIFACTS = ROOT / "test-artifacts"
LOGICAL_DATE = "2026-11-23T16:00:00+00:00"  # 2026-11-24 01:00 Asia/Tokyo: an order_backup tick
USERS = "admin:admin,compliance:viewer,oncall:op"
STARTUP_TIMEOUT = 120
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    "--window-size=1440,1000",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ApiServer:
    url: str
    home: Path
    root: Path
    process: subprocess.Popen[bytes]
    log: Path
    timings: dict[str, float]

    def password(self, user: str) -> str:
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json").read_text())
        return passwords[user]

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"airflow api-server exited with {process.returncode}:\n{log.read_text(errors='replace')[-4000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=3) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(
        f"airflow api-server did not answer within {STARTUP_TIMEOUT}s:\n{log.read_text(errors='replace')[-4000:]}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _start_server(home: Path, root: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """Migrate a fresh Airflow home, then start the api-server on ``port`` (its own process group)."""
    env = airflow_base_env(home)
    env.update(
        {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": USERS,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "simple_auth_manager_passwords.json"),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}/",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "AIRFLOW_VAR_GOVERNANCE_BACKUP_ROOT": str(root / "backups"),
            "AIRFLOW_VAR_GOVERNANCE_REPORT_ROOT": str(root / "reports"),
        }
    )
    migrate = subprocess.run([str(ROOT / "bin" / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(ROOT / "bin" / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _nightly_backup(airflow_home: Path, root: Path) -> None:
    """A tiny store under ``root``, backed up by the real order_backup DAG (``airflow dags test``)."""
    store = create_sqlite_store(root / "store.db")
    load_sqlite(str(store), store_rows(n_orders=40))  # its service tickets name orders up to 40
    env = governance_env(airflow_home, root, f"sqlite:///{store}", os.urandom(32))
    state, output = run_dag("order_backup", LOGICAL_DATE, env)
    assert state == "success", output[-4000:]


@pytest.fixture(scope="session")
def governance_api_server(tmp_path_factory: pytest.TempPathFactory, airflow_home: Path) -> Iterator[ApiServer]:
    """A running api-server whose Governance view reads a root with a real recovery point and reports."""
    started = time.monotonic()
    tmp = tmp_path_factory.mktemp("governance_ui")
    root, home = tmp / "site", tmp / "airflow"
    root.mkdir()
    home.mkdir()
    port = free_port()
    log = tmp / "api-server.log"
    timings: dict[str, float] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        server_future = pool.submit(_start_server, home, root, port, log)
        try:
            _nightly_backup(airflow_home, root)
        except BaseException:
            with contextlib.suppress(Exception):
                _stop(server_future.result())
            raise
        process = server_future.result()
    timings["backup_and_server_start"] = time.monotonic() - started
    server = ApiServer(f"http://127.0.0.1:{port}", home, root, process, log, timings)
    try:
        _wait_healthy(server.url, process, log)
        timings["ready"] = time.monotonic() - started
        yield server
    finally:
        _stop(process)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[object]:
    """Headless Debian Chromium under Selenium, with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver_path:
        pytest.fail("Debian's chromium and chromium-driver are not installed: run `make browser`")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    service = Service(executable_path=driver_path, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
