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
    #: Path (relative to the list's directory) → its entry.
    entries: dict[str, Entry]
    #: Checksum kind (``SHA1``) → path → hex digest.
    checksums: dict[str, dict[str, str]] = field(default_factory=dict)

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


def _files_line(line: str, entries: dict[str, Entry]) -> str | None:
    """Add one ``[Files]`` line to ``entries``; what is wrong with it, if anything."""
    fields = line.split("\t", 3)
    if len(fields) != 4:
        return "a [Files] line has 4 tab-separated fields (time, type, size, path)"
    when, kind, size, path = fields
    if not (when.isdigit() and size.isdigit()):
        return "time and size should be whole numbers"
    known = _TYPES.get(kind)
    if known is None:
        return f"unknown type {kind[:8]!r} (f, d or l, optionally followed by - or *)"
    if _BAD_PATH.search(path):
        return f"the path {path[:80]!r} is absolute, empty or has '.'/'..' parts"
    entries[path] = Entry(int(when), known[0], int(size), known[1])
    return None


def parse(text: str) -> FileList | Malformed:
    """The list in ``text``, or why it is not one. Never raises."""
    lines = text.split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[-1].strip() != "[End]":
        return Malformed("it does not end with [End]: incomplete (cut off, or read while the "
                         "upstream was writing it)")
    version: int | None = None
    entries: dict[str, Entry] = {}
    checksums: dict[str, dict[str, str]] = {}
    seen_files = False
    section = ""
    for number, raw in enumerate(lines[:-1], start=1):
        line = raw.rstrip("\r")
        if line.startswith("[") and line.endswith("]"):
            section = line
            if section == "[Files]":
                if seen_files:
                    return Malformed(f"line {number}: a second [Files] section")
                seen_files = True
            continue
        if not line.strip():
            continue
        if section == "[Version]":
            if version is not None or not line.strip().isdigit():
                return Malformed(f"line {number}: [Version] should hold one number, "
                                 f"not {line.strip()[:40]!r}")
            version = int(line.strip())
            if version > MAX_VERSION:
                return Malformed(f"it is format version {version}; this Mirrorkeeper reads "
                                 f"up to {MAX_VERSION}")
        elif section == "[Files]":
            problem = _files_line(line, entries)
            if problem:
                return Malformed(f"line {number}: {problem}")
        elif match := _CHECKSUM_SECTION.match(section):
            algorithm = match.group(1).upper()
            fields = line.split("\t", 1)
            if len(fields) != 2 or not _HEX.match(fields[0]) or _bad_path(fields[1]):
                return Malformed(f"line {number}: a [Checksums] line is a hex digest, a tab "
                                 "and a relative path")
            if algorithm in DIGEST_LENGTHS and len(fields[0]) != DIGEST_LENGTHS[algorithm]:
                return Malformed(f"line {number}: not a {algorithm} digest")
            checksums.setdefault(algorithm, {})[fields[1]] = fields[0].lower()
        # Any other section ([Directories], later additions) is skipped, as upstream does.
    if version is None:
        return Malformed("it has no [Version] section")
    if not seen_files:
        return Malformed("it has no [Files] section")
    return FileList(version=version, entries=entries, checksums=checksums)


def files_lines(text: str) -> frozenset[str]:
    """The ``[Files]`` lines of a list, as they are: what the previous list said is only ever
    compared, line by line, with the new one, so it need not be parsed."""
    start = text.find("\n[Files]\n")
    if start < 0:
        return frozenset()
    start += len("\n[Files]\n")
    end = text.find("\n\n", start)
    return frozenset(text[start:end if end >= 0 else len(text)].split("\n"))


def line_of(path: str, entry: Entry) -> str:
    """A public entry's ``[Files]`` line, as ``create-filelist`` writes it."""
    return f"{entry.mtime}\t{entry.kind}\t{entry.size}\t{path}"


def render(files: dict[str, Entry], checksums: dict[str, str] | None = None,
           version: int = 2) -> str:
    """A list in the real format (as ``create-filelist`` writes it): for tests and the bench."""
    out = ["[Version]", str(version), "", "[Files]"]
    for path, e in files.items():
        out.append(f"{e.mtime}\t{e.kind}{'*' if e.restricted else ''}\t{e.size}\t{path}")
    out += ["", "[Checksums SHA1]"]
    out += [f"{digest}\t{path}" for path, digest in sorted((checksums or {}).items())]
    out += ["", "[End]", ""]
    return "\n".join(out)
