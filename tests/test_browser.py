"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver), against a
real daemon syncing from a real rsync daemon: the progress bar moves, the graphs are drawn."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import wait_for
from .test_daemon import RunningDaemon, daemon_config, finished, seed_run, start_daemon

__all__ = ["start_daemon"]  # the fixture, imported for pytest

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver: `sh scripts/bootstrap.sh --test`")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options.binary_location = CHROMIUM
    # No network but loopback here: everything that phones home is off.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-extensions",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def test_overview_shows_a_progress_bar_that_moves_during_a_sync(
        tmp_path: Path, served: str, browser: Any,
        start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    from selenium.webdriver.common.by import By

    config, port = daemon_config(tmp_path, {"deb": {
        "profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [served],
        "bwlimit": 400}})
    daemon = start_daemon(config, port)
    browser.get(f"http://127.0.0.1:{port}/")
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-mirror="deb"]')
    seen: list[float] = []

    def progress_moved() -> bool:
        fill = row.find_element(By.CSS_SELECTOR, ".fill")
        value = fill.get_attribute("data-percent")
        if value is not None and (not seen or float(value) != seen[-1]):
            seen.append(float(value))
        return len([v for v in seen if v > 0]) >= 3

    wait_for(progress_moved, timeout=30, what="the progress bar updated three times")
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    assert row.find_element(By.CSS_SELECTOR, ".bar").is_displayed()
    assert "running" in row.find_element(By.CSS_SELECTOR, ".state-text").text
    assert "stage" in row.find_element(By.CSS_SELECTOR, ".progress-text").text
    wait_for(lambda: len(finished(config, "deb")) == 1, timeout=60, what="the sync ended")
    wait_for(lambda: "idle" in row.find_element(By.CSS_SELECTOR, ".state-text").text,
             what="the row shows the end of the run without a reload")
    assert not row.find_element(By.CSS_SELECTOR, ".bar").is_displayed()
    # The Content-Security-Policy (no inline script or style) blocked nothing the page needs.
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    assert daemon.stop()[0] == 0


def test_mirror_page_draws_the_history_graphs(
        tmp_path: Path, served: str, browser: Any,
        start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    from selenium.webdriver.common.by import By

    config, port = daemon_config(tmp_path, {"deb": {
        "profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [served]}})
    now = time.time()
    for hours in range(48, 0, -1):
        seed_run(config, "deb", now - hours * 3600)
    start_daemon(config, port)
    browser.get(f"http://127.0.0.1:{port}/mirrors/deb")
    graphs = browser.find_element(By.ID, "graphs")
    wait_for(lambda: graphs.get_attribute("data-drawn") == "5", what="five graphs drawn")
    assert graphs.get_attribute("data-runs") == str(len(finished(config, "deb")))
    canvases = graphs.find_elements(By.CSS_SELECTOR, ".graph canvas")
    assert len(canvases) == 5 and all(int(c.get_attribute("width")) > 100 for c in canvases)
    titles = [t.text for t in graphs.find_elements(By.CSS_SELECTOR, ".u-title")]
    assert titles == ["Duration (s)", "Bytes transferred", "Bit rate (bit/s)",
                      "Files transferred", "Files failed"]
    browser.find_element(By.CSS_SELECTOR, '[data-range="day"]').click()
    wait_for(lambda: graphs.get_attribute("data-runs") in {"23", "24"},  # the 24 h edge
             what="the day range reloaded the graphs")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
