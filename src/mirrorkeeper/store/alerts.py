"""Alert rows: one open alert per (mirror, code); deliveries queued per plugin (I/O).

Several senders share the deliveries table — the daemon's delivery workers, its tick, a
manual ``sync``, ``alerts watchdog`` from cron — so a delivery is *claimed* with one
conditional UPDATE before its plugin runs, and only the sender whose UPDATE changed the row
sends it. Likewise one mirror's alert updates (a run's, the watchdog's) run in a transaction
that holds the database's write lock from its first statement, so two of them never read the
same open alerts and both notify.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .schema import alerts, deliveries, plugin_backoff, runs

#: The PostgreSQL advisory lock that serializes alert updates across a fleet ("mkalerts").
ALERTS_LOCK_KEY = 0x6D6B616C65727473


def _open_alerts(conn: sa.Connection, mirror: str | None) -> list[dict[str, Any]]:
    query = alerts.select().where(alerts.c.resolved_at.is_(None))
    if mirror is not None:
        query = query.where(alerts.c.mirror == mirror)
    return [dict(r._mapping) for r in conn.execute(query.order_by(alerts.c.id))]


def _get(conn: sa.Connection, alert_id: int) -> dict[str, Any] | None:
    row = conn.execute(alerts.select().where(alerts.c.id == alert_id)).first()
    return dict(row._mapping) if row else None


def _insert(conn: sa.Connection, values: dict[str, Any]) -> int:
    key = conn.execute(alerts.insert().values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])


def _update(conn: sa.Connection, alert_id: int, values: dict[str, Any]) -> None:
    conn.execute(alerts.update().where(alerts.c.id == alert_id).values(**values))


def _queue(conn: sa.Connection, alert_id: int, plugin: str, payload: dict[str, Any],
           now: float) -> None:
    conn.execute(deliveries.insert().values(alert_id=alert_id, plugin=plugin, payload=payload,
                                            created_at=now))


class AlertTx:
    """The alert operations inside one exclusive transaction (see :meth:`AlertStore.exclusive`)."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def open_alerts(self, mirror: str | None = None) -> list[dict[str, Any]]:
        return _open_alerts(self.conn, mirror)

    def get(self, alert_id: int) -> dict[str, Any] | None:
        return _get(self.conn, alert_id)

    def insert(self, values: dict[str, Any]) -> int:
        return _insert(self.conn, values)

    def update(self, alert_id: int, **values: Any) -> None:
        _update(self.conn, alert_id, values)

    def queue(self, alert_id: int, plugin: str, payload: dict[str, Any], now: float) -> None:
        _queue(self.conn, alert_id, plugin, payload, now)


@dataclass(frozen=True)
class Backoff:
    failures: int
    retry_at: float
    last_error: str | None


class AlertStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @contextmanager
    def exclusive(self) -> Iterator[AlertTx]:
        """A transaction that holds SQLite's write lock (PostgreSQL: the fleet's alert lock)
        from its first statement.

        SQLite takes its one write lock at a transaction's first write; a write that changes
        nothing comes first, so the reads that follow and the writes that depend on them are a
        single step for every thread and process (others wait, up to the busy timeout).
        """
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # A fleet store: PostgreSQL locks rows, not the database, so every host's
                # alert update takes one transaction-scoped advisory lock instead.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"),
                             {"k": ALERTS_LOCK_KEY})
            else:
                conn.execute(alerts.update().where(sa.false()).values(id=alerts.c.id))
            yield AlertTx(conn)

    def open_alerts(self, mirror: str | None = None) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return _open_alerts(conn, mirror)

    def recent(self, limit: int = 50, include_resolved: bool = True) -> list[dict[str, Any]]:
        query = alerts.select()
        if not include_resolved:
            query = query.where(alerts.c.resolved_at.is_(None))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in
                    conn.execute(query.order_by(alerts.c.last_seen.desc()).limit(limit))]

    def get(self, alert_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return _get(conn, alert_id)

    def insert(self, values: dict[str, Any]) -> int:
        with self.engine.begin() as conn:
            return _insert(conn, values)

    def update(self, alert_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            _update(conn, alert_id, values)

    def queue(self, alert_id: int, plugin: str, payload: dict[str, Any], now: float) -> None:
        with self.engine.begin() as conn:
            _queue(conn, alert_id, plugin, payload, now)

    # -- deliveries ---------------------------------------------------------------------------
    def pending(self, now: float | None = None) -> list[dict[str, Any]]:
        """Undelivered notifications; with ``now``, only those no sender holds a claim on."""
        query = deliveries.select().where(deliveries.c.delivered_at.is_(None))
        if now is not None:
            query = query.where(sa.or_(deliveries.c.claimed_until.is_(None),
                                       deliveries.c.claimed_until < now))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(deliveries.c.id))]

    def claim(self, delivery_id: int, now: float, until: float) -> bool:
        """Take the right to send this notification until ``until``; False if it is delivered
        or another sender's claim still holds. One UPDATE: atomic across processes."""
        with self.engine.begin() as conn:
            result = conn.execute(deliveries.update().where(
                deliveries.c.id == delivery_id, deliveries.c.delivered_at.is_(None),
                sa.or_(deliveries.c.claimed_until.is_(None),
                       deliveries.c.claimed_until < now)).values(claimed_until=until))
            return bool(result.rowcount == 1)

    def delivered(self, delivery_id: int, now: float | None, error: str | None) -> None:
        """The outcome of one try (``now`` None: not delivered); the claim ends with it."""
        with self.engine.begin() as conn:
            conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(
                attempts=deliveries.c.attempts + 1, delivered_at=now, last_error=error,
                claimed_until=None))

    def backoffs(self) -> dict[str, Backoff]:
        with self.engine.connect() as conn:
            return {r.plugin: Backoff(r.failures, r.retry_at, r.last_error)
                    for r in conn.execute(plugin_backoff.select())}

    def plugin_failed(self, plugin: str, now: float, error: str,
                      delay: Callable[[int], float]) -> Backoff:
        """One more failure in a row; the next try waits ``delay(failures)`` seconds."""
        with self.engine.begin() as conn:
            before = conn.execute(sa.select(plugin_backoff.c.failures).where(
                plugin_backoff.c.plugin == plugin)).scalar()
            state = Backoff(int(before or 0) + 1, 0.0, error)
            state = Backoff(state.failures, now + delay(state.failures), error)
            values = dict(failures=state.failures, retry_at=state.retry_at, last_error=error)
            if before is None:
                conn.execute(plugin_backoff.insert().values(plugin=plugin, **values))
            else:
                conn.execute(plugin_backoff.update().where(plugin_backoff.c.plugin == plugin)
                             .values(**values))
            return state

    def plugin_ok(self, plugin: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(plugin_backoff.delete().where(plugin_backoff.c.plugin == plugin))

    # -- findings -----------------------------------------------------------------------------
    def save_findings(self, run_id: int, findings: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(findings=findings))

    def findings_history(self, mirror: str, limit: int) -> list[list[dict[str, Any]]]:
        """Findings of the last ``limit`` finished runs, newest first."""
        query = (sa.select(runs.c.findings).where(runs.c.mirror == mirror,
                                                  runs.c.outcome != "running")
                 .order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [row.findings or [] for row in conn.execute(query)]
