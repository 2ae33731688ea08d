"""What one file-list run transfers and deletes. Pure: lists and a tree snapshot in, a plan out.

quick-fedora-mirror's rules, one module at a time: transfer every entry whose line changed
since the previous list (new, or a new time, type or size), and every file whose local
checksum differs from the list's ``[Checksums]``; delete what the previous list had and the
new one has not. Between full runs the tree is taken to be as the previous list says (the
last complete run left it so), so a run costs what changed, not the size of the tree. Without
a previous list the whole local tree is compared: every listed entry the mirror lacks or
holds as another type or size is sent, every entry under a list's directory that the list
does not name is deleted. Restricted entries (``-``/``*`` types) are for tier-1 mirrors only:
not transferred, and not kept.

Hard links survive because all lists go into one rsync with ``-H``; a file that changed is
sent together with the files that most likely share its inode (same name and size, already in
the mirror), so rsync links it to them instead of storing a second copy — what a plain rsync
of the whole tree does, at the price of a few more names in the file list.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..rsync.parse import DeleteCandidate
from .format import Entry, FileList, entry_of, line_of, sound_entry

#: A name-and-size group larger than this is not a likely hard-link set (many small README or
#: .htaccess files of one size): its members are not added as link partners.
MAX_LINK_GROUP = 8


@dataclass(frozen=True)
class Local:
    """One entry of the mirror's own tree."""

    kind: str  #: f, d or l (like the list's types)
    size: int


@dataclass(frozen=True)
class ModuleList:
    """One list and where it lives: ``prefix`` is its directory relative to the mirror root
    ("" for a list at the root), and every path in it is relative to that directory."""

    prefix: str
    new: FileList
    #: The ``[Files]`` lines of the list the mirror holds from its last complete run
    #: (:func:`~.format.files_lines`); None when it has none.
    old: frozenset[str] | None


@dataclass(frozen=True)
class Plan:
    #: Paths (relative to the mirror root) for the content stage and the index stage.
    content: tuple[str, ...]
    indexes: tuple[str, ...]
    #: What the mirror holds that no list names any more, for the deletion planner.
    candidates: tuple[DeleteCandidate, ...]
    #: Exact totals from the lists: the whole tree (every entry, directories too, as rsync's
    #: "Number of files" counts), and the files and bytes this run transfers.
    files_total: int
    bytes_total: int
    files_to_transfer: int
    bytes_to_transfer: int
    #: Of those bytes, the index stage's share.
    index_bytes: int = 0
    #: Of those: named because their list line changed, because they are missing here, because
    #: their size or checksum differs here, and added as hard-link partners.
    changed: int = 0
    missing: int = 0
    differing: int = 0
    partners: int = 0


class Patterns:
    """rsync-style patterns (``repodata/``, ``fullfiletimelist-*``, ``/anchored/path``) as
    the stages use them: a path matches when it or a directory above it matches. ``*`` and
    ``?`` stop at ``/``, ``**`` does not; a trailing ``/`` matches directories only; a leading
    ``/`` anchors at the root. Compiled once into two regular expressions: a tree has millions
    of paths."""

    def __init__(self, patterns: Iterable[str]) -> None:
        above: list[str] = []  # matches the path or a directory above it
        itself: list[str] = []  # directory-only patterns matching the path itself
        for raw in patterns:
            body = raw.strip("/")
            if not body:
                continue
            start = r"\A" if raw.startswith("/") else r"(?:\A|/)"
            rx = start + _translate(body)
            if raw.endswith("/"):
                above.append(rx + "/")
                itself.append(rx + r"\Z")
            else:
                above.append(rx + r"(?:/|\Z)")
        self._above = re.compile("|".join(above)) if above else None
        self._itself = re.compile("|".join(itself)) if itself else None

    def __bool__(self) -> bool:
        return self._above is not None

    def matches(self, path: str, is_dir: bool) -> bool:
        if self._above is not None and self._above.search(path):
            return True
        return is_dir and self._itself is not None and self._itself.search(path) is not None


def _translate(glob: str) -> str:
    """An rsync wildcard as a regular expression (``*``/``?`` within one path part)."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (end := glob.find("]", i + 2)) != -1:
            inner = glob[i + 1:end].replace("\\", "\\\\")
            out.append("[^" + inner[1:] + "]" if inner.startswith("!") else "[" + inner + "]")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def dropped(lists: Sequence[ModuleList]) -> list[str]:
    """The paths the previous lists had and the new ones have not: what a run that trusts the
    previous lists looks up in the mirror (to delete), instead of walking all of it."""
    gone: list[str] = []
    for module in lists:
        assert module.old is not None
        new = set(module.new.lines)
        still = {line.split("\t", 3)[3] for line in new - module.old
                 if line.split("\t", 2)[1] in ("f", "d", "l")}
        for line in module.old - new:
            # The previous list is the mirror's copy, never checked as a whole (only these few
            # lines are read): a line that is not a sound list line names nothing to delete.
            found = sound_entry(line)
            if found is not None and not found[1].restricted and found[0] not in still:
                gone.append(_join(module.prefix, found[0]))
    return sorted(gone)


def _join(prefix: str, path: str) -> str:
    return f"{prefix}/{path}" if prefix else path


def _under(path: str, prefix: str) -> bool:
    return not prefix or path.startswith(prefix + "/")


def plan_transfer(
    lists: Sequence[ModuleList],
    local: Mapping[str, Local],
    *,
    local_digests: Mapping[str, Mapping[str, str]] | None = None,
    stage2: Patterns | None = None,
    excludes: Patterns | None = None,
    keep: Iterable[str] = (),
    trust_previous: bool = False,
) -> Plan:
    """The plan for one run. ``local`` is the mirror's whole tree (paths relative to its
    root) — or, with ``trust_previous`` (every module has a previous list), only the paths the
    caller looked up (see :func:`dropped`): then the tree is taken to be as the previous lists
    say, only the lines that changed are read, and the totals are the lists' own.
    ``local_digests`` maps a path to {checksum kind: hex digest} for the files the lists carry
    checksums of; ``keep`` names paths never to delete (the lists themselves, our trace)."""
    stage2 = stage2 or Patterns(())
    excludes = excludes or Patterns(())
    digests = local_digests or {}
    listed: dict[str, Entry] = {}  # every entry the plan looks at
    send: dict[str, str] = {}  # path -> why
    files_total = bytes_total = 0
    for module in lists:
        if trust_previous:
            count, size = _totals(module.new.lines)
            files_total, bytes_total = files_total + count, bytes_total + size
            _read_changes(module, excludes, listed, send)
        else:
            _compare_tree(module, local, excludes, listed, send)
    if trust_previous:
        # The few other lines the plan needs: files named like a file sent, in any module
        # (hard-link partners), and the files the lists carry checksums of.
        names = {p.rsplit("/", 1)[-1] for p in send if listed[p].kind == "f"}
        names.update(p.rsplit("/", 1)[-1] for m in lists for sums in m.new.checksums.values()
                     for p in sums)
        for module in lists:
            _read_named(module, names, excludes, listed)
    for module in lists:
        for algorithm, sums in module.new.checksums.items():
            for path, digest in sums.items():
                full = _join(module.prefix, path)
                if full in listed and full not in send:
                    ours = digests.get(full, {}).get(algorithm)
                    if ours is not None and ours != digest:
                        send[full] = "differing"
    if not trust_previous:
        files_total = len(listed)
        bytes_total = sum(e.size for e in listed.values() if e.kind == "f")

    def present(path: str) -> bool:
        """In the mirror: seen there, or (trusting the previous lists) presumed so."""
        return trust_previous or path in local

    partners = _link_partners(listed, send, present)
    content: list[str] = []
    indexes: list[str] = []
    files_to_transfer = bytes_to_transfer = index_bytes = 0
    for path in sorted({*send, *partners}):
        entry = listed[path]
        is_index = stage2.matches(path, entry.kind == "d")
        (indexes if is_index else content).append(path)
        if path in send and entry.kind != "d":
            files_to_transfer += 1
            size = entry.size if entry.kind == "f" else 0
            bytes_to_transfer += size
            index_bytes += size if is_index else 0
    kept = set(keep)
    prefixes = {m.prefix for m in lists}
    candidates = [
        DeleteCandidate(path, local[path].kind == "d") for path in sorted(local.keys() - listed)
        if path and path not in kept and path not in prefixes
        and any(_under(path, prefix) for prefix in prefixes)
        and ".~tmp~" not in path.split("/")
        and not excludes.matches(path, local[path].kind == "d")
    ]
    why = list(send.values())
    return Plan(content=tuple(content), indexes=tuple(indexes), candidates=tuple(candidates),
                files_total=files_total, bytes_total=bytes_total,
                files_to_transfer=files_to_transfer, bytes_to_transfer=bytes_to_transfer,
                index_bytes=index_bytes,
                changed=why.count("changed"), missing=why.count("missing"),
                differing=why.count("differing"), partners=len(partners))


def _compare_tree(module: ModuleList, local: Mapping[str, Local], excludes: Patterns,
                  listed: dict[str, Entry], send: dict[str, str]) -> None:
    """Every entry of the list against the previous list and the whole local tree."""
    old = module.old
    for path, entry in module.new.public.items():
        full = _join(module.prefix, path)
        if excludes.matches(full, entry.kind == "d"):
            continue
        listed[full] = entry
        mine = local.get(full)
        if old is None or line_of(path, entry) not in old:
            send[full] = "changed"
        elif mine is None or mine.kind != entry.kind:
            send[full] = "missing"
        elif entry.kind == "f" and mine.size != entry.size:
            send[full] = "differing"


def _read_changes(module: ModuleList, excludes: Patterns, listed: dict[str, Entry],
                  send: dict[str, str]) -> None:
    """Only the lines that differ from the previous list: sent."""
    assert module.old is not None
    old = module.old
    for line in module.new.lines:
        if line in old:
            continue
        path, entry = entry_of(line)
        full = _join(module.prefix, path)
        if entry.restricted or excludes.matches(full, entry.kind == "d"):
            continue
        listed[full] = entry
        send[full] = "changed"


def _read_named(module: ModuleList, names: set[str], excludes: Patterns,
                listed: dict[str, Entry]) -> None:
    """Add the entries whose last path part is one of ``names`` (one cheap pass)."""
    if not names:
        return
    for line in module.new.lines:
        slash = line.rfind("/")
        name = line[slash + 1:] if slash >= 0 else line.split("\t", 3)[-1]
        if name in names:
            path, entry = entry_of(line)
            full = _join(module.prefix, path)
            if not entry.restricted and full not in listed \
                    and not excludes.matches(full, entry.kind == "d"):
                listed[full] = entry


def _totals(lines: Iterable[str]) -> tuple[int, int]:
    """Public entries and their files' bytes, as the list says."""
    count = size = 0
    for line in lines:
        _when, kind, length, _path = line.split("\t", 3)
        if kind in ("f", "d", "l"):
            count += 1
            if kind == "f":
                size += int(length)
    return count, size


def _link_partners(listed: Mapping[str, Entry], send: Mapping[str, str],
                   present: Callable[[str], bool]) -> set[str]:
    """Files already in the mirror that probably share an inode with a file being sent."""
    wanted = {(p.rsplit("/", 1)[-1], listed[p].size) for p, e in send.items()
              if listed[p].kind == "f"}
    if not wanted:
        return set()
    groups: dict[tuple[str, int], list[str]] = {}
    for path, entry in listed.items():
        if entry.kind == "f":
            key = (path.rsplit("/", 1)[-1], entry.size)
            if key in wanted:
                groups.setdefault(key, []).append(path)
    partners: set[str] = set()
    for members in groups.values():
        if 1 < len(members) <= MAX_LINK_GROUP:
            partners.update(p for p in members if p not in send and present(p))
    return partners
