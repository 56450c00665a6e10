"""The admin pages in a real headless Chromium: an admin adds a user, is told why a weak
password is refused, creates a token (shown once), filters the audit log and verifies the
chain — through the real forms, with their CSRF tokens, under the console's CSP."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from monitor.staff import users
from tests.peers.chromium import chromium  # noqa: F401 - pytest fixture
from tests.test_web_browser import (
    SCREENSHOT_DIR,
    _console_errors,
    _screenshot,
    browser_login,
    browser_world,
)
from web.server import serve


def _fill(driver, form_id: str, **fields: str) -> None:
    form = driver.find_element(By.ID, form_id)
    for name, value in fields.items():
        element = form.find_element(By.NAME, name)
        if element.tag_name == "select":
            Select(element).select_by_value(value)
        else:
            element.clear()
            element.send_keys(value)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


@pytest.mark.peer
def test_an_admin_manages_users_tokens_and_reads_the_audit_log_in_a_browser(
    tmp_path: Path,
    chromium,  # noqa: F811 - the fixture imported above
) -> None:
    w = browser_world(tmp_path)
    handle = serve(w.app, "127.0.0.1", 0)
    wait = WebDriverWait(chromium, 10)
    try:
        browser_login(chromium, handle.url, "admin")
        chromium.get(f"{handle.url}/?lang=en")
        chromium.find_element(By.LINK_TEXT, "Users").click()
        wait.until(lambda d: d.current_url.endswith("/admin/users"))

        weak = {
            "name": "carol",
            "role": "operator",
            "password": "carol-the-strong",
            "password2": "carol-the-strong",
        }
        _fill(chromium, "add-user", **weak)
        alert = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "[role=alert]"))
        # (the browser itself holds back one under 12 characters: minlength)
        assert "must not contain the user name" in alert.text
        good = "a sturdy long passphrase"
        _fill(chromium, "add-user", password=good, password2=good)
        done = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".form-done"))
        assert "Added carol (operator)" in done.text
        assert chromium.find_element(By.CSS_SELECTOR, 'tr[data-user="carol"]')
        with w.db.connect() as conn:
            assert users.member(users.find_user(conn, "carol")).role == "operator"
        _screenshot(chromium, "admin-users.png")

        chromium.find_element(By.LINK_TEXT, "API tokens").click()
        wait.until(lambda d: d.current_url.endswith("/admin/tokens"))
        _fill(chromium, "create-token", user="carol", role="viewer", name="grafana", expires="30d")
        value = wait.until(lambda d: d.find_element(By.ID, "new-token")).text
        assert value.startswith("dw_")
        _screenshot(chromium, "admin-token-once.png")
        chromium.get(f"{handle.url}/admin/tokens")
        assert value not in chromium.page_source

        chromium.get(f"{handle.url}/admin/audit?action=user.")
        rows = chromium.find_elements(By.CSS_SELECTOR, "#audit tbody tr[data-id]")
        assert [r.find_elements(By.TAG_NAME, "td")[3].text for r in rows] == [
            "user.add",
            "user.add",
        ]  # the refused one, then the added one (both audited)
        chromium.find_element(By.XPATH, "//button[text()='Verify chain now']").click()
        check = wait.until(lambda d: d.find_element(By.ID, "chain-check"))
        assert check.get_attribute("data-ok") == "yes" and "OK" in check.text
        _screenshot(chromium, "admin-audit.png")
        # The refused user was a 400 on purpose; anything else (a script, the CSP) is a bug.
        assert [e for e in _console_errors(chromium) if "status of 400" not in e] == []
    finally:
        handle.close()
    print(f"screenshots: {SCREENSHOT_DIR}/admin-*.png")
