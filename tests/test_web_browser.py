"""The dashboard and status page in a real headless Chromium, served by waitress."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from core.observation import MetricPoint
from monitor.metrics_query import EmbeddedMetricsQuery
from monitor.store.metrics import MetricsStore
from tests.peers.chromium import chromium  # noqa: F401 - pytest fixture
from tests.test_web_support import (
    STAFF,
    STAFF_PASSWORD,
    add_incident,
    add_targets,
    add_transition,
    make_config,
    make_world,
    require_uplot,
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
        # the redrawn rows keep each kind's key metrics, with their units
        assert "rtt_ms 3.25 ms" in _row_text(chromium, "trunk-b")
        assert "connect_ms 0.4 ms" in _row_text(chromium, "edge-00")
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
        # the redrawn rows keep the details in Chinese (the API's ?lang=), not the probe's English
        assert "重传 7 次后 OPTIONS 仍无应答" in _row_text(chromium, "trunk-a")
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


def _chart_world(tmp_path):
    """trunk-a down for the last 20 minutes after 2 hours up, with 50 minutes of RTT history."""
    store = MetricsStore(tmp_path / "metrics.db")
    now = time.time()
    store.write(
        [
            MetricPoint(
                "sip",
                {"rtt_ms": 10.0 + (i % 5), "status_code": 200},
                {"target": "trunk-a", "kind": "sip", "site": "sh"},
                int((now - 3000 + i * 60) * 1e9),
            )
            for i in range(50)
        ]
    )
    w = make_world(
        tmp_path,
        config=make_config(web={"allowed_hosts": ["127.0.0.1"]}),
        metrics=EmbeddedMetricsQuery(store.path),
    )
    add_targets(w.db, standard_rows())
    add_transition(w.db, "trunk-a", now - 8000, "unknown", "up", "first probe ok")
    add_transition(w.db, "trunk-a", now - 1200, "up", "down", "2 failed probes in a row")
    return w, store


_LEGEND_JS = """
return Array.from(document.querySelectorAll('#chart-0 .u-legend .u-series'))
  .map(s => [s.querySelector('.u-label').innerText, s.querySelector('.u-value').innerText]);
"""


@pytest.mark.peer
def test_target_page_charts_have_units_a_legend_hover_values_zoom_and_a_timeline(
    tmp_path,
    chromium,  # noqa: F811 - the fixture imported above
) -> None:
    require_uplot()
    w, store = _chart_world(tmp_path)
    handle = serve(w.app, "127.0.0.1", 0)
    try:
        browser_login(chromium, handle.url)
        chromium.get(f"{handle.url}/targets/trunk-a?lang=en")
        wait = WebDriverWait(chromium, 10)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chart-0.js-drawn canvas"))
        # the y axis counts milliseconds, in the unit the sip kind declares
        ticks = chromium.execute_script("return window.dialwatchCharts[0].axes[1]._values")
        assert ticks and all(t.endswith(" ms") for t in ticks if t), ticks
        time_ticks = chromium.execute_script("return window.dialwatchCharts[0].axes[0]._values")
        assert all(re.fullmatch(r"\d\d:\d\d", t) for t in time_ticks if t), time_ticks
        # the legend names the series; a value shows only under the cursor
        legend = chromium.execute_script(_LEGEND_JS)
        assert [label for label, _v in legend] == ["Time", "rtt_ms"]
        assert legend[1][1] in ("–", "--")
        over = chromium.find_element(By.CSS_SELECTOR, "#chart-0 .u-over")
        ActionChains(chromium).move_to_element(over).perform()
        wait.until(lambda d: re.fullmatch(r"1\d(\.\d+)? ms", d.execute_script(_LEGEND_JS)[1][1]))
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", chromium.execute_script(_LEGEND_JS)[0][1]
        )
        _screenshot(chromium, "target-chart-hover.png")
        # drag across the middle to zoom in; double-click to zoom out again
        span = "var s = window.dialwatchCharts[0].scales.x; return s.max - s.min;"
        before = chromium.execute_script(span)
        width = over.size["width"]
        ActionChains(chromium).move_to_element_with_offset(
            over, -width // 4, 0
        ).click_and_hold().move_by_offset(width // 2, 0).release().perform()
        wait.until(lambda d: d.execute_script(span) < before * 0.7)
        ActionChains(chromium).double_click(over).perform()
        wait.until(lambda d: abs(d.execute_script(span) - before) < 1)
        # the down target's up/down timeline, from its transitions
        bars = chromium.execute_script(
            "return Array.from(document.querySelectorAll('#timeline rect.tl'))"
            ".map(r => [r.dataset.health, r.getBoundingClientRect().width]);"
        )
        assert [h for h, _w in bars] == ["unknown", "up", "down"]
        assert all(px > 0 for _h, px in bars)
        caption = chromium.find_element(By.CSS_SELECTOR, "#timeline figcaption").text
        assert "Down 20 minutes" in caption and "Up 2 hours" in caption
        assert "No metric history" not in chromium.find_element(By.TAG_NAME, "main").text
        assert _console_errors(chromium) == []
    finally:
        handle.close()
        store.close()
    shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


_WALL_JS = """
var b = document.body;
return {alerts: b.dataset.alerts || "0", last: b.dataset.lastAlert || null,
        beeps: b.dataset.beeps || "0", flashing: b.classList.contains('flashing'),
        flash: document.getElementById('wall-flash').innerText,
        fresh: Array.from(document.querySelectorAll('#wall-incidents li.new')).map(li => li.dataset.id),
        tiles: Array.from(document.querySelectorAll('#wall-tiles .wall-tile'))
          .map(t => [t.dataset.id, t.dataset.state]),
        down: document.getElementById('total-down').innerText,
        count: document.getElementById('incident-count').innerText,
        live: document.getElementById('live').dataset.state};
"""


@pytest.mark.peer
def test_the_wall_flashes_and_beeps_when_a_new_incident_opens(
    tmp_path,
    chromium,  # noqa: F811 - the fixture imported above
) -> None:
    w = browser_world(tmp_path)
    add_targets(w.db, standard_rows())
    add_incident(w.db, ["trunk-a"], opened_ago=900)
    w.app.config["DIALWATCH_REFRESH_MS"] = 300
    handle = serve(w.app, "127.0.0.1", 0)
    try:
        # A wall screen logs in with a viewer token once, then keeps its session.
        chromium.get(f"{handle.url}/wall/open?token={w.tokens['viewer']}")
        WebDriverWait(chromium, 10).until(lambda d: d.current_url.endswith("/wall"))
        chromium.get(f"{handle.url}/wall?lang=en")
        wait = WebDriverWait(chromium, 10)
        wait.until(lambda d: d.execute_script(_WALL_JS)["live"] == "live")
        state = chromium.execute_script(_WALL_JS)
        # what was open when the screen came up is no news: no flash for it
        assert (state["alerts"], state["flashing"], state["count"]) == ("0", False, "1")
        assert state["tiles"] == [["outbound", "partial_outage"], ["crm", "degraded"]]
        assert state["down"] == "1"
        chromium.find_element(By.ID, "wall-sound").click()  # browsers play sound after a click
        assert chromium.execute_script("return document.body.dataset.sound") == "on"
        _screenshot(chromium, "wall-1366.png")

        new = add_incident(w.db, ["crm-db"], opened_ago=1, severity="degraded")
        wait.until(lambda d: d.execute_script(_WALL_JS)["alerts"] == "1")
        state = chromium.execute_script(_WALL_JS)
        assert state["last"] == str(new) and state["flashing"]
        assert state["flash"] == f"New incident #{new}"
        assert state["fresh"] == [str(new)] and state["count"] == "2"
        assert state["beeps"] == "1"
        _screenshot(chromium, "wall-flash-1366.png")
        # the next polls see nothing new: no second alarm
        polls = int(chromium.execute_script("return document.body.dataset.polls"))
        wait.until(
            lambda d: int(d.execute_script("return document.body.dataset.polls")) >= polls + 2
        )
        assert chromium.execute_script(_WALL_JS)["alerts"] == "1"
        assert _console_errors(chromium) == []
    finally:
        handle.close()
    shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
