"""Per-mirror summary rows (I/O): rewritten by the store's writers in their own transaction,
read by everything that shows every mirror at once (see :data:`.schema.mirror_summary`).

With 10,000 runs per mirror, walking each history for its newest, last finished and last
successful run cost a few queries per mirror per page; the summary is one row per mirror,
and the runs it points at are read in one query.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..record import RunRecord
from .schema import mirror_summary, runs
from .schema import pending_deletions as pending_table

#: How many of the newest runs the sparkline shows (the finished ones among them).
RECENT_RUNS = 30
#: How many finished runs' records a store keeps between reads (three per mirror at most).
FINISHED_KEPT = 4096
#: What a run record is built from (no findings, no per-run error JSON of every run).
RECORD_COLUMNS = (runs.c.id, runs.c.mirror, runs.c.upstream, runs.c.started_at,
                  runs.c.finished_at, runs.c.outcome, runs.c.log_path, runs.c.stages)


@dataclass(frozen=True)
class MirrorSummary:
    """A mirror at a glance: the runs that matter, the recent durations, what waits."""

    mirror: str
    newest: RunRecord | None = None  # started last, finished or not
    last_done: RunRecord | None = None  # the newest finished run, whatever its outcome
    last_success: RunRecord | None = None
    recent_durations: tuple[float, ...] = ()  # oldest first
    pending_deletions: int = 0
    pending_since: float | None = None


def _newest_id(conn: sa.Connection, mirror: str, *where: Any) -> int | None:
    query = (sa.select(runs.c.id).where(runs.c.mirror == mirror, *where)
             .order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(1))
    value = conn.execute(query).scalar()
    return int(value) if value is not None else None


def summary_values(conn: sa.Connection, mirror: str) -> dict[str, Any]:
    """The mirror's summary row, computed from its runs and pending deletions (indexed reads:
    the newest runs, and further back only for a last finish or success not among them)."""
    recent = conn.execute(
        sa.select(runs.c.id, runs.c.outcome, runs.c.duration_seconds)
        .where(runs.c.mirror == mirror)
        .order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(RECENT_RUNS)).all()
    done = next((r.id for r in recent if r.outcome != "running"), None)
    success = next((r.id for r in recent if r.outcome == "success"), None)
    if len(recent) == RECENT_RUNS:  # the history goes further back than what was read
        done = done or _newest_id(conn, mirror, runs.c.outcome != "running")
        success = success or _newest_id(conn, mirror, runs.c.outcome == "success")
    pending, since = conn.execute(
        sa.select(sa.func.count(), sa.func.min(pending_table.c.first_seen))
        .where(pending_table.c.mirror == mirror)).one()
    return {"newest_run_id": recent[0].id if recent else None, "last_done_run_id": done,
            "last_success_run_id": success,
            "recent_durations": [r.duration_seconds for r in reversed(recent)
                                 if r.outcome != "running" and r.duration_seconds is not None],
            "pending_deletions": int(pending), "pending_since": since}


def refresh_summary(conn: sa.Connection, mirror: str) -> None:
    """Rewrite ``mirror``'s summary row, in the caller's transaction."""
    values = summary_values(conn, mirror)
    updated = conn.execute(mirror_summary.update()
                           .where(mirror_summary.c.mirror == mirror).values(**values))
    if updated.rowcount == 0:
        conn.execute(mirror_summary.insert().values(mirror=mirror, **values))


def read_summaries(conn: sa.Connection, names: Collection[str] | None,
                   to_record: Callable[[Any], RunRecord],
                   finished: dict[int, RunRecord]) -> dict[str, MirrorSummary]:
    """The summaries of ``names`` (None: every mirror with one): two queries in all. A mirror
    without a row has never run and waits for no deletion.

    ``finished`` keeps the records of finished runs between calls, by id: a finished run's
    record never changes (only its findings, which a record does not carry), and building
    one from its stage JSON is most of the cost of a read."""
    query = mirror_summary.select()
    if names is not None:
        query = query.where(mirror_summary.c.mirror.in_(list(names)))
    rows = conn.execute(query).all()
    ids = {i for row in rows for i in (row.newest_run_id, row.last_done_run_id,
                                       row.last_success_run_id) if i is not None}
    records = {i: finished[i] for i in ids if i in finished}
    if missing := ids - records.keys():
        for row in conn.execute(sa.select(*RECORD_COLUMNS).where(runs.c.id.in_(missing))):
            records[row.id] = to_record(row)
            if row.outcome != "running":
                if len(finished) >= FINISHED_KEPT:
                    finished.clear()
                finished[row.id] = records[row.id]

    def record(run_id: int | None) -> RunRecord | None:
        return records.get(run_id) if run_id is not None else None

    return {row.mirror: MirrorSummary(
        mirror=row.mirror, newest=record(row.newest_run_id),
        last_done=record(row.last_done_run_id), last_success=record(row.last_success_run_id),
        recent_durations=tuple(float(d) for d in row.recent_durations or ()),
        pending_deletions=int(row.pending_deletions), pending_since=row.pending_since)
        for row in rows}
