"""Run history and live progress.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
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
    )
    op.create_index("ix_runs_mirror_started", "runs", ["mirror", "started_at"])
    op.create_table(
        "live",
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


def downgrade() -> None:
    op.drop_table("live")
    op.drop_index("ix_runs_mirror_started", table_name="runs")
    op.drop_table("runs")
