"""The queue port: sync jobs waiting for a worker, behind one small class (Huey underneath).

The queue is a SQLite file in the state directory (Huey's ``SqliteHuey``), so a job enqueued by
another process — ``mirrorkeeper trigger`` run by sshd as a forced command — reaches the
daemon's workers, and jobs survive a daemon restart. The daemon's thread workers are the
parallel limit. Only this module knows Huey; replacing it means rewriting this file.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from huey import SqliteHuey
from huey.consumer import Consumer

from ..access import Place, os_problem, require_writable, sqlite_problem

#: Push triggers and changed update signals go ahead of scheduled runs.
PRIORITY_URGENT = 10
PRIORITY_SCHEDULED = 0
QUEUE_FILE = "queue.db"

Handler = Callable[[str, str, float], None]  # mirror, reason, when it was queued


def queue_places(state_dir: str | Path) -> list[Place]:
    """The queue's SQLite files, for a writer's check before it starts."""
    state = Path(state_dir)
    return [Place("queue", state / f"{QUEUE_FILE}{suffix}", state)
            for suffix in ("", "-wal", "-shm")]


class SyncQueue:
    """Raises :class:`~mirrorkeeper.errors.StateUnavailable` (exit 73) for a queue file this
    user may not write or a full disk, naming the file, instead of SQLite's bare error."""

    def __init__(self, state_dir: str | Path, host: str) -> None:
        state = Path(state_dir)
        self.path = state / QUEUE_FILE
        try:
            state.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_problem(exc, Place("state directory", state, state)) from exc
        require_writable(queue_places(state))
        try:
            self.huey = SqliteHuey(name=f"mirrorkeeper.{host}", filename=str(self.path),
                                   results=False, utc=True, timeout=30)
        except sqlite3.Error as exc:
            raise self._problem(exc) from exc
        self.handler: Handler | None = None
        self._sync = self.huey.task(name="sync")(self._execute)

    def _problem(self, exc: sqlite3.Error) -> Exception:
        return sqlite_problem(exc, self.path, self.path.parent, what="queue") or exc

    def _execute(self, mirror: str, reason: str, queued_at: float = 0.0) -> None:
        """A job; ``queued_at`` (epoch seconds; 0 for jobs queued by an older version) lets
        the handler drop a job that a run started since already covers."""
        if self.handler is None:
            logging.getLogger("mirrorkeeper").error("a sync job arrived with no handler")
            return
        self.handler(mirror, reason, queued_at)

    def enqueue(self, mirror: str, reason: str, *, urgent: bool = False,
                delay: float | None = None) -> None:
        try:
            self._sync(mirror, reason, time.time(),
                       priority=PRIORITY_URGENT if urgent else PRIORITY_SCHEDULED, delay=delay)
        except sqlite3.Error as exc:
            raise self._problem(exc) from exc

    def pending(self) -> list[tuple[str, str]]:
        """(mirror, reason) of every job waiting for a worker (not those scheduled later)."""
        return [(task.args[0], task.args[1]) for task in self.huey.pending()]

    def consumer(self, workers: int) -> Consumer:
        """Thread workers that poll the queue at least once a second; no periodic tasks
        (the daemon's own tick plans the schedule)."""
        return self.huey.create_consumer(workers=workers, worker_type="thread", periodic=False,
                                         initial_delay=0.1, backoff=1.15, max_delay=1.0,
                                         check_worker_health=True)

    def close(self) -> None:
        self.huey.storage.close()
