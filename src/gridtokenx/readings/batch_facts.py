"""What an ingest batch reads about its meters, their device keys and their ingest state.

Each is a named tuple filled positionally from one Core query of exactly its columns. A head-end
batch carries a thousand meters; reading the same facts as ORM objects, or by attribute name from
SQLAlchemy rows, cost more CPU than the queries themselves.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Select, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.meters.models import DeviceKey, Meter
from gridtokenx.readings.models import MeterIngestState

METERS = cast(Table, Meter.__table__)
KEYS = cast(Table, DeviceKey.__table__)
STATE = cast(Table, MeterIngestState.__table__)


class MeterFacts(NamedTuple):
    id: uuid.UUID
    serial: str
    owner_id: uuid.UUID | None
    status: str
    interval_seconds: int
    commissioned_at: datetime | None
    capacity_w: int | None
    attested_mintable: bool | None
    register_modulus_wh: int | None
    register_reset_at: datetime | None
    latitude: float | None
    longitude: float | None


class KeyFacts(NamedTuple):
    id: uuid.UUID
    meter_id: uuid.UUID
    key_id: str
    public_key: str
    status: str
    valid_from: datetime
    valid_until: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class StateFacts(NamedTuple):
    meter_id: uuid.UUID
    seq_highest: int | None
    seq_bitmap: bytes | None
    register_interval_start: datetime | None
    last_import_register_wh: int | None
    last_export_register_wh: int | None
    recent: dict[str, Any] | None


def _columns(table: Table, facts: type[NamedTuple]) -> Select[Any]:
    return select(*(table.c[name] for name in facts._fields))


_METER_QUERY = _columns(METERS, MeterFacts)
_KEY_QUERY = _columns(KEYS, KeyFacts)
_STATE_QUERY = _columns(STATE, StateFacts)


async def meters_by_serial(session: AsyncSession, serials: set[str]) -> dict[str, MeterFacts]:
    if not serials:
        return {}
    rows = await session.execute(_METER_QUERY.where(METERS.c.serial.in_(sorted(serials))))
    return {facts.serial: facts for facts in map(MeterFacts._make, rows)}


async def keys_by_meter(session: AsyncSession, meter_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[KeyFacts]]:
    found: dict[uuid.UUID, list[KeyFacts]] = defaultdict(list)
    if meter_ids:
        for facts in map(
            KeyFacts._make, await session.execute(_KEY_QUERY.where(KEYS.c.meter_id.in_(meter_ids)))
        ):
            found[facts.meter_id].append(facts)
    return found


async def states_by_meter(
    session: AsyncSession, meter_ids: list[uuid.UUID], *, lock: bool
) -> dict[uuid.UUID, StateFacts]:
    """The meters' ingest-state rows, locked for the transaction when `lock` (PostgreSQL)."""
    query = _STATE_QUERY.where(STATE.c.meter_id.in_(meter_ids))
    if lock:
        query = query.with_for_update()
    return {facts.meter_id: facts for facts in map(StateFacts._make, await session.execute(query))}
