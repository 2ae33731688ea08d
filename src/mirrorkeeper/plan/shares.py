"""Split an upstream's listing into N shares of about equal size (pure).

A share is a list of paths for one rsync's ``--files-from`` (with ``--recursive``, a
directory named there comes whole). A directory becomes one path when it is small enough;
a larger one is *opened*: its subdirectories are placed one by one, so that one huge
``pool/`` cannot end up in a single share. Those pieces are dealt largest first to the share
that holds least (LPT scheduling: within 4/3 of the best split), which evens out the
transfer time of the streams when the bytes dominate it.

Two passes, so that no file name is held: a first sync of Fedora's 12 million entries would
otherwise hold gigabytes. :class:`ShareTree` adds up the listing per directory (memory in
proportion to the directories); :meth:`ShareTree.split` cuts the directory pieces; then the
listing is read again and :meth:`SharePlan.place` puts each file that lies directly in an
opened directory in the share that holds least at that moment (list scheduling: a share ends
at most one file above the others, as with LPT).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

#: How many pieces each share should be cut from, at least: finer pieces balance better.
PIECES_PER_SHARE = 16


@dataclass(frozen=True)
class Share:
    paths: tuple[str, ...]
    size: int
    files: int


@dataclass
class _Dir:
    size: int = 0  # everything below it
    files: int = 0
    own_size: int = 0  # the files directly in it
    own_files: int = 0
    dirs: dict[str, _Dir] = field(default_factory=dict)


def parent_of(path: str) -> str:
    """The directory part of a listed path ("" at the root)."""
    return path.strip("/").rpartition("/")[0]


class ShareTree:
    """The first pass: sizes and file counts per directory, no file names."""

    def __init__(self) -> None:
        self.root = _Dir()

    @property
    def size(self) -> int:
        return self.root.size

    @property
    def files(self) -> int:
        return self.root.files

    def add(self, path: str, size: int) -> None:
        """One file or symlink of the listing (its path relative to the root)."""
        *parents, _name = path.strip("/").split("/")
        node = self.root
        node.size += size
        node.files += 1
        for part in parents:
            node = node.dirs.setdefault(part, _Dir())
            node.size += size
            node.files += 1
        node.own_size += size
        node.own_files += 1

    def split(self, count: int) -> SharePlan:
        """The directory pieces dealt to at most ``count`` shares; the files of opened
        directories come in the second pass (:meth:`SharePlan.place`)."""
        target = max(1, self.root.size // max(1, count * PIECES_PER_SHARE))
        pieces: list[tuple[int, int, str]] = []
        opened: set[str] = set()
        loose = _pieces(self.root, "", target, pieces, opened)
        pieces.sort(key=lambda p: (-p[0], p[2]))
        return SharePlan(min(max(count, 0), len(pieces) + loose), pieces, opened)


def _pieces(node: _Dir, prefix: str, target: int, out: list[tuple[int, int, str]],
            opened: set[str]) -> int:
    """(size, files, path) of each whole directory under ``node`` up to ``target``, the
    opened directories in ``opened``; returns how many files lie directly in those."""
    opened.add(prefix.rstrip("/"))
    loose = node.own_files
    for name, child in node.dirs.items():
        if child.size > target and (child.dirs or child.own_files > 1):
            loose += _pieces(child, f"{prefix}{name}/", target, out, opened)
        else:
            out.append((child.size, child.files, prefix + name))
    return loose


class SharePlan:
    """The shares being filled: directory pieces first (largest first; their paths in
    :attr:`paths`), then the files of the opened directories one by one as the second pass
    meets them."""

    def __init__(self, count: int, pieces: list[tuple[int, int, str]],
                 opened: set[str]) -> None:
        self.opened = opened
        self.paths: list[list[str]] = [[] for _ in range(count)]
        self.sizes = [0] * count
        self.files = [0] * count
        self._heap = [(0, index) for index in range(count)]
        for size, number, path in pieces if count else ():
            self.paths[self._add(size, number)].append(path)

    def _add(self, size: int, files: int) -> int:
        total, index = heapq.heappop(self._heap)
        self.sizes[index] += size
        self.files[index] += files
        heapq.heappush(self._heap, (total + size, index))
        return index

    def place(self, path: str, size: int) -> int | None:
        """The share a file of the second pass goes to (counted there; the caller keeps or
        writes its path), or None: a directory piece already brings it."""
        if not self._heap or parent_of(path) not in self.opened:
            return None
        return self._add(size, 1)

    def shares(self) -> list[Share]:
        """The non-empty shares, largest first."""
        built = [Share(tuple(sorted(p)), s, f)
                 for p, s, f in zip(self.paths, self.sizes, self.files, strict=True) if f]
        return sorted(built, key=lambda x: -x.size)


def split_shares(entries: Iterable[tuple[str, int]], count: int) -> list[Share]:
    """At most ``count`` non-empty shares of the files in ``entries`` ((path relative to the
    root, size) of each file or symlink), largest first: both passes over a list in memory
    (the sync streams its listing through a file instead)."""
    listed = list(entries)
    tree = ShareTree()
    for path, size in listed:
        tree.add(path, size)
    if count < 1 or tree.files == 0:
        return []
    plan = tree.split(count)
    for path, size in listed:
        index = plan.place(path, size)
        if index is not None:
            plan.paths[index].append(path)
    return plan.shares()
