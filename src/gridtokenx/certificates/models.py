"""The certificates domain's tables: certificates, their history, and a lock row per meter."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gridtokenx.core.db import Base
from gridtokenx.core.types import UtcDateTime, utcnow


class Certificate(Base):
    """One meter, one period, one Token-2022 NFT. `(meter_id, period_start, period_end)` is the
    natural key (also the ledger's idempotency key), so the same period is never issued twice;
    overlapping periods are refused under the meter's lock row (`CertificateMeterLock`).

    `pending` holds a ledger action recorded before it is sent (`{"action", "key", ...}`): after
    a crash the same action is resumed with the same key, never signed anew."""

    __tablename__ = "certificates"
    __table_args__ = (
        UniqueConstraint("meter_id", "period_start", "period_end"),
        Index("ix_certificates_holder_status", "holder_id", "status"),
        Index("ix_certificates_retired_for", "retired_by", "period_start"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    meter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meters.id"), index=True)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    period_start: Mapped[datetime] = mapped_column(UtcDateTime())
    period_end: Mapped[datetime] = mapped_column(UtcDateTime())
    energy_wh: Mapped[int] = mapped_column(BigInteger)
    readings_hash: Mapped[str] = mapped_column(String(64))
    reading_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    excluded: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    facility_id: Mapped[str] = mapped_column(String(64))
    technology: Mapped[str] = mapped_column(String(32))
    country: Mapped[str] = mapped_column(String(8))
    zone: Mapped[str] = mapped_column(String(32))
    mint: Mapped[str] = mapped_column(String(44), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    holder_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    holder_wallet: Mapped[str] = mapped_column(String(44))
    transfers: Mapped[int] = mapped_column(default=0)
    pending: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True)
    )  # SQL NULL, so IS NULL finds it
    issued_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    retired_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    beneficiary: Mapped[str | None] = mapped_column(String(200))
    purpose: Mapped[str | None] = mapped_column(String(200))
    location: Mapped[str | None] = mapped_column(String(200))
    withdraw_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    issued_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class CertificateEvent(Base):
    """The audit log of a certificate: every action with its actor, wallets and ledger signature."""

    __tablename__ = "certificate_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    certificate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("certificates.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    from_wallet: Mapped[str | None] = mapped_column(String(44))
    to_wallet: Mapped[str | None] = mapped_column(String(44))
    signature: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CertificateMeterLock(Base):
    """One row per meter, written first in every issuance transaction: on PostgreSQL the upsert
    locks the row until commit, on SQLite it takes the write lock, so two issuers of the same
    meter take turns and the second sees the first's period in its overlap check."""

    __tablename__ = "certificate_meter_locks"

    meter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    issued: Mapped[int] = mapped_column(BigInteger, default=0)
