"""Checks of the files a config names (I/O): the password files rsync reads and the web's
token file. Kept out of :mod:`.checks`, which is pure; ``config check`` runs them as a step of
its own, and the daemon checks the token file before it serves the web.

rsync refuses a ``--password-file`` that others can read (and, run by root, one root does not
own) only when the run starts, as exit 1; a token file that is missing, unreadable or empty
would turn every action of the web into a 401. Both are said here, before they happen.
"""

from __future__ import annotations

import os
import stat

from .checks import check_secret_mode
from .problems import Problem
from .spec import Config


def secret_problem(path: str, *, for_rsync: bool) -> tuple[str, str] | None:
    """(what is wrong, the fix) for a file holding a secret, or None when it is usable."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "does not exist", "create it (mode 0600), or fix the path"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}", ""
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file", ""
    why = check_secret_mode(st.st_mode, st.st_uid, os.geteuid(), for_rsync=for_rsync)
    if why:
        return why, (f"chmod o-rwx {path}" if st.st_mode & 0o006 else f"chown root {path}")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        return f"cannot be read by uid {os.geteuid()}: {exc.strerror or exc}", ""
    return None


def token_problem(path: str) -> tuple[str, str] | None:
    """(what is wrong, the fix) for the web's token file, or None when it holds a token."""
    found = secret_problem(path, for_rsync=False)
    if found:
        return found
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8").strip()
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}", ""
    except UnicodeDecodeError:
        return "is not UTF-8 text", "write the token as one line of text"
    if not text:
        return "is empty: every action would be refused", "write the token into it"
    return None


def web_file_problems(config: Config) -> list[Problem]:
    """The token file, if one is set: the daemon will not serve the web without it."""
    path = config.web.token_file
    found = token_problem(path) if path else None
    if path is None or found is None:
        return []
    return [Problem(config.path, "web.token_file", f"{path} {found[0]}", found[1])]


def file_problems(config: Config) -> list[Problem]:
    """Every file the config names that would fail when used: password files, the token."""
    problems: list[Problem] = []
    for mirror in config.mirrors.values():
        path = mirror.settings.password_file
        found = secret_problem(path, for_rsync=True) if path else None
        if found:
            problems.append(Problem(config.path, f"mirrors.{mirror.name}.password_file",
                                    f"{path} {found[0]}", found[1]))
    return problems + snapshot_problems(config) + web_file_problems(config)


def snapshot_problems(config: Config) -> list[Problem]:
    """A mirror with ``snapshots`` whose ``dest`` is not a dataset / subvolume (or whose
    tool is missing): every run would end without its snapshot."""
    from ..snapshots import backend_for

    problems: list[Problem] = []
    for mirror in config.mirrors.values():
        backend = backend_for(mirror.settings.snapshots, mirror.dest)
        why = backend.check() if backend is not None else None
        if why:
            problems.append(Problem(config.path, f"mirrors.{mirror.name}.dest",
                                    f"snapshots = \"{mirror.settings.snapshots}\": {why}",
                                    "see docs/snapshots.md for the set-up"))
        publish = mirror.settings.publish_path
        if publish and os.path.lexists(publish) and not os.path.islink(publish):
            problems.append(Problem(config.path, f"mirrors.{mirror.name}.publish_path",
                                    f"{publish} exists and is not a symlink; Mirrorkeeper "
                                    "switches a symlink there and never replaces a directory",
                                    f"move {publish} away (or point publish_path elsewhere)"))
    return problems
