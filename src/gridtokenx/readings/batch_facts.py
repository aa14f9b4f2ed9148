"""What an ingest batch reads about its meters, their device keys and their ingest state.

Each is a named tuple filled positionally from one query of exactly its columns. A head-end
batch carries a thousand meters; reading the same facts as ORM objects, or by attribute name from
SQLAlchemy rows, cost more CPU than the queries themselves.

On PostgreSQL the wanted ids go as one array joined with `unnest`, on the asyncpg connection:
SQLAlchemy's expanding `IN` renders a bind per id on every call and makes a new statement for
every batch size (PostgreSQL prepares each anew), and `= ANY($1)` lets the planner scan a small
table comparing every row with every id. Measured for 100 / 1,000 meters: 1.2 / 11 ms of gateway
CPU per query with `IN`, 0.5 / 5.5 ms this way. SQLite keeps the `IN` query.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Select, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.meters.models import DeviceKey, Meter
from gridtokenx.readings.models import MeterIngestState
from gridtokenx.readings.store import asyncpg_connection, is_postgres

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


def _pg_query(table: Table, facts: type[NamedTuple], by: str, array_type: str, tail: str = "") -> str:
    """The rows of `table` whose `by` is in the array `$1` (PostgreSQL)."""
    columns = ", ".join(f"t.{name}" for name in facts._fields)
    return (
        f"SELECT {columns} FROM {table.name} AS t JOIN unnest($1::{array_type}) AS w({by}) USING ({by})"
        + tail
    )


_METER_QUERY = _columns(METERS, MeterFacts)
_KEY_QUERY = _columns(KEYS, KeyFacts)
_STATE_QUERY = _columns(STATE, StateFacts)
_PG_METERS = _pg_query(METERS, MeterFacts, "serial", "text[]")
_PG_KEYS = _pg_query(KEYS, KeyFacts, "meter_id", "uuid[]")
_PG_STATES = _pg_query(STATE, StateFacts, "meter_id", "uuid[]")
# rows are locked in the order they are returned: one order for every batch, so two batches
# sharing meters wait for each other instead of deadlocking
_PG_STATES_LOCKED = _PG_STATES + " ORDER BY t.meter_id FOR UPDATE OF t"


async def _rows(
    session: AsyncSession, pg_query: str, query: Select[Any], column: Any, ids: list[Any]
) -> Iterable[Any]:
    """The rows whose `column` is in `ids`: `pg_query` on PostgreSQL, `query` with an `IN` on SQLite
    (built only there)."""
    if is_postgres(session):
        return await (await asyncpg_connection(session)).fetch(pg_query, ids)
    return await session.execute(query.where(column.in_(ids)))


async def meters_by_serial(session: AsyncSession, serials: set[str]) -> dict[str, MeterFacts]:
    if not serials:
        return {}
    wanted = sorted(serials)
    rows = await _rows(session, _PG_METERS, _METER_QUERY, METERS.c.serial, wanted)
    return {facts.serial: facts for facts in map(MeterFacts._make, rows)}


async def keys_by_meter(session: AsyncSession, meter_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[KeyFacts]]:
    found: dict[uuid.UUID, list[KeyFacts]] = defaultdict(list)
    if meter_ids:
        rows = await _rows(session, _PG_KEYS, _KEY_QUERY, KEYS.c.meter_id, meter_ids)
        for facts in map(KeyFacts._make, rows):
            found[facts.meter_id].append(facts)
    return found


async def states_by_meter(
    session: AsyncSession, meter_ids: list[uuid.UUID], *, lock: bool
) -> dict[uuid.UUID, StateFacts]:
    """The meters' ingest-state rows, locked for the transaction when `lock` (PostgreSQL; SQLite
    has one writer and no row locks)."""
    pg_query = _PG_STATES_LOCKED if lock else _PG_STATES
    rows = await _rows(session, pg_query, _STATE_QUERY, STATE.c.meter_id, meter_ids)
    return {facts.meter_id: facts for facts in map(StateFacts._make, rows)}
