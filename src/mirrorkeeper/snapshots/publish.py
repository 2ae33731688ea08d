"""Atomic publishing: the served path is a symlink, switched to a new target by one
``rename(2)`` — a client resolves either the old tree or the new one, never a mix (I/O)."""

from __future__ import annotations

import os
from pathlib import Path

from . import SnapshotError


def published(publish_path: str) -> str | None:
    """The name of the snapshot the link points at now (None: no link yet)."""
    try:
        return Path(os.readlink(publish_path)).name
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == 22:  # EINVAL: not a symlink
            return None
        raise SnapshotError(f"cannot read {publish_path}: {exc.strerror}") from exc


def switch(publish_path: str, target: Path) -> None:
    """Point ``publish_path`` at ``target``: a new link beside it, renamed over the old one.
    A real file or directory at ``publish_path`` is never replaced (it may be the data an
    admin served before): that is an error naming the fix."""
    path = Path(publish_path)
    if os.path.lexists(path) and not path.is_symlink():
        raise SnapshotError(f"{publish_path} exists and is not a symlink; Mirrorkeeper will "
                            "not replace it: move it away, and the next run publishes there")
    temporary = path.with_name(f".{path.name}.mirrorkeeper-new")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if temporary.is_symlink():
            temporary.unlink()
        os.symlink(target, temporary)
        os.replace(temporary, path)
    except OSError as exc:
        raise SnapshotError(f"cannot publish {target} at {publish_path}: "
                            f"{exc.strerror or exc}") from exc
