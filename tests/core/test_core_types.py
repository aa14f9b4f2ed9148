"""Timestamps come back UTC-aware on both backends, whatever the database session's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from gridtokenx.core.db import Database
from gridtokenx.meters.models import Meter

BANGKOK = timezone(timedelta(hours=7))


async def test_timestamps_round_trip_as_utc(database: Database) -> None:
    local = datetime(2026, 3, 1, 7, 30, tzinfo=BANGKOK)  # 00:30 UTC
    async with database.session() as session:
        session.add(Meter(serial="TZ-1", commissioned_at=local))
    async with database.session() as session:
        if not database.is_sqlite:
            await session.execute(text("SET LOCAL TIME ZONE 'Asia/Bangkok'"))
        commissioned = await session.scalar(select(Meter.commissioned_at).where(Meter.serial == "TZ-1"))
    assert commissioned == local and commissioned is not None
    assert commissioned.tzinfo is UTC and commissioned.hour == 0


async def test_naive_timestamps_are_refused(database: Database) -> None:
    with pytest.raises(Exception, match="naive datetime refused"):
        async with database.session() as session:
            session.add(Meter(serial="TZ-2", commissioned_at=datetime(2026, 3, 1, 0, 30)))
