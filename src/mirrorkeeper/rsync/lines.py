"""Split a byte stream into lines at ``\\n`` *and* ``\\r`` (progress lines), with bounded memory."""

from __future__ import annotations

MAX_LINE = 64 * 1024


class LineSplitter:
    """Feed it chunks as they arrive; it returns the complete lines and keeps only the tail.

    A line longer than ``MAX_LINE`` bytes is cut into pieces, so a peer that never sends a newline
    cannot make us hold an unbounded buffer.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buf = b""
        self._max = max_line

    def feed(self, chunk: bytes) -> list[str]:
        buf = self._buf + chunk if self._buf else chunk
        cut = max(buf.rfind(b"\n"), buf.rfind(b"\r"))
        out: list[str] = []
        if cut >= 0:
            # One decode for every complete line: \n and \r are never part of a UTF-8
            # sequence, so this is what decoding each line would give.
            text = _decode(buf[:cut])
            if "\r" in text:
                text = text.replace("\r", "\n")
            out = [line for line in text.split("\n") if line]
            buf = buf[cut + 1:]
        while len(buf) > self._max:
            out.append(_decode(buf[: self._max]))
            buf = buf[self._max :]
        self._buf = bytes(buf)
        return out

    def close(self) -> list[str]:
        """Whatever is left when the stream ends (a last line without a newline)."""
        rest = [_decode(self._buf)] if self._buf else []
        self._buf = b""
        return rest


def _decode(raw: bytes) -> str:
    # rsync prints file names as bytes; undecodable ones stay visible as \xNN.
    return raw.decode("utf-8", errors="backslashreplace")
