"""Polls of update-signal files.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "polls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("mirror", sa.String(200), nullable=False),
        sa.Column("upstream", sa.Text, nullable=False),
        sa.Column("polled_at", sa.Float, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("upstream_mtime", sa.Float, nullable=True),
        sa.Column("local_mtime", sa.Float, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("triggered", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_polls_mirror_time", "polls", ["mirror", "polled_at"])


def downgrade() -> None:
    op.drop_index("ix_polls_mirror_time", table_name="polls")
    op.drop_table("polls")
