"""Move one host's history into another store (``mirrorkeeper store migrate``): a single
host's SQLite file into the fleet's PostgreSQL, say.

Row ids are the destination's own (several hosts' histories go into one store), and the rows
that point at others (an alert's run, a delivery's alert, a snapshot's run) follow their new
ids. Everything is written in one destination transaction: it all arrives, or nothing does.
Live progress and heartbeats are not history and stay behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from .schema import alerts, deliveries, pending_deletions, plugin_backoff, polls, runs, snapshots
from .summary import refresh_summary


@dataclass(frozen=True)
class Moved:
    """What a move copied, per table, or why it copied nothing."""

    rows: dict[str, int] = field(default_factory=dict)
    #: Mirrors whose history the destination already holds: nothing was copied.
    clashes: tuple[str, ...] = ()


def _rows(conn: sa.Connection, table: sa.Table) -> list[dict[str, Any]]:
    query = table.select()
    if "id" in table.c:
        query = query.order_by(table.c.id)
    return [dict(r._mapping) for r in conn.execute(query)]


def _copy(dst: sa.Connection, table: sa.Table, rows: list[dict[str, Any]],
          remap: dict[str, dict[int, int]] | None = None) -> dict[int, int]:
    """Insert ``rows`` with fresh ids; old id → new id. ``remap``: column → its id map."""
    new_ids: dict[int, int] = {}
    for row in rows:
        old = row.pop("id", None)
        for column, ids in (remap or {}).items():
            if row.get(column) is not None:
                row[column] = ids.get(row[column])
        result = dst.execute(table.insert().values(**row))
        if old is not None and result.inserted_primary_key:
            new_ids[old] = int(result.inserted_primary_key[0])
    return new_ids


def move_history(source: sa.Engine, dest: sa.Engine, host: str | None = None) -> Moved:
    """Copy every run, poll, pending deletion, alert, delivery and snapshot of ``source``
    into ``dest`` (both at the newest schema). ``host``: record the runs under this fleet
    host name. Refuses (``clashes``) when ``dest`` already holds runs of the same mirrors:
    moving twice would double a history."""
    with source.connect() as src:
        data = {t.name: _rows(src, t) for t in (runs, polls, pending_deletions, alerts,
                                                deliveries, plugin_backoff, snapshots)}
    mirrors = {r["mirror"] for r in data["runs"]}
    with dest.begin() as dst:
        clashes = tuple(sorted({row[0] for row in dst.execute(
            sa.select(runs.c.mirror).where(runs.c.mirror.in_(sorted(mirrors))).distinct())}))
        if clashes:
            return Moved(clashes=clashes)
        if host is not None:
            for row in data["runs"]:
                row["host"] = host
        run_ids = _copy(dst, runs, data["runs"])
        _copy(dst, polls, data["polls"])
        _copy(dst, pending_deletions, data["pending_deletions"])
        alert_ids = _copy(dst, alerts, data["alerts"], {"run_id": run_ids})
        _copy(dst, deliveries, data["deliveries"], {"alert_id": alert_ids})
        _copy(dst, snapshots, data["snapshots"], {"run_id": run_ids})
        known = {r[0] for r in dst.execute(sa.select(plugin_backoff.c.plugin))}
        backoffs = [r for r in data["plugin_backoff"] if r["plugin"] not in known]
        if backoffs:
            dst.execute(plugin_backoff.insert(), backoffs)
        data["plugin_backoff"] = backoffs
        for mirror in sorted(mirrors | {r["mirror"] for r in data["pending_deletions"]}):
            refresh_summary(dst, mirror)  # what status and the web read
    return Moved(rows={name: len(rows) for name, rows in data.items()})
