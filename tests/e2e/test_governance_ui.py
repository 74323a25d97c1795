"""The Governance view in a real Airflow UI, in a real browser.

A real ``airflow api-server`` (fixture ``governance_api_server``: fresh Airflow home, simple auth
manager, a root with a recovery point and reports written by ``airflow dags test
order_backup``) and Debian's Chromium, headless, driven by Selenium. The test signs in through
Airflow's login page, follows **Governance** in the navigation, checks that the recovery point
and the run's reports are listed inside the embedded view, follows a report link, and saves
screenshots to ``test-artifacts/`` (``governance.png``: the view inside the Airflow UI;
``governance-view.png``: the whole page). An anonymous request to the view's API is refused.
"""

from __future__ import annotations

import base64
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from tests.e2e.conftest import ARTIFACTS, ApiServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

POINT_ID = "rp-20261123T160000Z"  # order_backup's point for the fixture's logical date
BUDGET_SECONDS = 60  # the browser part; the fixture's backup and server start are timed separately


def _status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _full_page_png(driver: Any) -> bytes:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": 1440, "height": min(int(height), 6000), "scale": 1},
        },
    )
    return base64.b64decode(shot["data"])


def test_governance_view_in_the_airflow_ui(governance_api_server: ApiServer, chromium: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    server, driver = governance_api_server, chromium
    base = server.url
    started = time.monotonic()
    ARTIFACTS.mkdir(exist_ok=True)

    # anonymous: refused by the view itself (plugin apps are mounted without Airflow's auth)
    for path in ("/governance/api/recovery-points", "/governance/api/runs", "/governance/"):
        assert _status(base + path) == 401, path
    assert _status(base + "/governance/api/me", {"Authorization": "Bearer forged.token.value"}) == 403

    wait = WebDriverWait(driver, 30)
    try:
        # sign in through Airflow's own login page
        driver.get(base + "/")
        wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
        driver.find_element(By.NAME, "password").send_keys(server.password("admin"))
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: d.get_cookie("_token") is not None)

        # the Governance entry in Airflow's navigation opens the view (embedded)
        nav = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "a[href$='/plugin/governance']")))
        assert "Governance" in (nav.text + (nav.get_attribute("title") or ""))
        nav.click()
        frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Governance']")))
        driver.switch_to.frame(frame)
        wait.until(ec.presence_of_element_located((By.ID, "recovery-points")))
        html = driver.page_source
        assert POINT_ID in html
        assert "Signed in as" in html and "admin" in html
        report_links = driver.find_elements(By.CSS_SELECTOR, "a[href^='/governance/runs/order_backup/']")
        assert report_links, "no order_backup run report is linked"
        assert driver.find_elements(By.CSS_SELECTOR, "a[href^='/governance/data-docs/']"), "no Data Docs link"
        assert driver.find_elements(By.CSS_SELECTOR, f"a[href='/governance/recovery-points/{POINT_ID}']")
        driver.switch_to.default_content()
        driver.save_screenshot(str(ARTIFACTS / "governance.png"))

        # a run's report page, reached from the view
        driver.switch_to.frame(frame)
        driver.find_element(By.CSS_SELECTOR, "a[href^='/governance/runs/order_backup/']").click()
        wait.until(ec.presence_of_element_located((By.ID, "tables")))
        assert "Order backup run" in driver.page_source and POINT_ID in driver.page_source
        driver.switch_to.default_content()

        # the whole view, for the record
        driver.get(base + "/governance/")
        wait.until(ec.presence_of_element_located((By.ID, "runs")))
        (ARTIFACTS / "governance-view.png").write_bytes(_full_page_png(driver))
    except Exception:
        driver.switch_to.default_content()
        driver.save_screenshot(str(ARTIFACTS / "governance-failure.png"))
        print(server.log_tail())
        raise
    elapsed = time.monotonic() - started
    print(f"[e2e] governance fixture {server.timings}; browser part {elapsed:.1f}s")
    assert (ARTIFACTS / "governance.png").stat().st_size > 10_000
    assert elapsed < BUDGET_SECONDS
