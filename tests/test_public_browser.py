"""The public pages in a real headless Chromium, served by a real daemon (uvicorn): at phone
and desktop widths each mirror's state and last-success time are visible as the store says,
nothing is loaded from another origin, the console stays clean, and axe-core (vendored,
tests/vendor/axe-core) finds no serious accessibility violation."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mirrorkeeper.config.load import load_config
from mirrorkeeper.store import Store

from .conftest import wait_for
from .test_browser import browser, pytestmark
from .test_daemon import RunningDaemon, daemon_config, start_daemon
from .test_public import PUBLIC_URL, seed_runs

# Fixtures, imported for pytest, and test_browser's skip without chromium.
__all__ = ["browser", "pytestmark", "start_daemon"]

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
#: name -> (profile, outcomes oldest first, hours ago the newest ended, expected state words)
MIRRORS = {
    "debian": ("debian", ["success"], 1.0, "Fresh"),
    "fedora": ("fedora", ["success", "failed"], 2.0, "Failing"),
    "arch": ("arch", ["success"], 24 * 10.0, "Stale"),
}
WIDTHS = {"phone": (390, 844), "desktop": (1280, 900)}


@pytest.fixture
def site(tmp_path: Path, start_daemon: Callable[[Path, int], RunningDaemon],
         ) -> tuple[str, dict[str, Any]]:
    """A running daemon with a public site and history seeded before it starts; no mirror is
    due (every 30 days), so nothing changes while the browser looks."""
    config, port = daemon_config(tmp_path, {name: {
        "profile": profile, "dest": str(tmp_path / name), "schedule": "every 30d",
        "upstreams": ["rsync://127.0.0.1:1/none/"]} for name, (profile, *_) in MIRRORS.items()})
    config.write_text(config.read_text() + f'public = true\npublic_url = "{PUBLIC_URL}"\n'
                      'site_name = "Example Mirror"\ncontact = "admin@example.org"\n')
    store = Store.open(load_config(config).settings.state_dir)
    try:
        for name, (_, outcomes, hours, _) in MIRRORS.items():
            seed_runs(store, name, outcomes, hours)
    finally:
        store.close()
    start_daemon(config, port)
    base = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(f"{base}/jobs") as reply:
        jobs = {job["name"]: job for job in json.load(reply)}
    return base, jobs


def requests_elsewhere(browser: Any, base: str) -> list[str]:
    """Every resource the page loaded (the document too) that is not from ``base``."""
    urls = browser.execute_script(
        "return [location.href].concat(performance.getEntriesByType('resource')"
        ".map(e => e.name));")
    return [u for u in urls if not u.startswith(base + "/")]


def serious_violations(browser: Any) -> list[str]:
    """axe-core's serious and critical findings on the current page (WCAG 2 A/AA rules)."""
    browser.execute_script(AXE.read_text(encoding="utf-8"))
    result = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
        ".then(r => done(r.violations.map(v => [v.id, v.impact, v.nodes.length])),"
        " e => done([['axe failed', String(e), 0]]));")
    return [f"{rule} ({impact}, {nodes} nodes)" for rule, impact, nodes in result
            if impact in ("serious", "critical") or rule == "axe failed"]


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_public_page_shows_each_state_and_time_at_phone_and_desktop_widths(
        site: tuple[str, dict[str, Any]], browser: Any, tmp_path: Path, width: str) -> None:
    from selenium.webdriver.common.by import By

    base, jobs = site
    browser.set_window_size(*WIDTHS[width])
    browser.get(f"{base}/")
    viewport = browser.execute_script("return document.documentElement.clientWidth")
    assert browser.execute_script(
        "return document.documentElement.scrollWidth") <= viewport, "no sideways scrolling"
    colours = set()
    for name, (*_, words) in MIRRORS.items():
        row = browser.find_element(By.CSS_SELECTOR, f'tr[data-mirror="{name}"]')
        badge = row.find_element(By.CSS_SELECTOR, ".badge")
        assert badge.is_displayed() and words in badge.text, (name, badge.text)
        rect = badge.rect
        assert rect["x"] >= 0 and rect["x"] + rect["width"] <= viewport, (name, rect)
        colours.add(badge.value_of_css_property("background-color"))
        when = row.find_element(By.CSS_SELECTOR, ".last-success time")
        assert when.is_displayed() and when.text.endswith("ago"), (name, when.text)
        stamp = jobs[name]["last_update_ts"]
        assert when.get_attribute("datetime") == time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp)), name
        absolute = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp))
        assert absolute in row.find_element(By.CSS_SELECTOR, ".last-success").text
    assert len(colours) == len(MIRRORS), f"each state its own colour: {colours}"
    assert browser.save_screenshot(str(tmp_path / f"public-{width}.png"))
    assert requests_elsewhere(browser, base) == []
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    assert serious_violations(browser) == []


def test_help_pages_in_the_browser_carry_the_public_url_and_pass_axe(
        site: tuple[str, dict[str, Any]], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    base, _ = site
    expected = {"debian": f"deb {PUBLIC_URL}/debian/ stable main",
                "fedora": f"baseurl={PUBLIC_URL}/fedora/releases/$releasever/",
                "arch": f"Server = {PUBLIC_URL}/arch/$repo/os/$arch"}
    for name, line in expected.items():
        browser.get(f"{base}/help/{name}")
        snippets = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "pre.snippet")]
        assert any(line in s for s in snippets), (name, snippets)
        assert requests_elsewhere(browser, base) == []
        assert serious_violations(browser) == [], name
    browser.get(f"{base}/about")
    assert "admin@example.org" in browser.find_element(By.TAG_NAME, "main").text
    assert serious_violations(browser) == []
    # The check can fail: an image without a text alternative is a critical violation.
    browser.execute_script("const i = document.createElement('img'); i.src = 'data:,';"
                           "document.querySelector('main').append(i);")
    assert any(v.startswith("image-alt") for v in serious_violations(browser))
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


@pytest.mark.slow
def test_live_progress_where_javascript_is_on(
        tmp_path: Path, served: str, browser: Any,
        start_daemon: Callable[[Path, int], RunningDaemon]) -> None:
    """A real sync (bandwidth-limited, as in test_browser): the row's percentage follows it
    without a reload, and when it ends the page fetches itself again and says Fresh."""
    from selenium.common.exceptions import WebDriverException

    config, port = daemon_config(tmp_path, {"deb": {
        "profile": "debian", "dest": str(tmp_path / "deb"), "upstreams": [served],
        "bwlimit": 400}})
    config.write_text(config.read_text() + f'public = true\npublic_url = "{PUBLIC_URL}"\n')
    start_daemon(config, port)
    base = f"http://127.0.0.1:{port}"
    browser.get(f"{base}/")
    seen: list[str] = []

    def words() -> str:
        """The row's state words; "" while the page is being fetched again (on purpose)."""
        try:
            text = browser.execute_script(
                "const e = document.querySelector('tr[data-mirror=\"deb\"] .state-words');"
                "return e ? e.textContent : '';")
        except WebDriverException:
            return ""
        return str(text or "")

    def percentages_moved() -> bool:
        text = words()
        if text.startswith("Syncing ") and text.endswith("%") and text not in seen:
            seen.append(text)
            if len(seen) == 1:  # a mark that a reload would wipe
                browser.execute_script("window.sameDocument = true;")
        return len(seen) >= 2

    wait_for(percentages_moved, timeout=60, what="the percentage changed twice")
    assert browser.execute_script("return window.sameDocument === true;"), "no reload"
    wait_for(lambda: words() == "Fresh", timeout=90, what="the page says Fresh after the sync")
    assert requests_elsewhere(browser, base) == []
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
