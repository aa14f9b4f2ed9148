"""A hundred clients posting at once: no 500, no pool timeout, every reading stored once."""

from __future__ import annotations

import asyncio
import time

import httpx
from sqlalchemy import func, select

from gridtokenx.core.context import AppContext
from gridtokenx.readings.models import MeterReading
from gridtokenx.readings.reading import Trust
from tests.helpers import bearer
from tests.readings.ingest_helpers import INTERVAL, Device, aligned_now, make_device

CLIENTS = 100
DEVICES = 10


async def _post(client: httpx.AsyncClient, device: Device, body: bytes) -> httpx.Response:
    return await client.post("/api/meters/readings", content=body, headers=bearer(device.owner))


async def test_hundred_concurrent_clients(client: httpx.AsyncClient, ctx: AppContext) -> None:
    devices = [
        await make_device(client, ctx, serial=f"MTR-C{i:02d}", email=f"c{i}@example.com")
        for i in range(DEVICES)
    ]
    start = aligned_now(CLIENTS)
    bodies = [
        (device, device.signed(start + n * INTERVAL)) for n in range(CLIENTS // DEVICES) for device in devices
    ]
    began = time.monotonic()
    responses = await asyncio.wait_for(
        asyncio.gather(*(_post(client, device, body) for device, body in bodies)), timeout=120
    )
    elapsed = time.monotonic() - began
    assert [r.status_code for r in responses] == [201] * CLIENTS, [r.text for r in responses][:3]
    assert elapsed < 30, f"{CLIENTS} posts took {elapsed:.1f}s"
    ids = {r.json()["reading_id"] for r in responses}
    assert len(ids) == CLIENTS
    async with ctx.db.session() as session:
        measured = await session.scalar(
            select(func.count()).select_from(MeterReading).where(MeterReading.trust != Trust.ESTIMATED)
        )
    assert measured == CLIENTS
    # a resend of everything, again all at once: each one a duplicate, nothing stored twice
    again = await asyncio.gather(*(_post(client, device, body) for device, body in bodies))
    assert {r.status_code for r in again} == {200}
    assert {r.json()["status"] for r in again} == {"duplicate"}
