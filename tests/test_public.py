"""The public status, help and about pages ([web] public), through Starlette's TestClient on
a real store: what they say agrees with ``/jobs`` and ``mirrorz.json``, nothing moves without
``public``, and the pages stay small, script-free and self-contained."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mirrorkeeper.config.load import load_config
from mirrorkeeper.config.problems import ConfigError
from mirrorkeeper.daemon.service import Daemon
from mirrorkeeper.store import Store
from mirrorkeeper.web.app import create_app
from mirrorkeeper.web.compat import MirrorState
from mirrorkeeper.web.public import contact_href, inline_hash, public_state

from .conftest import write_config
from .test_web import BASE, record

PUBLIC_URL = "https://mirror.example.org"
#: name -> (profile, outcomes of its runs oldest first, hours ago the newest ended)
MIRRORS = {
    "debian": ("debian", ["success", "success"], 1.0),
    "fedora": ("fedora", ["success", "failed"], 2.0),
    "archlinux": ("arch", [], 0.0),
    "alpine": ("alpine", ["success"], 24 * 10.0),  # older than stale_after
    "old": ("cran", ["success"], 5.0),  # disabled below
}
#: The public state each mirror must show, and the MirrorZ letter that says the same.
EXPECTED = {"debian": ("fresh", "S"), "fedora": ("failing", "F"),
            "archlinux": ("never", "U"), "alpine": ("stale", "S")}


def seed_runs(store: Store, mirror: str, outcomes: list[str], hours_ago: float) -> None:
    end = time.time() - hours_ago * 3600
    for index, outcome in enumerate(outcomes):
        started = end - (len(outcomes) - index) * 3600.0
        run_id = store.start_run(mirror, "rsync://up.example/x/", started)
        store.finish_run(record(mirror, run_id, started, outcome=outcome))


def public_config(tmp_path: Path, web: str) -> Path:
    mirrors: dict[str, dict[str, object]] = {
        name: {"profile": profile, "dest": str(tmp_path / name),
               "upstreams": ["rsync://up.example/x/"]}
        for name, (profile, _, _) in MIRRORS.items()}
    mirrors["old"]["enabled"] = False
    path = write_config(tmp_path / "mk.toml", mirrors)
    path.write_text(path.read_text() + "\n[web]\n" + web)
    return path


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[TestClient, Daemon]]:
    (tmp_path / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    path = public_config(tmp_path, (
        f'public = true\npublic_url = "{PUBLIC_URL}"\nsite_name = "Example <b>Mirror</b>"\n'
        'logo = "logo.svg"\ncontact = "mirror-admin@example.org"\n'
        'sponsor = "The Example University"\n'))
    daemon = Daemon(load_config(path))
    for name, (_, outcomes, hours) in MIRRORS.items():
        seed_runs(daemon.store, name, outcomes, hours)
    with TestClient(create_app(daemon), base_url=BASE) as client:
        yield client, daemon
    daemon.close()


def rows(page: str) -> dict[str, tuple[str, str]]:
    """Each row's mirror, state key and the words of its badge."""
    found = re.findall(r'<tr data-mirror="([^"]+)" data-state="([^"]+)" data-running="0">.*?'
                       r'<span class="state-words">([^<]+)</span>', page, re.S)
    return {name: (state, words) for name, state, words in found}


def test_the_public_page_agrees_with_mirrorz_and_jobs(
        site: tuple[TestClient, Daemon]) -> None:
    client, _ = site
    reply = client.get("/")
    assert reply.status_code == 200
    shown = rows(reply.text)
    assert set(shown) == set(EXPECTED), "one row per enabled mirror, the disabled one hidden"
    assert {name: state for name, (state, _) in shown.items()} == {
        name: state for name, (state, _) in EXPECTED.items()}
    assert shown["fedora"][1] == "Failing" and shown["archlinux"][1] == "Not yet synced"
    mirrorz = {m["cname"]: m["status"] for m in client.get("/mirrorz.json").json()["mirrors"]}
    jobs = {j["name"]: j for j in client.get("/jobs").json()}
    for name, (_, letter) in EXPECTED.items():
        assert mirrorz[name].startswith(letter), (name, mirrorz[name])
    # The last-success time on the page is the one /jobs reports (minute precision, UTC).
    debian_row = reply.text.split('data-mirror="debian"')[1].split("</tr>")[0]
    stamp = jobs["debian"]["last_update_ts"]
    assert time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp)) in debian_row
    assert "ago</time>" in debian_row and f'href="{PUBLIC_URL}/debian/"' in debian_row
    assert "<td>4.7 GiB</td>" in debian_row  # test_web's 5e9-byte runs


def test_public_pages_are_small_script_free_and_self_contained(
        site: tuple[TestClient, Daemon]) -> None:
    client, _ = site
    for path in ("/", "/help/debian", "/about"):
        reply = client.get(path)
        assert reply.status_code == 200, path
        assert len(reply.content) < 50_000, (path, len(reply.content))
        page = reply.text
        assert " on" not in re.sub(r">[^<]*<", "><", page), path  # no event attributes
        csp = reply.headers["content-security-policy"]
        # The front page's one script is inline (live progress) and allowed by its hash
        # alone; the others have none. Without script the page is complete.
        scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
        assert page.count("<script") == len(scripts) == (1 if path == "/" else 0), path
        assert all(inline_hash(s) in csp for s in scripts)
        # Every resource the page loads is its own (a link to the files is not a load).
        loads = re.findall(r'<(?:img|link|script)[^>]*\b(?:src|href)="([^"]*)"', page)
        assert loads and all(u.startswith("/") or u == "data:," for u in loads), loads
        style = re.search(r"<style>(.*?)</style>", page, re.S)
        assert style is not None and inline_hash(style.group(1)) in csp
        assert "'self'" not in csp.split("script-src")[1].split(";")[0]
        assert "unsafe" not in csp
        # The site name is escaped wherever it appears.
        assert "<b>Mirror</b>" not in page and "Example &lt;b&gt;Mirror&lt;/b&gt;" in page
    logo = client.get("/logo")
    assert logo.status_code == 200 and logo.headers["content-type"] == "image/svg+xml"


def test_the_dashboard_moves_to_admin_and_keeps_its_token(
        site: tuple[TestClient, Daemon]) -> None:
    client, _ = site
    admin = client.get("/admin").text
    assert admin.count("<tr data-mirror=") == len(MIRRORS) and 'href="/admin"' in admin
    assert client.post("/api/mirrors/debian/sync").status_code in (401, 403)
    robots = client.get("/robots.txt").text
    assert "Disallow: /admin" in robots and "Disallow: /api/" in robots


def test_help_pages_carry_the_public_url(site: tuple[TestClient, Daemon]) -> None:
    client, _ = site
    expected = {"debian": f"deb {PUBLIC_URL}/debian/ stable main",
                "fedora": f"baseurl={PUBLIC_URL}/fedora/releases/$releasever/",
                "archlinux": f"Server = {PUBLIC_URL}/archlinux/$repo/os/$arch",
                "alpine": f"{PUBLIC_URL}/alpine/v3.20/main"}
    for name, line in expected.items():
        page = client.get(f"/help/{name}").text
        assert line in page.replace("&#34;", '"'), name
    assert f"URIs: {PUBLIC_URL}/debian/" in client.get("/help/debian").text
    assert client.get("/help/old").status_code == 404  # disabled: not public
    assert client.get("/help/nope").status_code == 404


def test_upstream_lag_shows_where_a_poll_and_our_copy_know_it(
        site: tuple[TestClient, Daemon]) -> None:
    client, daemon = site
    assert 'class="lag"' not in client.get("/").text  # never polled: nothing claimed
    signal = Path(daemon.config.mirrors["debian"].dest) / "project/trace/master"
    signal.parent.mkdir(parents=True)
    signal.write_text("ours")
    ours = time.time() - 4 * 3600
    os.utime(signal, (ours, ours))
    daemon.store.record_poll("debian", "rsync://up.example/x/", time.time(), 0.1, 0,
                             ours + 3 * 3600, ours, None, False)
    row = client.get("/").text.split('data-mirror="debian"')[1].split("</tr>")[0]
    assert '<small class="lag">3h00m behind upstream</small>' in row
    daemon.store.record_poll("debian", "rsync://up.example/x/", time.time(), 0.1, 0,
                             ours, ours, None, False)
    row = client.get("/").text.split('data-mirror="debian"')[1].split("</tr>")[0]
    assert '<small class="lag">up to date with upstream</small>' in row


def test_about_names_the_contact_and_the_sponsor(site: tuple[TestClient, Daemon]) -> None:
    client, _ = site
    about = client.get("/about").text
    assert 'href="mailto:mirror-admin@example.org"' in about
    assert "The Example University" in about


def test_without_public_nothing_moves(tmp_path: Path) -> None:
    daemon = Daemon(load_config(public_config(tmp_path, "")))
    try:
        with TestClient(create_app(daemon), base_url=BASE) as client:
            front = client.get("/")
            assert front.text.count("<tr data-mirror=") == len(MIRRORS)  # the dashboard
            assert "style-src 'self'" in front.headers["content-security-policy"]
            for path in ("/about", "/help/debian", "/logo"):
                assert client.get(path).status_code == 404, path
            assert client.get("/robots.txt").text == "User-agent: *\nDisallow: /\n"
    finally:
        daemon.close()


@pytest.mark.parametrize(("web", "key"), [
    ("public = true\n", "web.public_url"),
    ('public_url = "ftp://x.example"\n', "web.public_url"),
    ('public_url = "https://x.example/"\n', "web.public_url"),
    ('logo = "logo.exe"\n', "web.logo"),
    ('logo = "missing.png"\n', "web.logo"),
])
def test_bad_public_settings_are_named(tmp_path: Path, web: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(public_config(tmp_path, web))
    assert key in str(caught.value)


def test_an_admin_profile_overrides_the_help_snippet(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    shipped = (Path(__file__).parent.parent / "src/mirrorkeeper/profiles/catalogue/arch.toml")
    text = re.sub(r"help = \[.*\]\n", "", shipped.read_text(), flags=re.S)
    (profiles / "arch.toml").write_text(
        text + "help = ['''# /etc/pacman.d/mirrorlist\nServer = {url}/local/$repo/$arch\n''']\n")
    # write_config points profiles_dir at tmp_path/profiles.
    path = public_config(tmp_path, f'public = true\npublic_url = "{PUBLIC_URL}"\n')
    daemon = Daemon(load_config(path))
    try:
        with TestClient(create_app(daemon), base_url=BASE) as client:
            page = client.get("/help/archlinux").text
            assert f"Server = {PUBLIC_URL}/archlinux/local/$repo/$arch" in page
            assert "/os/$arch" not in page
    finally:
        daemon.close()


def state(outcome: str | None, success_age: float | None, *, running: bool = False,
          queued: bool = False, enabled: bool = True) -> MirrorState:
    now = 1_000_000.0
    return MirrorState("m", enabled, running, queued, "rsync://u/m/", outcome,
                       now - success_age if success_age is not None else None,
                       None, None, None, None)


@pytest.mark.parametrize(("mirror", "expected"), [
    (state("success", 60.0), "fresh"),
    (state("success", 7200.0), "stale"),
    (state("failed", 60.0), "failing"),
    (state("partial", 60.0), "failing"),
    (state("staged", 60.0), "syncing"),
    (state("success", 60.0, running=True), "syncing"),
    (state("success", 60.0, queued=True), "queued"),
    (state(None, None), "never"),
    (state("success", 60.0, enabled=False), "disabled"),
])
def test_public_state_rules(mirror: MirrorState, expected: str) -> None:
    assert public_state(mirror, stale_after=3600.0, now=1_000_000.0) == expected


def test_contact_links_only_mail_and_web_addresses() -> None:
    assert contact_href("a@b.example") == "mailto:a@b.example"
    assert contact_href("https://x.example/c") == "https://x.example/c"
    assert contact_href("javascript:alert(1)") is None
    assert contact_href("Room 101, call 555") is None


def test_the_public_url_host_is_answered(tmp_path: Path) -> None:
    """Behind a proxy that passes the public name on, the public site answers to it."""
    daemon = Daemon(load_config(public_config(
        tmp_path, 'public = true\npublic_url = "https://Files.Example.net"\n')))
    try:
        with TestClient(create_app(daemon), base_url="http://files.example.net") as client:
            assert client.get("/").status_code == 200
        with TestClient(create_app(daemon), base_url="http://evil.example") as client:
            assert client.get("/").status_code == 400
    finally:
        daemon.close()
