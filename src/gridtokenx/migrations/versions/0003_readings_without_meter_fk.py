"""readings without a foreign key to meters

Every inserted reading made PostgreSQL look its meter up again (a `FOR KEY SHARE` probe of
`meters` per row): about 17 µs of database CPU per reading at ingest rates, for a guarantee the
pipeline already gives (it stores readings only for meters it has loaded and locked in the same
transaction, and meters are never deleted: decommissioning is a status). Time-series tables keep
no per-row foreign key for the same reason.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 06:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

FK = "fk_meter_readings_meter_id_meters"


def upgrade() -> None:
    with op.batch_alter_table("meter_readings", schema=None) as batch_op:
        batch_op.drop_constraint(FK, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("meter_readings", schema=None) as batch_op:
        batch_op.create_foreign_key(FK, "meters", ["meter_id"], ["id"])
