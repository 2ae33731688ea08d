"""Sending metrics without ever slowing a sync (I/O).

Each endpoint has a bounded queue and a sender thread. ``send`` never blocks: when the queue is
full the oldest lines are dropped (counted, and logged once per outage). The thread connects,
writes, and on any socket error drops the connection and retries after a pause.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import threading
import time
from urllib.parse import urlsplit

from ..logs import event

QUEUE_LINES = 10_000
RETRY_SECONDS = 5.0


class Emitter:
    """One endpoint: ``tcp://host:port``, ``udp://host:port`` or ``unix:///path``."""

    def __init__(self, name: str, url: str, *, expect_reply: bool = False,
                 queue_lines: int = QUEUE_LINES, timeout: float = 5.0) -> None:
        self.name, self.url = name, url
        parts = urlsplit(url)
        self.scheme, self.address = parts.scheme, parts.path
        if self.scheme in ("tcp", "udp"):
            self.address = (parts.hostname or "127.0.0.1", parts.port or 0)  # type: ignore[assignment]
        self.expect_reply = expect_reply  # collectd's unixsock answers every command
        self.timeout = timeout
        self.queue: collections.deque[str] = collections.deque(maxlen=queue_lines)
        self.dropped = 0
        self.sent = 0
        self._wake = threading.Condition()
        self._sock: socket.socket | None = None
        self._stopping = False
        self._complaining = False
        self._thread = threading.Thread(target=self._run, name=f"metrics-{name}", daemon=True)
        self._thread.start()

    def send(self, lines: list[str]) -> None:
        with self._wake:
            overflow = len(self.queue) + len(lines) - (self.queue.maxlen or 0)
            if overflow > 0:
                self.dropped += overflow
            self.queue.extend(lines)
            self._wake.notify()

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait (bounded) until the queue is empty; True if it emptied."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._wake:
                if not self.queue:
                    return True
            time.sleep(0.02)
        return False

    def close(self, timeout: float = 2.0) -> None:
        self.flush(timeout)
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout)
        self._disconnect()

    def _connect(self) -> socket.socket:
        if self.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        elif self.scheme == "udp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.address)
        except OSError:
            sock.close()
            raise
        return sock

    def _disconnect(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self.queue and not self._stopping:
                    self._wake.wait()
                if self._stopping and not self.queue:
                    return
                line = self.queue[0]
            try:
                if self._sock is None:
                    self._sock = self._connect()
                self._sock.sendall(line.encode())
                if self.expect_reply:
                    reply = self._sock.recv(4096).decode(errors="replace")
                    if not reply.startswith("0 "):
                        event("metrics.rejected", endpoint=self.name, reply=reply.strip())
                with self._wake:
                    if self.queue and self.queue[0] is line:
                        self.queue.popleft()
                self.sent += 1
                if self._complaining:
                    self._complaining = False
                    event("metrics.recovered", endpoint=self.name, dropped=self.dropped)
            except OSError as exc:
                self._disconnect()
                if not self._complaining:
                    self._complaining = True
                    event("metrics.unreachable", endpoint=self.name, url=self.url,
                          error=str(exc))
                with self._wake:
                    if self._stopping:
                        return
                    self._wake.wait(RETRY_SECONDS)
