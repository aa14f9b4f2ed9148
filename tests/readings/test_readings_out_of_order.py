"""One meter's readings posted concurrently and out of order (as the fleet simulator does: single
posts, 32 in flight, no per-meter ordering): every reading answered "accepted" is stored as sent,
never left behind a gap estimate that a neighbour's request wrote for its interval, and none is
answered 500 (batches of one meter queue on its ingest-state lock, which must really be held)."""

from __future__ import annotations

import asyncio
import random

import httpx
from sqlalchemy import select

from gridtokenx.core.context import AppContext
from gridtokenx.readings.models import MeterReading
from gridtokenx.readings.reading import Trust
from gridtokenx.readings.store import as_utc
from tests.helpers import bearer
from tests.readings.ingest_helpers import INTERVAL, aligned_now, make_device

READINGS = 120
IN_FLIGHT = 32


async def test_out_of_order_posts_store_every_reading_as_sent(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    device = await make_device(client, ctx, serial="MTR-OOO")
    start = aligned_now(READINGS)
    sent = {start + n * INTERVAL: 100 + n for n in range(READINGS)}
    bodies = [device.signed(at, export_wh=export_wh) for at, export_wh in sent.items()]
    random.Random(14).shuffle(bodies)
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def post(body: bytes) -> httpx.Response:
        async with gate:
            return await client.post("/api/meters/readings", content=body, headers=bearer(device.owner))

    responses = await asyncio.wait_for(asyncio.gather(*(post(body) for body in bodies)), timeout=120)
    assert [r.status_code for r in responses] == [201] * READINGS, [r.text for r in responses][:3]
    answers = {r.json()["reading_id"]: r.json() for r in responses}
    assert {(a["status"], a["trust"]) for a in answers.values()} == {("accepted", Trust.DEVICE_SIGNED)}
    async with ctx.db.session() as session:
        rows = (
            await session.execute(
                select(
                    MeterReading.id, MeterReading.interval_start, MeterReading.trust, MeterReading.export_wh
                )
            )
        ).all()
    stored = {int(as_utc(row.interval_start).timestamp()): row for row in rows}
    assert len(rows) == READINGS
    assert {row.trust for row in rows} == {Trust.DEVICE_SIGNED}
    assert {at: row.export_wh for at, row in stored.items()} == sent
    assert set(answers) == {str(row.id) for row in rows}
