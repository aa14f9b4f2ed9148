"""Tables of the tokenization domain: the mint outbox, the chain transactions it rode in, debts.

One outbox row per mintable reading, keyed by (meter, channel, interval_start, revision): revision
0 is the reading as first stored, later revisions are corrections (a mint of a positive difference
or a burn of a negative one). A transaction row holds the signed bytes and signature before they
are sent, so a restart resends the very same bytes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gridtokenx.core.db import Base
from gridtokenx.core.types import UtcDateTime, utcnow


class EntryState(StrEnum):
    PENDING = "pending"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    DEAD_LETTER = "dead_letter"
    SKIPPED = "skipped"  # refused by a rule (too large, too old): never minted
    DEBT = "debt"  # a burn the owner's balance could not cover, netted against later mints


class TxState(StrEnum):
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"  # landed with an error, or refused: nothing moved
    EXPIRED = "expired"  # blockhash provably expired without landing: its entries were re-queued


class Kind(StrEnum):
    MINT = "mint"
    BURN = "burn"


class MintEntry(Base):
    __tablename__ = "mint_outbox"
    __table_args__ = (
        UniqueConstraint("meter_id", "channel", "interval_start", "revision"),
        Index("ix_mint_outbox_state_due", "state", "next_attempt_at"),
        Index("ix_mint_outbox_reading_id", "reading_id"),
        Index("ix_mint_outbox_user_id", "user_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    meter_id: Mapped[uuid.UUID] = mapped_column()
    channel: Mapped[int] = mapped_column(SmallInteger)
    interval_start: Mapped[datetime] = mapped_column(UtcDateTime())
    revision: Mapped[int] = mapped_column(default=0)
    reading_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[uuid.UUID | None] = mapped_column()
    kind: Mapped[str] = mapped_column(String(8), default=Kind.MINT)
    amount_wh: Mapped[int] = mapped_column(BigInteger)
    amount_units: Mapped[int | None] = mapped_column(BigInteger)
    ledger_units: Mapped[int | None] = mapped_column(BigInteger)  # moved on chain (after netting debt)
    wallet: Mapped[str | None] = mapped_column(String(44))
    state: Mapped[str] = mapped_column(String(16), default=EntryState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500))
    tx_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("mint_txs.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class MintTx(Base):
    __tablename__ = "mint_txs"
    __table_args__ = (Index("ix_mint_txs_state", "state"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16), default=TxState.SUBMITTED)
    signature: Mapped[str] = mapped_column(String(88), unique=True)
    tx_bytes: Mapped[bytes] = mapped_column(LargeBinary)
    last_valid_height: Mapped[int] = mapped_column(BigInteger)
    memo_sha256: Mapped[str] = mapped_column(String(64))
    amount_units: Mapped[int] = mapped_column(BigInteger)  # moved on chain by this transaction
    netted_units: Mapped[int] = mapped_column(BigInteger, default=0)  # debt settled instead of minted
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class MintDebt(Base):
    """Energy an owner was credited for and must give back (a correction down they could not pay)."""

    __tablename__ = "mint_debts"

    user_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    units: Mapped[int] = mapped_column(BigInteger, default=0)
