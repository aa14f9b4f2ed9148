"""readings without a stored content hash

An identical resend was recognised by a SHA-256 of the stored values kept in every row. The store
now compares the values, duration and trust themselves (it reads them for every stored key it
looks up anyway), so the hash cost a digest per reading in the gateway and 65 bytes per row in
the table and its WAL for nothing.

Downgrade restores the column; on PostgreSQL it is recomputed exactly as the old code wrote it,
on SQLite (no SHA-256 in SQL) it is left empty, which the old code treats as a changed value: a
later resend of such an interval becomes a new version with an audit row, never a lost one.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_HASHED = (
    "import_wh",
    "export_wh",
    "generation_wh",
    "consumption_wh",
    "import_register_wh",
    "export_register_wh",
    "duration_s",
)


def upgrade() -> None:
    with op.batch_alter_table("meter_readings", schema=None) as batch_op:
        batch_op.drop_column("content_hash")


def downgrade() -> None:
    with op.batch_alter_table("meter_readings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("content_hash", sa.String(length=64), nullable=False, server_default="")
        )
    if op.get_bind().dialect.name == "postgresql":
        text = ", ".join(f"coalesce({name}::text, 'None')" for name in _HASHED)
        op.execute(
            "UPDATE meter_readings SET content_hash = "
            f"encode(sha256(convert_to(concat_ws('|', {text}, trust), 'UTF8')), 'hex')"
        )
