"""mint outbox, the chain transactions it rode in, and owners' correction debts

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mint_txs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.String(length=88), nullable=False),
        sa.Column("tx_bytes", sa.LargeBinary(), nullable=False),
        sa.Column("last_valid_height", sa.BigInteger(), nullable=False),
        sa.Column("memo_sha256", sa.String(length=64), nullable=False),
        sa.Column("amount_units", sa.BigInteger(), nullable=False),
        sa.Column("netted_units", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mint_txs")),
        sa.UniqueConstraint("signature", name=op.f("uq_mint_txs_signature")),
    )
    op.create_index("ix_mint_txs_state", "mint_txs", ["state"])
    op.create_table(
        "mint_outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("meter_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.SmallInteger(), nullable=False),
        sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("reading_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("amount_wh", sa.BigInteger(), nullable=False),
        sa.Column("amount_units", sa.BigInteger(), nullable=True),
        sa.Column("ledger_units", sa.BigInteger(), nullable=True),
        sa.Column("wallet", sa.String(length=44), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("tx_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tx_id"], ["mint_txs.id"], name=op.f("fk_mint_outbox_tx_id_mint_txs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mint_outbox")),
        sa.UniqueConstraint(
            "meter_id",
            "channel",
            "interval_start",
            "revision",
            name=op.f("uq_mint_outbox_meter_id_channel_interval_start_revision"),
        ),
    )
    op.create_index("ix_mint_outbox_state_due", "mint_outbox", ["state", "next_attempt_at"])
    op.create_index("ix_mint_outbox_reading_id", "mint_outbox", ["reading_id"])
    op.create_index("ix_mint_outbox_user_id", "mint_outbox", ["user_id", "created_at"])
    op.create_table(
        "mint_debts",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_mint_debts")),
    )


def downgrade() -> None:
    op.drop_table("mint_debts")
    op.drop_table("mint_outbox")
    op.drop_table("mint_txs")
