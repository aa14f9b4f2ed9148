"""Meter registry, claim attempts (audit), and per-meter device keys."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gridtokenx.core.db import Base
from gridtokenx.core.types import UtcDateTime, utcnow


class MeterType(enum.StrEnum):
    PROSUMER = "prosumer"
    CONSUMER = "consumer"
    HYBRID = "hybrid"
    BATTERY = "battery"


class MeterStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    MAINTENANCE = "maintenance"
    DECOMMISSIONED = "decommissioned"


class KeyStatus(enum.StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class Meter(Base):
    __tablename__ = "meters"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    meter_type: Mapped[str] = mapped_column(String(16), default=MeterType.PROSUMER.value)
    location: Mapped[str | None] = mapped_column(String(200))
    zone_id: Mapped[int | None] = mapped_column()
    latitude: Mapped[float | None] = mapped_column()
    longitude: Mapped[float | None] = mapped_column()
    capacity_w: Mapped[int] = mapped_column(default=10_000)
    interval_seconds: Mapped[int] = mapped_column(default=900)
    commissioned_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(16), default=MeterStatus.PENDING.value)
    meter_key_hash: Mapped[str | None] = mapped_column(String(255))
    # None: mint gateway-attested readings only while the meter has no device key.
    attested_mintable: Mapped[bool | None] = mapped_column()
    # Registers wrap to 0 at this value (None: never); reset when the meter was last replaced.
    register_modulus_wh: Mapped[int | None] = mapped_column(BigInteger)
    register_reset_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class MeterClaimAttempt(Base):
    """Every ownership-verification attempt, successful or not (rate limiting and audit)."""

    __tablename__ = "meter_claim_attempts"
    __table_args__ = (Index("ix_meter_claim_attempts_user_created", "user_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    serial: Mapped[str] = mapped_column(String(64), index=True)
    succeeded: Mapped[bool] = mapped_column()
    reason: Mapped[str] = mapped_column(String(64))
    client_ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class DeviceKey(Base):
    """A meter's Ed25519 public key. Rotation keeps the old key valid until `valid_until`."""

    __tablename__ = "device_keys"
    __table_args__ = (UniqueConstraint("meter_id", "key_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    meter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meters.id", ondelete="CASCADE"), index=True)
    key_id: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=KeyStatus.ACTIVE.value)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    valid_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoke_reason: Mapped[str | None] = mapped_column(String(200))
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
