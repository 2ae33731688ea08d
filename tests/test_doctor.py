"""``mirrorkeeper doctor`` against real rsync daemons on 127.0.0.1: a healthy upstream, a
missing module, a refused login, a missing signal file and an empty module each get their own
result, and the exit status says whether the mirror is ready."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mirrorkeeper.demo.rsyncd import Module, RsyncDaemon
from mirrorkeeper.demo.tree import DebianLikeTree
from mirrorkeeper.doctor import pattern_matches, size_bytes

from .conftest import CliResult, write_config

Daemons = Callable[[list[Module]], RsyncDaemon]
#: The index files the test tree has (the debian profile names more, which it lacks).
INDEXES = ["Packages*", "Release*", "InRelease", "project/trace/*"]


def checks(report: dict[str, Any], upstream: str) -> dict[str, str]:
    one = next(u for u in report["upstreams"] if u["upstream"] == upstream)
    return {c["name"]: c["status"] for c in one["checks"]}


def test_doctor_tells_each_upstream_problem_apart(
        tmp_path: Path, upstream: DebianLikeTree, rsyncd: Daemons,
        mk: Callable[..., CliResult]) -> None:
    secrets = tmp_path / "rsyncd.secrets"
    secrets.write_text("mirror:right\n")
    secrets.chmod(0o600)
    password = tmp_path / "password"
    password.write_text("wrong\n")
    password.chmod(0o600)
    empty = tmp_path / "empty"
    empty.mkdir()
    # An admin's profile: Debian's settings for a tree of a few MB (Debian's 5 TiB would not
    # fit here, which the last mirror shows).
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "small.toml").write_text(
        'extends = "debian"\napprox_size = "5 MB"\nstage2 = ' + repr(INDEXES).replace("'", '"'))
    daemon = rsyncd([Module("debian", upstream.root), Module("empty", empty),
                     Module("locked", upstream.root, {"auth users": "mirror",
                                                      "secrets file": str(secrets)})])
    healthy, empty_url = daemon.url("debian"), daemon.url("empty")
    missing = daemon.url("nosuchmodule")
    locked = daemon.url("locked").replace("rsync://", "rsync://mirror@")
    path = write_config(tmp_path / "mk.toml", {
        "deb": {"profile": "small", "dest": str(tmp_path / "mirror"),
                "upstreams": [healthy, missing, locked, empty_url, "rsync://127.0.0.1:9/x/"],
                "password_file": str(password), "contimeout": "5s"},
        "good": {"profile": "small", "dest": str(tmp_path / "good"), "upstreams": [healthy]},
        "nosignal": {"profile": "small", "dest": str(tmp_path / "nosignal"),
                     "upstreams": [healthy], "update_signal": "project/trace/elsewhere"},
        "huge": {"profile": "debian", "dest": str(tmp_path / "huge"), "upstreams": [healthy]}})
    result = mk("-c", str(path), "doctor", "deb", "--json")
    report = result.json()[0]
    assert checks(report, healthy) == {"resolves": "ok", "connects": "ok", "module": "ok",
                                       "auth": "ok", "listing": "ok", "signal": "ok",
                                       "stage2": "ok"}
    assert checks(report, missing)["module"] == "error"
    assert checks(report, locked)["auth"] == "error"
    assert checks(report, empty_url)["listing"] == "error"
    assert checks(report, "rsync://127.0.0.1:9/x/")["connects"] == "error"
    # One healthy upstream: the others' errors are warnings for the mirror as a whole.
    assert report["status"] == "warning" and result.code == 1
    assert {c["name"]: c["status"] for c in report["local"]} == {"rsync": "ok", "space": "ok"}
    huge = mk("-c", str(path), "doctor", "huge", "--json")
    assert {c["name"]: c["status"] for c in huge.json()[0]["local"]}["space"] == "error"
    assert huge.code == 2

    good = mk("-c", str(path), "doctor", "good")
    assert good.code == 0, good.out
    assert "published" in good.out and "each of" in good.out
    nosignal = mk("-c", str(path), "doctor", "nosignal", "--json")
    assert checks(nosignal.json()[0], healthy)["signal"] == "warning" and nosignal.code == 1
    broken = write_config(tmp_path / "broken.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "m2"), "upstreams": [missing]}})
    assert mk("-c", str(broken), "doctor", "--all").code == 2
    assert mk("-c", str(path), "doctor").code == 64  # name a mirror or --all


def test_doctor_finds_a_stage2_pattern_that_matches_nothing(
        tmp_path: Path, served: str, mk: Callable[..., CliResult]) -> None:
    path = write_config(tmp_path / "mk.toml", {"deb": {
        "profile": "debian", "dest": str(tmp_path / "mirror"), "upstreams": [served],
        "stage2": ["Packages*", "repodata/"]}})
    report = mk("-c", str(path), "doctor", "deb", "--json").json()[0]
    detail = next(c for c in report["upstreams"][0]["checks"] if c["name"] == "stage2")
    assert detail["status"] == "warning" and "repodata/" in detail["detail"]
    assert "Packages*" not in detail["detail"]


def test_pattern_and_size_helpers() -> None:
    assert pattern_matches("Packages*", "dists/stable/main/binary-amd64/Packages.gz", False)
    assert pattern_matches("i18n/*", "dists/stable/main/i18n/Translation-en", False)
    assert pattern_matches("/zzz/", "zzz", True) and not pattern_matches("/zzz/", "a/zzz", True)
    assert pattern_matches("repodata/", "x/os/repodata", True)
    assert not pattern_matches("repodata/", "x/os/repodata", False)
    assert size_bytes("5 TiB") == 5 * 1024**4
    assert size_bytes("350-390 GB (2026-11)") == 390 * 10**9
    assert size_bytes("") is None
