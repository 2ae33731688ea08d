"""Fleet mode: each run carries a uuid, so that a run spooled on its host while the store was
unreachable is stored once however often it is replayed.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("uuid", sa.String(36), nullable=True))
        batch.create_index("ix_runs_uuid", ["uuid"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_uuid")
        batch.drop_column("uuid")
