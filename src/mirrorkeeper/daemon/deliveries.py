"""The daemon's alert deliveries, apart from its syncs (I/O).

Sync workers and the tick only *queue* notifications and call :meth:`Deliverer.kick`. A small
pool sends them, one task per plugin at a time: a plugin that hangs holds one thread for its
timeout and then rests (per-plugin backoff, in the store), while the other plugins' mail goes
out and every sync starts on time. On shutdown the stop event kills a running plugin's process
group at once, so SIGTERM never waits for a plugin.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..alerts.dispatch import deliver_pending
from ..config.spec import Config
from ..logs import event
from ..store import Store
from ..store.store import STORE_DOWN

log = logging.getLogger("mirrorkeeper")
#: Plugins sending at the same time.
DELIVERY_WORKERS = 4


class Deliverer:
    def __init__(self, config: Callable[[], Config], store: Store,
                 stop: threading.Event) -> None:
        self._config, self._store, self._stop = config, store, stop
        self._pool = ThreadPoolExecutor(DELIVERY_WORKERS, thread_name_prefix="deliver")
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._again: set[str] = set()
        self._closed = False

    def kick(self) -> None:
        """Send what is queued, for every plugin not already sending (which looks again when it
        is done). Returns at once; safe from any thread."""
        with self._lock:
            if self._closed or self._stop.is_set():
                return
            for plugin in self._config().alerts.plugins:
                if plugin.name in self._busy:
                    self._again.add(plugin.name)
                    continue
                self._busy.add(plugin.name)
                self._pool.submit(self._send, plugin.name)

    def _send(self, name: str) -> None:
        while True:
            try:
                deliver_pending(self._config(), self._store, stop=self._stop, only=name)
            except STORE_DOWN as exc:  # the fleet store is away: the daemon says so once
                event("alert.delivery_waits", level=logging.WARNING, plugin=name,
                      why="the fleet store is unreachable", error=type(exc).__name__)
            except Exception as exc:
                log.exception("alert delivery failed")
                event("alert.failure", level=logging.ERROR, plugin=name, error=repr(exc))
            with self._lock:
                if name in self._again and not self._stop.is_set():
                    self._again.discard(name)
                    continue
                self._busy.discard(name)
                return

    def close(self) -> None:
        """Wait for the senders; with the stop event set, a running plugin is killed within a
        fraction of a second."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)
