"""One read of the store shared by every client until the store changes.

Twenty browsers and a Prometheus scraper asking for every mirror's state at once each cost a
read of the store and a rendering; one read, and one rendering per page, serve them all.

- A request after a commit (the store's change token differs) waits for a new read: what
  anyone wrote before asking shows in the answer.
- Otherwise it gets the current reading at once. Once that is ``max_age`` old (the ages and
  next-run times in it move with the clock; a lock released by a dead process is no commit),
  a new one is read in the background, and every page and document derived from the old one
  is derived again, before it replaces the old one: clients never wait for the clock. Only a
  reading that nobody asked for in ``3 * max_age`` is not served: the request waits for a
  new one (no hour-old ages after a quiet hour).
- Whatever is derived from a reading (a page's HTML, a JSON document) is made once, in a
  worker thread, by the first request that wants it; the others wait for that one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

from starlette.concurrency import run_in_threadpool

#: A reading this many ``max_age`` old is not served any more, even while a new one is read.
STALE_AGES = 3
T = TypeVar("T")
D = TypeVar("D")


@dataclass
class Reading(Generic[T]):
    value: T
    #: The change token read just before ``value`` was, and when (by the shared clock).
    token: Hashable
    token_at: float
    derived: dict[Hashable, asyncio.Future[Any]] = field(default_factory=dict)
    #: What requests asked of this reading, and how it is made: the next reading makes
    #: these in advance (and only these: what nobody asks for any more stops being made).
    asked: dict[Hashable, Callable[[T], Any]] = field(default_factory=dict)

    async def memo(self, key: Hashable, make: Callable[[T], D]) -> D:
        """``make(value)`` (blocking: in a worker thread), once for this reading however
        many ask at once; a failure is not kept (the next request tries again)."""
        self.asked.setdefault(key, make)
        result: D = await asyncio.shield(self._start(key, make))
        return result

    def _start(self, key: Hashable, make: Callable[[T], Any]) -> asyncio.Future[Any]:
        future = self.derived.get(key)
        if future is None:
            future = asyncio.ensure_future(run_in_threadpool(make, self.value))
            self.derived[key] = future
            future.add_done_callback(lambda done: self._forget_failure(key, done))
        return future

    def _forget_failure(self, key: Hashable, done: asyncio.Future[Any]) -> None:
        if done.cancelled() or done.exception() is not None:
            self.derived.pop(key, None)

    async def derive_like(self, previous: Reading[T]) -> None:
        """Make here what requests asked of ``previous`` (failures stay unmade)."""
        await asyncio.gather(*(self._start(key, make) for key, make in previous.asked.items()),
                             return_exceptions=True)


class SharedReading(Generic[T]):
    """``read()`` (blocking; run in a worker thread), shared by every request while
    ``token()`` returns the same value, and read again in the background every ``max_age``
    seconds. ``token()`` is called on the event loop: it must cost microseconds and never
    wait (the store's is one pragma on a connection of its own, with no busy timeout)."""

    def __init__(self, read: Callable[[], T], token: Callable[[], Hashable],
                 max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.read, self.token, self.max_age, self.clock = read, token, max_age, clock
        self.current: Reading[T] | None = None
        self.lock = asyncio.Lock()
        self.refreshing: asyncio.Task[None] | None = None

    def _take(self) -> Reading[T]:
        token_at = self.clock()
        token = self.token()
        return Reading(self.read(), token, token_at)

    @staticmethod
    def _shows(reading: Reading[T] | None, asked_at: float, token: Hashable) -> bool:
        """Does ``reading`` show everything committed before a request asked (at
        ``asked_at``, when the token was ``token``)?"""
        return reading is not None and (token == reading.token
                                         or asked_at <= reading.token_at)

    async def get(self) -> Reading[T]:
        asked_at = self.clock()
        token = self.token()
        current = self.current
        if (current is not None and self._shows(current, asked_at, token)
                and asked_at - current.token_at < STALE_AGES * self.max_age):
            if asked_at - current.token_at >= self.max_age and (
                    self.refreshing is None or self.refreshing.done()):
                self.refreshing = asyncio.ensure_future(self._refresh(current))
                self.refreshing.add_done_callback(partial(self._refreshed, current))
            return current
        async with self.lock:  # one read at a time; those who waited take its result
            current = self.current
            if current is None or not self._shows(current, asked_at, token) or (
                    asked_at - current.token_at >= STALE_AGES * self.max_age):
                self.current = await run_in_threadpool(self._take)
            assert self.current is not None
            return self.current

    def _refreshed(self, old: Reading[T], task: asyncio.Task[None]) -> None:
        """A read that failed (the store unreadable now) drops the old reading: the next
        request reads again and meets the error, rather than old figures."""
        if not task.cancelled() and task.exception() is not None and self.current is old:
            self.current = None

    async def _refresh(self, old: Reading[T]) -> None:
        new = await run_in_threadpool(self._take)
        await new.derive_like(old)
        if self.current is old:  # not replaced by a read after a commit meanwhile
            self.current = new
