"""The incident page in a real browser: headless Chromium (Debian's) driven over
WebDriver shows the state, contacts and timeline, a button changes the state, and a
screenshot is kept for people to look at (tests/screenshots/, or $PAGERD_SCREENSHOTS)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from helpers import ADMIN, free_port, running_daemon

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
SHOTS = Path(os.environ.get("PAGERD_SCREENSHOTS", Path(__file__).parent / "screenshots"))

CONFIG = f"""
server:
  admin_token: {ADMIN}
  listen: 127.0.0.1:PORT
  external_url: http://127.0.0.1:PORT
severity:
  levels:
    - {{name: SEV1, description: Customers cannot pay., ack_target: 5m, resolve_target: 1h}}
users:
  - name: alice
    contacts: {{webhook: "http://127.0.0.1:9/alice"}}
components:
  - name: checkout
    team: shop
    runbook_url: https://runbooks.example.com/checkout
    contacts:
      - {{name: Shop on call, role: primary, email: shop@example.com}}
    vendors:
      - {{name: PayCo, support_level: premium, phone: "+15550009999"}}
route:
  receiver: pager
receivers:
  - name: pager
"""


@pytest.fixture
def browser() -> Iterator[object]:
    if CHROMIUM is None or DRIVER is None:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver must be installed in CI")
        pytest.skip("chromium / chromedriver not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # --disable-dev-shm-usage: CI containers often give /dev/shm 64 MB, too little for a tab.
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1000,1400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


async def test_page_shows_state_contacts_timeline_and_acts(
    tmp_path: Path, browser: object
) -> None:
    port = free_port()
    text = CONFIG.replace("PORT", str(port))
    async with running_daemon(tmp_path, text, port=port) as (daemon, base, session):
        async with session.post(f"{base}/api/v1/incidents", json={
                "component": "checkout", "severity": "SEV1", "summary": "Card payments fail"},
                headers={"Authorization": f"Bearer {ADMIN}"}) as response:
            number = (await response.json())["id"]
        url = f"{base}/i/{daemon.signer.sign(number, 'view', 'alice')}/"

        def look_and_press() -> dict[str, str]:
            driver = browser
            driver.get(url)  # type: ignore[attr-defined]
            seen = {
                "state": driver.find_element(By.ID, "state").text,  # type: ignore[attr-defined]
                "contacts": driver.find_element(By.ID, "contacts").text,  # type: ignore
                "timeline": driver.find_element(By.ID, "timeline").text,  # type: ignore
                "title": driver.title,  # type: ignore[attr-defined]
            }
            SHOTS.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(SHOTS / "incident-triggered.png"))  # type: ignore
            driver.find_element(By.ID, "ack").click()  # type: ignore[attr-defined]
            # The button POSTs and the browser follows the redirect: wait for the new page.
            WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,)
                          ).until(lambda d: d.find_element(By.ID, "state").text
                                  == "acknowledged")
            seen["after"] = driver.find_element(By.ID, "state").text  # type: ignore
            seen["after_timeline"] = driver.find_element(By.ID, "timeline").text  # type: ignore
            driver.save_screenshot(str(SHOTS / "incident-acknowledged.png"))  # type: ignore
            return seen

        try:
            seen = await asyncio.to_thread(look_and_press)
        except Exception as exc:
            # What the browser showed, so that a failure in CI can be understood from its log.
            driver = browser
            raise AssertionError(
                f"{exc!r} at {driver.current_url}: {driver.page_source[:2000]}"  # type: ignore
            ) from exc
        assert seen["state"] == "triggered"
        assert "Card payments fail" in seen["title"]
        assert "Shop on call" in seen["contacts"] and "PayCo" in seen["contacts"]
        assert "incident.opened" in seen["timeline"]
        assert seen["after"] == "acknowledged"
        assert "user:alice" in seen["after_timeline"]
        incident = await daemon.store.incident(number)
        assert incident is not None and incident["acknowledged_by"] == "user:alice"
        assert (SHOTS / "incident-acknowledged.png").stat().st_size > 0
