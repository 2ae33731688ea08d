"""One read of the store shared by every client until the store changes.

Twenty browsers and a Prometheus scraper asking for every mirror's state at once each cost a
read of the store and a rendering; one read, and one rendering per page, serve them all. A
request reuses the current snapshot when nothing was committed to the store since it was read
(the store's change token, one cheap query) and it is younger than ``max_age`` (the ages and
"next run" times it shows move with the clock, and a lock's release is no commit).
Everything derived from a snapshot (a page's HTML, a JSON document) is built once per
snapshot, by the first request that wants it, while the others wait for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")
D = TypeVar("D")


@dataclass
class Snapshot(Generic[T]):
    value: T
    #: The change token read just before ``value`` was, and when (``time.monotonic()``).
    token: Hashable
    token_at: float
    derived: dict[Hashable, asyncio.Future[Any]] = field(default_factory=dict)

    async def memo(self, key: Hashable, build: Callable[[], Awaitable[D]]) -> D:
        """``build()``'s result for this snapshot, built once however many ask at once (a
        failure is not kept: the next request tries again)."""
        future = self.derived.get(key)
        if future is None:
            future = asyncio.ensure_future(build())
            self.derived[key] = future
            future.add_done_callback(lambda done: self._forget_failure(key, done))
        result: D = await asyncio.shield(future)
        return result

    def _forget_failure(self, key: Hashable, done: asyncio.Future[Any]) -> None:
        if done.cancelled() or done.exception() is not None:
            self.derived.pop(key, None)


class SharedSnapshot(Generic[T]):
    """``read()`` (blocking; run in a worker thread) shared by every request while
    ``token()`` (blocking, cheap) says nothing changed and it is younger than ``max_age``."""

    def __init__(self, read: Callable[[], T], token: Callable[[], Hashable],
                 max_age: float) -> None:
        self.read, self.token, self.max_age = read, token, max_age
        self.current: Snapshot[T] | None = None
        self.lock = asyncio.Lock()

    def _take(self) -> Snapshot[T]:
        token_at = time.monotonic()
        token = self.token()
        return Snapshot(self.read(), token, token_at)

    def _fresh(self, snapshot: Snapshot[T] | None, asked_at: float, token: Hashable,
               ) -> bool:
        """Does ``snapshot`` show everything committed before the request asked (at
        ``asked_at``, when the token was ``token``)?"""
        if snapshot is None or time.monotonic() - snapshot.token_at >= self.max_age:
            return False
        return asked_at <= snapshot.token_at or token == snapshot.token

    async def get(self) -> Snapshot[T]:
        asked_at = time.monotonic()
        token = await run_in_threadpool(self.token)
        if self._fresh(self.current, asked_at, token):
            assert self.current is not None
            return self.current
        async with self.lock:  # one read at a time; those who waited take its result
            if not self._fresh(self.current, asked_at, token):
                self.current = await run_in_threadpool(self._take)
            assert self.current is not None
            return self.current
