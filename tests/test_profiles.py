"""The shipped catalogue and the admin's own profiles."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from mirrorkeeper.config.checks import check_upstream
from mirrorkeeper.config.schedule import parse_schedule
from mirrorkeeper.config.spec import MirrorSpec, Profile, ProfileInfo, SyncSettings
from mirrorkeeper.config.validate import field_names
from mirrorkeeper.plan import build_plan
from mirrorkeeper.plan.argv import RSYNC_ENV
from mirrorkeeper.profiles import load_catalogue, shipped_dir

from .conftest import CliResult, write_config

REQUIRED = {"debian", "debian-security", "ubuntu", "fedora", "epel", "rocky", "almalinux",
            "centos-stream", "arch", "alpine", "opensuse", "gentoo", "linuxmint", "kali",
            "raspbian", "void", "freebsd", "cpan", "cran", "ctan", "apache", "gnu", "kernel",
            "cygwin", "msys2",
            "ubuntu-ports", "debian-ports", "debian-archive", "gentoo-portage", "termux",
            "eclipse", "raspberrypi-os", "kali-images", "fedora-secondary", "fedora-alt",
            "fedora-archive", "slackware", "openbsd", "netbsd", "mageia", "archlinuxarm",
            "opensuse-ports", "mariadb", "qt", "kde", "gnome", "blender", "tails"}
#: Index files of the repository formats whose clients fetch an index, then the files it names:
#: such profiles keep dropped files for a while (``delete_grace``).
PACKAGE_INDEXES = {"Packages*", "repodata/", "*.db", "APKINDEX.tar.gz", "media_info/",
                   "*-repodata", "setup.ini", "pkg_summary.*", "PACKAGES.TXT*", "SHA256"}
FIELDS = set(field_names(ProfileInfo)) | set(field_names(SyncSettings))


def shipped() -> list[Profile]:
    catalogue = load_catalogue(None)
    assert catalogue.problems == []
    return sorted(catalogue.profiles.values(), key=lambda p: p.name)


def host(url: str) -> str:
    """The host of an rsync:// or HOST::MODULE upstream, without a user, lower-cased."""
    rest = url.removeprefix("rsync://")
    rest = rest.split("::")[0] if "::" in rest else rest.split("/")[0]
    return rest.rpartition("@")[2].split(":")[0].lower()


def test_every_shipped_profile_validates() -> None:
    catalogue = load_catalogue(None)
    assert catalogue.problems == []
    files = {p.stem for p in shipped_dir().glob("*.toml")}
    assert set(catalogue.profiles) == files
    assert len(files) >= 45
    assert files >= REQUIRED
    for profile in catalogue.profiles.values():
        s = profile.settings
        assert s.upstreams, profile.name
        assert re.match(r"https?://", profile.info.docs), profile.name
        assert profile.info.description and profile.info.approx_size, profile.name
        parse_schedule(s.schedule)
        assert s.stale_after > (parse_schedule(s.schedule).interval_seconds or 3600), profile.name


@pytest.mark.parametrize("profile", shipped(), ids=lambda p: p.name)
def test_each_profile_says_where_its_facts_come_from(profile: Profile) -> None:
    """Sources for every profile; fields no source backs are named; an upstream that needs
    registration is never the first when there is a public one."""
    info, s = profile.info, profile.settings
    assert info.checked_against or info.unverified
    assert all(re.match(r"[a-z]+://\S+$", url) for url in info.checked_against)
    assert len(set(info.checked_against)) == len(info.checked_against)
    assert set(info.unverified) <= FIELDS, set(info.unverified) - FIELDS
    assert len(set(info.unverified)) == len(info.unverified)
    # No upstream twice, also not as another spelling of the same host and module.
    assert len({u.lower().rstrip("/") for u in s.upstreams}) == len(s.upstreams)
    for url in s.upstreams:
        assert check_upstream(url) is None, url
    restricted = {host(u) for u in s.upstreams
                  if re.search(rf"(?<![\w.-]){re.escape(host(u))}(?![\w-])", info.restricted,
                               re.IGNORECASE)}
    if restricted and len(restricted) < len({host(u) for u in s.upstreams}):
        assert host(s.upstreams[0]) not in restricted, (s.upstreams[0], info.restricted)
    # No signal: the notes say so, and why.
    if s.update_signal is None:
        assert "update signal" in info.notes.lower(), profile.name
    else:
        assert s.update_signal not in s.stage2, "the signal is held back by itself"
    if PACKAGE_INDEXES & set(s.stage2):
        assert s.delete_grace >= 3600, profile.name


@pytest.mark.parametrize("profile", shipped(), ids=lambda p: p.name)
def test_each_profile_builds_a_plan_rsync_accepts(profile: Profile, tmp_path: Path) -> None:
    """For every upstream the plan holds the index files back to stage 2 and the signal out of
    both stages; and rsync runs each stage's argv (against a local copy) without complaint."""
    s = profile.settings
    mirror = MirrorSpec(profile.name, profile.name, str(tmp_path / "mirror"), True, s)
    for upstream in s.upstreams:
        plan = build_plan(mirror, upstream, own_trace="project/trace/test.example.org")
        stage1 = plan.stages[0].argv
        for pattern in s.stage2:
            assert f"--exclude={pattern}" in stage1
        if s.update_signal:
            assert plan.signal is not None and plan.signal.argv[-2] == (
                upstream.rstrip("/") + "/" + s.update_signal)
            for stage in plan.stages:
                assert f"--exclude=/{s.update_signal}" in stage.argv
        assert all(upstream.rstrip("/") + "/" in stage.argv for stage in plan.stages)
    source = tmp_path / "upstream"
    for name in ("pool/a.deb", "dists/x/Release", "repodata/repomd.xml", "README"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(name)
    if s.update_signal:
        (source / s.update_signal).parent.mkdir(parents=True, exist_ok=True)
        (source / s.update_signal).write_text("1700000000\n")
    local = replace(mirror, settings=replace(s, upstreams=(str(source),)))
    (tmp_path / "mirror").mkdir()
    plan = build_plan(local, str(source), signal_staging=str(tmp_path / "signal"))
    for stage in (*plan.stages, *((plan.signal,) if plan.signal else ())):
        done = subprocess.run(stage.argv, env=RSYNC_ENV, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, (stage.name, done.stderr)
    assert (tmp_path / "mirror" / "README").exists()


def test_every_profile_passes_config_check(tmp_path: Path,
                                           mk: Callable[..., CliResult]) -> None:
    names = [p.name for p in shipped()]
    config = write_config(tmp_path / "mk.toml", {
        name: {"profile": name, "dest": str(tmp_path / "srv" / name)} for name in names})
    result = mk("-c", str(config), "config", "check")
    assert result.code == 0, result.err
    assert f"{len(names)} mirror(s)" in result.out.replace("\n", " ")


def test_debian_holds_back_indexes_but_not_by_hash() -> None:
    debian = load_catalogue(None).profiles["debian"].settings
    assert {"Packages*", "Release*", "InRelease", "Sources*"} <= set(debian.stage2)
    assert "by-hash/" in debian.stage1_include


def test_admin_profiles_extend_and_override(tmp_path: Path) -> None:
    admin = tmp_path / "profiles"
    admin.mkdir()
    (admin / "debian.toml").write_text(
        'extends = "ubuntu"\ndescription = "our Debian"\ndocs = "https://example.org"\n'
        'upstreams = ["rsync://internal.example.org/debian/"]\n')
    (admin / "inhouse.toml").write_text(
        'description = "in-house"\nupstreams = ["rsync://build.example.org/pkgs/"]\n'
        'stage2 = ["index.json"]\n')
    catalogue = load_catalogue(str(admin))
    assert catalogue.problems == []
    debian = catalogue.profiles["debian"]
    assert debian.info.description == "our Debian"
    assert debian.settings.upstreams == ("rsync://internal.example.org/debian/",)
    assert "Packages*" in debian.settings.stage2  # inherited from ubuntu
    assert catalogue.profiles["inhouse"].settings.stage2 == ("index.json",)
    # What ubuntu's users paste comes along (the public page's help), its own docs win, and
    # what ubuntu's sources vouch for does not: this profile's values were not checked there.
    ubuntu = load_catalogue(None).profiles["ubuntu"].info
    assert ubuntu.help and debian.info.help == ubuntu.help
    assert debian.info.docs == "https://example.org"
    assert ubuntu.checked_against and debian.info.checked_against == ()


def test_profiles_extending_in_a_loop_inherit_nothing_and_say_so(tmp_path: Path) -> None:
    admin = tmp_path / "profiles"
    admin.mkdir()
    (admin / "a.toml").write_text('extends = "b"\nupstreams = ["rsync://h/m/"]\n')
    (admin / "b.toml").write_text('extends = "c"\nupstreams = ["rsync://h/m/"]\n')
    (admin / "c.toml").write_text('extends = "b"\nupstreams = ["rsync://h/m/"]\n'
                                   'help = ["# x.list\\ndeb {url} x main"]\n')
    catalogue = load_catalogue(str(admin))
    assert any(p.key == "extends" and "loop" in p.message for p in catalogue.problems)


def test_bad_admin_profile_is_reported_not_hidden(tmp_path: Path) -> None:
    admin = tmp_path / "profiles"
    admin.mkdir()
    (admin / "x.toml").write_text('upstreams = ["rsync://h/m/"]\nstage_2 = ["a"]\n')
    (admin / "y.toml").write_text('extends = "y"\nupstreams = ["rsync://h/m/"]\n')
    found = [str(p) for p in load_catalogue(str(admin)).problems]
    assert f"{admin / 'x.toml'}: stage_2: unknown key — did you mean `stage2`?" in found
    assert any("loop" in p for p in found)


def test_a_profile_s_rsync_options_are_checked_against_the_allow_list(
        tmp_path: Path, mk: Callable[..., CliResult]) -> None:
    """A profile's rsync_options reach every mirror of it, so they pass the same allow-list;
    the problem names the profile's file. A mirror's own list replaces the profile's."""
    admin = tmp_path / "profiles"
    admin.mkdir()
    (admin / "dry.toml").write_text('extends = "fedora"\nrsync_options = ["--sparse", "-n"]\n')
    found = [str(p) for p in load_catalogue(str(admin)).problems]
    assert found == [f"{admin / 'dry.toml'}: rsync_options.1: `-n` makes a dry run: nothing "
                     "would be copied"]
    config = write_config(tmp_path / "mk.toml", {"f": {"profile": "fedora", "dest": "/srv/f",
                                                       "rsync_options": ["-S", "-L"]}})
    result = mk("-c", str(config), "config", "check")
    assert result.code == 78 and f"{admin / 'dry.toml'}: rsync_options.1: `-n`" in result.err
    (admin / "dry.toml").unlink()
    assert mk("-c", str(config), "config", "check").code == 0


def test_profiles_cli(tmp_path: Path, mk: Callable[..., CliResult]) -> None:
    config = write_config(tmp_path / "mk.toml", {})
    listed = mk("-c", str(config), "profiles", "--json")
    assert listed.code == 0
    assert {p["name"] for p in listed.json()} >= REQUIRED
    assert len(listed.json()) >= 45
    one = mk("-c", str(config), "profiles", "arch", "--json").json()
    assert one["update_signal"] == "lastupdate" and one["two_stage"] is True
    assert one["unverified"] == ["upstreams"] and one["restricted"] == ""
    assert "https://wiki.archlinux.org/title/DeveloperWiki:NewMirrors" in one["checked_against"]
    freebsd = mk("-c", str(config), "profiles", "freebsd", "--json").json()
    assert "no new community mirrors" in freebsd["restricted"]
    shown = mk("-c", str(config), "profiles", "centos-stream")
    assert shown.code == 0
    for text in ("restricted", "checked_against", "unverified", "rsync.stream.centos.org"):
        assert text in shown.out
    assert mk("-c", str(config), "profiles", "debain").code == 64
    table = mk("-c", str(config), "profiles")
    assert "debian" in table.out and "profiles" in table.out
