"""A stored reading reads back field for field on both backends (PostgreSQL inserts from one JSON
document of the whole batch, SQLite through the ORM table)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from gridtokenx.core.db import Database
from gridtokenx.readings.models import MeterReading
from gridtokenx.readings.store import NewReading, StoreStatus, as_utc, load_existing, store_readings
from tests.readings.ingest_helpers import added_meter


async def test_every_field_round_trips(database: Database) -> None:
    at = datetime(2026, 3, 1, 12, 15, tzinfo=UTC)
    async with database.session() as session:
        meter = await added_meter(session, "TRIP-1", at - timedelta(days=1))
        item = NewReading(
            meter_id=meter.id,
            channel=2,
            interval_start=at,
            duration_s=900,
            trust="device-signed",
            source="native",
            observed_at=at + timedelta(minutes=15, seconds=3),
            import_wh=1,
            export_wh=2,
            generation_wh=3,
            consumption_wh=None,
            import_register_wh=10_000_000_000,
            export_register_wh=None,
            flags=["NIGHT_EXPORT", "SPIKE"],
            seq=2**40,
            key_id="k-0123456789abcd",
            signature=bytes(range(64)),
            mintable_wh=2,
            extras={"voltage": "230.15", "nested": {"list": [1, "two", None]}, "quote": 'a"b\\c'},
        )
        [stored] = await store_readings(session, [item])
    assert stored.status is StoreStatus.ACCEPTED and stored.reading_id == item.id
    async with database.session() as session:
        row = (await session.execute(select(MeterReading))).scalar_one()
    assert (row.meter_id, row.channel, as_utc(row.interval_start)) == item.key
    assert str(row.id) == item.id and row.version == 1 and row.duration_s == 900
    assert {name: getattr(row, name) for name in item.values} == item.values
    assert (row.trust, row.source, row.flags, row.seq, row.key_id) == (
        item.trust,
        item.source,
        item.flags,
        item.seq,
        item.key_id,
    )
    assert row.signature == item.signature and row.extras == item.extras
    assert (row.mintable_wh, row.mint_pending) == (2, True)
    assert as_utc(row.observed_at) == item.observed_at and row.received_at is not None


async def test_a_measurement_replaces_an_estimate_revised_since_it_was_read(database: Database) -> None:
    """The store is handed what was stored when its batch began; another writer re-estimated the
    interval since. The measurement must still replace the estimate (never be acknowledged while
    the estimate stays), and an estimate never replaces the measurement afterwards."""
    at = datetime(2026, 3, 1, 12, 15, tzinfo=UTC)

    def reading(meter_id: object, trust: str, export_wh: int) -> NewReading:
        return NewReading(
            meter_id=meter_id,  # type: ignore[arg-type]
            channel=0,
            interval_start=at,
            duration_s=900,
            trust=trust,
            source="native",
            observed_at=at + timedelta(minutes=15),
            export_wh=export_wh,
        )

    async with database.session() as session:
        meter = await added_meter(session, "RACE-1", at - timedelta(days=1))
        await store_readings(session, [reading(meter.id, "estimated", 10)])
        await session.commit()
    async with database.session() as session:
        stale = await load_existing(session, [(meter.id, 0, at)])
        await session.commit()
    async with database.session() as session:
        [again] = await store_readings(session, [reading(meter.id, "estimated", 11)])
        await session.commit()
    assert (again.status, again.version) == (StoreStatus.REVISED, 2)
    async with database.session() as session:
        [stored] = await store_readings(session, [reading(meter.id, "device-signed", 500)], stale)
        await session.commit()
    assert (stored.status, stored.version) == (StoreStatus.REVISED, 3)
    async with database.session() as session:
        [kept] = await store_readings(session, [reading(meter.id, "estimated", 12)])
        await session.commit()
        row = (await session.execute(select(MeterReading))).scalar_one()
    assert kept.status is StoreStatus.DUPLICATE
    assert (row.trust, row.export_wh, row.version) == ("device-signed", 500, 3)
