"""Wire types of the tokenization domain: amounts as integers (Wh) and exact decimal strings (tokens)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from gridtokenx.readings.schemas import MeterTotals


class MintFromReading(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reading_id: uuid.UUID


class MintEntryOut(BaseModel):
    id: uuid.UUID
    reading_id: str
    meter_id: uuid.UUID
    channel: int
    interval_start: datetime
    revision: int
    kind: str
    amount_wh: int
    amount: str | None  # token base units, as a string (they exceed JavaScript's safe integers)
    amount_tokens: str | None
    state: str
    minted: bool
    signature: str | None
    attempts: int
    error: str | None


class MintFromReadingOut(BaseModel):
    reading_id: str
    state: str
    signature: str | None
    entries: list[MintEntryOut]


class MintedReadingsPage(BaseModel):
    items: list[MintEntryOut]
    total: int
    limit: int
    offset: int


class MintTotalsOut(BaseModel):
    minted_wh: int
    unminted_wh: int
    burned_wh: int
    minted_amount: str
    minted_tokens: str


class OwnerTotalsOut(MeterTotals, MintTotalsOut):
    """`GET /api/meters/stats`: the readings' totals and what of them was minted."""


class TokenizationStatus(BaseModel):
    auto_mint_enabled: bool
    queue_depth: int
    oldest_pending_age_s: float | None
    in_flight: int
    dead_letters: int
    debts: int
    last_error: str | None
    lease_holder: str | None
    lease_expires_at: datetime | None
