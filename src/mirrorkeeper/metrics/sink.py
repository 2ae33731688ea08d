"""Where a run's numbers go (I/O): progress while it runs, totals at the end, ages."""

from __future__ import annotations

import time

from ..config.spec import Config
from ..record import RunRecord
from ..record.progress import LiveProgress
from ..store import Store
from . import wire
from .emit import Emitter


def last_success_at(store: Store, mirror: str) -> float | None:
    last_ok = store.last_run(mirror, outcome="success")
    return last_ok.finished_at if last_ok else None


def age_seconds(store: Store, mirror: str, now: float) -> float | None:
    """Seconds since the mirror's last successful sync (None: it never had one)."""
    success_at = last_success_at(store, mirror)
    return round(now - success_at) if success_at is not None else None


def latest_values(store: Store, mirror: str, now: float) -> dict[str, float]:
    """The last finished run's figures and the mirror's age: what every exporter reports."""
    last = next((r for r in store.history(mirror, 5) if r.outcome != "running"), None)
    values = wire.run_values(last) if last else {}
    age = age_seconds(store, mirror, now)
    if age is not None:
        values["age_seconds"] = age
    values.update(snapshot_values(store, mirror))
    return values


def snapshot_values(store: Store, mirror: str) -> dict[str, float]:
    """Snapshot count and the space only they hold (for mirrors that take snapshots)."""
    from ..store.snapshots import summary

    return snapshot_gauges(summary(store, mirror))


def snapshot_gauges(figures: dict[str, object]) -> dict[str, float]:
    """The gauges of a mirror's snapshot figures (``store.snapshots.summary``); none without
    snapshots."""
    count = figures["count"]
    if not isinstance(count, int) or not count:
        return {}
    values = {"snapshots": float(count)}
    space = figures["space_used_bytes"]
    if isinstance(space, int):
        values["snapshots_space_used_bytes"] = float(space)
    return values


class MetricsSink:
    def __init__(self, config: Config) -> None:
        m = config.metrics
        self.settings = m
        self.host = config.settings.hostname
        self.graphite = Emitter("graphite", m.graphite) if m.graphite else None
        self.statsd = Emitter("statsd", m.statsd) if m.statsd else None
        self.collectd = (Emitter("collectd", f"unix://{m.collectd_socket}", expect_reply=True)
                         if m.collectd_socket else None)
        self._last_progress: dict[str, float] = {}

    @property
    def emitters(self) -> list[Emitter]:
        return [e for e in (self.graphite, self.statsd, self.collectd) if e is not None]

    def send(self, mirror: str, values: dict[str, float]) -> None:
        now = int(time.time())
        m = self.settings
        if self.graphite:
            self.graphite.send(wire.graphite(m.prefix, self.host, mirror, values, now))
        if self.statsd:
            self.statsd.send(wire.statsd(m.prefix, self.host, mirror, values))
        if self.collectd:
            self.collectd.send(wire.collectd(self.host, mirror, values, now, m.interval))

    def progress(self, mirror: str, live: LiveProgress) -> None:
        """Throttled to one update per ``interval`` per mirror."""
        now = time.monotonic()
        if now - self._last_progress.get(mirror, 0.0) >= self.settings.interval:
            self._last_progress[mirror] = now
            self.send(mirror, wire.progress_values(live))

    def run(self, record: RunRecord, store: Store) -> None:
        values = wire.run_values(record)
        age = age_seconds(store, record.mirror, time.time())
        if age is not None:
            values["age_seconds"] = age
        self.send(record.mirror, values)

    def close(self) -> None:
        for emitter in self.emitters:
            emitter.close(timeout=2.0)
