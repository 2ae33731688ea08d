"""Alert rows: one open alert per (mirror, code); deliveries queued per plugin (I/O)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .schema import alerts, deliveries, runs


class AlertStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def open_alerts(self, mirror: str | None = None) -> list[dict[str, Any]]:
        query = alerts.select().where(alerts.c.resolved_at.is_(None))
        if mirror is not None:
            query = query.where(alerts.c.mirror == mirror)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.order_by(alerts.c.id))]

    def recent(self, limit: int = 50, include_resolved: bool = True) -> list[dict[str, Any]]:
        query = alerts.select()
        if not include_resolved:
            query = query.where(alerts.c.resolved_at.is_(None))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in
                    conn.execute(query.order_by(alerts.c.last_seen.desc()).limit(limit))]

    def get(self, alert_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(alerts.select().where(alerts.c.id == alert_id)).first()
        return dict(row._mapping) if row else None

    def insert(self, values: dict[str, Any]) -> int:
        with self.engine.begin() as conn:
            key = conn.execute(alerts.insert().values(**values)).inserted_primary_key
            assert key is not None
            return int(key[0])

    def update(self, alert_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(alerts.update().where(alerts.c.id == alert_id).values(**values))

    def queue(self, alert_id: int, plugin: str, payload: dict[str, Any], now: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(deliveries.insert().values(alert_id=alert_id, plugin=plugin,
                                                    payload=payload, created_at=now))

    def pending(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                deliveries.select().where(deliveries.c.delivered_at.is_(None))
                .order_by(deliveries.c.id))]

    def delivered(self, delivery_id: int, now: float | None, error: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(
                attempts=deliveries.c.attempts + 1, delivered_at=now, last_error=error))

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
