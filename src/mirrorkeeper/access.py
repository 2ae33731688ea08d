"""Why a state or log file cannot be used, said so that an admin can fix it (I/O, edge).

Two situations come up on real hosts, and each needs its own fix in the message:

- a file or directory this user may not write — typically left by a run as root in the state
  of the unprivileged ``mirrorkeeper`` user. The message names the exact file, its owner and
  mode, and the ``chown`` that gives it back;
- a full filesystem. SQLite says "database or disk is full" or, when it cannot even size its
  shared-memory file, "disk I/O error"; the message names the file and says to free space.

Writers check the places they are about to write before they start (:func:`require_writable`),
so a run never stops halfway for a permission; whatever happens later is translated here too.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import sqlite3
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import StateUnavailable

#: Below this many free bytes a filesystem counts as full: SQLite needs a few pages at least.
NEARLY_FULL_BYTES = 256 * 1024


@dataclass(frozen=True)
class Place:
    """Something a command writes: ``what`` it is, its ``path``, and the ``root`` directory
    (state or log dir) whose ownership the fix gives back."""

    what: str
    path: Path
    root: Path


def user_name(uid: int | None = None) -> str:
    uid = os.geteuid() if uid is None else uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _exists(path: Path) -> bool:
    """Whether ``path`` is there; one this user may not even look at counts as there (and as
    not usable, which the caller then reports)."""
    try:
        path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.stat().st_mode)
    except OSError:
        return False


def _may(path: Path, want: int) -> bool:
    """``os.access`` with the effective ids; a directory needs X as well, to be entered."""
    if not _exists(path):
        return False
    mode = want | (os.X_OK if _is_dir(path) else 0)
    if os.access in os.supports_effective_ids:
        return os.access(path, mode, effective_ids=True)
    return os.access(path, mode)


def _may_write(path: Path) -> bool:
    return _may(path, os.W_OK)


def denied(place: Place) -> StateUnavailable:
    """``place`` exists but this user may not write it: say whose it is and how to fix it."""
    me = user_name()
    try:
        st = place.path.stat()
    except OSError as exc:
        return StateUnavailable(place.what, str(place.path), exc.strerror or str(exc),
                                _chown_fix(me, place.root))
    owner = user_name(st.st_uid)
    where = "write in it" if stat.S_ISDIR(st.st_mode) else "write it"
    reason = (f"it belongs to {owner}:{_group_name(st.st_gid)} (mode {st.st_mode & 0o7777:04o}) "
              f"and user {me} may not {where}")
    if owner == me:
        reason = (f"user {me} owns it but may not {where} (mode {st.st_mode & 0o7777:04o}; "
                  "a read-only filesystem?)")
    return StateUnavailable(place.what, str(place.path), reason, _chown_fix(me, place.root, owner))


def _chown_fix(me: str, root: Path, owner: str | None = None) -> str:
    fix = f"fix: chown -R {me}: {root}"
    if owner and owner != me:
        fix += (f" — files owned by {owner} are left by running mirrorkeeper as {owner}; run it "
                f"as {me} (runuser -u {me} -- mirrorkeeper ...)")
    return fix


def disk_full(place: Place) -> StateUnavailable:
    """No room left on the filesystem that holds ``place``."""
    directory = place.path if _is_dir(place.path) else place.path.parent
    return StateUnavailable(
        place.what, str(place.path), "the filesystem is full (no space left on device)",
        f"fix: free space on the filesystem that holds {directory} (df -h {directory}); "
        "Mirrorkeeper carries on by itself once there is room")


def nearly_full(path: Path) -> bool:
    """True when the filesystem holding ``path`` has (next to) no room for this user."""
    try:
        st = os.statvfs(path if _is_dir(path) else path.parent)
    except OSError:
        return False
    free = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return free * st.f_frsize < NEARLY_FULL_BYTES


def first_unwritable(places: Iterable[Place]) -> Place | None:
    """The first place that exists and that this user may not write (missing ones are made
    later inside their parent, which comes earlier in the list)."""
    for place in places:
        if _exists(place.path) and not _may_write(place.path):
            return place
    return None


def require_writable(places: Iterable[Place]) -> None:
    """Raise :class:`StateUnavailable` for the first place this user may not write."""
    place = first_unwritable(places)
    if place is not None:
        raise denied(place)


def os_problem(exc: OSError, place: Place) -> StateUnavailable:
    """An OS error on ``place`` as the message an admin can act on."""
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return disk_full(place)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        blocked = first_unwritable([Place(place.what, p, place.root)
                                    for p in (place.path.parent, place.path)])
        if blocked is not None:
            return denied(blocked)
    return StateUnavailable(place.what, str(place.path), exc.strerror or str(exc),
                            _chown_fix(user_name(), place.root)
                            if exc.errno in (errno.EACCES, errno.EPERM) else None)


def _may_read(path: Path) -> bool:
    return _may(path, os.R_OK)


def first_unreadable(places: Iterable[Place]) -> Place | None:
    """The first place that exists and that this user may not read (or, a directory, enter)."""
    for place in places:
        if _exists(place.path) and not _may_read(place.path):
            return place
    return None


def read_denied(place: Place) -> StateUnavailable:
    """A reader (monitoring, an admin's ``status``) may not read ``place``: the fix is the
    group the deploy guide sets up, not a chown."""
    me = user_name()
    try:
        st = place.path.stat()
        owner, group = user_name(st.st_uid), _group_name(st.st_gid)
        found = f"it belongs to {owner}:{group} (mode {st.st_mode & 0o7777:04o})"
    except OSError as exc:
        group, found = "mirrorkeeper", exc.strerror or str(exc)
    return StateUnavailable(
        place.what, str(place.path), f"{found} and user {me} may not read it",
        f"fix: let {me} read the state through the group: adduser {me} {group}, with the "
        f"directories mode 0750 and the files 0644 or 0640 (docs/deploy.md, \"Read access for "
        "monitoring\")")


def wal_needs_shm(db: Path, root: Path) -> StateUnavailable:
    """A reader met a WAL store with no ``-shm`` file beside it that it may not create."""
    try:
        owner = user_name(db.stat().st_uid)
    except OSError:
        owner = "its owner"
    return StateUnavailable(
        "store", str(db), f"it was left in WAL mode without {db.name}-shm, which user "
        f"{user_name()} may not create in {db.parent}",
        f"fix: let {owner} open it once (start the daemon, or run `runuser -u {owner} -- "
        "mirrorkeeper alerts watchdog`); Mirrorkeeper then leaves it readable")


# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14


def sqlite_problem(error: BaseException, db: Path, root: Path, readonly: bool = False,
                   what: str = "store") -> StateUnavailable | None:
    """A SQLite error on ``db`` that a human must fix (permissions, a full disk), or None
    (an error of ours, or "database is locked", which is not for the admin)."""
    if not isinstance(error, sqlite3.Error):
        return None
    code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
    files = [db.parent, db, Path(f"{db}-wal"), Path(f"{db}-shm")]
    if code == _SQLITE_FULL or (code == _SQLITE_IOERR and nearly_full(db)):
        return disk_full(Place(what, db, root))
    if readonly and code in (_SQLITE_READONLY, _SQLITE_CANTOPEN):
        blocked = first_unreadable(Place(what, p, root) for p in files)
        if blocked is not None:
            return read_denied(blocked)
        if not Path(f"{db}-shm").exists():
            return wal_needs_shm(db, root)
    elif code in (_SQLITE_READONLY, _SQLITE_CANTOPEN):
        blocked = first_unwritable(Place(what, p, root) for p in files)
        if blocked is not None:
            return denied(blocked)
    if code in (_SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_IOERR):
        return StateUnavailable(what, str(db), str(error),
                                "fix: check the file, its directory and the disk (dmesg)")
    return None
