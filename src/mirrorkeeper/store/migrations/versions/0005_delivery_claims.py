"""Delivery claims (one sender per notification) and per-plugin backoff.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("claimed_until", sa.Float, nullable=True))
    op.create_table(
        "plugin_backoff",
        sa.Column("plugin", sa.String(200), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("retry_at", sa.Float, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("plugin_backoff")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("claimed_until")
