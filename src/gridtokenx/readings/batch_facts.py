"""What an ingest batch reads about its meters' ingest state (the meters' own facts and device
keys come from `meters.facts`).

Like the meters' facts, each row is a named tuple filled positionally from one query of exactly
its columns, the wanted ids sent as one array on PostgreSQL (see `core.db.pg_rows_in_array`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.core.db import columns_of, pg_rows_in_array, rows_in
from gridtokenx.readings.models import MeterIngestState

STATE = cast(Table, MeterIngestState.__table__)


class StateFacts(NamedTuple):
    meter_id: uuid.UUID
    seq_highest: int | None
    seq_bitmap: bytes | None
    register_interval_start: datetime | None
    last_import_register_wh: int | None
    last_export_register_wh: int | None
    recent: dict[str, Any] | None


_STATE_QUERY = columns_of(STATE, StateFacts)
_PG_STATES = pg_rows_in_array(STATE, StateFacts, "meter_id", "uuid[]")
# rows are locked in the order they are returned: one order for every batch, so two batches
# sharing meters wait for each other instead of deadlocking
_PG_STATES_LOCKED = _PG_STATES + " ORDER BY t.meter_id FOR UPDATE OF t"


async def states_by_meter(
    session: AsyncSession, meter_ids: list[uuid.UUID], *, lock: bool
) -> dict[uuid.UUID, StateFacts]:
    """The meters' ingest-state rows, locked for the transaction when `lock` (PostgreSQL; SQLite
    has one writer and no row locks)."""
    pg_query = _PG_STATES_LOCKED if lock else _PG_STATES
    rows = await rows_in(session, pg_query, _STATE_QUERY, STATE.c.meter_id, meter_ids)
    return {facts.meter_id: facts for facts in map(StateFacts._make, rows)}
