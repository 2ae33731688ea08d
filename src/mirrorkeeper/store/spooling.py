"""A fleet host's store as a run sees it: the shared PostgreSQL store, except that a run
never fails because the store went away. Its writes fall back to what the host has alone:

- the fleet-wide lock: the host's own ``flock`` (a mirror is synced by its host only);
- the start: a provisional negative run id, the store gives the real one on replay;
- live progress and the pending deletions' times: skipped (a run that cannot read its pending
  deletions deletes nothing, see :func:`mirrorkeeper.sync.run._apply_deletions`);
- the end: a file in the local spool (:mod:`.spool`), which the daemon replays in order.

While spooled runs wait, a run that ends with the store up is spooled too, behind them, so
that the store receives (and judges) every mirror's runs in the order they ran.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import StateUnavailable
from ..logs import event
from ..record import RunRecord
from ..record.progress import LiveProgress
from .spool import Spool, SpooledRun
from .store import STORE_DOWN, Store

#: Runs remembered (their uuid, whether they started offline): the newest this many.
KEEP_RUNS = 1000
#: After the store failed a run's call, its next calls go straight to the fallback this long:
#: behind a cut link each try costs a connect timeout.
RETRY_SECONDS = 10.0


class JustFailed(Exception):
    """The store failed a call less than ``RETRY_SECONDS`` ago: not tried again yet."""

    def __str__(self) -> str:
        return f"the store failed a call less than {RETRY_SECONDS:.0f}s ago"


DOWN = (*STORE_DOWN, JustFailed)


@dataclass(frozen=True)
class _Run:
    uuid: str
    #: Started while the store was unreachable: no row yet.
    offline: bool


class SpoolingStore(Store):
    def __init__(self, store: Store, spool: Spool) -> None:
        super().__init__(store.engine, store.db, store.readonly, store.host)
        self.spool = spool
        self._runs: dict[int, _Run] = {}
        self._deferred: set[int] = set()
        #: What was spooled of each deferred run (to add what was sent directly).
        self._spooled: dict[int, SpooledRun] = {}
        self._history: dict[str, list[RunRecord]] = {}
        self._mutex = threading.Lock()
        self._live_failed: set[int] = set()
        self._retry_at = 0.0

    def _reachable(self) -> bool:
        """False for a while after a call found the store unreachable."""
        return time.monotonic() >= self._retry_at

    def _unreachable(self, exc: Exception) -> str:
        self._retry_at = time.monotonic() + RETRY_SECONDS
        return _short(exc)

    # -- the lock and the start -----------------------------------------------------------
    @contextmanager
    def fleet_lock(self, mirror: str) -> Iterator[bool]:
        """The store's advisory lock, or, when the store cannot be reached, the host's flock
        alone (held by the caller): no other host syncs this host's mirrors."""
        try:
            if not self._reachable():
                raise JustFailed()
            with self.engine.connect():
                pass
        except DOWN as exc:
            event("store.unreachable", level=logging.WARNING, mirror=mirror,
                  what="fleet lock", error=self._unreachable(exc))
            yield True
            return
        with super().fleet_lock(mirror) as held:
            yield held

    def holder(self, mirror: str) -> str:
        try:
            return super().holder(mirror)
        except DOWN as exc:
            self._unreachable(exc)
            return ""

    def mark_abandoned(self, mirror: str, now: float | None = None) -> int:
        if not self._reachable():
            return 0
        try:
            return super().mark_abandoned(mirror, now)
        except DOWN as exc:
            self._unreachable(exc)
            return 0  # the host's next start, or the next run with the store up, closes them

    def history(self, mirror: str, limit: int = 20) -> list[RunRecord]:
        """The store's history; while it is down, the last one read (upstream order, the
        max-delete bound's file count) with the runs spooled since left out."""
        try:
            if not self._reachable():
                raise JustFailed()
            found = super().history(mirror, limit)
        except DOWN as exc:
            self._unreachable(exc)
            with self._mutex:
                return list(self._history.get(mirror, []))[:limit]
        with self._mutex:
            self._history[mirror] = found
        return found

    def start_run(self, mirror: str, upstream: str, started_at: float,
                  uuid: str | None = None) -> int:
        key = uuid or _new_uuid()
        try:
            if not self._reachable():
                raise JustFailed()
            run_id = super().start_run(mirror, upstream, started_at, uuid=key)
            offline = False
        except DOWN as exc:
            run_id, offline = -int(started_at * 1000), True
            with self._mutex:
                while run_id in self._runs:
                    run_id -= 1
            event("store.unreachable", level=logging.WARNING, mirror=mirror,
                  what="run start", run_id=run_id, error=self._unreachable(exc),
                  why="the run goes on; its record is spooled")
        with self._mutex:
            self._runs[run_id] = _Run(key, offline)
            while len(self._runs) > KEEP_RUNS:
                del self._runs[next(iter(self._runs))]
        return run_id

    def set_log_path(self, run_id: int, log_path: str) -> None:
        if self._offline(run_id):
            return
        if not self._reachable():
            return
        try:
            super().set_log_path(run_id, log_path)
        except DOWN as exc:  # the record carries it to the store at the end
            self._unreachable(exc)

    # -- during the run -------------------------------------------------------------------
    def update_live(self, mirror: str, run_id: int, progress: LiveProgress,
                    now: float | None = None) -> None:
        if self._offline(run_id) or not self._reachable():
            return
        try:
            super().update_live(mirror, run_id, progress, now)
        except DOWN as exc:
            self._unreachable(exc)
            with self._mutex:  # once per run: progress is for watching
                first = run_id not in self._live_failed
                self._live_failed.add(run_id)
            if first:
                event("live.write_failed", level=logging.WARNING, error=_short(exc))

    def pending_deletions(self, mirror: str) -> dict[str, float]:
        try:
            if not self._reachable():
                raise JustFailed()
            return super().pending_deletions(mirror)
        except DOWN as exc:
            raise StateUnavailable("fleet store", self._where(), self._unreachable(exc),
                                   "deletions wait for a run with the store up") from exc

    def set_pending_deletions(self, mirror: str, keep: dict[str, float]) -> None:
        try:
            super().set_pending_deletions(mirror, keep)
        except DOWN as exc:  # their grace starts again at the next run: later, not lost
            event("store.unreachable", level=logging.WARNING, mirror=mirror,
                  what="pending deletions", error=self._unreachable(exc))

    # -- the end ----------------------------------------------------------------------------
    def finish_run(self, record: RunRecord) -> None:
        """Into the store, or into the spool when the store is down, when the run started
        offline, or when spooled runs still wait (they go first)."""
        with self._mutex:
            run = self._runs.get(record.run_id)
        if run is None:  # not started here (a rollback's record): the store's as ever
            super().finish_run(record)
            return
        if not run.offline and record.run_id not in self._deferred and \
                not self.spool.pending() and self._reachable():
            try:
                super().finish_run(record)
                return
            except DOWN as exc:
                event("store.unreachable", level=logging.WARNING, mirror=record.mirror,
                      what="run end", run_id=record.run_id, error=self._unreachable(exc),
                      why="the record is spooled")
        spooled = SpooledRun(run.uuid, self.host, os.getpid(), record)
        try:
            path = self.spool.write(spooled)
        except OSError as exc:
            raise StateUnavailable("spool", str(self.spool.path), exc.strerror or str(exc),
                                   "fix: free space on the state disk") from exc
        with self._mutex:
            self._deferred.add(record.run_id)
            self._spooled[record.run_id] = spooled
            while len(self._spooled) > KEEP_RUNS:
                del self._spooled[next(iter(self._spooled))]
        event("run.spooled", mirror=record.mirror, run_id=record.run_id,
              outcome=record.outcome, path=str(path))

    def replay_run(self, record: RunRecord, uuid: str, host: str,
                   pid: int | None) -> int | None:
        stored = super().replay_run(record, uuid, host, pid)
        self._retry_at = 0.0  # it answers: the runs' calls need not wait any longer
        return stored

    def sent_directly(self, run_id: int, codes: list[str]) -> None:
        """Note in the run's spool file the findings already sent through the plugins, so
        that the replay does not send them again (unless it was replayed meanwhile)."""
        with self._mutex:
            spooled = self._spooled.get(run_id)
        if spooled is None or not (self.spool.path / self.spool.name_of(spooled)).exists():
            return
        spooled = dataclasses.replace(spooled, sent=tuple(sorted({*spooled.sent, *codes})))
        try:
            self.spool.write(spooled)
        except OSError as exc:  # they may be sent twice: better than not at all
            event("spool.write_failed", level=logging.ERROR, error=str(exc))
            return
        with self._mutex:
            self._spooled[run_id] = spooled

    def deferred(self, run_id: int) -> bool:
        with self._mutex:
            return run_id in self._deferred

    def _offline(self, run_id: int) -> bool:
        with self._mutex:
            run = self._runs.get(run_id)
        return run is not None and run.offline

    def _where(self) -> str:
        return self.engine.url.render_as_string()


def _new_uuid() -> str:
    return uuid.uuid4().hex


def _short(exc: Exception) -> str:
    """The driver's first line, not SQLAlchemy's page of context."""
    orig = getattr(exc, "orig", None)
    text = (str(orig) if orig is not None else str(exc)).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


def spooling(store: Store, state_dir: str | Path) -> SpoolingStore:
    from .spool import spool_dir

    return SpoolingStore(store, Spool(spool_dir(state_dir)))
