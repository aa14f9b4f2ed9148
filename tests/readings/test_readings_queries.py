"""VEE over HTTP, flags, gap estimation, rollups, totals, events and partitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gridtokenx.core.context import AppContext
from gridtokenx.core.types import utcnow
from gridtokenx.events.bus import Event
from gridtokenx.meters.models import Meter
from gridtokenx.readings.native import encode_batch
from gridtokenx.readings.partitions import PartitionManager, partition_name
from gridtokenx.readings.store import NewReading, store_readings
from tests.helpers import bearer, error_code
from tests.readings.ingest_helpers import INTERVAL, aligned_now, make_device


@pytest.mark.parametrize(
    ("shift", "values", "code"),
    [
        (7, {}, "INTERVAL_MISALIGNED"),
        (0, {"duration": 300}, "DURATION_MISMATCH"),
        (5 * INTERVAL, {}, "FUTURE_READING"),
        (-70 * 86_400, {}, "READING_TOO_OLD"),
        (0, {"export_wh": -5}, "NEGATIVE_VALUE"),
        (0, {"export_wh": 100_001, "generation_wh": 100_001}, "EXCEEDS_MAX_READING"),
        (0, {"export_wh": 2_800, "generation_wh": 2_800}, "EXCEEDS_CAPACITY"),
        (0, {"created": 1, "expires": 100}, "MESSAGE_EXPIRED"),
    ],
)
async def test_vee_rejections_over_http(
    client: httpx.AsyncClient, ctx: AppContext, shift: int, values: dict[str, Any], code: str
) -> None:
    device = await make_device(client, ctx)
    response = await client.post(
        "/api/meters/readings",
        content=device.signed(aligned_now(2) + shift, **values),
        headers=bearer(device.owner),
    )
    assert response.status_code == 422 and error_code(response) == code, response.text


async def test_meter_not_active_and_before_commissioning(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx, commissioned_at=utcnow().isoformat())
    early = await client.post(
        "/api/meters/readings", content=device.signed(aligned_now(4)), headers=bearer(device.owner)
    )
    assert early.status_code == 422 and error_code(early) == "BEFORE_COMMISSIONING"
    paused = await client.patch(
        f"/api/admin/meters/{device.meter_id}", json={"status": "maintenance"}, headers=bearer(device.admin)
    )
    assert paused.status_code == 200
    later = await client.post(
        "/api/meters/readings", content=device.signed(aligned_now()), headers=bearer(device.owner)
    )
    assert later.status_code == 422 and error_code(later) == "METER_NOT_ACTIVE"


async def test_registers_never_decrease_and_must_add_up(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    start = aligned_now(6)
    first = device.signed(start, import_register_wh=10_000, export_register_wh=50_000)
    assert (
        await client.post("/api/meters/readings", content=first, headers=bearer(device.owner))
    ).status_code == 201
    down = device.signed(start + INTERVAL, import_register_wh=9_000, export_register_wh=50_500)
    response = await client.post("/api/meters/readings", content=down, headers=bearer(device.owner))
    assert response.status_code == 422 and error_code(response) == "REGISTER_DECREASED"
    off = device.signed(start + INTERVAL, import_register_wh=10_000, export_register_wh=50_900)
    response = await client.post("/api/meters/readings", content=off, headers=bearer(device.owner))
    assert response.status_code == 422 and error_code(response) == "REGISTER_SUM_MISMATCH"
    good = device.signed(start + INTERVAL, import_register_wh=10_000, export_register_wh=50_500)
    assert (
        await client.post("/api/meters/readings", content=good, headers=bearer(device.owner))
    ).status_code == 201


async def test_flags_hold_back_minting(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    late = device.signed(aligned_now(10 * 96), export_wh=400, generation_wh=500)
    response = await client.post("/api/meters/readings", content=late, headers=bearer(device.owner))
    assert (
        response.status_code == 201
        and "LATE" in response.json()["flags"]
        and response.json()["mintable_wh"] == 0
    )
    overexport = device.signed(aligned_now(1), export_wh=900, generation_wh=500)
    response = await client.post("/api/meters/readings", content=overexport, headers=bearer(device.owner))
    assert "EXPORT_EXCEEDS_GENERATION" in response.json()["flags"] and response.json()["mintable_wh"] == 0
    frozen = [
        device.signed(aligned_now(20 + i), export_wh=333, generation_wh=400 + i, consumption_wh=67 + i)
        for i in (3, 2, 1)
    ]
    flags = [
        (await client.post("/api/meters/readings", content=b, headers=bearer(device.owner))).json()["flags"]
        for b in frozen
    ]
    assert "FROZEN_VALUE" not in flags[1] and "FROZEN_VALUE" in flags[2]


async def test_short_gap_is_estimated_and_reported(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    start = aligned_now(12)
    first = device.signed(start, export_wh=100, generation_wh=200, export_register_wh=1_000)
    after = device.signed(start + 3 * INTERVAL, export_wh=400, generation_wh=500, export_register_wh=1_900)
    for body in (first, after):
        assert (
            await client.post("/api/meters/readings", content=body, headers=bearer(device.owner))
        ).status_code == 201
    page = (
        await client.get(
            f"/api/meters/{device.meter_id}/readings?trust=estimated", headers=bearer(device.owner)
        )
    ).json()
    assert page["total"] == 2
    estimated = [item["export_wh"] for item in page["items"]]
    assert sum(estimated) == 1_900 - 400 - 1_000  # the register difference, exactly
    assert all(item["mintable_wh"] == 0 and "ESTIMATED" in item["flags"] for item in page["items"])
    window = {
        "from": datetime.fromtimestamp(start, UTC).isoformat(),
        "to": datetime.fromtimestamp(start + 4 * INTERVAL, UTC).isoformat(),
    }
    gaps = (
        await client.get(f"/api/meters/{device.meter_id}/gaps", params=window, headers=bearer(device.owner))
    ).json()
    assert gaps == [
        {
            "start": datetime.fromtimestamp(start + INTERVAL, UTC).isoformat().replace("+00:00", "Z"),
            "end": datetime.fromtimestamp(start + 3 * INTERVAL, UTC).isoformat().replace("+00:00", "Z"),
            "intervals": 2,
            "estimated_intervals": 2,
        }
    ]
    # The real reading arriving late replaces the estimate as a new version.
    real = device.signed(start + INTERVAL, export_wh=250, generation_wh=300, export_register_wh=1_250)
    response = await client.post("/api/meters/readings", content=real, headers=bearer(device.owner))
    assert (
        response.status_code == 201
        and response.json()["version"] == 2
        and response.json()["trust"] == "device-signed"
    )


async def test_rollups_and_totals(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    start = aligned_now(30)
    exports = (240, 250, 260, 250)  # varied: a flat value repeated 3 times would be flagged frozen
    body = encode_batch(
        [
            device.key.sign_reading(
                device.reading(
                    start + i * INTERVAL, export_wh=e, generation_wh=300 + i, consumption_wh=50 + i
                ),
                device.network_id,
            )
            for i, e in enumerate(exports)
        ]
    )
    assert (
        await client.post("/api/meters/readings/batch", content=body, headers=bearer(device.owner))
    ).json()["accepted"] == 4
    hourly = (
        await client.get(f"/api/meters/{device.meter_id}/stats/hourly", headers=bearer(device.owner))
    ).json()
    assert sum(r["export_wh"] for r in hourly) == 1000 and sum(r["readings"] for r in hourly) == 4
    daily = (
        await client.get(f"/api/meters/{device.meter_id}/stats/daily", headers=bearer(device.owner))
    ).json()
    assert sum(r["generation_wh"] for r in daily) == 1206
    totals = (await client.get("/api/meters/stats", headers=bearer(device.owner))).json()
    assert totals["export_wh"] == 1000 and totals["export_kwh"] == "1.000" and totals["mintable_wh"] == 1000
    bad_range = await client.get(
        f"/api/meters/{device.meter_id}/stats/hourly",
        params={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        headers=bearer(device.owner),
    )
    assert bad_range.status_code == 422 and error_code(bad_range) == "RANGE_INVALID"


async def test_events_follow_the_commit(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    seen: list[tuple[str, int]] = []

    async def record(event: Event) -> None:
        async with ctx.db.engine.connect() as conn:  # the row must already be visible to others
            count = await conn.scalar(text("SELECT count(*) FROM meter_readings"))
        seen.append((event.type, int(count or 0)))

    ctx.bus.subscribe("*", record)
    body = device.signed(aligned_now())
    await client.post("/api/meters/readings", content=body, headers=bearer(device.owner))
    await client.post(
        "/api/meters/readings",
        content=device.signed(aligned_now(), export_wh=-1),
        headers=bearer(device.owner),
    )
    assert seen == [("MeterReadingReceived", 1), ("MeterReadingVerified", 1), ("MeterReadingRejected", 1)]


async def test_month_partitions_and_retention(ctx: AppContext, backend: str) -> None:
    manager = PartitionManager(ctx.db)
    old = datetime(2020, 3, 5, tzinfo=UTC)
    if backend == "sqlite":
        assert not manager.active
        assert await manager.apply_retention(30, utcnow()) == 0
        return
    stray = datetime(2020, 4, 10, tzinfo=UTC)  # lands in the default partition: no month partition yet
    async with ctx.db.session() as session:
        meter = Meter(serial="P-1", commissioned_at=old)
        session.add(meter)
        await session.flush()
        await store_readings(
            session,
            [NewReading(meter.id, 0, stray, 900, "device-signed", "native", stray, import_wh=0, export_wh=5)],
        )
    await manager.ensure_for([old, old + timedelta(days=40)])
    async with ctx.db.engine.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM meter_readings_p202004")) == 1
        assert await conn.scalar(text("SELECT count(*) FROM meter_readings_default")) == 0
    async with ctx.db.engine.connect() as conn:
        names = set(
            await conn.scalars(
                text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'meter_readings'"
                )
            )
        )
    assert {
        partition_name(datetime(2020, 3, 1, tzinfo=UTC)),
        partition_name(datetime(2020, 4, 1, tzinfo=UTC)),
    } <= names
    dropped = await manager.apply_retention(365, utcnow())
    assert dropped >= 2
    async with ctx.db.engine.connect() as conn:
        assert await conn.scalar(text("SELECT to_regclass('meter_readings_p202003')")) is None
