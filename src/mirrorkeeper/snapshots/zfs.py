"""ZFS: ``dest`` is the mountpoint of a dataset; snapshots are ``DATASET@NAME``. A snapshot is
read (and published) through a read-only clone mounted at ``<dest>.snapshots/<name>``:
``.zfs/snapshot`` is hidden on some platforms (zfs-fuse), and a clone works everywhere."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

from . import Snapshot, SnapshotError, view_root
from .command import run, succeeds

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40,
          "P": 1 << 50, "E": 1 << 60}


def parse_size(text: str) -> int | None:
    """``zfs get`` sizes as printed ("88K", "1.50M", "0"): zfs-fuse has no ``-p``."""
    m = re.match(r"^([\d.]+)([BKMGTPE]?)$", text.strip())
    if not m:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2)])


#: What a user other than root needs delegated on the mirror's dataset (``zfs allow``).
DELEGATED = "snapshot,destroy,rollback,clone,create,mount,readonly,mountpoint"


class ZfsBackend:
    kind = "zfs"

    def __init__(self, dest: str, zfs: str = "zfs") -> None:
        self.dest = dest
        self.zfs = zfs
        self.root = view_root(dest)
        self._dataset: str | None = None

    @property
    def dataset(self) -> str:
        if self._dataset is None:
            self._dataset = self._find_dataset()
        return self._dataset

    def _find_dataset(self) -> str:
        wanted = os.path.realpath(self.dest)
        out = run([self.zfs, "list", "-H", "-o", "name,mountpoint", "-t", "filesystem"])
        for line in out.splitlines():
            name, _, mountpoint = line.partition("\t")
            if mountpoint and os.path.realpath(mountpoint) == wanted:
                return name
        raise SnapshotError(f"{self.dest} is not the mountpoint of a ZFS dataset; create one "
                            f"(`zfs create -o mountpoint={self.dest} POOL/NAME`)")

    def check(self) -> str | None:
        if shutil.which(self.zfs) is None:
            return "`zfs` is not installed (Debian: apt install zfsutils-linux)"
        try:
            dataset = self.dataset
        except SnapshotError as exc:
            if os.geteuid() != 0 and any(w in str(exc).lower() for w in (
                    "permission denied", "failed to initialize zfs library")):
                return (f"{exc} — this user may not run zfs. On OpenZFS, make /dev/zfs "
                        "usable by it and delegate the mirror's dataset: `zfs allow USER "
                        f"{DELEGATED} POOL/NAME` (docs/snapshots.md); zfs-fuse answers root "
                        "only. Or run Mirrorkeeper as root")
            return str(exc)
        if "/" not in dataset:
            return (f"{self.dest} is the root dataset of pool {dataset}; give the mirror a "
                    f"dataset of its own (`zfs create {dataset}/NAME`)")
        return None

    def _clone(self, name: str) -> str:
        return f"{self.dataset}.{name}"

    def create(self, name: str) -> None:
        run([self.zfs, "snapshot", f"{self.dataset}@{name}"])

    def listed(self) -> list[Snapshot]:
        out = run([self.zfs, "list", "-H", "-t", "snapshot", "-o", "name", "-s", "creation",
                   "-r", self.dataset])
        prefix = f"{self.dataset}@"
        return [Snapshot(line[len(prefix):]) for line in out.splitlines()
                if line.startswith(prefix)]

    def _destroy_view(self, name: str) -> None:
        clone = self._clone(name)
        if succeeds([self.zfs, "list", "-H", "-o", "name", clone]):
            run([self.zfs, "destroy", clone], retries_when_busy=3)
        with contextlib.suppress(OSError):  # the empty mountpoint directory zfs leaves
            (self.root / name).rmdir()

    def drop_view(self, name: str) -> None:
        self._destroy_view(name)

    def destroy(self, name: str) -> None:
        self._destroy_view(name)
        run([self.zfs, "destroy", f"{self.dataset}@{name}"], retries_when_busy=3)

    def view(self, name: str) -> Path:
        path = self.root / name
        clone = self._clone(name)
        if not succeeds([self.zfs, "list", "-H", "-o", "name", clone]):
            run([self.zfs, "clone", "-o", f"mountpoint={path}", "-o", "readonly=on",
                 f"{self.dataset}@{name}", clone])
        return path

    def rollback(self, name: str, newer: list[str]) -> list[str]:
        """ZFS rolls back only to its newest snapshot: the newer ones (and their clones) go
        first. The caller has already moved publishing off them."""
        for other in newer:
            self._destroy_view(other)
        run([self.zfs, "rollback", "-r", f"{self.dataset}@{name}"], retries_when_busy=3)
        return list(newer)

    def space_used(self) -> int | None:
        try:
            out = run([self.zfs, "get", "-H", "-o", "value", "usedbysnapshots", self.dataset])
        except SnapshotError:
            return None
        return parse_size(out)
