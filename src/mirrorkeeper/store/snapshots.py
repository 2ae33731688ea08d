"""Snapshot rows (I/O): what Mirrorkeeper made, published, held and pruned, per mirror."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from .schema import snapshots
from .store import Store


@dataclass(frozen=True)
class SnapshotRow:
    mirror: str
    name: str
    backend: str
    run_id: int | None
    pre: bool
    created_at: float
    published_at: float | None
    held: bool
    pruned_at: float | None
    space_used: int | None


def _row(r: sa.Row[object]) -> SnapshotRow:
    m = r._mapping
    return SnapshotRow(m["mirror"], m["name"], m["backend"], m["run_id"], bool(m["pre"]),
                       m["created_at"], m["published_at"], bool(m["held"]), m["pruned_at"],
                       m["space_used"])


def add(store: Store, mirror: str, name: str, backend: str, run_id: int | None, *, pre: bool,
        created_at: float) -> None:
    with store.engine.begin() as conn:
        conn.execute(snapshots.insert().values(mirror=mirror, name=name, backend=backend,
                                               run_id=run_id, pre=pre, created_at=created_at))


def rows(store: Store, mirror: str, *, pruned: bool = False) -> list[SnapshotRow]:
    """The mirror's snapshots, oldest first; without ``pruned``, only those that exist."""
    query = snapshots.select().where(snapshots.c.mirror == mirror)
    if not pruned:
        query = query.where(snapshots.c.pruned_at.is_(None))
    with store.engine.connect() as conn:
        return [_row(r) for r in conn.execute(query.order_by(snapshots.c.created_at,
                                                             snapshots.c.id))]


def _set(store: Store, mirror: str, name: str, **values: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(snapshots.update().where(snapshots.c.mirror == mirror,
                                              snapshots.c.name == name,
                                              snapshots.c.pruned_at.is_(None)).values(**values))


def mark_pruned(store: Store, mirror: str, name: str, when: float) -> None:
    _set(store, mirror, name, pruned_at=when)


def mark_published(store: Store, mirror: str, name: str, when: float) -> None:
    _set(store, mirror, name, published_at=when)


def set_held(store: Store, mirror: str, name: str, held: bool) -> None:
    _set(store, mirror, name, held=held)


def set_space_used(store: Store, mirror: str, name: str, space: int | None) -> None:
    _set(store, mirror, name, space_used=space)


def summary(store: Store, mirror: str) -> dict[str, object]:
    """The figures ``status``, the web and metrics show: count, bytes, newest, published."""
    live = rows(store, mirror)
    published = [r for r in live if r.published_at is not None]
    newest_published = max(published, key=lambda r: r.published_at or 0.0, default=None)
    return {
        "count": len(live),
        "space_used_bytes": live[-1].space_used if live else None,
        "newest": live[-1].name if live else None,
        "published": newest_published.name if newest_published else None,
    }
