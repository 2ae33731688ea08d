"""Snapshots of mirrors on ZFS / btrfs: which run made each, published, held, pruned.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("mirror", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("backend", sa.String(20), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=True),
        sa.Column("pre", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("published_at", sa.Float, nullable=True),
        sa.Column("held", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("pruned_at", sa.Float, nullable=True),
        sa.Column("space_used", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_snapshots_mirror", "snapshots", ["mirror", "name"])


def downgrade() -> None:
    op.drop_index("ix_snapshots_mirror", table_name="snapshots")
    op.drop_table("snapshots")
