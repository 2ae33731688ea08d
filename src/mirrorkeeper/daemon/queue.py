"""The queue port: sync jobs waiting for a worker, behind one small class (Huey underneath).

The queue is a SQLite file in the state directory (Huey's ``SqliteHuey``), so a job enqueued by
another process — ``mirrorkeeper trigger`` run by sshd as a forced command — reaches the
daemon's workers, and jobs survive a daemon restart. The daemon's thread workers are the
parallel limit. Only this module knows Huey; replacing it means rewriting this file.

In a fleet (``[fleet] queue``) each host has its own queue in the shared Redis (Huey's
``PriorityRedisHuey``, named after the host): a host's daemon consumes only its own, and
``trigger`` on any host puts the job on the queue of the mirror's host.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from huey import PriorityRedisHuey, SqliteHuey
from huey.consumer import Consumer

from ..access import Place, os_problem, require_writable, sqlite_problem
from ..config.spec import Config
from ..errors import StateUnavailable

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

    def __init__(self, state_dir: str | Path, host: str, redis_url: str | None = None) -> None:
        state = Path(state_dir)
        self.path = state / QUEUE_FILE
        self.redis_url = redis_url
        self.handler: Handler | None = None
        if redis_url is not None:
            self.huey: Any = PriorityRedisHuey(name=f"mirrorkeeper.{host}", url=redis_url,
                                               results=False, utc=True, clean_name=False)
            self._sync = self.huey.task(name="sync")(self._execute)
            return
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
        self._sync = self.huey.task(name="sync")(self._execute)

    def _problem(self, exc: Exception) -> Exception:
        if self.redis_url is not None:
            return StateUnavailable("fleet queue", self.redis_url, str(exc),
                                    "fix: start Redis or correct [fleet] queue")
        assert isinstance(exc, sqlite3.Error)
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
        except (sqlite3.Error, *_redis_errors()) as exc:  # type: ignore[misc]
            raise self._problem(exc) from exc

    def pending(self) -> list[tuple[str, str]]:
        """(mirror, reason) of every job waiting for a worker (not those scheduled later)."""
        try:
            return [(task.args[0], task.args[1]) for task in self.huey.pending()]
        except _redis_errors() as exc:
            raise self._problem(exc) from exc

    def consumer(self, workers: int) -> Consumer:
        """Thread workers that poll the queue at least once a second; no periodic tasks
        (the daemon's own tick plans the schedule)."""
        return self.huey.create_consumer(workers=workers, worker_type="thread", periodic=False,
                                         initial_delay=0.1, backoff=1.15, max_delay=1.0,
                                         check_worker_health=True)

    def close(self) -> None:
        if self.redis_url is None:
            self.huey.storage.close()
        else:
            self.huey.storage.conn.close()


def _redis_errors() -> tuple[type[Exception], ...]:
    """Redis' own errors, when its client is installed (the ``fleet`` extra)."""
    try:
        from redis.exceptions import RedisError
    except ImportError:
        return ()
    return (RedisError,)


def open_queue(config: Config, host: str | None = None) -> SyncQueue:
    """The queue of ``host`` (default: this one): the fleet's Redis, else the state dir's."""
    fleet = config.fleet
    if fleet is None:
        return SyncQueue(config.settings.state_dir, config.settings.hostname)
    return SyncQueue(config.settings.state_dir, host or fleet.host, fleet.queue)
