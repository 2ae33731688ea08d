"""Split an upstream's listing into N shares of about equal size (pure).

A share is a list of paths for one rsync's ``--files-from`` (with ``--recursive``, a
directory named there comes whole). A directory becomes one path when it is small enough;
a larger one is opened and its subdirectories and files are placed one by one, so that one
huge ``pool/`` cannot end up in a single share. The pieces are then dealt largest first to the
share that holds least (LPT scheduling: within 4/3 of the best split), which evens out the
transfer time of the streams when the bytes dominate it.

The listing is held as a directory tree while shares are cut: about 100 bytes per file, once
per seed; the ordinary stages never hold it.
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
    size: int = 0
    files: int = 0
    dirs: dict[str, _Dir] = field(default_factory=dict)
    own: list[tuple[str, int]] = field(default_factory=list)


def _tree(entries: Iterable[tuple[str, int]]) -> _Dir:
    root = _Dir()
    for path, size in entries:
        *parents, name = path.strip("/").split("/")
        node = root
        node.size += size
        node.files += 1
        for part in parents:
            node = node.dirs.setdefault(part, _Dir())
            node.size += size
            node.files += 1
        node.own.append((name, size))
    return root


def _pieces(node: _Dir, prefix: str, target: int, out: list[tuple[int, int, str]]) -> None:
    """(size, files, path) of each piece under ``node``: whole directories up to ``target``."""
    for name, size in node.own:
        out.append((size, 1, prefix + name))
    for name, child in node.dirs.items():
        if child.size > target and (child.dirs or len(child.own) > 1):
            _pieces(child, f"{prefix}{name}/", target, out)
        else:
            out.append((child.size, child.files, prefix + name))


def split_shares(entries: Iterable[tuple[str, int]], count: int) -> list[Share]:
    """At most ``count`` non-empty shares of the files in ``entries`` ((path relative to the
    root, size) of each file or symlink), largest first."""
    root = _tree(entries)
    if count < 1 or root.files == 0:
        return []
    target = max(1, root.size // (count * PIECES_PER_SHARE))
    pieces: list[tuple[int, int, str]] = []
    _pieces(root, "", target, pieces)
    pieces.sort(key=lambda p: (-p[0], p[2]))
    heap = [(0, index) for index in range(min(count, len(pieces)))]
    paths: list[list[str]] = [[] for _ in heap]
    sizes = [0] * len(heap)
    files = [0] * len(heap)
    for size, number, path in pieces:
        total, index = heapq.heappop(heap)
        paths[index].append(path)
        sizes[index] += size
        files[index] += number
        heapq.heappush(heap, (total + size, index))
    shares = [Share(tuple(sorted(p)), s, f) for p, s, f in zip(paths, sizes, files, strict=True)]
    return sorted(shares, key=lambda x: -x.size)
