"""Wire types of the certificates domain. Energy travels as integer Wh; times as UTC datetimes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class IssueIn(BaseModel):
    meter_id: uuid.UUID
    period_start: datetime
    period_end: datetime


class TransferIn(BaseModel):
    to_wallet: str = Field(min_length=32, max_length=44)


class RetireIn(BaseModel):
    beneficiary: str = Field(min_length=1, max_length=200)
    purpose: str = Field(min_length=1, max_length=200)
    location: str | None = Field(default=None, max_length=200)


class WithdrawIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class ExcludedReading(BaseModel):
    reading_id: str
    interval_start: datetime
    reason: str


class CertificateOut(BaseModel):
    id: uuid.UUID
    meter_id: uuid.UUID
    facility_id: str
    period_start: datetime
    period_end: datetime
    energy_wh: int
    technology: str
    country: str
    zone: str
    readings_hash: str
    mint: str
    status: str
    owner_id: uuid.UUID
    holder_wallet: str
    transfers: int
    issued_at: datetime | None
    excluded: list[ExcludedReading]
    beneficiary: str | None = None
    purpose: str | None = None
    location: str | None = None
    withdraw_reason: str | None = None


class HistoryOut(BaseModel):
    action: str
    at: datetime
    actor_id: uuid.UUID | None
    from_wallet: str | None
    to_wallet: str | None
    signature: str | None
    details: dict[str, Any]


class CertificateDetail(CertificateOut):
    reading_ids: list[str]
    history: list[HistoryOut]


class CertificatePage(BaseModel):
    items: list[CertificateOut]
    total: int


class VerifyOut(BaseModel):
    """What the ledger says about a certificate, checked against the platform's records."""

    valid: bool
    reasons: list[str]
    certificate_id: uuid.UUID | None
    mint: str
    status: str | None
    owner: str | None
    supply: int | None
    metadata: dict[str, str]
    readings_hash_on_ledger: str | None
    readings_hash_recomputed: str | None


class HourMatchOut(BaseModel):
    hour: datetime
    consumed_wh: int
    matched_wh: int
    matched_share: str  # exact decimal fraction 0..1 (six places, rounded down)


class MatchingOut(BaseModel):
    hours: list[HourMatchOut]
    consumed_wh: int
    matched_wh: int
