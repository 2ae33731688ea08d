"""The shipped catalogue and the admin's own profiles."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mirrorkeeper.config.schedule import parse_schedule
from mirrorkeeper.profiles import load_catalogue, shipped_dir

from .conftest import CliResult, write_config

REQUIRED = {"debian", "debian-security", "ubuntu", "fedora", "epel", "rocky", "almalinux",
            "centos-stream", "arch", "alpine", "opensuse", "gentoo", "linuxmint", "kali",
            "raspbian", "void", "freebsd", "cpan", "cran", "ctan", "apache", "gnu", "kernel",
            "cygwin", "msys2"}


def test_every_shipped_profile_validates() -> None:
    catalogue = load_catalogue(None)
    assert catalogue.problems == []
    files = {p.stem for p in shipped_dir().glob("*.toml")}
    assert set(catalogue.profiles) == files
    assert len(files) >= 25
    assert files >= REQUIRED
    for profile in catalogue.profiles.values():
        s = profile.settings
        assert s.upstreams, profile.name
        assert profile.info.docs.startswith("https://"), profile.name
        assert profile.info.description and profile.info.approx_size, profile.name
        parse_schedule(s.schedule)
        assert s.stale_after > (parse_schedule(s.schedule).interval_seconds or 3600), profile.name


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
    one = mk("-c", str(config), "profiles", "arch", "--json").json()
    assert one["update_signal"] == "lastupdate" and one["two_stage"] is True
    assert mk("-c", str(config), "profiles", "debain").code == 64
    table = mk("-c", str(config), "profiles")
    assert "debian" in table.out and "profiles" in table.out
