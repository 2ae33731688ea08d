"""Turn rsync output lines into events (pure, streaming, constant memory).

The parser expects the output options of :data:`mirrorkeeper.plan.argv.COMMON_OPTIONS`
(``--out-format=%i %n%L --info=progress2 --stats --no-human-readable``) and the C locale.
A line it does not recognise becomes :class:`Unparsed` — never silently dropped — so the
classifier can fail closed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """One ``--info=progress2`` update for the whole transfer."""

    bytes_done: int
    percent: int
    rate_bps: float
    transferred: int | None  # xfr#N: files transferred so far
    to_check: int | None  # files left to check of ``total_known``
    total_known: int | None  # files in the list so far
    incremental: bool  # ir-chk: the file list is still growing, so totals are a lower bound


@dataclass(frozen=True)
class Item:
    """One itemized change (``%i %n%L``) or a deletion."""

    code: str  # the 11-character %i string, or "*deleting"
    path: str
    kind: str  # file, dir, symlink, device, special, hardlink, deleted
    transferred: bool  # content was received (not just attributes)


@dataclass(frozen=True)
class DeleteCandidate:
    """A file or directory the upstream no longer has, named by ``--debug=DEL2``.

    The deleting stage runs with ``--max-delete=0``: rsync lists what it would delete and
    deletes nothing, so Mirrorkeeper decides (grace, guards, upstream errors) and deletes.
    """

    path: str  # relative to the mirror root, rsync's escapes (``\\#ooo``) undone
    is_dir: bool


@dataclass(frozen=True)
class Error:
    """An error or warning rsync printed. ``kind`` is a stable word; see :data:`ERROR_KINDS`."""

    kind: str
    message: str
    path: str | None = None
    errno: int | None = None
    role: str | None = None  # sender, receiver, generator, Receiver, client


@dataclass(frozen=True)
class ExitLine:
    """rsync's own last word: ``rsync error: ... (code N)`` or ``rsync warning: ... (code N)``."""

    code: int
    message: str


@dataclass(frozen=True)
class Stat:
    """One field of the ``--stats`` block, numbers as int (bytes, counts) or float (seconds)."""

    name: str
    value: float


@dataclass(frozen=True)
class DryRun:
    """rsync's closing ``total size is ... speedup is ... (DRY RUN)``: it changed nothing,
    although its itemized lines and stats read like a transfer. ``(BATCH ONLY)``
    (``--only-write-batch``) means the same for the mirror: nothing was written to it."""

    marker: str  # "DRY RUN" or "BATCH ONLY"


@dataclass(frozen=True)
class Info:
    """A known harmless line (``receiving incremental file list``)."""

    text: str


@dataclass(frozen=True)
class Unparsed:
    text: str


Event = Progress | Item | DeleteCandidate | Error | ExitLine | Stat | DryRun | Info | Unparsed

#: Error kinds that concern one file; they count towards ``files_failed``.
FILE_ERROR_KINDS = frozenset({
    "permission_denied", "local_permission", "vanished", "not_found", "io", "no_space", "read_only",
    "delete_failed", "file_error", "verification",
})
ERROR_KINDS = FILE_ERROR_KINDS | {
    "connection_refused", "connection", "dns", "connection_lost", "timeout", "module_missing",
    "auth", "daemon_busy", "daemon", "protocol", "max_delete", "deletion_skipped", "other",
    "password_file",
}

_PROGRESS = re.compile(
    r"^\s*(?P<bytes>[\d,]+)\s+(?P<pct>\d+)%\s+(?P<rate>[\d.,]+)(?P<unit>[kMGT]?B)/s\s+"
    r"(?P<eta>-?\d+:\d\d(?::\d\d)?)"
    r"(?:\s+\(xfr#(?P<xfr>\d+),\s+(?P<ir>ir|to)-chk=(?P<left>\d+)/(?P<total>\d+)\))?\s*"
)
#: An itemized change code (``%i``): how the entry changed, and its kind.
_ITEM_CODE = r"[<>ch.][fdLDS][.+?cstpoguaxn ]{9}"
_ITEM = re.compile(rf"^(?P<code>{_ITEM_CODE}) (?P<path>.+)$")
#: The same line matched without capturing (:meth:`~.tally.StageTally.feed`'s hot path).
ITEM_LINE = re.compile(rf"{_ITEM_CODE} .")
_DELETING = re.compile(r"^\*deleting\s+(?P<path>.+)$")
_STAT = re.compile(r"^(?P<name>[A-Z][A-Za-z ]+?): (?P<value>[\d,]+(?:\.\d+)?)(?: .*)?$")
_SENT = re.compile(
    r"^sent (?P<sent>[\d,]+) bytes\s+received (?P<recv>[\d,]+) bytes\s+(?P<rate>[\d,.]+) bytes/sec$"
)
# The only suffixes rsync prints here (main.c): anything else is not understood.
_TOTAL = re.compile(r"^total size is (?P<size>[\d,]+)\s+speedup is (?P<speedup>[\d,.]+)"
                    r"(?: \((?P<marker>DRY RUN|BATCH ONLY)\))?$")
_EXIT = re.compile(r"^rsync (?:error|warning): (?P<msg>.*?) \(code (?P<code>\d+)\)")
_RSYNC_MSG = re.compile(r"^rsync: (?:\[(?P<role>\w+)\] )?(?P<msg>.*)$")
_ERRNO = re.compile(r"\((?P<errno>\d+)\)\s*$")
_QUOTED = re.compile(r'"(?P<path>(?:[^"\\]|\\.)*)"')
_VANISHED = re.compile(r'^file has vanished: "(?P<path>.*)"')
_MAXDEL = re.compile(r"^Deletions stopped due to --max-delete limit \((?P<n>\d+) skipped\)")
_DELETE_ITEM = re.compile(r"^delete_item\((?P<path>.+)\) mode=(?P<mode>[0-7]+) flags=\d+$")
_ESCAPE = re.compile(r"\\#([0-7]{3})")
#: A progress line starts with blanks or a digit; an itemized one with one of these.
_PROGRESS_FIRST = frozenset(" 0123456789")
ITEM_FIRST = frozenset("<>ch.")
_KNOWN_INFO = re.compile(
    r"^(?:receiving|sending) (?:incremental )?file list$|^building file list|^done$|"
    r"^created directory |^delta-transmission |^total: matches=|^Number of files: 0$|"
    r"^(?:\s*)$|^skipping non-regular file |^ignoring unsafe symlink |"
    r"^opening connection |^[Ss]ending daemon args|^mirrorkeeper: |"
    r"^delete_in_dir\(|^deleting in "
)

_STAT_NAMES = {
    "Number of files": "files_total",
    "Number of created files": "files_created",
    "Number of deleted files": "files_deleted",
    "Number of regular files transferred": "files_transferred",
    "Total file size": "size_bytes",
    "Total transferred file size": "transferred_size_bytes",
    "Literal data": "literal_bytes",
    "Matched data": "matched_bytes",
    "File list size": "file_list_bytes",
    "File list generation time": "file_list_generation_seconds",
    "File list transfer time": "file_list_transfer_seconds",
    "Total bytes sent": "bytes_sent",
    "Total bytes received": "bytes_received",
}
_LOCAL_ROLES = frozenset({"receiver", "generator", "Receiver"})
_UNITS = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_ITEM_KINDS = {"f": "file", "d": "dir", "L": "symlink", "D": "device", "S": "special"}
_ERRNO_KINDS = {13: "permission_denied", 1: "permission_denied", 28: "no_space",
                122: "no_space", 30: "read_only", 5: "io", 2: "not_found",
                111: "connection_refused", 110: "timeout", 113: "connection", 101: "connection"}


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def _classify_message(msg: str, errno: int | None) -> str:
    low = msg.lower()
    if "password file" in low:  # could not open it; others may read it; root does not own it
        return "password_file"
    if "io timeout" in low or ("timeout" in low and "exiting" in low):
        return "timeout"
    if "failed to connect" in low or ("connection" in low and "refused" in low):
        return "connection_refused" if errno == 111 else "connection"
    if "getaddrinfo" in low or "name or service not known" in low:
        return "dns"
    if "connection unexpectedly closed" in low or "broken pipe" in low:
        return "connection_lost"
    if "max-delete" in low:
        return "max_delete"
    if "protocol" in low and "version" in low:
        return "protocol"
    if "failed verification" in low:
        return "verification"
    if "delet" in low and _QUOTED.search(msg):
        return "delete_failed"
    if errno in _ERRNO_KINDS:
        return _ERRNO_KINDS[errno]
    return "file_error" if _QUOTED.search(msg) else "other"


def _daemon_error(msg: str) -> str:
    low = msg.lower()
    if "unknown module" in low:
        return "module_missing"
    if "auth failed" in low:
        return "auth"
    if "max connections" in low:
        return "daemon_busy"
    return "daemon"


@dataclass(frozen=True)
class ListEntry:
    """One line of ``rsync --list-only`` (with --no-human-readable, TZ=UTC)."""

    mode: str
    size: int
    mtime: float  # UTC epoch seconds
    name: str


_LIST = re.compile(r"^(?P<mode>[-dlcbps][rwxsStT-]{9})\s+(?P<size>[\d,]+)\s+"
                   r"(?P<date>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d)\s+(?P<name>.+)$")


def list_file_entry(line: str) -> tuple[str, int] | None:
    """(name, size) of the regular file or symlink a ``--list-only`` line names, else None.

    A seed's listing has a line per upstream file: this reads only what it needs (no date),
    at a twentieth of :func:`parse_list_line`'s cost. A symlink's name is before `` -> ``."""
    if line[:1] not in "-l":
        return None
    m = _LIST.match(line)
    if m is None:
        return None
    name = m.group("name")
    if line[0] == "l":
        name = name.split(" -> ", 1)[0]
    elif name == ".":
        return None
    return name, int(m.group("size").replace(",", ""))


def parse_list_line(line: str) -> ListEntry | None:
    import calendar
    import time

    m = _LIST.match(line)
    if not m:
        return None
    stamp = calendar.timegm(time.strptime(m.group("date"), "%Y/%m/%d %H:%M:%S"))
    return ListEntry(m.group("mode"), int(_num(m.group("size"))), float(stamp), m.group("name"))


def leading_progress(line: str) -> tuple[list[re.Match[str]], str]:
    """The progress updates a line starts with, and the rest of it. rsync ends an update with
    ``\\r`` or nothing, so the next message can arrive glued to it
    (``... to-chk=0/9)*deleting   a/b``)."""
    matches: list[re.Match[str]] = []
    if line[:1] in _PROGRESS_FIRST:  # most lines: an item or a message, never progress
        while line and (m := _PROGRESS.match(line)):
            matches.append(m)
            line = line[m.end():]
    return matches, line


def item_kind(code: str) -> str:
    """The kind of entry an itemized change code is about (a hard link first of all)."""
    return "hardlink" if code[0] == "h" else _ITEM_KINDS[code[1]]


def parse_output(line: str) -> list[Event]:
    """Events of one output line: its glued progress updates, then the rest of it."""
    matches, rest = leading_progress(line)
    events: list[Event] = [progress_from(m) for m in matches]
    if rest or not matches:
        events.append(parse_line(rest))
    return events


def progress_from(m: re.Match[str]) -> Progress:
    """The update a match of ``_PROGRESS`` holds."""
    left, total = m.group("left"), m.group("total")
    rate = _num(m.group("rate")) * _UNITS.get(m.group("unit"), 1)
    return Progress(
        bytes_done=int(_num(m.group("bytes"))), percent=int(m.group("pct")), rate_bps=rate,
        transferred=int(m.group("xfr")) if m.group("xfr") else None,
        to_check=int(left) if left else None, total_known=int(total) if total else None,
        incremental=m.group("ir") == "ir",
    )


def unescape_name(name: str) -> str:
    """Undo rsync's ``\\#ooo`` escapes (every byte that is not printable in the C locale).

    Returns the name as Python names files (``os.fsdecode``), so ``os.lstat`` finds it.
    """
    if "\\#" not in name:
        return name
    raw = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(name):
        raw += name[pos:m.start()].encode("utf-8", "surrogateescape")
        raw.append(int(m.group(1), 8))
        pos = m.end()
    raw += name[pos:].encode("utf-8", "surrogateescape")
    return os.fsdecode(bytes(raw))


def parse_line(line: str) -> Event:
    """Classify one line of rsync's stdout or stderr (see :func:`parse_output` for glued ones)."""
    if line[:1] in ITEM_FIRST and (m := _ITEM.match(line)):  # the bulk: itemized changes
        code = m.group("code")
        kind = item_kind(code)
        return Item(code=code, path=m.group("path"), kind=kind, transferred=code[0] in "<>")
    if line.startswith("delete_in_dir("):  # one per directory of the deleting stage: cheap
        return Info(line)
    if line.startswith("delete_item(") and (m := _DELETE_ITEM.match(line)):
        return DeleteCandidate(unescape_name(m.group("path")),
                               is_dir=int(m.group("mode"), 8) & 0o170000 == 0o040000)
    if (m := _PROGRESS.match(line)) and m.end() == len(line):
        return progress_from(m)
    if m := _DELETING.match(line):
        return Item(code="*deleting", path=m.group("path"), kind="deleted", transferred=False)
    if m := _SENT.match(line):
        return Stat("bytes_per_second", _num(m.group("rate")))
    if m := _TOTAL.match(line):
        if m.group("marker"):
            return DryRun(m.group("marker"))
        return Stat("total_size_bytes", _num(m.group("size")))
    if m := _EXIT.match(line):
        return ExitLine(code=int(m.group("code")), message=m.group("msg"))
    if m := _VANISHED.match(line):
        return Error("vanished", line, path=m.group("path"))
    if m := _MAXDEL.match(line):
        return Error("max_delete", line)
    if line.startswith("IO error encountered -- skipping file deletion"):
        return Error("deletion_skipped", line)
    if line.startswith("cannot delete non-empty directory: "):
        return Error("delete_failed", line, path=line.split(": ", 1)[1])
    if line.startswith("@ERROR: "):
        return Error(_daemon_error(line), line[8:])
    if m := _RSYNC_MSG.match(line):
        msg = m.group("msg")
        errno_m = _ERRNO.search(msg)
        errno = int(errno_m.group("errno")) if errno_m else None
        path_m = _QUOTED.search(msg)
        kind = _classify_message(msg, errno)
        if kind == "permission_denied" and m.group("role") in _LOCAL_ROLES:
            kind = "local_permission"  # we cannot write here; the upstream is not at fault
        return Error(kind, msg, path=path_m.group("path") if path_m else None, errno=errno,
                     role=m.group("role"))
    if line.startswith(("ERROR: ", "WARNING: ")):
        kind = ("verification" if "failed verification" in line
                else "password_file" if "password file" in line else "other")
        path_m = _QUOTED.search(line)
        return Error(kind, line, path=path_m.group("path") if path_m else None)
    if m := _STAT.match(line):
        name = _STAT_NAMES.get(m.group("name"))
        if name:
            return Stat(name, _num(m.group("value")))
    if _KNOWN_INFO.match(line):
        return Info(line)
    return Unparsed(line)
