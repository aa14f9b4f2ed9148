"""Exactly-once storage of readings: insert new intervals, recognise identical resends, version
changed ones with an audit row, and keep the hourly/daily rollups in step, in one transaction.

Works on SQLite and PostgreSQL through each dialect's INSERT .. ON CONFLICT; a concurrent writer
that wins a race for the same key is detected (no RETURNING row) and the item is re-classified.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any, NamedTuple, cast

import msgspec
from sqlalchemy import LargeBinary, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.core.db import asyncpg_connection, is_postgres, json_document
from gridtokenx.core.ids import uuid7 as new_reading_id
from gridtokenx.readings.hooks import run_after_store
from gridtokenx.readings.models import DailyRollup, HourlyRollup, MeterReading, ReadingRevision

VALUE_FIELDS = (
    "import_wh",
    "export_wh",
    "generation_wh",
    "consumption_wh",
    "import_register_wh",
    "export_register_wh",
)
ROLLUP_FIELDS = ("import_wh", "export_wh", "generation_wh", "consumption_wh")
_ROLLUP_NAMES = (*ROLLUP_FIELDS, "readings")
ESTIMATED = "estimated"
KEY_CHUNK = 2000
WINDOW = timedelta(days=1)
RUN_GAP = timedelta(hours=1)
_ATTEMPTS = 3  # a lost insert race, then a revision race on the row that won it
READINGS = cast(Table, MeterReading.__table__)  # Core columns: no ORM row processing per fetched row


class StoreStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REVISED = "revised"


Key = tuple[uuid.UUID, int, datetime]


class NewReading(msgspec.Struct):
    """One interval to store, field for field as PostgreSQL's insert takes it: the store hands a
    whole batch to `msgspec.json.encode` in one call instead of building a record per reading.
    The VALUE_FIELDS are None when unreported (import and export always are reported).

    A msgspec Struct (one is built per stored reading), with a time-ordered id as text: the id is
    what the API returns and the insert sends, so it is never built as a `uuid.UUID`."""

    meter_id: uuid.UUID
    channel: int
    interval_start: datetime
    duration_s: int
    trust: str
    source: str
    observed_at: datetime
    import_wh: int = 0
    export_wh: int = 0
    generation_wh: int | None = None
    consumption_wh: int | None = None
    import_register_wh: int | None = None
    export_register_wh: int | None = None
    flags: list[str] = []
    seq: int | None = None
    key_id: str | None = None
    signature: bytes | None = None
    mintable_wh: int = 0
    extras: dict[str, Any] = {}
    id: str = msgspec.field(default_factory=new_reading_id)

    @property
    def key(self) -> Key:
        return (self.meter_id, self.channel, self.interval_start)

    @property
    def values(self) -> dict[str, int | None]:
        """Every field of VALUE_FIELDS."""
        return {name: getattr(self, name) for name in VALUE_FIELDS}

    @property
    def fingerprint(self) -> Fingerprint:
        return fingerprint(self.values, self.duration_s, self.trust)


Fingerprint = tuple[Any, ...]


def fingerprint(values: dict[str, int | None], duration_s: int, trust: str) -> Fingerprint:
    """What makes two versions of an interval the same: every stored value (VALUE_FIELDS order),
    the duration and the trust. An identical resend has the same fingerprint."""
    return (*(values.get(name) for name in VALUE_FIELDS), duration_s, trust)


class Stored(NamedTuple):
    status: StoreStatus
    reading_id: str
    version: int


@dataclass
class Existing:
    id: str
    duration_s: int
    version: int
    trust: str
    values: dict[str, int | None]

    @property
    def fingerprint(self) -> Fingerprint:
        return fingerprint(self.values, self.duration_s, self.trust)


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    return (postgresql.insert if is_postgres(session) else sqlite.insert)(table)


def _contribution(trust: str, values: dict[str, int | None]) -> tuple[int, int, int, int]:
    """What a reading adds to rollups, in ROLLUP_FIELDS order: estimates never count as measured
    energy."""
    if trust == ESTIMATED:
        return (0, 0, 0, 0)
    get = values.get
    return (
        get("import_wh") or 0,
        get("export_wh") or 0,
        get("generation_wh") or 0,
        get("consumption_wh") or 0,
    )


def as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def rows_by_keys(session: AsyncSession, keys: Iterable[Key], *columns: Any) -> list[tuple[Key, Any]]:
    """Rows of `meter_readings` whose natural key is in `keys`, each with its key: key columns
    first, then `columns` (columns of the `READINGS` table).

    Keys sorted by time are cut into runs wherever two neighbours lie more than `RUN_GAP` apart
    (or a run would span more than a day): a batch's own intervals form one run, a backfill of
    several days one per day. Each run is one index range scan
    (`meter_id IN (...) AND interval_start BETWEEN ...`) filtered to the exact keys here; a long
    list of row-value `IN` tuples would make PostgreSQL plan one OR branch per key instead, and
    one range over several days would read every interval in between.
    """
    wanted = set(keys)
    table = READINGS.c
    found: list[tuple[Key, Any]] = []
    ordered = sorted(wanted, key=lambda k: k[2])
    stamps = [k[2].timestamp() for k in ordered]
    gap, window = RUN_GAP.total_seconds(), WINDOW.total_seconds()
    start = 0
    while start < len(ordered):
        end = start + 1
        while (
            end < len(ordered)
            and stamps[end] - stamps[end - 1] <= gap
            and stamps[end] - stamps[start] <= window
            and end - start < KEY_CHUNK
        ):
            end += 1
        group = ordered[start:end]
        query = select(table.meter_id, table.channel, table.interval_start, *columns).where(
            table.meter_id.in_({k[0] for k in group}),
            table.channel.in_({k[1] for k in group}),
            table.interval_start >= group[0][2],
            table.interval_start <= group[-1][2],
        )
        for row in (await session.execute(query)).all():
            key = (row[0], row[1], as_utc(row[2]))
            if key in wanted:
                found.append((key, row))
        start = end
    return found


async def load_existing(session: AsyncSession, keys: Sequence[Key]) -> dict[Key, Existing]:
    found: dict[Key, Existing] = {}
    table = READINGS.c
    rows = await rows_by_keys(
        session,
        keys,
        table.id,
        table.duration_s,
        table.version,
        table.trust,
        *(table[name] for name in VALUE_FIELDS),
    )
    for key, row in rows:
        values = {name: row[7 + i] for i, name in enumerate(VALUE_FIELDS)}
        found[key] = Existing(str(row[3]), row[4], row[5], row[6], values)
    return found


# The columns of `meter_readings` PostgreSQL fills itself on insert, beyond NewReading's fields.
_PG_FILLED = {"version": "1", "mint_pending": "mintable_wh > 0", "received_at": "now()"}


def _row(item: NewReading) -> dict[str, Any]:
    """A reading as the ORM/Core insert takes it (SQLite, and revisions on both backends)."""
    row = msgspec.structs.asdict(item)
    row["id"] = uuid.UUID(item.id)
    row["version"] = 1
    row["mint_pending"] = item.mintable_wh > 0
    return row


def _pg_record_type(name: str) -> str:
    """A NewReading field's type in the `json_to_recordset` record: its column's type, but bytes
    arrive as the base64 text msgspec encodes them as."""
    column_type = READINGS.c[name].type
    return (
        "text"
        if isinstance(column_type, LargeBinary)
        else str(column_type.compile(dialect=postgresql.dialect()))
    )


def _pg_value(name: str) -> str:
    return f"decode({name}, 'base64')" if isinstance(READINGS.c[name].type, LargeBinary) else name


# Derived from NewReading's fields (msgspec encodes datetimes as RFC 3339, bytes as base64), so a
# new field of a stored reading is added to NewReading and the table, nowhere else.
_NEW_FIELDS = tuple(field.name for field in msgspec.structs.fields(NewReading))
_PG_RECORD = ", ".join(f"{name} {_pg_record_type(name)}" for name in _NEW_FIELDS)
_PG_COLUMNS = ", ".join((*_NEW_FIELDS, *_PG_FILLED))
_PG_SELECT = "SELECT {values} FROM json_to_recordset($1::json) AS r({record})".format(
    values=", ".join((*map(_pg_value, _NEW_FIELDS), *_PG_FILLED.values())), record=_PG_RECORD
)


def _pg_rollup_from(source: str, table: str, unit: str) -> str:
    """Add the rows of `source` (a CTE of inserted readings) to `table`'s `unit` buckets (UTC).
    Estimates add nothing; buckets are written in key order, so concurrent batches lock shared
    rollup rows in one order."""
    names = ", ".join(_ROLLUP_NAMES)
    sums = ", ".join(f"coalesce(sum({name}), 0)" for name in ROLLUP_FIELDS)
    return (
        f"INSERT INTO {table} (meter_id, channel, bucket_start, {names}) "
        f"SELECT meter_id, channel, date_trunc('{unit}', interval_start, 'UTC') AS bucket, {sums}, count(*) "
        f"FROM {source} WHERE trust <> '{ESTIMATED}' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 "
        f"ON CONFLICT (meter_id, channel, bucket_start) DO UPDATE SET "
        + ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in _ROLLUP_NAMES)
    )


_PG_INSERT = (
    f"WITH inserted AS (INSERT INTO meter_readings ({_PG_COLUMNS}) {_PG_SELECT} "
    "ON CONFLICT (meter_id, channel, interval_start) DO NOTHING "
    f"RETURNING meter_id, channel, interval_start, trust, {', '.join(ROLLUP_FIELDS)}), "
    f"hourly AS ({_pg_rollup_from('inserted', 'meter_rollups_hourly', 'hour')}), "
    f"daily AS ({_pg_rollup_from('inserted', 'meter_rollups_daily', 'day')}) "
    "SELECT count(*) FROM inserted"
)
_PG_OURS = "SELECT id FROM meter_readings WHERE id = ANY($1::text[]::uuid[])"


async def _insert_new_pg(session: AsyncSession, items: list[NewReading], keys: list[Key]) -> set[Key]:
    """PostgreSQL: the whole batch as one JSON document expanded by `json_to_recordset`, in one
    statement that also adds the inserted rows to the hourly and daily rollups (PostgreSQL sums
    them: no per-reading rollup work in Python, and one round trip instead of three).

    A JSON document rather than typed arrays: asyncpg encodes arrays element by element on the
    gateway, while the document is the `NewReading`s themselves, encoded by msgspec in one call,
    and PostgreSQL parses it off the gateway's GIL (figures:
    docs/decisions/2026-12-04-ingest-hot-path-figures.md).
    """
    driver = await asyncpg_connection(session)
    if await driver.fetchval(_PG_INSERT, json_document(items)) == len(items):
        return set(keys)  # the usual case: no concurrent writer won a key
    ours = await driver.fetch(_PG_OURS, [item.id for item in items])
    mine = {str(record[0]) for record in ours}
    return {key for item, key in zip(items, keys, strict=True) if item.id in mine}


async def _insert_new(
    session: AsyncSession, items: list[NewReading], keys: list[Key], rollups: RollupDelta
) -> set[Key]:
    """Insert `items` (whose keys are `keys`) and count them in the rollups; returns the keys that
    were really inserted (others lost a race to another writer)."""
    if not items:
        return set()
    if is_postgres(session):
        return await _insert_new_pg(session, items, keys)
    stmt = (
        dialect_insert(session, MeterReading)
        .on_conflict_do_nothing(index_elements=["meter_id", "channel", "interval_start"])
        .returning(MeterReading.meter_id, MeterReading.channel, MeterReading.interval_start)
    )
    result = await session.execute(stmt, [_row(item) for item in items])
    inserted = {(row[0], row[1], as_utc(row[2])) for row in result}
    for item in items:
        if item.key in inserted:
            rollups.add(*item.key, _contribution(item.trust, item.values), int(item.trust != ESTIMATED))
    return inserted


async def _revise(session: AsyncSession, item: NewReading, old: Existing) -> int | None:
    """Replace version `old` by `item`, keeping `old` as a revision; None when the stored row is no
    longer `old` (another writer revised it since it was read): nothing is written then."""
    row = _row(item)
    for fixed in ("meter_id", "channel", "interval_start", "id"):
        row.pop(fixed)
    row["version"] = old.version + 1
    result = await session.execute(
        update(MeterReading)
        .where(
            MeterReading.meter_id == item.meter_id,
            MeterReading.channel == item.channel,
            MeterReading.interval_start == item.interval_start,
            MeterReading.version == old.version,
        )
        .values(**row)
    )
    if cast(Any, result).rowcount != 1:
        return None
    session.add(
        ReadingRevision(
            meter_id=item.meter_id,
            channel=item.channel,
            interval_start=item.interval_start,
            version=old.version,
            values={**old.values, "trust": old.trust},
            replaced_by_trust=item.trust,
        )
    )
    return old.version + 1


@lru_cache(maxsize=65_536)
def _hour_of(start: datetime) -> datetime:
    """The hour bucket of an interval start (a batch's readings share a handful of them)."""
    return start.replace(minute=0, second=0, microsecond=0)


class RollupDelta:
    """Sums per (meter, channel, hour) to add to the rollup tables in one upsert each; the daily
    sums are folded from the hourly ones when applied."""

    def __init__(self) -> None:
        self.hourly: dict[Key, list[int]] = {}

    def add(
        self, meter_id: uuid.UUID, channel: int, start: datetime, delta: Sequence[int], count: int
    ) -> None:
        """Add `delta` (ROLLUP_FIELDS order) and `count` readings to the hour of `start`."""
        key = (meter_id, channel, _hour_of(start))
        sums = self.hourly.get(key)
        if sums is None:
            sums = self.hourly[key] = [0, 0, 0, 0, 0]
        sums[0] += delta[0]
        sums[1] += delta[1]
        sums[2] += delta[2]
        sums[3] += delta[3]
        sums[4] += count

    def daily(self) -> dict[Key, list[int]]:
        days: dict[Key, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
        for (meter_id, channel, hour), sums in self.hourly.items():
            day = days[(meter_id, channel, hour.replace(hour=0))]
            for i, value in enumerate(sums):
                day[i] += value
        return days

    async def apply(self, session: AsyncSession) -> None:
        postgres = is_postgres(session)
        for model, sums in ((HourlyRollup, self.hourly), (DailyRollup, self.daily())):
            # a fixed order of keys: concurrent batches then lock shared rollup rows in one order
            ordered = sorted(
                (kv for kv in sums.items() if any(kv[1])), key=lambda kv: (str(kv[0][0]), kv[0][1:])
            )
            if not ordered:
                continue
            if postgres:
                await _upsert_rollups_pg(session, model.__tablename__, ordered)
                continue
            rows = [
                {
                    "meter_id": k[0],
                    "channel": k[1],
                    "bucket_start": k[2],
                    **dict(zip(_ROLLUP_NAMES, v, strict=True)),
                }
                for k, v in ordered
            ]
            stmt = dialect_insert(session, model)
            table = model.__table__
            stmt = stmt.on_conflict_do_update(
                index_elements=["meter_id", "channel", "bucket_start"],
                set_={name: table.c[name] + stmt.excluded[name] for name in _ROLLUP_NAMES},
            )
            await session.execute(stmt, rows)


def _pg_rollup_upsert(table: str) -> str:
    """Add a JSON array of bucket records (see `_upsert_rollups_pg`) to `table`'s sums.

    `json_to_recordset` rather than an array of arrays unpacked per row: PostgreSQL spends a third
    of the time per bucket on it (docs/decisions/2026-12-04-ingest-hot-path-figures.md)."""
    sums = ", ".join(_ROLLUP_NAMES)
    return (
        f"INSERT INTO {table} (meter_id, channel, bucket_start, {sums}) "
        f"SELECT meter_id, channel, to_timestamp(bucket), {sums} FROM json_to_recordset($1::json) AS r("
        "meter_id uuid, channel smallint, bucket bigint, "
        + ", ".join(f"{name} bigint" for name in _ROLLUP_NAMES)
        + ") ON CONFLICT (meter_id, channel, bucket_start) DO UPDATE SET "
        + ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in _ROLLUP_NAMES)
    )


_PG_ROLLUP_UPSERTS = {
    model.__tablename__: _pg_rollup_upsert(model.__tablename__) for model in (HourlyRollup, DailyRollup)
}


async def _upsert_rollups_pg(session: AsyncSession, table: str, ordered: list[tuple[Key, list[int]]]) -> None:
    """One statement for all of a batch's buckets instead of one per bucket."""
    records = [
        {
            "meter_id": str(k[0]),
            "channel": k[1],
            "bucket": int(k[2].timestamp()),
            **dict(zip(_ROLLUP_NAMES, v, strict=True)),
        }
        for k, v in ordered
    ]
    await (await asyncpg_connection(session)).execute(_PG_ROLLUP_UPSERTS[table], json_document(records))


async def store_readings(
    session: AsyncSession,
    items: Sequence[NewReading],
    existing: dict[Key, Existing] | None = None,
    known_new: Callable[[Key], bool] | None = None,
) -> list[Stored]:
    """Store a batch in the caller's transaction; results are in input order. `existing` is what the
    caller already looked up with `load_existing`; keys missing from it are looked up again unless
    `known_new(key)` says the caller's locks guarantee nothing is stored there (a concurrent writer
    that got there anyway is still caught by the insert's ON CONFLICT and re-classified)."""
    results: list[Stored | None] = [None] * len(items)
    existing = dict(existing or {})
    keys = [item.key for item in items]  # built once: every step below looks items up by key
    missing = [
        key
        for key in dict.fromkeys(keys)
        if key not in existing and (known_new is None or not known_new(key))
    ]
    existing.update(await load_existing(session, missing))
    rollups = RollupDelta()
    pending: list[int] = []
    for attempt in range(_ATTEMPTS):
        first_of_key: dict[Key, int] = {}
        repeated: set[Key] = set()  # keys sent more than once in this batch
        to_insert: list[int] = []
        moved: list[int] = []  # revisions of a row another writer changed since it was read
        for index in pending if attempt else range(len(items)):
            key = keys[index]
            if key in existing:
                result = await _against_existing(session, items[index], existing, rollups)
                if result is None:
                    moved.append(index)
                results[index] = result
            elif key in first_of_key:
                repeated.add(key)
                continue  # decided after the insert, against the row it creates
            else:
                first_of_key[key] = index
                to_insert.append(index)
        inserted = await _insert_new(
            session, [items[i] for i in to_insert], [keys[i] for i in to_insert], rollups
        )
        lost = [i for i in to_insert if keys[i] not in inserted]
        for index in to_insert:
            key = keys[index]
            if key in inserted:
                item = items[index]
                results[index] = Stored(StoreStatus.ACCEPTED, item.id, 1)
                if key in repeated:
                    existing[key] = Existing(item.id, item.duration_s, 1, item.trust, item.values)
        pending = [i for i, r in enumerate(results) if r is None]
        if lost or moved:
            existing.update(await load_existing(session, [keys[i] for i in lost + moved]))
        if not pending:
            break
    await rollups.apply(session)
    if any(r is None for r in results):
        raise RuntimeError("reading store could not classify every item")
    stored = [r for r in results if r is not None]
    await run_after_store(session, items, stored)
    return stored


async def _against_existing(
    session: AsyncSession, item: NewReading, existing: dict[Key, Existing], rollups: RollupDelta
) -> Stored | None:
    """Compare with the stored version and revise it where `item` may replace it; None when that
    version was replaced by another writer meanwhile (the caller reads it again and retries)."""
    old = existing[item.key]
    if old.fingerprint == item.fingerprint:
        return Stored(StoreStatus.DUPLICATE, old.id, old.version)
    if item.trust == ESTIMATED and old.trust != ESTIMATED:
        return Stored(StoreStatus.DUPLICATE, old.id, old.version)  # an estimate never replaces a measurement
    version = await _revise(session, item, old)
    if version is None:
        return None
    before, after = _contribution(old.trust, old.values), _contribution(item.trust, item.values)
    counted = int(old.trust == ESTIMATED and item.trust != ESTIMATED)
    rollups.add(*item.key, [a - b for a, b in zip(after, before, strict=True)], counted)
    existing[item.key] = Existing(old.id, item.duration_s, version, item.trust, item.values)
    return Stored(StoreStatus.REVISED, old.id, version)
