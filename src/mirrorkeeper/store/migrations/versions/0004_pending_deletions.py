"""Files the upstream dropped that the mirror still keeps (deletion grace, upstream errors).

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_deletions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("mirror", sa.String(200), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("first_seen", sa.Float, nullable=False),
    )
    op.create_index("ix_pending_deletions_mirror", "pending_deletions", ["mirror"])


def downgrade() -> None:
    op.drop_index("ix_pending_deletions_mirror", table_name="pending_deletions")
    op.drop_table("pending_deletions")
