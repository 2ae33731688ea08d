"""Read a Fedora-style file list (``fullfiletimelist-*``, written by ``create-filelist``). Pure.

The format, as Fedora's ``create-filelist`` writes it and quick-fedora-mirror reads it::

    [Version]
    2
                                            (blank line ends a section)
    [Files]
    1700000000<TAB>f<TAB>1234<TAB>releases/40/Everything/x86_64/os/Packages/a/a.rpm
    1700000000<TAB>d<TAB>4096<TAB>releases/40
    1700000000<TAB>l<TAB>7<TAB>development/rawhide-link

    [Checksums SHA1]
    <sha1 hex><TAB>releases/40/Everything/x86_64/os/repodata/repomd.xml

    [End]

The time is ``max(mtime, ctime)`` of the entry on the master, so it tells *that* an entry
changed, never the mtime a mirror should have. A type may carry a suffix: ``-`` (not world
readable) or ``*`` (under a restricted directory; version 3); mirrors outside tier 1 neither get
nor keep those. A list whose last line is not ``[End]`` is incomplete (cut off in transfer, or
read while being written) and is never used. Sections this reader does not know (other
checksum kinds, ``[Directories]`` of later writers) are skipped, as quick-fedora-mirror skips
them; a version above :data:`MAX_VERSION` is refused, as it refuses it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import NamedTuple

#: The newest list format this reader understands (quick-fedora-mirror's ``max_fl_version``).
MAX_VERSION = 3
KINDS = frozenset({"f", "d", "l"})
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_CHECKSUM_SECTION = re.compile(r"^\[Checksums ([A-Za-z0-9]+)\]$")
#: Digest lengths (hex characters) of the checksum kinds the sync can verify.
DIGEST_LENGTHS = {"SHA1": 40, "SHA256": 64}


class Entry(NamedTuple):
    """One ``[Files]`` line (a tuple: a list holds millions, and two entries are equal exactly
    when their lines say the same)."""

    mtime: int
    kind: str  #: f (file), d (directory) or l (symlink)
    size: int
    #: ``-`` or ``*`` after the type: not for public mirrors.
    restricted: bool = False


@dataclass(frozen=True)
class FileList:
    version: int
    #: The ``[Files]`` lines as written (already checked): most runs only compare them with
    #: the previous list's, so they are turned into entries only when asked.
    lines: tuple[str, ...]
    #: Checksum kind (``SHA1``) → path → hex digest.
    checksums: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, entries: dict[str, Entry], checksums: dict[str, dict[str, str]] | None = None,
           version: int = 2) -> FileList:
        return cls(version, tuple(_written(p, e) for p, e in entries.items()), checksums or {})

    @functools.cached_property
    def entries(self) -> dict[str, Entry]:
        """Path (relative to the list's directory) → its entry."""
        return dict(entry_of(line) for line in self.lines)

    @property
    def public(self) -> dict[str, Entry]:
        """What a public mirror carries: every entry that is not restricted."""
        return {p: e for p, e in self.entries.items() if not e.restricted}


@dataclass(frozen=True)
class Malformed:
    """Why a list cannot be used; the sync falls back to a full rsync and says this."""

    reason: str


#: A path that could leave the mirror, or that rsync would read differently: empty, absolute,
#: an empty, ``.`` or ``..`` part, a NUL or a newline.
_BAD_PATH = re.compile(r"\A\Z|\A/|//|/\Z|(?:\A|/)\.\.?(?:/|\Z)|[\0\n]")


def _bad_path(path: str) -> bool:
    return _BAD_PATH.search(path) is not None


_TYPES = {"f": ("f", False), "d": ("d", False), "l": ("l", False),
          **{k + s: (k, True) for k in KINDS for s in "-*"}}
#: Every ``[Files]`` line is time, type, size and path (matched as one run of lines, in C:
#: a list has millions of them); where the match stops is the first line that is not.
_LINES = re.compile(r"(?:\d+\t[fdl][-*]?\t\d+\t[^\n]+\n)*")
#: A ``[Files]`` line whose path could leave the mirror (see ``_BAD_PATH``).
_BAD_LINE = re.compile(r"^\d+\t[^\t\n]*\t\d+\t(?:/|\.\.?(?:/|$)|[^\n]*//|[^\n]*/\.\.?(?:/|$)"
                       r"|[^\n]*/$|[^\n]*\x00)", re.M)
#: Text that a bad path puts in the block: when none is there (the usual case), the block is
#: not searched line by line for one.
_BAD_HINTS = ("\t/", "\t.", "//", "/./", "/../", "/.\n", "/..\n", "/\n", "\x00")


def sound_entry(line: str) -> tuple[str, Entry] | None:
    """An unchecked line (of the mirror's own copy of a list) as (path, entry) when it passes
    the checks :func:`parse` makes of every line; else None."""
    if _LINES.fullmatch(line + "\n") is None:
        return None
    path, entry = entry_of(line)
    return None if _bad_path(path) else (path, entry)


def entry_of(line: str) -> tuple[str, Entry]:
    """A checked ``[Files]`` line as (path, entry)."""
    when, kind, size, path = line.split("\t", 3)
    known = _TYPES[kind]
    return path, Entry(int(when), known[0], int(size), known[1])


def _check_files(block: str, first_line: int) -> str | None:
    """What is wrong with the first bad line of a ``[Files]`` block, if any."""
    text = block + "\n"
    end = _LINES.match(text).end()  # type: ignore[union-attr]  # (?:…)* always matches
    if end != len(text):
        number = first_line + block.count("\n", 0, end)
        return (f"line {number}: a [Files] line is a time, a type (f, d or l, optionally "
                f"followed by - or *), a size and a path, separated by tabs: "
                f"{text[end:text.index(chr(10), end)][:80]!r}")
    if any(hint in text for hint in _BAD_HINTS):
        found = _BAD_LINE.search(block)
        if found:
            number = first_line + block.count("\n", 0, found.start())
            return (f"line {number}: the path is absolute, empty or has '.'/'..' parts: "
                    f"{found.group(0)[:80]!r}")
    return None


def _files_block(text: str) -> tuple[int, int] | None:
    """Where the ``[Files]`` lines are in ``text`` (start, end), or None: they are most of a
    list, so they are found and checked as one block, not line by line in Python. The block
    ends at a blank line or the next section's header."""
    if text.startswith("[Files]\n"):
        begin = len("[Files]\n")
    else:
        found = text.find("\n[Files]\n")
        if found < 0:
            return None
        begin = found + len("\n[Files]\n")
    ends = [i for i in (text.find("\n\n", begin), text.find("\n[", begin)) if i >= 0]
    if ends:
        return begin, min(ends)
    return begin, max(begin, len(text) - 1 if text.endswith("\n") else len(text))


def parse(text: str) -> FileList | Malformed:
    """The list in ``text``, or why it is not one. Never raises."""
    block = _files_block(text)
    if block is None:
        if not text.rstrip("\n").endswith("[End]"):
            return Malformed("it does not end with [End]: incomplete (cut off, or read while "
                             "the upstream was writing it)")
        return Malformed("it has no [Files] section")
    begin, end = block
    files = text[begin:end]
    rest = text[:begin] + text[end:]
    lines = rest.split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[-1].strip() != "[End]":
        return Malformed("it does not end with [End]: incomplete (cut off, or read while the "
                         "upstream was writing it)")
    if files:
        problem = _check_files(files, text.count("\n", 0, begin) + 1)
        if problem:
            return Malformed(problem)
    version: int | None = None
    checksums: dict[str, dict[str, str]] = {}
    seen_files = False
    section = ""
    for raw in lines[:-1]:
        line = raw.rstrip("\r")
        if line.startswith("[") and line.endswith("]"):
            section = line
            if section == "[Files]":
                if seen_files:
                    return Malformed("a second [Files] section")
                seen_files = True
            continue
        if not line.strip():
            continue
        if section == "[Version]":
            if version is not None or not line.strip().isdigit():
                return Malformed(f"[Version] should hold one number, not {line.strip()[:40]!r}")
            version = int(line.strip())
            if version > MAX_VERSION:
                return Malformed(f"it is format version {version}; this Mirrorkeeper reads "
                                 f"up to {MAX_VERSION}")
        elif match := _CHECKSUM_SECTION.match(section):
            algorithm = match.group(1).upper()
            fields = line.split("\t", 1)
            if len(fields) != 2 or not _HEX.match(fields[0]) or _bad_path(fields[1]):
                return Malformed(f"{line[:60]!r}: a [Checksums] line is a hex digest, a tab "
                                 "and a relative path")
            if algorithm in DIGEST_LENGTHS and len(fields[0]) != DIGEST_LENGTHS[algorithm]:
                return Malformed(f"{line[:60]!r}: not a {algorithm} digest")
            checksums.setdefault(algorithm, {})[fields[1]] = fields[0].lower()
        # Any other section ([Directories], later additions) is skipped, as upstream does.
    if version is None:
        return Malformed("it has no [Version] section")
    return FileList(version=version, lines=tuple(files.split("\n")) if files else (),
                    checksums=checksums)


def files_lines(text: str) -> frozenset[str] | None:
    """The ``[Files]`` lines of a list, as they are (None: the list does not end with
    ``[End]``, so it is incomplete): what the previous list said is only ever compared, line
    by line, with the new one, so it is not parsed; the few lines acted on are checked one by
    one (:func:`sound_entry`)."""
    if not text.rstrip("\n").endswith("[End]"):
        return None
    block = _files_block(text)
    if block is None or block[0] == block[1]:
        return frozenset()
    return frozenset(text[block[0]:block[1]].split("\n"))


def line_of(path: str, entry: Entry) -> str:
    """A public entry's ``[Files]`` line, as ``create-filelist`` writes it."""
    return f"{entry.mtime}\t{entry.kind}\t{entry.size}\t{path}"


def _written(path: str, entry: Entry) -> str:
    """Any entry's line, a restricted one marked ``*``."""
    return f"{entry.mtime}\t{entry.kind}{'*' if entry.restricted else ''}\t{entry.size}\t{path}"


def render(files: dict[str, Entry], checksums: dict[str, str] | None = None,
           version: int = 2) -> str:
    """A list in the real format (as ``create-filelist`` writes it): for tests and the bench."""
    out = ["[Version]", str(version), "", "[Files]"]
    out += [_written(path, e) for path, e in files.items()]
    out += ["", "[Checksums SHA1]"]
    out += [f"{digest}\t{path}" for path, digest in sorted((checksums or {}).items())]
    out += ["", "[End]", ""]
    return "\n".join(out)
