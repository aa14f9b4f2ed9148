"""A meter's ingest state while a batch is processed, and its row: the codec of the `recent`
document and the SQL that locks, creates and writes the rows back.

The state row is what lets a batch judge a reading without reading the meter's history: the
replay window of sequence numbers, the last register values, the last few values of each
channel, and the latest measured reading (for gap estimates). On PostgreSQL the rows are locked
for the batch's transaction, so the batches of one meter take turns (SQLite has one writer).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.core.db import asyncpg_connection, is_postgres, json_document
from gridtokenx.core.types import utc_from_epoch, utcnow
from gridtokenx.readings import vee
from gridtokenx.readings.batch_facts import STATE, StateFacts, states_by_meter
from gridtokenx.readings.reading import (
    CONSUMPTION,
    EXPORT,
    EXPORT_REGISTER,
    GENERATION,
    IMPORT,
    IMPORT_REGISTER,
    QUANTITIES,
    Reading,
    Source,
    Trust,
)
from gridtokenx.readings.replay import ReplayWindow
from gridtokenx.readings.store import as_utc, dialect_insert

RECENT_KEEP = 4


def epoch_or_none(moment: datetime | None) -> int | None:
    return None if moment is None else int(as_utc(moment).timestamp())


@dataclass
class MeterState:
    """The in-memory ingest state of one meter while a batch is processed; written back to its
    row once per batch, by `save_states`."""

    meter_id: uuid.UUID
    replay: ReplayWindow | None
    recent: dict[str, list[int]]
    first_start: int | None  # the oldest interval seen: no same-slot history before it
    register_start: int | None
    import_register: int | None
    export_register: int | None
    loaded_last: LastReading | None  # the latest measured reading as the batch found it
    seq_row: tuple[int | None, bytes | None]  # the stored window, kept when `replay` stays None
    newest: Reading | None = None  # the latest reading of this batch, once later than `loaded_last`
    snapshot: vee.RegisterSnapshot | None = None  # `registers()` until the registers move

    @classmethod
    def load(cls, row: StateFacts, window: int) -> MeterState:
        replay = None
        if row.seq_highest is not None and row.seq_bitmap is not None:
            replay = ReplayWindow.from_bitmap(row.seq_highest, row.seq_bitmap, window)
        recent, last, first_start = _read_recent(row.recent or {})
        return cls(
            row.meter_id,
            replay,
            recent,
            first_start,
            epoch_or_none(row.register_interval_start),
            row.last_import_register_wh,
            row.last_export_register_wh,
            last,
            (row.seq_highest, row.seq_bitmap),
        )

    @property
    def last(self) -> LastReading | None:
        """The latest measured reading (for gap estimation), as the state row stores it; built
        from `newest` only when asked, not for every reading remembered."""
        reading = self.newest
        if reading is None:
            return self.loaded_last
        return [getattr(reading, name) for name in _LAST_FIELDS]

    def latest(self) -> int | None:
        """The start of the latest interval stored for this meter (any channel), if known."""
        if self.newest is not None:
            return self.newest.interval_start
        return None if self.loaded_last is None else int(self.loaded_last[0])

    def registers(self, interval_s: int) -> vee.RegisterSnapshot | None:
        if self.register_start is None:
            return None
        if self.snapshot is None:
            self.snapshot = vee.RegisterSnapshot(
                interval_start=self.register_start,
                duration=interval_s,
                import_register_wh=self.import_register,
                export_register_wh=self.export_register,
            )
        return self.snapshot

    def remember(self, reading: Reading) -> None:
        recent = self.recent
        for name, value in reading.quantity_values().items():
            values = recent.get(name)
            if values is None:
                recent[name] = [value]
                continue
            values.append(value)
            if len(values) > RECENT_KEEP:
                del values[:-RECENT_KEEP]
        start = reading.interval_start
        if (reading.import_register_wh is not None or reading.export_register_wh is not None) and (
            self.register_start is None or start >= self.register_start
        ):
            self.register_start = start
            self.import_register = reading.import_register_wh
            self.export_register = reading.export_register_wh
            self.snapshot = None
        if self.first_start is None or start < self.first_start:
            self.first_start = start
        latest = self.latest()
        if latest is None or start >= latest:
            self.newest = reading

    def row_values(self, now: datetime) -> dict[str, Any]:
        """The state row as it must be written back."""
        seq_highest, seq_bitmap = self.seq_row
        if self.replay is not None:
            seq_highest, seq_bitmap = self.replay.highest, self.replay.bitmap_bytes()
        last = self.last
        return {
            "b_meter_id": self.meter_id,
            "seq_highest": seq_highest,
            "seq_bitmap": seq_bitmap,
            "register_interval_start": None
            if self.register_start is None
            else utc_from_epoch(self.register_start),
            "last_import_register_wh": self.import_register,
            "last_export_register_wh": self.export_register,
            "last_interval_start": None if last is None else utc_from_epoch(int(last[0])),
            "recent": _recent_document(self.recent, last, self.first_start),
            "updated_at": now,
        }


# The `recent` document of a state row: {"v": the last values of each of QUANTITIES (oldest first),
# "l": the latest measured reading as _LAST_FIELDS (`Reading` attributes), "f": the oldest interval
# start seen}. Positional,
# because every batch rewrites it for each of its meters (a third of the size of the named layout
# that rows written before kept: {"values": {channel: [...]}, "last": {...}, "first_start": ...}).
_LAST_FIELDS = (
    "interval_start",
    "duration",
    IMPORT,
    EXPORT,
    GENERATION,
    CONSUMPTION,
    IMPORT_REGISTER,
    EXPORT_REGISTER,
)


LastReading = list[Any]  # the latest measured reading, in _LAST_FIELDS order


def _recent_document(
    recent: dict[str, list[int]], last: LastReading | None, first_start: int | None
) -> dict[str, Any]:
    """The `recent` document of a state row, in the positional layout above."""
    return {"v": [recent.get(name, []) for name in QUANTITIES], "l": last, "f": first_start}


def history_only_state(first_start: int) -> dict[str, Any]:
    """The `recent` document of a meter whose stored intervals begin at `first_start`, with no
    latest reading or recent values remembered (how the ingest benchmark seeds stored history):
    the spike rule looks back to `first_start`, and the meter's next batch is looked up in full."""
    return _recent_document({}, None, first_start)


def _read_recent(stored: dict[str, Any]) -> tuple[dict[str, list[int]], LastReading | None, int | None]:
    """(recent values by channel, the latest measured reading, the oldest start seen), from
    either layout; the lists are freshly decoded for this batch and ours to change."""
    if "v" in stored:
        recent = {name: values for name, values in zip(QUANTITIES, stored["v"], strict=True) if values}
        return recent, stored.get("l"), stored.get("f")
    named = stored.get("last")
    last = None if named is None else [named.get(name) for name in _LAST_FIELDS]
    return stored.get("values") or {}, last, stored.get("first_start")


_SAVE_STATE = (
    update(STATE)
    .where(STATE.c.meter_id == bindparam("b_meter_id"))
    .values({c.name: bindparam(c.name) for c in STATE.c if c.name != "meter_id"})
)
# PostgreSQL: the batch's state rows as one JSON document (`row_values` encoded by msgspec), one
# statement instead of an executemany of a hundred.
_PG_SAVE_STATE = (
    "UPDATE meter_ingest_state AS s SET seq_highest = r.seq_highest, "
    "seq_bitmap = decode(r.seq_bitmap, 'base64'), register_interval_start = r.register_interval_start, "
    "last_import_register_wh = r.last_import_register_wh, "
    "last_export_register_wh = r.last_export_register_wh, last_interval_start = r.last_interval_start, "
    "recent = r.recent, updated_at = r.updated_at "
    "FROM json_to_recordset($1::json) AS r(b_meter_id uuid, seq_highest bigint, seq_bitmap text, "
    "register_interval_start timestamptz, last_import_register_wh bigint, last_export_register_wh bigint, "
    "last_interval_start timestamptz, recent json, updated_at timestamptz) "
    "WHERE s.meter_id = r.b_meter_id"
)


def last_reading(serial: str, last: LastReading) -> Reading:
    """The stored form of a meter's latest measured reading as a `Reading` (to estimate a gap)."""
    start, duration, imported, exported, generated, consumed, import_register, export_register = last
    return Reading(
        meter_serial=serial,
        interval_start=int(start),
        duration=int(duration),
        observed_at=int(start) + int(duration),
        import_wh=int(imported or 0),
        export_wh=int(exported or 0),
        generation_wh=generated,
        consumption_wh=consumed,
        import_register_wh=import_register,
        export_register_wh=export_register,
        source=Source.NATIVE,
        trust=Trust.DEVICE_SIGNED,
    )


async def lock_states(
    session: AsyncSession, meter_ids: list[uuid.UUID], window: int
) -> dict[uuid.UUID, MeterState]:
    """Each meter's ingest state, locked for this transaction on PostgreSQL (SQLite has one
    writer); a meter seen for the first time gets its row first, so the lock covers it too."""
    if not meter_ids:
        return {}
    lock = is_postgres(session)
    rows = await states_by_meter(session, meter_ids, lock=lock)
    missing = [meter_id for meter_id in meter_ids if meter_id not in rows]
    if missing:
        now = utcnow()
        insert = dialect_insert(session, STATE).on_conflict_do_nothing(index_elements=["meter_id"])
        await session.execute(insert, [{"meter_id": m, "recent": {}, "updated_at": now} for m in missing])
        rows.update(await states_by_meter(session, missing, lock=lock))
    return {meter_id: MeterState.load(row, window) for meter_id, row in rows.items()}


async def save_states(session: AsyncSession, states: dict[uuid.UUID, MeterState]) -> None:
    """One UPDATE for the batch's meters: the ORM's unit of work per meter cost more than the rest
    of its readings' storage (docs/decisions/2026-12-04-ingest-hot-path-figures.md)."""
    if not states:
        return
    now = utcnow()
    rows = [state.row_values(now) for state in states.values()]
    if is_postgres(session):
        await (await asyncpg_connection(session)).execute(_PG_SAVE_STATE, json_document(rows))
    else:
        await session.execute(_SAVE_STATE, rows)
