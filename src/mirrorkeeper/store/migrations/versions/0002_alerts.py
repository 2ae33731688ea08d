"""Alerts, their deliveries to plugins, and each run's findings.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("findings", sa.JSON, nullable=True))
    op.create_table(
        "alerts",
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
        sa.Column("marked_true", sa.Boolean, nullable=True),
    )
    op.create_index("ix_alerts_open", "alerts", ["mirror", "code", "resolved_at"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer, nullable=False),
        sa.Column("plugin", sa.String(200), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("delivered_at", sa.Float, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_deliveries_pending", "deliveries", ["delivered_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_pending", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index("ix_alerts_open", table_name="alerts")
    op.drop_table("alerts")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("findings")
