"""compatibility readings as energy deltas per (meter, instant), summed into their interval

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 15:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reading_ticks",
        sa.Column("meter_id", sa.Uuid(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("import_wh", sa.BigInteger(), nullable=False),
        sa.Column("export_wh", sa.BigInteger(), nullable=False),
        sa.Column("generation_wh", sa.BigInteger(), nullable=True),
        sa.Column("consumption_wh", sa.BigInteger(), nullable=True),
        sa.Column("trust", sa.String(length=20), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("meter_id", "observed_at", name=op.f("pk_reading_ticks")),
    )
    op.create_index("ix_reading_ticks_interval", "reading_ticks", ["meter_id", "interval_start"])


def downgrade() -> None:
    op.drop_index("ix_reading_ticks_interval", table_name="reading_ticks")
    op.drop_table("reading_ticks")
