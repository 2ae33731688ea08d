"""Snapshots of a mirror's destination on ZFS or btrfs (DESIGN: a known-good copy after every
success, rollback, atomic publishing).

The port is :class:`SnapshotBackend`: one small interface that :mod:`.zfs` and :mod:`.btrfs`
implement with argv lists (never a shell). Names, retention and the choice of what to keep are
pure (:mod:`.naming`, :mod:`.retention`); the run loop's hooks are in
:mod:`mirrorkeeper.sync.snapshots`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

#: The ``snapshots`` setting's values.
BACKENDS = ("none", "zfs", "btrfs")


class SnapshotError(Exception):
    """A snapshot command failed: what was tried, and the tool's own words."""


@dataclass(frozen=True)
class Snapshot:
    """One snapshot of the destination, as the filesystem lists it."""

    name: str


def view_root(dest: str) -> Path:
    """Where readable views of the snapshots live: a sibling of ``dest`` on the same
    filesystem (btrfs puts the read-only snapshots there; ZFS mounts published clones there,
    since ``.zfs/snapshot`` is not everywhere visible)."""
    path = Path(dest)
    return path.parent / f"{path.name}.snapshots"


class SnapshotBackend(Protocol):
    """What Mirrorkeeper needs of a snapshotting filesystem. Every method raises
    :class:`SnapshotError` when the filesystem refuses."""

    kind: str
    dest: str

    def check(self) -> str | None:
        """Why ``dest`` cannot be snapshotted (not a dataset / subvolume, tool missing), or
        None when it can."""

    def create(self, name: str) -> None:
        """A read-only snapshot of ``dest`` as it is now."""

    def listed(self) -> list[Snapshot]:
        """The snapshots of ``dest`` (Mirrorkeeper's and any others), oldest first."""

    def destroy(self, name: str) -> None:
        """Remove a snapshot and its readable view."""

    def view(self, name: str) -> Path:
        """A directory holding the snapshot's tree, read-only, made if needed: what
        publishing points at."""

    def drop_view(self, name: str) -> None:
        """Let go of the snapshot's readable view once nothing publishes it (ZFS: its clone
        goes, so kept snapshots do not each hold a mount); the snapshot stays."""

    def rollback(self, name: str, newer: list[str]) -> list[str]:
        """Make ``dest`` the snapshot's tree again; ``newer`` are the snapshots taken after
        it. Returns the snapshots the filesystem had to destroy on the way (ZFS cannot keep
        snapshots newer than the one it rolls back to)."""

    def space_used(self) -> int | None:
        """Bytes held only by snapshots, when the filesystem can tell cheaply; else None."""


def backend_for(kind: str, dest: str) -> SnapshotBackend | None:
    """The backend of a mirror's ``snapshots`` setting (None for ``none``)."""
    if kind == "zfs":
        from .zfs import ZfsBackend

        return ZfsBackend(dest)
    if kind == "btrfs":
        from .btrfs import BtrfsBackend

        return BtrfsBackend(dest)
    return None
