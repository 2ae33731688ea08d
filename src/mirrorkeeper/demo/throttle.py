"""A TCP proxy on 127.0.0.1 that caps each connection's bandwidth and counts connections.

It stands for an upstream that limits bandwidth per connection (most public mirrors do), in
front of a real rsync daemon: the tests read ``peak`` to prove that Mirrorkeeper never held
more connections to the host than its budget, and the benchmark uses it to show what parallel
streams gain.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

CHUNK = 16384


class ThrottledProxy:
    """``with ThrottledProxy(daemon_port, rate_bps=2_000_000) as proxy:`` — connect to
    ``proxy.port``; ``proxy.peak`` is the most connections clients held open at once (from
    accept until the client closes its side)."""

    def __init__(self, target_port: int, rate_bps: float, target_host: str = "127.0.0.1",
                 ) -> None:
        self.target = (target_host, target_port)
        self.rate_bps = rate_bps
        self.port = 0
        self.active = 0
        self.peak = 0
        self.accepted = 0
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []

    def url(self, module: str) -> str:
        return f"rsync://127.0.0.1:{self.port}/{module}/"

    def start(self) -> ThrottledProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self.port = int(listener.getsockname()[1])
        self._listener = listener
        self._spawn(self._accept)
        return self

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed by stop()
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.accepted += 1
                self.active += 1
                self.peak = max(self.peak, self.active)
                self._sockets |= {client, server}
            done = threading.Barrier(2, action=functools.partial(self._closed, client, server))
            self._spawn(self._pump, client, server, None, done, self._released)
            self._spawn(self._pump, server, client, self.rate_bps, done, None)

    def _released(self) -> None:
        """The client closed its side: the connection is no longer one it holds (the daemon
        may take a few more milliseconds to see it go)."""
        with self._lock:
            self.active -= 1

    def _closed(self, client: socket.socket, server: socket.socket) -> None:
        with self._lock:
            self._sockets -= {client, server}
        for sock in (client, server):
            sock.close()

    def _pump(self, source: socket.socket, sink: socket.socket, rate: float | None,
              done: threading.Barrier, on_eof: Callable[[], None] | None) -> None:
        started, sent = time.monotonic(), 0
        try:
            while data := source.recv(CHUNK):
                sink.sendall(data)
                if rate:
                    sent += len(data)
                    ahead = started + sent / rate - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError:
            pass
        if on_eof is not None:
            on_eof()
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
        with contextlib.suppress(threading.BrokenBarrierError):
            done.wait()

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            open_sockets = list(self._sockets)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> ThrottledProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
