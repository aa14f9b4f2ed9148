"""The per-meter lock row, deterministically: while one transaction holds it, another issuer of
an overlapping period waits, then sees the first one's period and is refused. The gateway's duty
is off here, so nothing else competes for SQLite's write lock."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from solders.pubkey import Pubkey

from gridtokenx.certificates.models import Certificate
from gridtokenx.certificates.service import Certificates, _lock_meter
from gridtokenx.core.context import AppContext
from gridtokenx.core.errors import ApiError
from gridtokenx.core.types import utc_from_epoch
from gridtokenx.meters.models import Meter
from tests.certificates.cert_helpers import device_with_generation, hour_start


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"erc_settle_seconds": 0, "run_duties": False}


async def test_the_meter_lock_makes_a_second_issuer_wait(client: httpx.AsyncClient, ctx: AppContext) -> None:

    start = hour_start()
    device = await device_with_generation(client, ctx, start, [600, 610])
    meter_id = uuid.UUID(device.meter_id)
    certificates = ctx.services.get(Certificates)
    async with ctx.db.sessionmaker() as first:
        await _lock_meter(first, meter_id)
        second = asyncio.create_task(
            certificates.issue(meter_id, utc_from_epoch(start), utc_from_epoch(start + 900), actor=None)
        )
        await asyncio.sleep(1.0)
        assert not second.done()  # waiting on the lock row
        owner = await first.get(Meter, meter_id)
        assert owner is not None and owner.owner_id is not None
        first.add(
            Certificate(
                meter_id=meter_id,
                owner_id=owner.owner_id,
                period_start=utc_from_epoch(start),
                period_end=utc_from_epoch(start + 1800),
                energy_wh=1210,
                readings_hash="00" * 32,
                reading_ids=[],
                excluded=[],
                facility_id="MTR-100",
                technology="solar-pv",
                country="TH",
                zone="",
                mint=str(Pubkey.new_unique()),
                status="pending",
                holder_wallet=str(Pubkey.new_unique()),
                transfers=0,
            )
        )
        await first.commit()
    with pytest.raises(ApiError) as refused:
        await second
    assert refused.value.code == "PERIOD_OVERLAPS"
