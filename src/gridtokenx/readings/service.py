"""Reading queries (history, rollups, gaps, totals) and the job status query."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.accounts.models import User
from gridtokenx.core.errors import ApiError, NotFound
from gridtokenx.core.types import utcnow
from gridtokenx.core.units import wh_to_kwh
from gridtokenx.meters.facts import meter_ids_owned_by
from gridtokenx.meters.models import Meter
from gridtokenx.readings.ingest_results import ItemResult, ItemStatus
from gridtokenx.readings.intervals import find_gaps
from gridtokenx.readings.models import DailyRollup, HourlyRollup, IngestJob, MeterReading
from gridtokenx.readings.reading import Trust
from gridtokenx.readings.schemas import GapOut, MeterTotals

MAX_RANGE = timedelta(days=366)


def time_range(start: datetime | None, end: datetime | None, default: timedelta) -> tuple[datetime, datetime]:
    end = end or utcnow()
    start = start or end - default
    if start >= end:
        raise ApiError("`from` must be before `to`", code="RANGE_INVALID", status_code=422)
    if end - start > MAX_RANGE:
        raise ApiError("a range may span at most 366 days", code="RANGE_TOO_LARGE", status_code=422)
    return start, end


async def readings_page(
    session: AsyncSession,
    meter: Meter,
    start: datetime,
    end: datetime,
    limit: int,
    offset: int,
    trust: str | None,
    flag: str | None,
) -> tuple[list[MeterReading], int]:
    query = select(MeterReading).where(
        MeterReading.meter_id == meter.id,
        MeterReading.interval_start >= start,
        MeterReading.interval_start < end,
    )
    if trust:
        query = query.where(MeterReading.trust == trust)
    query = query.order_by(MeterReading.interval_start, MeterReading.channel)
    if flag:  # flags are a JSON list: filter in Python, within the (bounded) time range
        rows = [row for row in await session.scalars(query) if flag in (row.flags or [])]
        return rows[offset : offset + limit], len(rows)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return list(await session.scalars(query.limit(limit).offset(offset))), int(total)


async def rollups(
    session: AsyncSession, meter: Meter, daily: bool, start: datetime, end: datetime
) -> list[HourlyRollup] | list[DailyRollup]:
    model = DailyRollup if daily else HourlyRollup
    query = (
        select(model)
        .where(model.meter_id == meter.id, model.bucket_start >= start, model.bucket_start < end)
        .order_by(model.bucket_start, model.channel)
    )
    return list(await session.scalars(query))  # type: ignore[return-value]


async def gaps(session: AsyncSession, meter: Meter, start: datetime, end: datetime) -> list[GapOut]:
    """Missing measured intervals in [start, end), and how many of them VEE has estimated."""
    interval = meter.interval_seconds
    rows = await session.execute(
        select(MeterReading.interval_start, MeterReading.trust).where(
            MeterReading.meter_id == meter.id,
            MeterReading.channel == 0,
            MeterReading.interval_start >= start,
            MeterReading.interval_start < end,
        )
    )
    measured: set[int] = set()
    estimated: set[int] = set()
    for moment, trust in rows:
        epoch = int(moment.timestamp())
        (estimated if trust == Trust.ESTIMATED else measured).add(epoch)
    since = max(int(start.timestamp()), int(meter.commissioned_at.timestamp()))
    since += -since % interval
    until = min(int(end.timestamp()), int(utcnow().timestamp()))
    until -= until % interval
    if until <= since:
        return []
    found = find_gaps(measured, interval, since=since, until=until)
    return [
        GapOut(
            start=datetime.fromtimestamp(gap.start, start.tzinfo),
            end=datetime.fromtimestamp(gap.end, start.tzinfo),
            intervals=len(gap.starts),
            estimated_intervals=sum(1 for s in gap.starts if s in estimated),
        )
        for gap in found
    ]


async def totals(session: AsyncSession, user: User) -> MeterTotals:
    meter_ids = await meter_ids_owned_by(session, user.id)
    sums = (
        await session.execute(
            select(
                func.coalesce(func.sum(DailyRollup.import_wh), 0),
                func.coalesce(func.sum(DailyRollup.export_wh), 0),
                func.coalesce(func.sum(DailyRollup.generation_wh), 0),
                func.coalesce(func.sum(DailyRollup.consumption_wh), 0),
                func.coalesce(func.sum(DailyRollup.readings), 0),
            ).where(DailyRollup.meter_id.in_(meter_ids))
        )
    ).one()
    mintable = await session.scalar(
        select(func.coalesce(func.sum(MeterReading.mintable_wh), 0)).where(
            MeterReading.meter_id.in_(meter_ids)
        )
    )
    imported, exported, generated, consumed, count = (int(v) for v in sums)
    return MeterTotals(
        meters=len(meter_ids),
        readings=count,
        import_wh=imported,
        export_wh=exported,
        generation_wh=generated,
        consumption_wh=consumed,
        mintable_wh=int(mintable or 0),
        import_kwh=str(wh_to_kwh(imported)),
        export_kwh=str(wh_to_kwh(exported)),
    )


def summarise(results: list[ItemResult]) -> dict[str, int]:
    return {
        "accepted": sum(r.status is ItemStatus.ACCEPTED for r in results),
        "duplicates": sum(r.status is ItemStatus.DUPLICATE for r in results),
        "rejected": sum(r.status is ItemStatus.REJECTED for r in results),
    }


async def get_job(session: AsyncSession, user: User, job_id: uuid.UUID) -> IngestJob:
    job = await session.get(IngestJob, job_id)
    if job is None or (job.user_id != user.id and user.role != "admin"):
        raise NotFound("no such job", code="JOB_NOT_FOUND")
    return job
