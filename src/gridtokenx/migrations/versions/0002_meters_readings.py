"""meters and readings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 03:49:29.180451
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "ingest_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_ingest_jobs_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_jobs")),
    )
    with op.batch_alter_table("ingest_jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ingest_jobs_user_id"), ["user_id"], unique=False)

    op.create_table(
        "meter_claim_attempts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_meter_claim_attempts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_claim_attempts")),
    )
    with op.batch_alter_table("meter_claim_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meter_claim_attempts_serial"), ["serial"], unique=False)
        batch_op.create_index("ix_meter_claim_attempts_user_created", ["user_id", "created_at"], unique=False)

    op.create_table(
        "meters",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("meter_type", sa.String(length=16), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=True),
        sa.Column("zone_id", sa.Integer(), nullable=True),
        sa.Column("latitude", sa.Double(), nullable=True),
        sa.Column("longitude", sa.Double(), nullable=True),
        sa.Column("capacity_w", sa.Integer(), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("commissioned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("meter_key_hash", sa.String(length=255), nullable=True),
        sa.Column("attested_mintable", sa.Boolean(), nullable=True),
        sa.Column("register_modulus_wh", sa.BigInteger(), nullable=True),
        sa.Column("register_reset_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], name=op.f("fk_meters_owner_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meters")),
        sa.UniqueConstraint("serial", name=op.f("uq_meters_serial")),
    )
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meters_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "device_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("meter_id", sa.Uuid(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoke_reason", sa.String(length=200), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_device_keys_meter_id_meters"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_keys")),
        sa.UniqueConstraint("meter_id", "key_id", name=op.f("uq_device_keys_meter_id_key_id")),
        sa.UniqueConstraint("public_key", name=op.f("uq_device_keys_public_key")),
    )
    with op.batch_alter_table("device_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_device_keys_meter_id"), ["meter_id"], unique=False)

    op.create_table(
        "meter_ingest_state",
        sa.Column("meter_id", sa.Uuid(), nullable=False),
        sa.Column("seq_highest", sa.BigInteger(), nullable=True),
        sa.Column("seq_bitmap", sa.LargeBinary(), nullable=True),
        sa.Column("last_interval_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_import_register_wh", sa.BigInteger(), nullable=True),
        sa.Column("last_export_register_wh", sa.BigInteger(), nullable=True),
        sa.Column("register_interval_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recent", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_meter_ingest_state_meter_id_meters")
        ),
        sa.PrimaryKeyConstraint("meter_id", name=op.f("pk_meter_ingest_state")),
    )
    op.create_table(
        "meter_readings",
        sa.Column("meter_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.SmallInteger(), nullable=False),
        sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.Column("import_wh", sa.BigInteger(), nullable=False),
        sa.Column("export_wh", sa.BigInteger(), nullable=False),
        sa.Column("generation_wh", sa.BigInteger(), nullable=True),
        sa.Column("consumption_wh", sa.BigInteger(), nullable=True),
        sa.Column("import_register_wh", sa.BigInteger(), nullable=True),
        sa.Column("export_register_wh", sa.BigInteger(), nullable=True),
        sa.Column("trust", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("key_id", sa.String(length=16), nullable=True),
        sa.Column("signature", sa.LargeBinary(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("mintable_wh", sa.BigInteger(), nullable=False),
        sa.Column("mint_pending", sa.Boolean(), nullable=False),
        sa.Column("extras", sa.JSON(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["meter_id"], ["meters.id"], name=op.f("fk_meter_readings_meter_id_meters")),
        sa.PrimaryKeyConstraint("meter_id", "channel", "interval_start", name=op.f("pk_meter_readings")),
        postgresql_partition_by="RANGE (interval_start)",
    )
    with op.batch_alter_table("meter_readings", schema=None) as batch_op:
        batch_op.create_index("ix_meter_readings_id", ["id"], unique=False)
        batch_op.create_index(
            "ix_meter_readings_mint_pending", ["mint_pending", "interval_start"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        # Rows outside every monthly partition land here instead of failing; see readings/partitions.py.
        op.execute("CREATE TABLE meter_readings_default PARTITION OF meter_readings DEFAULT")

    op.create_table(
        "meter_rollups_daily",
        sa.Column("meter_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.SmallInteger(), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("import_wh", sa.BigInteger(), nullable=False),
        sa.Column("export_wh", sa.BigInteger(), nullable=False),
        sa.Column("generation_wh", sa.BigInteger(), nullable=False),
        sa.Column("consumption_wh", sa.BigInteger(), nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_meter_rollups_daily_meter_id_meters")
        ),
        sa.PrimaryKeyConstraint("meter_id", "channel", "bucket_start", name=op.f("pk_meter_rollups_daily")),
    )
    op.create_table(
        "meter_rollups_hourly",
        sa.Column("meter_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.SmallInteger(), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("import_wh", sa.BigInteger(), nullable=False),
        sa.Column("export_wh", sa.BigInteger(), nullable=False),
        sa.Column("generation_wh", sa.BigInteger(), nullable=False),
        sa.Column("consumption_wh", sa.BigInteger(), nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_meter_rollups_hourly_meter_id_meters")
        ),
        sa.PrimaryKeyConstraint("meter_id", "channel", "bucket_start", name=op.f("pk_meter_rollups_hourly")),
    )
    op.create_table(
        "reading_revisions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("meter_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.SmallInteger(), nullable=False),
        sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replaced_by_trust", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_reading_revisions_meter_id_meters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reading_revisions")),
    )
    with op.batch_alter_table("reading_revisions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reading_revisions_key", ["meter_id", "channel", "interval_start"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("reading_revisions", schema=None) as batch_op:
        batch_op.drop_index("ix_reading_revisions_key")

    op.drop_table("reading_revisions")
    op.drop_table("meter_rollups_hourly")
    op.drop_table("meter_rollups_daily")
    with op.batch_alter_table("meter_readings", schema=None) as batch_op:
        batch_op.drop_index("ix_meter_readings_mint_pending")
        batch_op.drop_index("ix_meter_readings_id")

    op.drop_table("meter_readings")
    op.drop_table("meter_ingest_state")
    with op.batch_alter_table("device_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_keys_meter_id"))

    op.drop_table("device_keys")
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meters_owner_id"))

    op.drop_table("meters")
    with op.batch_alter_table("meter_claim_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_meter_claim_attempts_user_created")
        batch_op.drop_index(batch_op.f("ix_meter_claim_attempts_serial"))

    op.drop_table("meter_claim_attempts")
    with op.batch_alter_table("ingest_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingest_jobs_user_id"))

    op.drop_table("ingest_jobs")
