"""``mirrorkeeper init``: appends a mirror, keeps the admin's text (and the file's mode and
owner), never writes a bad file."""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from pathlib import Path

import pytest

from mirrorkeeper.config.load import load_config

from .conftest import CliResult

ADMIN_TEXT = """# our mirrors — do not remove this comment
[global]
state_dir = "state"   # relative to this file
log_dir = "logs"

[mirrors.debian]  # the big one
profile = "debian"
dest = "/srv/mirror/debian"
bwlimit = 40000
"""


def test_init_creates_a_config(tmp_path: Path, mk: Callable[..., CliResult]) -> None:
    path = tmp_path / "etc" / "mirrorkeeper.toml"
    result = mk("-c", str(path), "init", "arch", "--dest", str(tmp_path / "arch"))
    assert result.code == 0, result.err
    config = load_config(path)
    assert config.mirrors["arch"].profile == "arch"
    assert config.mirrors["arch"].dest == str(tmp_path / "arch")


def test_init_appends_and_keeps_every_byte(tmp_path: Path, mk: Callable[..., CliResult]) -> None:
    path = tmp_path / "mirrorkeeper.toml"
    path.write_text(ADMIN_TEXT)
    path.chmod(0o640)
    result = mk("-c", str(path), "init", "ubuntu", "--dest", "/srv/mirror/ubuntu",
                "--name", "ubuntu-archive")
    assert result.code == 0, result.err
    text = path.read_text()
    assert text.startswith(ADMIN_TEXT)
    assert '[mirrors.ubuntu-archive]\nprofile = "ubuntu"\ndest = "/srv/mirror/ubuntu"' in text
    assert path.stat().st_mode & 0o777 == 0o640
    assert set(load_config(path).mirrors) == {"debian", "ubuntu-archive"}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_init_refuses_and_leaves_the_file_untouched(tmp_path: Path,
                                                   mk: Callable[..., CliResult]) -> None:
    path = tmp_path / "mirrorkeeper.toml"
    path.write_text(ADMIN_TEXT)
    duplicate = mk("-c", str(path), "init", "debian", "--dest", "/srv/other")
    assert duplicate.code == 78 and "mirrors.debian: already exists" in duplicate.err
    overlap = mk("-c", str(path), "init", "debian-security", "--dest", "/srv/mirror/debian/sec")
    assert overlap.code == 78 and "overlaps mirror `debian`" in overlap.err
    assert str(path) in overlap.err and ".tmp" not in overlap.err
    unknown = mk("-c", str(path), "init", "debain", "--dest", "/srv/x")
    assert unknown.code == 64 and "did you mean `debian`?" in unknown.err
    assert path.read_text() == ADMIN_TEXT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirrorkeeper.toml"]


def test_a_new_config_is_readable_by_the_daemons_user(tmp_path: Path,
                                                     mk: Callable[..., CliResult]) -> None:
    """root writes it, the unprivileged daemon (and ``ExecStartPre=… config check``) reads it:
    0666 less the umask, not mkstemp's 0600."""
    previous = os.umask(0o022)
    try:
        path = tmp_path / "etc" / "mirrorkeeper.toml"
        assert mk("-c", str(path), "init", "arch", "--dest", str(tmp_path / "arch")).code == 0
        assert path.stat().st_mode & 0o777 == 0o644
        os.umask(0o027)
        other = tmp_path / "etc" / "other.toml"
        assert mk("-c", str(other), "init", "arch", "--dest", str(tmp_path / "arch")).code == 0
        assert other.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(previous)


@pytest.mark.skipif(os.geteuid() != 0, reason="gives the config to another user: needs root")
def test_init_keeps_the_owner_group_and_mode_of_an_existing_config(
        tmp_path: Path, mk: Callable[..., CliResult]) -> None:
    path = tmp_path / "mirrorkeeper.toml"
    path.write_text(ADMIN_TEXT)
    nobody = pwd.getpwnam("nobody")
    os.chown(path, nobody.pw_uid, nobody.pw_gid)
    path.chmod(0o640)
    assert mk("-c", str(path), "init", "arch", "--dest", "/srv/mirror/arch").code == 0
    st = path.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (nobody.pw_uid, nobody.pw_gid, 0o640)
