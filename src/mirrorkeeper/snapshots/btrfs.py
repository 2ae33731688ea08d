"""btrfs: ``dest`` is a subvolume; snapshots are read-only subvolumes beside it, in
``<dest>.snapshots/<name>``, readable (and publishable) as they are."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

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


def is_mount_point(path: str) -> bool:
    """Mounted there (``/proc/self/mounts``): ``os.path.ismount`` says yes for every btrfs
    subvolume, since each has a device number of its own."""
    wanted = os.path.realpath(path)
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            points = [line.split()[1] for line in mounts if len(line.split()) > 1]
    except OSError:
        return os.path.ismount(path)
    decoded = {p.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
               for p in points}
    return wanted in decoded


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
        if not succeeds([self.btrfs, "subvolume", "show", self.dest]) or \
                os.stat(self.dest).st_ino != 256:
            return (f"{self.dest} is not a btrfs subvolume; create one (`btrfs subvolume "
                    f"create {self.dest}`) and move the mirror's files into it")
        if is_mount_point(self.dest):
            return (f"{self.dest} is a mount point; a rollback replaces the subvolume, so "
                    "mount the filesystem above it and use the subvolume as a directory")
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
        run([self.btrfs, "subvolume", "delete", str(self.root / name)])

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
        run([self.btrfs, "subvolume", "delete", str(aside)])
        return []

    def space_used(self) -> int | None:
        return None  # exclusive sizes need btrfs quotas (qgroups), which cost on every write
