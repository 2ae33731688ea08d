"""btrfs: ``dest`` is a subvolume; snapshots are read-only subvolumes beside it, in
``<dest>.snapshots/<name>``, readable (and publishable) as they are."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import NamedTuple

from ..access import Place, first_unwritable
from . import Snapshot, SnapshotError, view_root
from .command import run, succeeds
from .naming import parse_name


def _age_order(name: str) -> tuple[float, int, bool, str]:
    """Oldest first as the names say (a run's pre-run snapshot before the one after it);
    snapshots not made by Mirrorkeeper first, by name."""
    parsed = parse_name(name)
    if parsed is None:
        return (0.0, 0, False, name)
    return (parsed.created_at, parsed.run_id, not parsed.pre, name)


#: The inode number of every btrfs subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID).
SUBVOLUME_INODE = 256


class _Mount(NamedTuple):
    kind: str
    options: frozenset[str]


def _mounts() -> dict[str, _Mount] | None:
    """Mount point → its filesystem type and options (``/proc/self/mounts``; the last mount
    of a point wins), or None when it cannot be read."""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            fields = [line.split() for line in mounts]
    except OSError:
        return None
    return {f[1].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\"):
            _Mount(f[2], frozenset(f[3].split(","))) for f in fields if len(f) > 3}


def _mount_of(path: str, points: dict[str, _Mount]) -> str:
    """The mount point ``path`` lies under (the longest that contains it)."""
    here = os.path.realpath(path)
    return max((p for p in points if here == p or here.startswith(p.rstrip("/") + "/")),
               key=len, default="/")


def is_mount_point(path: str) -> bool:
    """Mounted there (``/proc/self/mounts``): ``os.path.ismount`` says yes for every btrfs
    subvolume, since each has a device number of its own."""
    points = _mounts()
    if points is None:
        return os.path.ismount(path)
    return os.path.realpath(path) in points


def is_subvolume(path: str) -> bool:
    """A btrfs subvolume's root: inode 256 on a btrfs mount. Read from the tree, not asked of
    ``btrfs subvolume show``, which needs root (it searches the filesystem's B-tree)."""
    try:
        if os.stat(path).st_ino != SUBVOLUME_INODE:
            return False
    except OSError:
        return False
    points = _mounts()
    if points is None:
        return True
    mount = points.get(_mount_of(path, points))
    return mount is not None and mount.kind == "btrfs"


class BtrfsBackend:
    kind = "btrfs"

    def __init__(self, dest: str, btrfs: str = "btrfs") -> None:
        self.dest = dest
        self.btrfs = btrfs
        self.root = view_root(dest)

    def check(self) -> str | None:
        if shutil.which(self.btrfs) is None:
            return "`btrfs` is not installed (Debian: apt install btrfs-progs)"
        path = Path(self.dest)
        if not path.is_dir():
            return f"{self.dest} does not exist yet; create it with `btrfs subvolume create`"
        if not is_subvolume(self.dest):
            return (f"{self.dest} is not a btrfs subvolume; create one (`btrfs subvolume "
                    f"create {self.dest}`) and move the mirror's files into it")
        if is_mount_point(self.dest):
            return (f"{self.dest} is a mount point; a rollback replaces the subvolume, so "
                    "mount the filesystem above it and use the subvolume as a directory")
        if os.geteuid() != 0:
            return self._unprivileged_problem()
        return None

    def _unprivileged_problem(self) -> str | None:
        """What a user other than root lacks to snapshot, prune and roll back here."""
        parent = Path(self.dest).parent
        unwritable = first_unwritable([Place("directory", parent, parent),
                                       Place("snapshot directory", self.root, parent)])
        if unwritable is not None and unwritable.path == parent:
            return (f"{parent} is not writable by this user: a rollback moves {self.dest} "
                    f"aside there, and the snapshots go beside it in {self.root}. Give the "
                    f"mirror's subvolume a directory the user owns (`install -d -o USER "
                    f"{parent}`), or run as root")
        if unwritable is not None:
            return f"{self.root} is not writable by this user; make it the user's, or run as root"
        points = _mounts() or {}
        where = _mount_of(str(parent), points)
        mount = points.get(where)
        if mount is not None and "user_subvol_rm_allowed" not in mount.options:
            return (f"this user may make btrfs snapshots but not delete them: mount {where} "
                    "with -o user_subvol_rm_allowed (in /etc/fstab), or run as root")
        return None

    def create(self, name: str) -> None:
        self.root.mkdir(exist_ok=True)
        run([self.btrfs, "subvolume", "snapshot", "-r", self.dest, str(self.root / name)])

    def listed(self) -> list[Snapshot]:
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SnapshotError(f"cannot list {self.root}: {exc.strerror}") from exc
        found = [n for n in names
                 if not n.startswith(".") and os.stat(self.root / n).st_ino == 256]
        return [Snapshot(n) for n in sorted(found, key=_age_order)]

    def destroy(self, name: str) -> None:
        self._delete(self.root / name)

    def _delete(self, path: Path) -> None:
        """Delete a subvolume. A user other than root (on a filesystem mounted with
        ``user_subvol_rm_allowed``) may delete only writable ones, so a read-only snapshot of
        its own is made writable first, and read-only again if it still cannot go."""
        if os.geteuid() == 0:
            run([self.btrfs, "subvolume", "delete", str(path)])
            return
        readonly = [self.btrfs, "property", "set", "-ts", str(path), "ro"]
        run([*readonly, "false"])
        try:
            run([self.btrfs, "subvolume", "delete", str(path)])
        except SnapshotError:
            succeeds([*readonly, "true"])
            raise

    def view(self, name: str) -> Path:
        path = self.root / name
        if not path.is_dir():
            raise SnapshotError(f"no snapshot {name} in {self.root}")
        return path

    def drop_view(self, name: str) -> None:
        """The snapshot is its own view: nothing to let go of."""

    def rollback(self, name: str, newer: list[str]) -> list[str]:
        """The current subvolume steps aside, a writable snapshot of ``name`` takes its
        place, then the old one is deleted; if the snapshot cannot be made, the old one is
        put back, so a failed rollback never leaves the mirror without its tree."""
        source = self.view(name)
        aside = self.root / f".replaced-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        self.root.mkdir(exist_ok=True)
        try:
            os.rename(self.dest, aside)
        except OSError as exc:
            raise SnapshotError(f"cannot move {self.dest} aside: {exc.strerror}") from exc
        try:
            run([self.btrfs, "subvolume", "snapshot", str(source), self.dest])
        except SnapshotError:
            os.rename(aside, self.dest)
            raise
        self._delete(aside)
        return []

    def space_used(self) -> int | None:
        return None  # exclusive sizes need btrfs quotas (qgroups), which cost on every write

