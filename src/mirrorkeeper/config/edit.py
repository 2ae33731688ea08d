"""``mirrorkeeper init``: append a mirror to the config without touching the admin's text.

Appending a new ``[mirrors.NAME]`` table at the end is always valid TOML, so the admin's comments
and layout survive byte for byte. The result is validated as a whole before it atomically
replaces the file; a config that would not load is never written.

The replacement is a new inode, made by ``mkstemp`` (mode 0600): it gets the old file's mode,
owner and group, and a new file gets 0666 less the umask (0644 for root), so that the
unprivileged daemon — and ``ExecStartPre=mirrorkeeper config check`` — can read what root wrote.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import tempfile
from pathlib import Path

from ..errors import StateUnavailable
from .load import load_config
from .problems import ConfigError, Problem

HEADER = """\
# Mirrorkeeper configuration. Each [mirrors.NAME] needs a profile and a dest; any profile key
# (upstreams, stage2, excludes, rsync_options, bwlimit, timeout, schedule, stale_after, ...)
# can be overridden per mirror. `mirrorkeeper profiles NAME` shows a profile's keys.

[global]
# state_dir = "/var/lib/mirrorkeeper"
# log_dir = "/var/log/mirrorkeeper"
# hostname = "mirror.example.org"
"""


def toml_string(value: str) -> str:
    """A TOML basic string; JSON's escapes are a subset TOML accepts."""
    return json.dumps(value, ensure_ascii=False)


def mirror_table(name: str, profile: str, dest: str) -> str:
    key = name if name.replace("-", "").replace("_", "").isalnum() else toml_string(name)
    return (f"\n[mirrors.{key}]\nprofile = {toml_string(profile)}\n"
            f"dest = {toml_string(dest)}\n")


def current_umask() -> int:
    """The process umask, read without changing it where Linux tells it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # the portable way: set and put back at once
    os.umask(mask)
    return mask


def _names(st: os.stat_result) -> str:
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{user}:{group}"


def _take_over(tmp: str, path: Path, old: os.stat_result | None) -> None:
    """Give the replacement the old file's mode, owner and group (a new file: the umask's)."""
    if old is None:
        os.chmod(tmp, 0o666 & ~current_umask())
        return
    os.chmod(tmp, old.st_mode & 0o7777)
    try:
        os.chown(tmp, old.st_uid, old.st_gid)
    except PermissionError:
        now = os.stat(tmp)
        if (now.st_uid, now.st_gid) != (old.st_uid, old.st_gid):
            raise StateUnavailable(
                "config file", str(path), f"it belongs to {_names(old)}, and a new copy made by "
                f"this user would belong to {_names(now)}",
                "fix: run `mirrorkeeper init` as root or as the file's owner") from None


def append_mirror(path: Path, name: str, profile: str, dest: str) -> str:
    """Add a mirror to ``path`` (created with a commented header if missing); return the text
    that was appended. Raises :class:`ConfigError` and leaves the file untouched on any problem."""
    return append_tables(path, mirror_table(name, profile, dest), [name])


def append_tables(path: Path, added: str, names: list[str]) -> str:
    """Append ``added`` (whole ``[mirrors.NAME]`` tables for ``names``) to ``path``, as
    :func:`append_mirror` does; return it."""
    existed = path.exists()
    if existed:
        # The file as it stands must load, or we would append to something broken; loading it
        # first also turns a file that is not UTF-8 text into a problem, not a traceback.
        current = load_config(path)
        for name in names:
            if name in current.mirrors or name in current.broken:
                raise ConfigError([Problem(str(path), f"mirrors.{name}", "already exists",
                                           "pick another name with --name")])
    original = path.read_text(encoding="utf-8") if existed else HEADER
    text = original if original.endswith("\n") else original + "\n"
    text += added
    old = path.stat() if existed else None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise StateUnavailable("config file", str(path), exc.strerror or str(exc),
                               f"fix: run `mirrorkeeper init` as a user who may write "
                               f"{path.parent} (root)") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        _take_over(tmp, path, old)
        try:
            load_config(tmp)
        except ConfigError as exc:
            # Report against the real file name, not the temporary one.
            raise ConfigError([Problem(str(path) if p.file == tmp else p.file, p.key,
                                       p.message, p.hint) for p in exc.problems]) from None
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return added
