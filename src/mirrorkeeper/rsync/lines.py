"""Split a byte stream into lines at ``\\n`` *and* ``\\r`` (progress lines), with bounded memory."""

from __future__ import annotations

MAX_LINE = 64 * 1024


class LineSplitter:
    """Feed it chunks as they arrive; it returns the complete lines and keeps only the tail.

    A line longer than ``MAX_LINE`` bytes is cut into pieces, so a peer that never sends a newline
    cannot make us hold an unbounded buffer.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buf = bytearray()
        self._max = max_line

    def feed(self, chunk: bytes) -> list[str]:
        self._buf.extend(chunk)
        parts = bytes(self._buf).replace(b"\r", b"\n").split(b"\n")
        tail = parts.pop()
        out = [_decode(part) for part in parts if part]
        while len(tail) > self._max:
            out.append(_decode(tail[: self._max]))
            tail = tail[self._max :]
        self._buf = bytearray(tail)
        return out

    def close(self) -> list[str]:
        """Whatever is left when the stream ends (a last line without a newline)."""
        rest = [_decode(self._buf)] if self._buf else []
        self._buf.clear()
        return rest


def _decode(raw: bytes | bytearray) -> str:
    # rsync prints file names as bytes; undecodable ones stay visible as \xNN.
    return bytes(raw).decode("utf-8", errors="backslashreplace")
