"""What other domains may read about meters and their device keys: the queries meters exports.

Ingest reads the facts of a whole batch at once (a head-end batch carries a thousand meters), so
each fact is a named tuple filled positionally from one query of exactly its columns: reading
the same facts as ORM objects, or by attribute name from SQLAlchemy rows, cost more CPU than the
queries themselves. The queries are kept here, beside the tables, so callers never select from
meters' tables themselves.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import NamedTuple, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.core.db import columns_of, pg_rows_in_array, rows_in
from gridtokenx.meters.models import DeviceKey, Meter

METERS = cast(Table, Meter.__table__)
KEYS = cast(Table, DeviceKey.__table__)


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


class MeterOwner(NamedTuple):
    id: uuid.UUID
    owner_id: uuid.UUID | None


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


_METER_QUERY = columns_of(METERS, MeterFacts)
_KEY_QUERY = columns_of(KEYS, KeyFacts)
_PG_METERS = pg_rows_in_array(METERS, MeterFacts, "serial", "text[]")
_PG_KEYS = pg_rows_in_array(KEYS, KeyFacts, "meter_id", "uuid[]")
_OWNER_QUERY = columns_of(METERS, MeterOwner)
_PG_OWNERS = pg_rows_in_array(METERS, MeterOwner, "id", "uuid[]")


async def meters_by_serial(session: AsyncSession, serials: set[str]) -> dict[str, MeterFacts]:
    if not serials:
        return {}
    wanted = sorted(serials)
    rows = await rows_in(session, _PG_METERS, _METER_QUERY, METERS.c.serial, wanted)
    return {facts.serial: facts for facts in map(MeterFacts._make, rows)}


async def owners_of(session: AsyncSession, meter_ids: set[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID | None]:
    """Each meter's owner, for a whole batch in one query."""
    if not meter_ids:
        return {}
    rows = await rows_in(session, _PG_OWNERS, _OWNER_QUERY, METERS.c.id, sorted(meter_ids))
    return {meter.id: meter.owner_id for meter in map(MeterOwner._make, rows)}


async def keys_by_meter(session: AsyncSession, meter_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[KeyFacts]]:
    found: dict[uuid.UUID, list[KeyFacts]] = defaultdict(list)
    if meter_ids:
        rows = await rows_in(session, _PG_KEYS, _KEY_QUERY, KEYS.c.meter_id, meter_ids)
        for facts in map(KeyFacts._make, rows):
            found[facts.meter_id].append(facts)
    return found


async def mark_keys_used(session: AsyncSession, key_ids: list[uuid.UUID], moment: datetime) -> None:
    """Record that these device keys verified a reading at `moment` (shown to their owners)."""
    if key_ids:
        await session.execute(update(KEYS).where(KEYS.c.id.in_(key_ids)).values(last_used_at=moment))


async def meter_ids_owned_by(session: AsyncSession, owner_id: uuid.UUID) -> list[uuid.UUID]:
    return list(await session.scalars(select(METERS.c.id).where(METERS.c.owner_id == owner_id)))
