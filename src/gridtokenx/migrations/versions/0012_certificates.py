"""certificates: one Token-2022 NFT per meter and period, its history, a lock row per meter

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _user(column: str, table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], ["users.id"], name=op.f(f"fk_{table}_{column}_users"))


def upgrade() -> None:
    op.create_table(
        "certificates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("meter_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("energy_wh", sa.BigInteger(), nullable=False),
        sa.Column("readings_hash", sa.String(length=64), nullable=False),
        sa.Column("reading_ids", sa.JSON(), nullable=False),
        sa.Column("excluded", sa.JSON(), nullable=False),
        sa.Column("facility_id", sa.String(length=64), nullable=False),
        sa.Column("technology", sa.String(length=32), nullable=False),
        sa.Column("country", sa.String(length=8), nullable=False),
        sa.Column("zone", sa.String(length=32), nullable=False),
        sa.Column("mint", sa.String(length=44), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("holder_id", sa.Uuid(), nullable=True),
        sa.Column("holder_wallet", sa.String(length=44), nullable=False),
        sa.Column("transfers", sa.Integer(), nullable=False),
        sa.Column("pending", sa.JSON(), nullable=True),
        sa.Column("issued_by", sa.Uuid(), nullable=True),
        sa.Column("retired_by", sa.Uuid(), nullable=True),
        sa.Column("beneficiary", sa.String(length=200), nullable=True),
        sa.Column("purpose", sa.String(length=200), nullable=True),
        sa.Column("location", sa.String(length=200), nullable=True),
        sa.Column("withdraw_reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name=op.f("fk_certificates_meter_id_meters")),
        _user("owner_id", "certificates"),
        _user("holder_id", "certificates"),
        _user("issued_by", "certificates"),
        _user("retired_by", "certificates"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
        sa.UniqueConstraint(
            "meter_id",
            "period_start",
            "period_end",
            name=op.f("uq_certificates_meter_id_period_start_period_end"),
        ),
        sa.UniqueConstraint("mint", name=op.f("uq_certificates_mint")),
    )
    op.create_index(op.f("ix_certificates_meter_id"), "certificates", ["meter_id"])
    op.create_index(op.f("ix_certificates_owner_id"), "certificates", ["owner_id"])
    op.create_index(op.f("ix_certificates_status"), "certificates", ["status"])
    op.create_index("ix_certificates_holder_status", "certificates", ["holder_id", "status"])
    op.create_index("ix_certificates_retired_for", "certificates", ["retired_by", "period_start"])
    op.create_table(
        "certificate_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("certificate_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("from_wallet", sa.String(length=44), nullable=True),
        sa.Column("to_wallet", sa.String(length=44), nullable=True),
        sa.Column("signature", sa.String(length=100), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_certificate_events_certificate_id_certificates"),
        ),
        _user("actor_id", "certificate_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_events")),
    )
    op.create_index(op.f("ix_certificate_events_certificate_id"), "certificate_events", ["certificate_id"])
    op.create_table(
        "certificate_meter_locks",
        sa.Column("meter_id", sa.Uuid(), nullable=False),
        sa.Column("issued", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_certificate_meter_locks_meter_id_meters")
        ),
        sa.PrimaryKeyConstraint("meter_id", name=op.f("pk_certificate_meter_locks")),
    )


def downgrade() -> None:
    op.drop_table("certificate_meter_locks")
    op.drop_index(op.f("ix_certificate_events_certificate_id"), table_name="certificate_events")
    op.drop_table("certificate_events")
    op.drop_table("certificates")
