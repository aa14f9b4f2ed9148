"""The market's tables: epochs, orders (with their fills) and settlement transactions."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gridtokenx.core.db import Base
from gridtokenx.core.types import UtcDateTime, utcnow


class MarketEpoch(Base):
    """One auction window; `status` moves pending -> active -> cleared -> settled, never back."""

    __tablename__ = "market_epochs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime(), unique=True)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(16), index=True)
    price: Mapped[str | None] = mapped_column(String(80))  # exact Fraction "p/q" in base units per kWh
    volume_wh: Mapped[int] = mapped_column(BigInteger, default=0)
    certificate: Mapped[str | None] = mapped_column(Text)  # JSON
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    settled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class MarketOrder(Base):
    """A limit order and its escrow. `escrow` is in the base units of the token it locked."""

    __tablename__ = "market_orders"
    __table_args__ = (Index("ix_market_orders_epoch_status", "epoch_id", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    epoch_id: Mapped[int] = mapped_column(ForeignKey("market_epochs.id", ondelete="RESTRICT"))
    user_id: Mapped[uuid.UUID] = mapped_column(index=True)
    wallet: Mapped[str] = mapped_column(String(44))
    side: Mapped[str] = mapped_column(String(4))
    quantity_wh: Mapped[int] = mapped_column(BigInteger)
    limit_price: Mapped[int] = mapped_column(BigInteger)
    escrow: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    filled_wh: Mapped[int] = mapped_column(BigInteger, default=0)
    payment: Mapped[int] = mapped_column(BigInteger, default=0)
    escrow_signature: Mapped[str | None] = mapped_column(String(100))
    approval_message: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class MarketSettlement(Base):
    """One atomic ledger transaction of an epoch's settlement; (epoch_id, seq) is its natural key.

    The signed bytes and signature are stored before the first send and resent as they are until
    the ledger confirms them or proves the blockhash expired."""

    __tablename__ = "market_settlements"
    __table_args__ = (UniqueConstraint("epoch_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    epoch_id: Mapped[int] = mapped_column(ForeignKey("market_epochs.id", ondelete="RESTRICT"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    legs: Mapped[str] = mapped_column(Text)  # JSON [[order_id, asset, to, amount], ...]
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending, sent, confirmed, failed
    tx_bytes: Mapped[bytes | None] = mapped_column(LargeBinary)
    signature: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
