"""room for in-place updates of rows that every batch rewrites

The hourly and daily rollups and the per-meter ingest state are updated again and again (a
15-minute meter touches its hour four times and its state row once per batch). With PostgreSQL's
default fillfactor of 100 a page has no room for the new row version, so each update moves the
row to another page and adds an entry to every index. Leaving free space lets PostgreSQL make
heap-only (HOT) updates on the same page, with no index writes. SQLite has no such setting.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 06:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

FILLFACTORS = {"meter_rollups_hourly": 70, "meter_rollups_daily": 70, "meter_ingest_state": 50}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, fillfactor in FILLFACTORS.items():
        op.execute(f"ALTER TABLE {table} SET (fillfactor = {fillfactor})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in FILLFACTORS:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
