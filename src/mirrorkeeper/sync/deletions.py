"""Delete what :func:`mirrorkeeper.plan.deletions.plan_deletions` chose (I/O).

Every path is resolved component by component with ``O_NOFOLLOW`` directory descriptors, so
nothing outside the mirror is ever touched, whatever symlinks the tree holds: a name with an
empty, ``.`` or ``..`` part, or a parent that is not a real directory, is refused.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_DIRS = 64


@dataclass
class DeleteResult:
    deleted: int = 0
    #: (path, why) for every path that could not be deleted.
    failed: list[tuple[str, str]] = field(default_factory=list)


class _Dirs:
    """Open directory descriptors below the root, a few at a time (children come in runs)."""

    def __init__(self, root: str) -> None:
        # The mirror root itself may be a symlink an admin made; only what lies below is not.
        self.root = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.cache: dict[str, int] = {}

    def get(self, parent: str) -> int:
        if not parent:
            return self.root
        if parent in self.cache:
            return self.cache[parent]
        fd = self.root
        opened: list[int] = []
        try:
            for part in parent.split("/"):
                fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                opened.append(fd)
        except OSError:
            for one in opened:
                os.close(one)
            raise
        for one in opened[:-1]:
            os.close(one)
        if len(self.cache) >= _OPEN_DIRS:
            self.close_cached()
        self.cache[parent] = fd
        return fd

    def close_cached(self) -> None:
        for fd in self.cache.values():
            os.close(fd)
        self.cache.clear()

    def close(self) -> None:
        self.close_cached()
        os.close(self.root)


def _bad_name(path: str) -> bool:
    parts = path.split("/")
    return path.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in path


def delete_paths(root: str, paths: Sequence[str],
                 log: Callable[[str], None] | None = None) -> DeleteResult:
    """Delete ``paths`` (relative to ``root``, children before their directories)."""
    result = DeleteResult()
    if not paths:
        return result
    dirs = _Dirs(root)
    try:
        for path in paths:
            if _bad_name(path):
                result.failed.append((path, "refused: not a plain relative path"))
                continue
            parent, _, name = path.rpartition("/")
            try:
                fd = dirs.get(parent)
                info = os.lstat(name, dir_fd=fd)
                if stat.S_ISDIR(info.st_mode):
                    dirs.close_cached()  # never hold the directory we remove open
                    fd = dirs.get(parent)
                    os.rmdir(name, dir_fd=fd)
                else:
                    os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                continue  # gone already: nothing left to delete
            except OSError as exc:
                why = ("a parent is a symlink or not a directory"
                       if exc.errno in (errno.ELOOP, errno.ENOTDIR) else
                       exc.strerror or str(exc))
                result.failed.append((path, why))
                if log:
                    log(f"cannot delete {path}: {why}")
                continue
            result.deleted += 1
            if log:
                log(f"*deleting   {path}")
    finally:
        dirs.close()
    return result
