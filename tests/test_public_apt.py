"""The Debian help page's lines work: a real ``apt-get update`` in an isolated apt root, with
the ``sources.list`` (and the deb822 file) the public help page generates, against a real
signed archive served over HTTP as ``PUBLIC_URL/debian`` (see tests/aptrepo.py)."""

from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mirrorkeeper.config.load import load_config
from mirrorkeeper.daemon.service import Daemon
from mirrorkeeper.web.app import create_app

from .aptrepo import AptClients, AptRepo, HttpMirror, missing_tools
from .conftest import write_config
from .test_web import BASE

MISSING = missing_tools()
# As in test_apt_consistency: skipped without the tools, except under CI=true.
needs_apt = pytest.mark.skipif(
    bool(MISSING) and not os.environ.get("CI"),
    reason=f"needs {' '.join(MISSING)}: run `sh scripts/bootstrap.sh --test`")


def help_snippets(tmp_path: Path, public_url: str) -> list[str]:
    """The Debian help page's snippets, as a user copies them (tags gone, text unescaped)."""
    path = write_config(tmp_path / "mk.toml", {"debian": {
        "profile": "debian", "dest": str(tmp_path / "dest"),
        "upstreams": ["rsync://up.example/debian/"]}})
    path.write_text(path.read_text() + f'\n[web]\npublic = true\npublic_url = "{public_url}"\n')
    daemon = Daemon(load_config(path))
    try:
        with TestClient(create_app(daemon), base_url=BASE) as client:
            page = client.get("/help/debian").text
    finally:
        daemon.close()
    return [html.unescape(s) for s in re.findall(r'<pre class="snippet"><code>(.*?)</code>',
                                                 page, re.S)]


#: The test archive has only ``main``; Debian's has these too, so apt's word that the test
#: archive lacks them is expected (any other warning, error or failed fetch still fails).
ABSENT_COMPONENTS = re.compile(r"^W: Skipping acquire of configured file "
                               r"'(contrib|non-free|non-free-firmware)/.*doesn't have the "
                               r"component '\1'")


def update(clients: AptClients, env: dict[str, str], home: Path) -> list[str]:
    problems = clients._apt(env, home, "update")
    return [p for p in problems if not ABSENT_COMPONENTS.match(p)]


@needs_apt
def test_the_generated_debian_sources_work_with_apt_get(tmp_path: Path) -> None:
    with AptRepo(tmp_path / "upstream") as repo:
        repo.publish(1, packages=5)
        site = tmp_path / "site"
        site.mkdir()
        (site / "debian").symlink_to(repo.root)  # the web server's tree: /debian is the mirror
        with HttpMirror(site) as server:
            one_line, deb822 = help_snippets(tmp_path, server.url)
            assert f"deb {server.url}/debian/ stable main" in one_line
            clients = AptClients(server.url, repo.keyring, tmp_path / "apt", clients=1)
            home, env = clients._setup(0)  # the harness's isolated apt root and config
            # The archive is signed by the test's key: where a Debian system has the archive
            # keyring, this root has that key.
            shutil.copy(repo.keyring, home / "etc/trusted.gpg.d/mirror.gpg")

            (home / "etc/sources.list").write_text(one_line + "\n")
            assert update(clients, env, home) == []
            lists = list((home / "state/lists").glob("*_Packages"))
            assert lists and "Package: " in lists[0].read_text()

            # The deb822 form, with Signed-By naming the key this archive is signed with.
            (home / "etc/sources.list").write_text("")
            for stale in (home / "state/lists").glob("*_*"):
                stale.unlink()
            (home / "etc/sources.list.d/debian.sources").write_text(re.sub(
                r"(?m)^Signed-By: .*$", f"Signed-By: {repo.keyring}", deb822) + "\n")
            assert update(clients, env, home) == []
            assert list((home / "state/lists").glob("*_Packages"))
