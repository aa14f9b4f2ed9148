"""Wire types of the readings API responses (request bodies are parsed from raw bytes by
`native` and `legacy`, never by per-item model construction)."""

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


# --- request bodies, for the OpenAPI document only -------------------------------------------
# The routes read raw bytes (see `native` and `legacy`); these schemas say what they accept.

_KWH: dict[str, Any] = {
    "anyOf": [
        {"type": "number"},
        {"type": "string", "pattern": r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$"},
    ],
    "description": "kWh as a JSON number or numeric string, read exactly (never through a float)",
}
_TIMESTAMP: dict[str, Any] = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC offset"}
_SERIAL: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 64}
_TEXT: dict[str, Any] = {"type": "string", "minLength": 1}


def _compat(required: dict[str, Any], optional: dict[str, Any], extras: int) -> dict[str, Any]:
    """A compatibility body: unknown fields are kept with the reading, up to `extras` keys."""
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **optional},
        "additionalProperties": True,
        "maxProperties": len(required) + len(optional) + extras,
    }


def compat_body_schemas(extras: int) -> dict[str, dict[str, Any]]:
    """The compatibility routes' request bodies, by shape name (a batch's item count is bounded
    by the BATCH_MAX_SIZE setting: 413 beyond it)."""
    telemetry = {"energy_generated": _KWH, "energy_consumed": _KWH, "meter_signature": _TEXT}
    submit_required = {
        "meter_serial": _SERIAL,
        "wallet_address": _TEXT,
        "kwh_amount": _KWH,
        "reading_timestamp": _TIMESTAMP,
    }
    submit = _compat(submit_required, telemetry, extras)
    energy = _compat(
        {
            "meter_id": _SERIAL,
            "timestamp": _TIMESTAMP,
            "energy_generated": _KWH,
            "energy_consumed": _KWH,
            "engineering_authority_signature": _TEXT,
        },
        {},
        extras,
    )
    simulator_optional = {"meter_serial": _SERIAL, "meter_id": _SERIAL, "timestamp": _TIMESTAMP, **telemetry}
    simulator = _compat({"kwh": _KWH}, simulator_optional, extras)

    def batch(item: dict[str, Any]) -> dict[str, Any]:
        items = {"type": "array", "items": item}
        return {"type": "object", "required": ["readings"], "properties": {"readings": items}}

    return {
        "submit-reading": submit,
        "submit-batch": batch(submit),
        "energy-reading": energy,
        "simulator-reading": simulator,
        "simulator-batch": batch(simulator),
    }
