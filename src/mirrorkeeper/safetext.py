"""Text from outside made safe to pass on (pure): one place that neutralises control
characters.

An upstream is untrusted, and what it says reaches us verbatim: a daemon's ``@ERROR`` and
message lines, file names in rsync's errors. Those words go on into run summaries on a
terminal, alert summaries, and from there into syslog lines, e-mail headers and Nagios' command
file — where a newline forges a second syslog line or a header, a carriage return a second
Nagios command, and an escape sequence drives the admin's terminal. :func:`printable` shows each
such character as a visible escape (``\\n``, ``\\x1b``) instead, so nothing is lost and nothing
is obeyed.
"""

from __future__ import annotations

import unicodedata
from typing import Any

#: Bidirectional overrides and isolates: invisible, and they reorder what a reader sees.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _unsafe(ch: str) -> bool:
    """C0 and C1 controls, DEL, the Unicode line and paragraph separators, bidi controls."""
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI


def _escape(ch: str) -> str:
    code = ord(ch)
    return _NAMED.get(ch) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable(text: str) -> str:
    """``text`` with every control character shown as an escape: one line, inert."""
    if text.isprintable():
        return text
    return "".join(_escape(ch) if _unsafe(ch) else ch for ch in text)


def printable_tree(value: Any) -> Any:
    """:func:`printable` applied to every string in a JSON-like value, keys included."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_tree(k): printable_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable_tree(v) for v in value]
    return value
