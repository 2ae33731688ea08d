"""When did the upstream last publish, read from its update-signal file (pure).

Projects signal a publish in one of a few shapes (``signal_kind`` of a profile):

- ``mtime``: the file's modification time is the publish time (Fedora
  ``fullfiletimelist-*``, Rocky);
- ``epoch``: it holds Unix seconds (Arch/MSYS2 ``lastupdate``, Alpine ``last-updated``, ``TIME``);
- ``date``: it holds a date, the first line that parses (Gentoo ``timestamp.chk``, CTAN
  ``timestamp``);
- ``trace``: a Debian trace, its ``Date:`` field, else its first line (``date -u``);
- ``keyvalue``: ``date=…`` among ``key=value`` lines (Manjaro ``<branch>/state``).

Where the content carries the time it wins over the mtime, which a copy can change; content
that does not parse falls back to the mtime, and the caller says so.
"""

from __future__ import annotations

import calendar
import email.utils
import re
import time
from datetime import UTC, datetime

SIGNAL_KINDS = ("mtime", "epoch", "date", "trace", "keyvalue")
#: A signal file is small; read no more than this of it.
MAX_SIGNAL_BYTES = 64 * 1024

_CTAN = re.compile(r"^(\d{4})-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_DATE_U = ("%a %b %d %H:%M:%S %Z %Y", "%a %d %b %Y %H:%M:%S %Z", "%a %b %d %H:%M:%S %Y")


def parse_date(text: str) -> float | None:
    """Unix seconds from the date forms projects write; None when it is none of them."""
    text = text.strip()
    if not text:
        return None
    if re.fullmatch(r"\d{9,11}(\.\d+)?", text):
        return float(text)
    if m := _CTAN.match(text):
        year, month, day, hour, minute = map(int, m.groups())
        return float(calendar.timegm((year, month, day, hour, minute, 0)))
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        parsed = None
    if parsed is not None:
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    squeezed = " ".join(text.split())  # `date -u` pads a one-digit day with a space
    for form in _DATE_U:
        try:
            return float(calendar.timegm(time.strptime(squeezed, form)))
        except ValueError:
            continue
    try:
        iso = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (iso if iso.tzinfo else iso.replace(tzinfo=UTC)).timestamp()


def signal_time(kind: str, content: bytes | None, mtime: float | None) -> float | None:
    """The publish time a signal file says; the mtime for ``mtime`` or unreadable content."""
    if kind == "mtime" or content is None:
        return mtime
    text = content[:MAX_SIGNAL_BYTES].decode("utf-8", "replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found: float | None = None
    if kind == "epoch":
        found = parse_date(lines[0]) if lines and lines[0].isdigit() else None
    elif kind == "date":
        found = next((t for t in map(parse_date, lines) if t is not None), None)
    elif kind == "trace":
        dated = [line.split(":", 1)[1] for line in lines if line.startswith("Date:")]
        found = parse_date(dated[0]) if dated else (parse_date(lines[0]) if lines else None)
    elif kind == "keyvalue":
        values = [line.split("=", 1)[1] for line in lines if line.startswith("date=")]
        found = parse_date(values[0]) if values else None
    return found if found is not None else mtime


def content_parses(kind: str, content: bytes) -> bool:
    """Whether the content carries a time of this kind (the doctor's and the tests' check)."""
    return kind == "mtime" or signal_time(kind, content, None) is not None
