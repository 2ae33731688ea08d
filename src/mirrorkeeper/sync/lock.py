"""One run per mirror: an ``flock`` held for the whole run. The kernel releases it when the
process dies, however it dies, so a crash can never leave a stale lock behind."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from ..access import Place, os_problem, read_denied


class MirrorLocked(Exception):
    def __init__(self, mirror: str, holder: str) -> None:
        self.mirror, self.holder = mirror, holder
        super().__init__(f"mirror `{mirror}` is already being synced (by pid {holder or '?'})")


class MirrorLock:
    def __init__(self, lock_dir: str | Path, mirror: str, root: str | Path | None = None) -> None:
        self.path = Path(lock_dir) / f"{mirror}.lock"
        self.mirror = mirror
        #: The directory whose ownership a permission problem's fix gives back (the state dir).
        self.root = Path(root or lock_dir)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Raises :class:`MirrorLocked` if someone holds it, and
        :class:`~mirrorkeeper.errors.StateUnavailable` if this user may not open it (a lock
        file left by a run as root, say)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise os_problem(exc, Place("lock file", self.path, self.root)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise MirrorLocked(self.mirror, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        # The file stays: unlinking a lock file lets two processes lock two different inodes.
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> MirrorLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def is_locked(lock_dir: str | Path, mirror: str) -> bool:
    """True while some process holds the mirror's lock (used by ``status``)."""
    path = Path(lock_dir) / f"{mirror}.lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except PermissionError:
        raise read_denied(Place("lock file", path, Path(lock_dir))) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
