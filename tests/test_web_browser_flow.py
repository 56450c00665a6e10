"""The incident workflow as a NOC person walks it, in a real headless Chromium.

First start (the setup page and its one-time code) → the first admin → log in
→ turn on TOTP on /account/2fa → log in again with a code → the incident a
failing target opened → acknowledge → a customer update in zh-CN and en →
the public status page shows it in each language.

The incident is the engine's own: a real engine (``tests/test_engine.py``'s
harness, on a ManualClock) probes a TCP target on a loopback port nothing
listens on, until it is down and its incident is written to the state DB the
web app then serves. The web app's clock is a manual one as well, so the
second login's TOTP code is from the next 30-second step (a code is taken
once) without waiting. Screenshots are kept under the test's temp dir and
their paths printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import shutil
import textwrap
import time
from pathlib import Path

import pyotp
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from core.secret_box import SecretBox
from monitor.config import load_config
from monitor.health import Health
from monitor.staff.setup_code import SetupCode
from monitor.store import queries
from monitor.store.db import open_database
from tests.peers import free_port
from tests.peers.chromium import chromium  # noqa: F401 - pytest fixture
from tests.test_engine import DETECT, FAIL_AFTER, INTERVAL, RECOVER_AFTER, TIMEOUT, Harness
from web import WebServices, create_app
from web.server import serve

ADMIN = "noc-admin"
PASSWORD = "a long browser passphrase"
UPDATE_ZH = "运营商A线路中断，已切换到备用线路，外呼逐步恢复。"
UPDATE_EN = "Carrier A is down; calls now use the backup trunk and are recovering."


class WebClock:
    """The web app's clock: half a minute behind real time until the test catches it up,
    which moves the second login to the next TOTP step and leaves the incident's changes
    on real time (the status page's own times are real time)."""

    def __init__(self) -> None:
        self.ahead = -30.0

    def time(self) -> float:
        return time.time() + self.ahead


def site_config(path: Path, port: int) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""\
            site: {{name: Test Center, timezone: Asia/Shanghai, language: zh-CN}}
            web: {{allowed_hosts: ["127.0.0.1"]}}
            targets:
              - id: carrier-a
                kind: tcp
                name: Carrier A trunk
                address: 127.0.0.1:{port}
                interval: {INTERVAL * 1000:g}ms
                timeout: {TIMEOUT * 1000:g}ms
                fail_after: {FAIL_AFTER}
                recover_after: {RECOVER_AFTER}
            components:
              - id: outbound
                name: {{zh-CN: 外呼线路, en: Outbound calling}}
                targets: [carrier-a]
            """
        ),
        encoding="utf-8",
    )
    return path


def open_incident_of_a_failing_target(config: Path, data: Path) -> int:
    """Run the engine until carrier-a (nothing listens on its port) is down; its incident."""

    async def scenario() -> int:
        h = Harness(config, data)
        await h.engine.start()
        try:
            await h.until(lambda: h.health("carrier-a") is Health.DOWN, DETECT, "carrier-a down")
            [incident] = h.repo.open_incidents()
            return incident.id
        finally:
            await h.close()

    return asyncio.run(scenario())


class Shots:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.paths: list[Path] = []

    def take(self, driver, name: str) -> None:  # noqa: ANN001
        path = self.directory / name
        driver.save_screenshot(str(path))
        self.paths.append(path)
        print(f"screenshot: {path}")


def submit(driver, form_css: str) -> None:  # noqa: ANN001
    driver.find_element(By.CSS_SELECTOR, f"{form_css} button[type=submit]").click()


def log_in(driver, base: str, wait: WebDriverWait) -> None:  # noqa: ANN001
    driver.get(f"{base}/login?lang=en")
    driver.find_element(By.NAME, "username").send_keys(ADMIN)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    submit(driver, "form.stack-form")


def log_out(driver, wait: WebDriverWait) -> None:  # noqa: ANN001
    driver.find_element(By.CSS_SELECTOR, "header form.inline-form button").click()
    wait.until(lambda d: "/login" in d.current_url)


@pytest.mark.peer
def test_setup_login_totp_acknowledge_and_publish_an_update_to_the_status_page(
    tmp_path: Path,
    chromium,  # noqa: F811 - the fixture imported above
) -> None:
    config = site_config(tmp_path / "site.yaml", free_port())
    data = tmp_path / "data"
    incident_id = open_incident_of_a_failing_target(config, data)

    db = open_database(None, data)
    setup = SetupCode(tmp_path / "setup-code")
    code = setup.ensure()
    clock = WebClock()
    loaded = load_config(config)
    app = create_app(
        WebServices(
            config=lambda: loaded.config,
            db=db,
            version="9.9.9-test",
            secret_box=SecretBox.from_file(tmp_path / "keys" / "appliance.key"),
            setup=setup,
            clock=clock.time,
        )
    )
    app.config["DIALWATCH_REFRESH_MS"] = 300
    shots = Shots(tmp_path / "screenshots")
    handle = serve(app, "127.0.0.1", 0)
    base = handle.url
    # A wait may look at the page a click is leaving: a stale element means "not yet".
    wait = WebDriverWait(chromium, 10, ignored_exceptions=(StaleElementReferenceException,))
    try:
        # First start: no users, so the console asks for the setup code.
        chromium.get(f"{base}/?lang=en")
        wait.until(lambda d: d.current_url.endswith("/setup"))
        chromium.find_element(By.NAME, "setup_code").send_keys(code)
        chromium.find_element(By.NAME, "username").send_keys(ADMIN)
        chromium.find_element(By.NAME, "password").send_keys(PASSWORD)
        chromium.find_element(By.NAME, "password2").send_keys(PASSWORD)
        shots.take(chromium, "01-setup.png")
        submit(chromium, "form.stack-form")
        wait.until(lambda d: d.find_elements(By.ID, "incident-list"))
        assert setup.current() is None

        # Log in with the password, then turn on the second factor.
        log_out(chromium, wait)
        log_in(chromium, base, wait)
        wait.until(lambda d: "/login" not in d.current_url)
        chromium.get(f"{base}/account/2fa?lang=en")
        secret = chromium.find_element(By.CSS_SELECTOR, "main code").text.strip()
        totp = pyotp.TOTP(secret)
        shots.take(chromium, "02-totp-setup.png")
        chromium.find_element(By.NAME, "code").send_keys(totp.at(clock.time()))
        submit(chromium, "form.stack-form")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".codes"))

        # Log in again: password, then a code from the next step (a code is taken once).
        log_out(chromium, wait)
        clock.ahead = 0.0
        log_in(chromium, base, wait)
        wait.until(lambda d: "/login/code" in d.current_url)
        chromium.find_element(By.NAME, "code").send_keys(totp.at(clock.time()))
        shots.take(chromium, "03-login-code.png")
        submit(chromium, "form.stack-form")
        wait.until(lambda d: "/login" not in d.current_url)

        # The incident the failing target opened, from the list.
        chromium.get(f"{base}/incidents?state=open&lang=en")
        rows = chromium.find_elements(By.CSS_SELECTOR, "#incident-rows tr[data-id]")
        assert [r.get_attribute("data-id") for r in rows] == [str(incident_id)]
        assert "carrier-a is Down" in rows[0].text
        shots.take(chromium, "04-incidents.png")
        rows[0].find_element(By.CSS_SELECTOR, "a").click()
        wait.until(lambda d: d.current_url.split("?")[0].endswith(f"/incidents/{incident_id}"))

        # Acknowledge.
        submit(chromium, "#form-ack")
        wait.until(lambda d: f"by {ADMIN} at" in d.find_element(By.ID, "acked").text)
        assert not chromium.find_elements(By.ID, "form-ack")

        # A customer update in both languages.
        chromium.find_element(By.NAME, "text_zh-CN").send_keys(UPDATE_ZH)
        chromium.find_element(By.NAME, "text_en").send_keys(UPDATE_EN)
        submit(chromium, "#form-update")
        wait.until(lambda d: UPDATE_EN in d.find_element(By.ID, "customer-updates").text)
        assert UPDATE_ZH in chromium.find_element(By.ID, "customer-updates").text
        timeline = chromium.find_element(By.ID, "timeline").text
        assert "Acknowledged" in timeline and "Customer update" in timeline
        shots.take(chromium, "05-incident.png")

        row = queries.incident(db, incident_id)
        assert row is not None and row.acknowledged_by == f"user:{ADMIN}"

        # The dashboard's open incidents, as its script redraws them: a link, and who acked.
        chromium.get(f"{base}/?lang=en")
        wait.until(
            lambda d: (
                d.execute_script("return document.getElementById('live').dataset.state") == "live"
            )
        )
        # One script call: the list is redrawn every 300 ms, so a held element goes stale.
        text, link = chromium.execute_script(
            "var li = document.querySelector('#incident-list li');"
            "return [li.innerText, li.querySelector('a.inc-title').href];"
        )
        assert f"acknowledged by {ADMIN}" in text
        assert link == f"{base}/incidents/{incident_id}"

        # The public status page, in each language, without logging in (the dashboard left
        # first: its next poll without the cookie would be a 401 in the console).
        chromium.get("about:blank")
        chromium.delete_all_cookies()
        chromium.get(f"{base}/status?lang=en")
        main = chromium.find_element(By.TAG_NAME, "main").text
        assert UPDATE_EN in main and UPDATE_ZH not in main and "Outbound calling" in main
        shots.take(chromium, "06-status-en.png")
        chromium.get(f"{base}/status?lang=zh-CN")
        main = chromium.find_element(By.TAG_NAME, "main").text
        assert UPDATE_ZH in main and UPDATE_EN not in main and "外呼线路" in main
        shots.take(chromium, "07-status-zh.png")
        errors = [
            e["message"]
            for e in chromium.get_log("browser")
            if e["level"] == "SEVERE" and "net::ERR_ABORTED" not in e["message"]
        ]
        assert errors == []
    finally:
        handle.close()
        db.dispose()
    assert all(p.stat().st_size > 0 for p in shots.paths)
    print("screenshots in", shots.directory)
    shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
