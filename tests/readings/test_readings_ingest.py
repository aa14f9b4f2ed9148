"""Native signed ingest over HTTP: exactly-once storage, signatures, ownership, batches, jobs."""

from __future__ import annotations

import asyncio

import httpx
from nacl.signing import SigningKey

from gridtokenx.core.context import AppContext
from gridtokenx.core.types import utcnow
from gridtokenx.readings.native import encode_batch
from gridtokenx.readings.pipeline import IngestPipeline
from gridtokenx.readings.signing import DeviceSigner
from tests.helpers import bearer, error_code, user_token
from tests.readings.ingest_helpers import INTERVAL, aligned_now, make_device


async def test_signed_reading_is_stored_once(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    start = aligned_now()
    body = device.signed(start)
    first = await client.post("/api/meters/readings", content=body, headers=bearer(device.owner))
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "accepted" and first.json()["trust"] == "device-signed"
    assert first.json()["mintable_wh"] == 500

    again = await client.post("/api/meters/readings", content=body, headers=bearer(device.owner))
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert again.json()["reading_id"] == first.json()["reading_id"]

    page = await client.get(f"/api/meters/{device.meter_id}/readings", headers=bearer(device.owner))
    assert page.json()["total"] == 1 and page.json()["items"][0]["export_wh"] == 500


async def test_replayed_forged_and_wrong_key(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    start = aligned_now(4)
    ok = await client.post("/api/meters/readings", content=device.signed(start), headers=bearer(device.owner))
    assert ok.status_code == 201

    device.seq -= 1  # same seq, different interval: a replayed counter
    replay = await client.post(
        "/api/meters/readings", content=device.signed(start + INTERVAL), headers=bearer(device.owner)
    )
    assert replay.status_code == 422 and error_code(replay) == "SEQ_REPLAYED"

    tampered = device.signed(start + 2 * INTERVAL).replace(b'"export_wh":500', b'"export_wh":900')
    forged = await client.post("/api/meters/readings", content=tampered, headers=bearer(device.owner))
    assert forged.status_code == 401 and error_code(forged) == "SIGNATURE_INVALID"

    stranger = DeviceSigner.generate()
    wrong = stranger.sign_reading(device.reading(start + 3 * INTERVAL), device.network_id)
    from gridtokenx.readings.native import encode_reading

    response = await client.post(
        "/api/meters/readings", content=encode_reading(wrong), headers=bearer(device.owner)
    )
    assert response.status_code == 401 and error_code(response) == "DEVICE_KEY_UNKNOWN"


async def test_revoked_key_refuses_later_readings(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    before = aligned_now(8)
    accepted = await client.post(
        "/api/meters/readings", content=device.signed(before), headers=bearer(device.owner)
    )
    assert accepted.status_code == 201
    earlier = int(utcnow().timestamp()) - 5
    # claims to be signed before the revocation (a stolen key can backdate `created`), delivered after it
    signed_in_time = device.signed(before - INTERVAL, created=earlier, expires=earlier + 240)
    revoked = await client.post(
        f"/api/admin/devices/{device.meter_id}/revoke",
        json={"reason": "stolen"},
        headers=bearer(device.admin),
    )
    assert revoked.status_code == 200
    after = await client.post(
        "/api/meters/readings", content=device.signed(aligned_now()), headers=bearer(device.owner)
    )
    assert after.status_code == 401 and error_code(after) == "DEVICE_KEY_REVOKED"
    late = await client.post("/api/meters/readings", content=signed_in_time, headers=bearer(device.owner))
    assert late.status_code == 401 and error_code(late) == "DEVICE_KEY_REVOKED", late.text
    page = await client.get(f"/api/meters/{device.meter_id}/readings", headers=bearer(device.owner))
    assert page.json()["total"] == 1  # what arrived before the revocation stays


async def test_another_users_meter_is_forbidden(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    mallory = await user_token(client, ctx, "mallory@example.com")
    response = await client.post(
        "/api/meters/readings", content=device.signed(aligned_now()), headers=bearer(mallory)
    )
    assert response.status_code == 403 and error_code(response) == "METER_NOT_OWNED"


async def test_floats_nan_and_duplicate_keys(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    body = device.signed(aligned_now())
    floaty = body.replace(b'"export_wh":500', b'"export_wh":500.0')
    response = await client.post("/api/meters/readings", content=floaty, headers=bearer(device.owner))
    assert response.status_code == 422 and error_code(response) == "FLOAT_NOT_ALLOWED"
    nan = body.replace(b'"export_wh":500', b'"export_wh":NaN')
    response = await client.post("/api/meters/readings", content=nan, headers=bearer(device.owner))
    assert response.status_code == 422 and error_code(response) == "FLOAT_NOT_ALLOWED"
    dup = body.replace(b'"export_wh":500', b'"export_wh":500,"export_wh":1')
    response = await client.post("/api/meters/readings", content=dup, headers=bearer(device.owner))
    assert response.status_code == 422 and error_code(response) == "DUPLICATE_KEY"
    broken = await client.post("/api/meters/readings", content=b"{", headers=bearer(device.owner))
    assert broken.status_code == 400 and error_code(broken) == "MALFORMED_JSON"


async def test_batch_mixed_items(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    start = aligned_now(10)
    good = device.signed_batch([start, start + INTERVAL, start + 2 * INTERVAL])
    items = good[1:-1].split(b"},{")
    bad_float = items[1].replace(b'"export_wh":500', b'"export_wh":5.5')
    forged = items[2].replace(b'"export_wh":500', b'"export_wh":501')
    body = b"[" + items[0] + b"},{" + bad_float + b"},{" + forged + b"]"
    response = await client.post("/api/meters/readings/batch", content=body, headers=bearer(device.owner))
    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["accepted"], data["duplicates"], data["rejected"]) == (1, 0, 2)
    by_index = {r["index"]: r for r in data["results"]}
    assert by_index[0]["status"] == "accepted"
    assert by_index[1]["code"] == "FLOAT_NOT_ALLOWED" and by_index[1]["path"].startswith("$[1]")
    assert by_index[2]["code"] == "SIGNATURE_INVALID"


async def test_oversized_batch(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    start = aligned_now(3000)
    ctx.settings.batch_max_size = 2
    body = device.signed_batch([start, start + INTERVAL, start + 2 * INTERVAL])
    response = await client.post("/api/meters/readings/batch", content=body, headers=bearer(device.owner))
    assert response.status_code == 413 and error_code(response) == "BATCH_TOO_LARGE"


async def test_async_batch_job(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    start = aligned_now(20)
    body = device.signed_batch([start + i * INTERVAL for i in range(5)])
    queued = await client.post(
        "/api/meters/readings/batch?async=true", content=body, headers=bearer(device.owner)
    )
    assert queued.status_code == 202
    job_id = queued.json()["job_id"]
    for _ in range(50):
        job = (await client.get(f"/api/meters/jobs/{job_id}", headers=bearer(device.owner))).json()
        if job["status"] == "done":
            break
        await asyncio.sleep(0.05)
    assert job["status"] == "done" and job["accepted"] == 5 and len(job["results"]) == 5
    other = await user_token(client, ctx, "snoop@example.com")
    hidden = await client.get(f"/api/meters/jobs/{job_id}", headers=bearer(other))
    assert hidden.status_code == 404 and error_code(hidden) == "JOB_NOT_FOUND"


async def test_changed_value_is_a_new_version(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    start = aligned_now(2)
    first = await client.post(
        "/api/meters/readings", content=device.signed(start), headers=bearer(device.owner)
    )
    assert first.status_code == 201
    changed = await client.post(
        "/api/meters/readings", content=device.signed(start, export_wh=450), headers=bearer(device.owner)
    )
    assert (
        changed.status_code == 201 and changed.json()["version"] == 2 and "REVISED" in changed.json()["flags"]
    )
    page = await client.get(f"/api/meters/{device.meter_id}/readings", headers=bearer(device.owner))
    assert page.json()["items"][0]["export_wh"] == 450 and page.json()["items"][0]["version"] == 2
    hourly = await client.get(f"/api/meters/{device.meter_id}/stats/hourly", headers=bearer(device.owner))
    assert sum(row["export_wh"] for row in hourly.json()) == 450


async def test_unsigned_native_reading_is_refused(client: httpx.AsyncClient, ctx: AppContext) -> None:
    from gridtokenx.readings.native import encode_reading, reading_from_fields

    device = await make_device(client, ctx)
    fields = {**device.reading(aligned_now()), "key_id": device.key.key_id}
    response = await client.post(
        "/api/meters/readings",
        content=encode_reading(reading_from_fields(fields)),
        headers=bearer(device.owner),
    )
    assert response.status_code == 401 and error_code(response) == "SIGNATURE_MISSING"
    assert SigningKey  # PyNaCl is the signer of record


async def test_concurrent_identical_batches_store_each_reading_once(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    """Two gateway workers racing on the same batch: every reading lands once, the rest are duplicates."""
    from sqlalchemy import func, select

    from gridtokenx.accounts.models import User
    from gridtokenx.readings.models import MeterReading
    from gridtokenx.readings.native import decode_batch, to_reading
    from gridtokenx.readings.pipeline import Submitter

    device = await make_device(client, ctx)
    start = aligned_now(40)
    body = device.signed_batch([start + i * INTERVAL for i in range(20)])
    readings = [to_reading(native, device.network_id) for native in decode_batch(body)]
    async with ctx.db.session() as session:
        owner = await session.scalar(select(User).where(User.email == "owner@example.com"))
    pipeline = ctx.services.get(IngestPipeline)
    assert isinstance(pipeline, IngestPipeline)
    first, second = await asyncio.gather(
        pipeline.ingest(Submitter(owner), readings), pipeline.ingest(Submitter(owner), readings)
    )
    statuses = sorted(r.status.value for r in first + second)
    assert statuses == ["accepted"] * 20 + ["duplicate"] * 20
    async with ctx.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(MeterReading)) == 20


async def test_spike_is_judged_against_the_same_slot_of_the_previous_seven_days(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    """The spike rule reads its history from storage: one slot per day, seven days back."""
    device = await make_device(client, ctx)
    today = aligned_now(8)
    slots = [today, today + INTERVAL]
    history = [slot - days * 86_400 for days in range(7, 0, -1) for slot in slots]
    quiet = {"export_wh": 100, "generation_wh": 150, "consumption_wh": 50}
    stored = await client.post(
        "/api/meters/readings/batch",
        content=device.signed_batch(history, **quiet),
        headers=bearer(device.owner),
    )
    assert stored.status_code == 200 and stored.json()["accepted"] == len(history), stored.text
    readings = [
        device.key.sign_reading(
            device.reading(today, export_wh=600, generation_wh=650, consumption_wh=50), device.network_id
        ),
        device.key.sign_reading(
            device.reading(slots[1], export_wh=450, generation_wh=500, consumption_wh=50), device.network_id
        ),
    ]
    response = await client.post(
        "/api/meters/readings/batch", content=encode_batch(readings), headers=bearer(device.owner)
    )
    assert response.status_code == 200, response.text
    flags = {r["index"]: r["flags"] for r in response.json()["results"]}
    assert "SPIKE" in flags[0]  # 600 Wh > 5 x the median of 100 Wh
    assert "SPIKE" not in flags[1]  # 450 Wh is within 5 x 100 Wh


async def test_spike_history_is_shared_by_readings_of_one_batch_a_day_apart(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    """A backfill batch holding the same slot on two days: the stored day before both is history
    for each of them (it must not be claimed by the later one only)."""
    device = await make_device(client, ctx)
    today = aligned_now(8)
    quiet = {"export_wh": 100, "generation_wh": 150, "consumption_wh": 50}
    stored = await client.post(
        "/api/meters/readings/batch",
        content=device.signed_batch([today - 2 * 86_400], **quiet),
        headers=bearer(device.owner),
    )
    assert stored.status_code == 200 and stored.json()["accepted"] == 1, stored.text
    readings = [
        device.key.sign_reading(
            device.reading(today - 86_400, export_wh=600, generation_wh=650, consumption_wh=50),
            device.network_id,
        ),
        device.key.sign_reading(device.reading(today, **quiet), device.network_id),
    ]
    response = await client.post(
        "/api/meters/readings/batch", content=encode_batch(readings), headers=bearer(device.owner)
    )
    assert response.status_code == 200, response.text
    flags = {r["index"]: r["flags"] for r in response.json()["results"]}
    assert "SPIKE" in flags[0]  # 600 Wh > 5 x the 100 Wh stored the day before
    assert "SPIKE" not in flags[1]
