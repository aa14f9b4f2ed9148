"""Rollups always equal the stored measured readings summed per UTC hour and day.

PostgreSQL sums new rows inside the insert statement and the store adds revision deltas in Python
(SQLite does both in Python), so the invariant is checked against a recount of the rows."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text

from gridtokenx.core.db import Database
from gridtokenx.meters.models import Meter
from gridtokenx.readings.models import DailyRollup, HourlyRollup, MeterReading
from gridtokenx.readings.store import ROLLUP_FIELDS, NewReading, StoreStatus, as_utc, store_readings
from tests.readings.ingest_helpers import added_meter

DAY_END = datetime(2026, 3, 1, 23, 15, tzinfo=UTC)  # four intervals before and two after midnight UTC
STEP = timedelta(minutes=15)


def _reading(
    meter: Meter, at: datetime, channel: int = 0, trust: str = "device-signed", **values: int
) -> NewReading:
    return NewReading(meter.id, channel, at, 900, trust, "native", at + STEP, **values)


async def _recount(session: Any, meter: Meter) -> tuple[dict[Any, list[int]], dict[Any, list[int]]]:
    """Hourly and daily sums of the stored rows, estimates left out, as the rollups should hold."""
    hourly: dict[Any, list[int]] = defaultdict(lambda: [0] * 5)
    daily: dict[Any, list[int]] = defaultdict(lambda: [0] * 5)
    rows = await session.execute(select(MeterReading).where(MeterReading.meter_id == meter.id))
    for row in rows.scalars():
        if row.trust == "estimated":
            continue
        start = as_utc(row.interval_start)
        hour = start.replace(minute=0, second=0, microsecond=0)
        for sums, bucket in ((hourly, hour), (daily, hour.replace(hour=0))):
            entry = sums[(row.channel, bucket)]
            for i, name in enumerate(ROLLUP_FIELDS):
                entry[i] += getattr(row, name) or 0
            entry[4] += 1
    return dict(hourly), dict(daily)


async def _rollups(session: Any, model: Any, meter: Meter) -> dict[Any, list[int]]:
    rows = await session.execute(select(model).where(model.meter_id == meter.id))
    return {
        (r.channel, as_utc(r.bucket_start)): [*(getattr(r, n) for n in ROLLUP_FIELDS), r.readings]
        for r in rows.scalars()
    }


async def test_rollups_match_the_stored_rows_through_inserts_revisions_and_estimates(
    database: Database,
) -> None:
    async with database.session() as session:
        if not database.is_sqlite:  # buckets are UTC whatever the session's time zone
            await session.execute(text("SET LOCAL TIME ZONE 'Asia/Bangkok'"))
        meter = await added_meter(session, "ROLL-1", DAY_END - timedelta(days=30))
        first = [
            _reading(meter, DAY_END + i * STEP, export_wh=100 + i, generation_wh=150 + i) for i in range(6)
        ]
        first.append(_reading(meter, DAY_END, channel=1, import_wh=40, consumption_wh=40))
        first.append(_reading(meter, DAY_END + 6 * STEP, trust="estimated", export_wh=999))
        stored = await store_readings(session, first)
        assert [s.status for s in stored] == [StoreStatus.ACCEPTED] * len(first)

        again = [
            _reading(meter, DAY_END, export_wh=100, generation_wh=150),  # identical: no change
            _reading(meter, DAY_END + STEP, export_wh=500, generation_wh=550),  # revised
            _reading(meter, DAY_END + 6 * STEP, export_wh=70),  # a measurement replaces the estimate
            _reading(meter, DAY_END + 7 * STEP, export_wh=80),  # new, in a batch with revisions
        ]
        statuses = [s.status for s in await store_readings(session, again)]
        duplicate, revised, accepted = StoreStatus.DUPLICATE, StoreStatus.REVISED, StoreStatus.ACCEPTED
        assert statuses == [duplicate, revised, revised, accepted]

        hourly, daily = await _recount(session, meter)
        assert await _rollups(session, HourlyRollup, meter) == hourly
        assert await _rollups(session, DailyRollup, meter) == daily
        day_one, day_two = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
        assert set(daily) == {(0, day_one), (0, day_two), (1, day_one)}
        assert daily[(0, day_two)] == [0, 103 + 104 + 105 + 70 + 80, 153 + 154 + 155, 0, 5]
