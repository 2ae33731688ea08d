"""Tables (SQLAlchemy Core). Times are UTC epoch seconds (float): one type on SQLite and
PostgreSQL alike, and trivial to compare. Alembic migrations in ``migrations/`` create them."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("mirror", sa.String(200), nullable=False),
    sa.Column("host", sa.String(255), nullable=False, server_default=""),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("upstream", sa.Text, nullable=False, server_default=""),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("duration_seconds", sa.Float, nullable=True),
    sa.Column("bytes_transferred", sa.BigInteger, nullable=True),
    sa.Column("size_bytes", sa.BigInteger, nullable=True),
    sa.Column("bitrate_bps", sa.Float, nullable=True),
    sa.Column("files_total", sa.BigInteger, nullable=True),
    sa.Column("files_transferred", sa.BigInteger, nullable=True),
    sa.Column("files_deleted", sa.BigInteger, nullable=True),
    sa.Column("files_failed", sa.BigInteger, nullable=True),
    sa.Column("errors", sa.JSON, nullable=True),
    sa.Column("stages", sa.JSON, nullable=True),
    sa.Column("log_path", sa.Text, nullable=False, server_default=""),
    sa.Column("findings", sa.JSON, nullable=True),
    #: Set when the run starts (fleet mode): a run spooled while the store was down is
    #: replayed under it, and stored once however often it is replayed.
    sa.Column("uuid", sa.String(36), nullable=True),
    sa.Index("ix_runs_mirror_started", "mirror", "started_at"),
    sa.Index("ix_runs_uuid", "uuid", unique=True),
)

live = sa.Table(
    "live", metadata,
    sa.Column("mirror", sa.String(200), primary_key=True),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("stage", sa.String(20), nullable=False),
    sa.Column("stage_index", sa.Integer, nullable=False),
    sa.Column("stage_count", sa.Integer, nullable=False),
    sa.Column("percent", sa.Float, nullable=True),
    sa.Column("bytes_done", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rate_bps", sa.Float, nullable=False, server_default="0"),
    sa.Column("eta_seconds", sa.Float, nullable=True),
    sa.Column("files_checked", sa.BigInteger, nullable=True),
    sa.Column("files_expected", sa.BigInteger, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)

alerts = sa.Table(
    "alerts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("mirror", sa.String(200), nullable=False),
    sa.Column("code", sa.String(100), nullable=False),
    sa.Column("severity", sa.String(20), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("details", sa.JSON, nullable=True),
    sa.Column("upstream", sa.Text, nullable=True),
    sa.Column("run_id", sa.Integer, nullable=True),
    sa.Column("rule", sa.Text, nullable=True),
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
    sa.Column("occurrences", sa.Integer, nullable=False, server_default="1"),
    sa.Column("notified_at", sa.Float, nullable=True),
    sa.Column("notified_severity", sa.String(20), nullable=True),
    sa.Column("suppressed_until", sa.Float, nullable=True),
    sa.Column("resolved_at", sa.Float, nullable=True),
    sa.Column("acked_at", sa.Float, nullable=True),
    #: Was it a real problem? True, False, or not judged (NULL). Replay keeps true ones loud.
    sa.Column("marked_true", sa.Boolean, nullable=True),
    sa.Index("ix_alerts_open", "mirror", "code", "resolved_at"),
)

deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_id", sa.Integer, nullable=False),
    sa.Column("plugin", sa.String(200), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("delivered_at", sa.Float, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    #: A sender claimed it until then (its plugin's timeout and a margin): no other sender —
    #: another worker, the tick, another process — sends it meanwhile. NULL: free.
    sa.Column("claimed_until", sa.Float, nullable=True),
    sa.Index("ix_deliveries_pending", "delivered_at"),
)

#: Per plugin: failures in a row and when to try it again, so one dead or hung plugin costs its
#: timeout once per backoff period, not once per queued notification.
plugin_backoff = sa.Table(
    "plugin_backoff", metadata,
    sa.Column("plugin", sa.String(200), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("retry_at", sa.Float, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
)

#: Each poll of a mirror's update-signal file upstream: what it saw and what it cost.
polls = sa.Table(
    "polls", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("mirror", sa.String(200), nullable=False),
    sa.Column("upstream", sa.Text, nullable=False),
    sa.Column("polled_at", sa.Float, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("upstream_mtime", sa.Float, nullable=True),
    sa.Column("local_mtime", sa.Float, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    #: Did this poll start a sync?
    sa.Column("triggered", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_polls_mirror_time", "mirror", "polled_at"),
)

#: Files the upstream dropped that the mirror keeps for now (``delete_grace``, upstream errors,
#: skipped deletions), with when a run first saw each one gone.
pending_deletions = sa.Table(
    "pending_deletions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("mirror", sa.String(200), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Index("ix_pending_deletions_mirror", "mirror"),
)

#: Snapshots of a mirror's destination (ZFS / btrfs) that Mirrorkeeper made: the run each came
#: from, whether it was published or held, and when it was pruned (rows stay as the record).
snapshots = sa.Table(
    "snapshots", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("mirror", sa.String(200), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("backend", sa.String(20), nullable=False),
    sa.Column("run_id", sa.Integer, nullable=True),
    #: Taken before a run (``snapshot_before``) rather than after a success.
    sa.Column("pre", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("published_at", sa.Float, nullable=True),
    #: Held by the admin: never pruned until released.
    sa.Column("held", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("pruned_at", sa.Float, nullable=True),
    #: Bytes held only by the mirror's snapshots, measured after this one was made.
    sa.Column("space_used", sa.BigInteger, nullable=True),
    sa.Index("ix_snapshots_mirror", "mirror", "name"),
)

#: One row per mirror that has runs or pending deletions, rewritten in the transaction that
#: starts, ends or abandons one of its runs or replaces its pending deletions. Everything that
#: shows every mirror at once (``status``, the dashboard, the API, ``/metrics``) reads these
#: rows and the few runs they point at, instead of walking each mirror's history. It points at
#: runs by id (their figures and times stay in ``runs``) and keeps only facts a finished run
#: never changes.
mirror_summary = sa.Table(
    "mirror_summary", metadata,
    sa.Column("mirror", sa.String(200), primary_key=True),
    #: The newest run started, finished or not (newest: latest ``started_at``, then id).
    sa.Column("newest_run_id", sa.Integer, nullable=True),
    #: The newest finished run (any outcome but ``running``).
    sa.Column("last_done_run_id", sa.Integer, nullable=True),
    sa.Column("last_success_run_id", sa.Integer, nullable=True),
    #: Durations of the finished runs among the newest 30, oldest first (the sparkline).
    sa.Column("recent_durations", sa.JSON, nullable=False),
    sa.Column("pending_deletions", sa.Integer, nullable=False, server_default="0"),
    #: When the oldest pending deletion was first seen (NULL: none pending).
    sa.Column("pending_since", sa.Float, nullable=True),
)

#: Fleet mode: each sync host's daemon beats here; one that stops beating is ``host.down``.
hosts = sa.Table(
    "hosts", metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("pid", sa.Integer, nullable=True),
    #: Since when it has beaten without a gap (its start, or its return after one).
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("beat_at", sa.Float, nullable=False),
    #: When another host noticed it had stopped beating (NULL: beating).
    sa.Column("down_since", sa.Float, nullable=True),
)
