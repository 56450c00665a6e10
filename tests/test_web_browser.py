"""The dashboard and status page in a real headless Chromium, served by waitress."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.peers.chromium import chromium  # noqa: F401 - pytest fixture
from tests.test_web_support import (
    STAFF,
    STAFF_PASSWORD,
    add_incident,
    add_targets,
    make_config,
    make_world,
    set_health,
    standard_rows,
)
from web.server import serve

SCREENSHOT_DIR = Path("/tmp/dialwatch-web-screenshots")
"""Where the test leaves its screenshots for a human look (overwritten each run)."""


# Rows are read in one script call: the page redraws them every few hundred ms,
# so element handles held across calls would go stale.
_ROWS_JS = """
return Array.from(document.querySelectorAll('#target-rows tr[data-id]'))
  .map(tr => [tr.dataset.id, tr.dataset.health, tr.innerText]);
"""


def _table(driver) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in driver.execute_script(_ROWS_JS)]


def _rows(driver) -> dict[str, str]:
    return {target_id: health for target_id, health, _text in _table(driver)}


def _row_text(driver, target_id: str) -> str:
    return next(text for tid, _h, text in _table(driver) if tid == target_id)


def _text(driver, element_id: str) -> str:
    return driver.execute_script(f"return document.getElementById('{element_id}').innerText")


def _console_errors(driver) -> list[str]:
    """Script errors, CSP violations and failed loads; a poll cut short by navigating away
    (net::ERR_ABORTED) is how browsers work, not an error of the page."""
    return [
        e["message"]
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and "net::ERR_ABORTED" not in e["message"]
    ]


def browser_login(driver, base_url: str, role: str = "viewer") -> None:
    """Log in through the real form, as a person would."""
    driver.get(f"{base_url}/login?lang=en")
    driver.find_element(By.NAME, "username").send_keys(STAFF[role])
    driver.find_element(By.NAME, "password").send_keys(STAFF_PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form.stack-form button[type=submit]").click()
    WebDriverWait(driver, 10).until(lambda d: "/login" not in d.current_url)


def browser_world(tmp_path: Path):  # noqa: ANN201
    """A world whose console answers 127.0.0.1 on the ephemeral port the test server gets."""
    return make_world(tmp_path, config=make_config(web={"allowed_hosts": ["127.0.0.1"]}))


def _screenshot(driver, name: str) -> None:
    SCREENSHOT_DIR.mkdir(exist_ok=True)
    driver.save_screenshot(str(SCREENSHOT_DIR / name))


@pytest.mark.peer
def test_dashboard_updates_live_without_a_reload_and_status_page_renders(
    tmp_path,
    chromium,  # noqa: F811 - the fixture imported above
) -> None:
    w = browser_world(tmp_path)
    add_targets(w.db, standard_rows())
    add_targets(
        w.db,
        (
            {
                "target_id": f"edge-{i:02d}",
                "kind": "tcp",
                "last_detail": "connected",
                "last_metrics": {"tcp.connect_ms": 0.4 + i / 10},
            }
            for i in range(20)
        ),
    )
    add_incident(
        w.db,
        ["trunk-a", "router"],
        title="Carrier A trunk not answering",
        cause="Carrier A is repairing a fibre cut",
        eta=2_000_000_000.0,
        summary={"en": "Some outbound calls fail", "zh-CN": "部分外呼失败"},
    )
    w.app.config["DIALWATCH_REFRESH_MS"] = 300
    handle = serve(w.app, "127.0.0.1", 0)
    try:
        browser_login(chromium, handle.url)
        chromium.get(f"{handle.url}/?lang=en")
        wait = WebDriverWait(chromium, 10)
        wait.until(lambda d: len(_rows(d)) == 24)
        assert _rows(chromium)["trunk-b"] == "up"
        assert "Carrier A trunk" in _row_text(chromium, "trunk-a")
        # the first poll replaces the server-rendered rows with JS-rendered ones
        wait.until(lambda d: d.find_element(By.ID, "live").get_attribute("data-state") == "live")
        chromium.execute_script("window.__noReload = 'still here';")

        set_health(w.db, "trunk-b", "down", "no answer to OPTIONS")
        wait.until(lambda d: _rows(d).get("trunk-b") == "down")
        assert chromium.execute_script("return window.__noReload") == "still here"
        row = _row_text(chromium, "trunk-b")
        assert "Down" in row and "no answer to OPTIONS" in row
        wait.until(lambda d: _text(d, "total-down") == "2")
        # worst first after the redraw too
        assert [tid for tid, _h, _t in _table(chromium)][:2] == ["trunk-a", "trunk-b"]
        assert "trunk-a is Down" in _text(chromium, "incident-list")
        assert chromium.execute_script("return document.documentElement.scrollWidth") <= 1366
        _screenshot(chromium, "dashboard-1366.png")

        chromium.get(f"{handle.url}/status?lang=en")
        banner = chromium.find_element(By.CSS_SELECTOR, ".banner")
        assert banner.text == "Major outage"  # both trunks down
        text = chromium.find_element(By.TAG_NAME, "main").text
        assert "Outbound calling" in text and "Some outbound calls fail" in text
        assert "10.9.8.7" not in chromium.page_source
        _screenshot(chromium, "status-1366.png")

        chromium.get(f"{handle.url}/?lang=zh-CN")
        wait.until(lambda d: d.find_element(By.ID, "live").get_attribute("data-state") == "live")
        assert "故障" in _row_text(chromium, "trunk-b")  # one script call: rows redraw
        _screenshot(chromium, "dashboard-zh-1366.png")

        # the filter form as a person uses it (empty "All kinds"/"Any health" included)
        chromium.get(f"{handle.url}/?lang=en")
        box = chromium.find_element(By.NAME, "q")
        box.send_keys("carrier")
        box.submit()
        wait.until(lambda d: "q=carrier" in d.current_url and _rows(d) == {"trunk-a": "down"})

        chromium.get(f"{handle.url}/targets/trunk-a?lang=en")
        assert "Recent transitions" in chromium.find_element(By.TAG_NAME, "main").text
        errors = _console_errors(chromium)
        assert errors == []
    finally:
        handle.close()
    shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
