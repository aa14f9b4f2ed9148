"""Wire types of the readings API responses (request bodies are parsed from raw bytes by
`envelope` and `legacy`, never by per-item model construction)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: str
    total: int
    accepted: int
    duplicates: int
    rejected: int
    results: list[dict[str, Any]]
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class ReadingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    meter_id: uuid.UUID
    channel: int
    interval_start: datetime
    duration_s: int
    import_wh: int
    export_wh: int
    generation_wh: int | None
    consumption_wh: int | None
    import_register_wh: int | None
    export_register_wh: int | None
    trust: str
    source: str
    flags: list[str]
    version: int
    mintable_wh: int
    seq: int | None
    key_id: str | None
    extras: dict[str, Any]
    received_at: datetime


class ReadingPage(BaseModel):
    items: list[ReadingOut]
    total: int
    limit: int
    offset: int


class RollupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    bucket_start: datetime
    channel: int
    import_wh: int
    export_wh: int
    generation_wh: int
    consumption_wh: int
    readings: int


class GapOut(BaseModel):
    start: datetime
    end: datetime
    intervals: int
    estimated_intervals: int


class MeterTotals(BaseModel):
    meters: int
    readings: int
    import_wh: int
    export_wh: int
    generation_wh: int
    consumption_wh: int
    mintable_wh: int
    import_kwh: str
    export_kwh: str
