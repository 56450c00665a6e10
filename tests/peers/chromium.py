"""Headless Chromium driven by chromedriver (Debian ``chromium`` + ``chromium-driver``) via Selenium.

Flags from FACTS.md: ``--headless --no-sandbox --disable-gpu
--disable-background-networking`` and a fresh ``--user-data-dir`` per test.
The driver binary is given explicitly so Selenium never tries to download one.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from tests.peers import require_binary

WINDOW = (1366, 900)
"""The narrowest desktop a NOC screen is likely to have."""


def _chromedriver() -> str:
    path = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    if path is None:
        pytest.fail(
            "chromedriver is not installed: run `sudo apt-get install -y chromium-driver` "
            "(or ./install.sh --test, which installs every test peer)",
            pytrace=False,
        )
    return path


def start_chromium(profile_dir: Path, accept_language: str = "en-US,en") -> webdriver.Chrome:
    """A headless Chromium with its own profile, window 1366x900, console log captured."""
    options = webdriver.ChromeOptions()
    options.binary_location = require_binary("chromium")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={profile_dir}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": accept_language})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(
        executable_path=_chromedriver(), log_output=str(profile_dir / "chromedriver.log")
    )
    return webdriver.Chrome(options=options, service=service)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium for one test, quit in teardown."""
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    driver = start_chromium(profile)
    try:
        yield driver
    finally:
        driver.quit()
