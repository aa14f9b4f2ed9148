"""ingest jobs keep their body until done, count their attempts, and are found by status

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index("ix_ingest_jobs_status_created", ["status", "created_at"], unique=False)
    # jobs queued before this revision lived only in a process's memory: they can never run
    op.execute(
        "UPDATE ingest_jobs SET status = 'failed', error = 'lost: queued before jobs were durable' "
        "WHERE status IN ('queued', 'running')"
    )


def downgrade() -> None:
    with op.batch_alter_table("ingest_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_ingest_jobs_status_created")
        batch_op.drop_column("attempts")
        batch_op.drop_column("body")
