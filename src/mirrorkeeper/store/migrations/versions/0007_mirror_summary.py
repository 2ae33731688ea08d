"""One summary row per mirror (its newest, last finished and last successful runs, recent
durations, pending deletions), filled here from the runs already stored.

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: The sparkline's width in runs, as the store kept it when this migration was written.
RECENT_RUNS = 30

# The tables as they are at this revision (the application's may have moved on since).
runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("mirror", sa.String),
                sa.column("started_at", sa.Float), sa.column("outcome", sa.String),
                sa.column("duration_seconds", sa.Float))
pending = sa.table("pending_deletions", sa.column("mirror", sa.String),
                   sa.column("first_seen", sa.Float))


def _newest(conn: sa.Connection, mirror: str, *where: sa.ColumnElement[bool]) -> int | None:
    return conn.execute(sa.select(runs.c.id).where(runs.c.mirror == mirror, *where)
                        .order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(1)).scalar()


def upgrade() -> None:
    summary = op.create_table(
        "mirror_summary",
        sa.Column("mirror", sa.String(200), primary_key=True),
        sa.Column("newest_run_id", sa.Integer, nullable=True),
        sa.Column("last_done_run_id", sa.Integer, nullable=True),
        sa.Column("last_success_run_id", sa.Integer, nullable=True),
        sa.Column("recent_durations", sa.JSON, nullable=False),
        sa.Column("pending_deletions", sa.Integer, nullable=False, server_default="0"),
        sa.Column("pending_since", sa.Float, nullable=True),
    )
    assert summary is not None
    conn = op.get_bind()
    mirrors = {m for (m,) in conn.execute(sa.select(runs.c.mirror).distinct())}
    mirrors |= {m for (m,) in conn.execute(sa.select(pending.c.mirror).distinct())}
    rows = []
    for mirror in sorted(mirrors):
        recent = conn.execute(
            sa.select(runs.c.outcome, runs.c.duration_seconds).where(runs.c.mirror == mirror)
            .order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(RECENT_RUNS)).all()
        count, since = conn.execute(sa.select(sa.func.count(), sa.func.min(pending.c.first_seen))
                                    .where(pending.c.mirror == mirror)).one()
        rows.append({
            "mirror": mirror, "newest_run_id": _newest(conn, mirror),
            "last_done_run_id": _newest(conn, mirror, runs.c.outcome != "running"),
            "last_success_run_id": _newest(conn, mirror, runs.c.outcome == "success"),
            "recent_durations": [d for o, d in reversed(recent)
                                 if o != "running" and d is not None],
            "pending_deletions": int(count), "pending_since": since})
    if rows:
        op.bulk_insert(summary, rows)


def downgrade() -> None:
    op.drop_table("mirror_summary")
