"""market: epochs, escrowed orders with their fills, settlement transactions

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 14:43:34.273003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "market_epochs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("price", sa.String(length=80), nullable=True),
        sa.Column("volume_wh", sa.BigInteger(), nullable=False),
        sa.Column("certificate", sa.Text(), nullable=True),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_epochs")),
        sa.UniqueConstraint("starts_at", name=op.f("uq_market_epochs_starts_at")),
    )
    with op.batch_alter_table("market_epochs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_market_epochs_status"), ["status"], unique=False)

    op.create_table(
        "market_orders",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("epoch_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("wallet", sa.String(length=44), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("quantity_wh", sa.BigInteger(), nullable=False),
        sa.Column("limit_price", sa.BigInteger(), nullable=False),
        sa.Column("escrow", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("filled_wh", sa.BigInteger(), nullable=False),
        sa.Column("payment", sa.BigInteger(), nullable=False),
        sa.Column("escrow_signature", sa.String(length=100), nullable=True),
        sa.Column("approval_message", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["epoch_id"],
            ["market_epochs.id"],
            name=op.f("fk_market_orders_epoch_id_market_epochs"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_orders")),
    )
    with op.batch_alter_table("market_orders", schema=None) as batch_op:
        batch_op.create_index("ix_market_orders_epoch_status", ["epoch_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_market_orders_user_id"), ["user_id"], unique=False)

    op.create_table(
        "market_settlements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("epoch_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("legs", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tx_bytes", sa.LargeBinary(), nullable=True),
        sa.Column("signature", sa.String(length=100), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["epoch_id"],
            ["market_epochs.id"],
            name=op.f("fk_market_settlements_epoch_id_market_epochs"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_settlements")),
        sa.UniqueConstraint("epoch_id", "seq", name=op.f("uq_market_settlements_epoch_id_seq")),
    )
    with op.batch_alter_table("market_settlements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_market_settlements_epoch_id"), ["epoch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_market_settlements_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("market_settlements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_market_settlements_status"))
        batch_op.drop_index(batch_op.f("ix_market_settlements_epoch_id"))

    op.drop_table("market_settlements")
    with op.batch_alter_table("market_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_market_orders_user_id"))
        batch_op.drop_index("ix_market_orders_epoch_status")

    op.drop_table("market_orders")
    with op.batch_alter_table("market_epochs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_market_epochs_status"))

    op.drop_table("market_epochs")
