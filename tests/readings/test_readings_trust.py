"""Trust: a lower-trust reading never replaces a higher-trust one, and a revoked key signs
nothing that arrives after its revocation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from gridtokenx.core.context import AppContext
from gridtokenx.core.db import Database
from gridtokenx.readings.models import MeterReading
from gridtokenx.readings.reading import Reading, Source, Trust
from gridtokenx.readings.store import NewReading, StoreStatus, store_readings
from gridtokenx.readings.vee import Reject, VeeContext, WriteAction, evaluate
from tests.helpers import bearer, error_code
from tests.readings.ingest_helpers import INTERVAL, added_meter, aligned_now, make_device


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reading(trust: Trust, export_wh: int) -> Reading:
    return Reading(
        meter_serial="M",
        interval_start=1_767_225_600,
        duration=INTERVAL,
        observed_at=1_767_225_600 + INTERVAL,
        import_wh=0,
        export_wh=export_wh,
        generation_wh=None,
        consumption_wh=None,
        source=Source.SIMULATOR,
        trust=trust,
    )


def test_trust_rule_without_services() -> None:
    stored = _reading(Trust.DEVICE_SIGNED, 500).stored_values()
    ctx = VeeContext(now=1_767_226_600, interval_s=INTERVAL, stored=stored, stored_trust=Trust.DEVICE_SIGNED)
    lower = evaluate(_reading(Trust.GATEWAY_ATTESTED, 900), ctx)
    assert lower.rejection is not None and lower.rejection.code is Reject.TRUST_DOWNGRADE
    same_values = evaluate(_reading(Trust.GATEWAY_ATTESTED, 500), ctx)
    assert same_values.accepted and same_values.write is WriteAction.NOOP
    equal = evaluate(_reading(Trust.DEVICE_SIGNED, 900), ctx)
    assert equal.accepted and equal.write is WriteAction.NEW_VERSION
    attested = VeeContext(
        now=1_767_226_600, interval_s=INTERVAL, stored=stored, stored_trust=Trust.GATEWAY_ATTESTED
    )
    higher = evaluate(_reading(Trust.DEVICE_SIGNED, 900), attested)
    assert higher.accepted and higher.write is WriteAction.NEW_VERSION


async def test_attested_submission_cannot_revise_a_signed_interval(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    device = await make_device(client, ctx)
    start = aligned_now(3)
    signed = await client.post(
        "/api/meters/readings", content=device.signed(start), headers=bearer(device.owner)
    )
    assert signed.status_code == 201, signed.text
    body = {"kwh": "0.9", "timestamp": _iso(start + 120)}
    attested = await client.post(
        f"/api/v1/meters/{device.serial}/readings", json=body, headers=bearer(device.owner)
    )
    assert attested.status_code == 409 and error_code(attested) == "TRUST_DOWNGRADE", attested.text
    batch = await client.post(
        "/api/v1/meters/batch/readings",
        json={"readings": [{**body, "meter_serial": device.serial}]},
        headers=bearer(device.owner),
    )
    assert batch.json()["results"][0]["code"] == "TRUST_DOWNGRADE"
    items = (
        await client.get(f"/api/meters/{device.meter_id}/readings", headers=bearer(device.owner))
    ).json()["items"]
    assert [(i["trust"], i["export_wh"], i["version"]) for i in items] == [("device-signed", 500, 1)]


async def test_revoked_key_is_refused_whatever_created_claims_rotation_keeps_overlap(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    from gridtokenx.readings.signing import DeviceSigner

    device = await make_device(client, ctx)
    start = aligned_now(6)
    old = device.key
    new = DeviceSigner.generate()
    rotated = await client.post(
        f"/api/admin/devices/{device.meter_id}/rotate",
        json={"public_key": new.public_key_hex, "overlap_seconds": 3600},
        headers=bearer(device.admin),
    )
    assert rotated.status_code in (200, 201), rotated.text
    # planned rotation: the old key still covers readings inside its overlap window
    in_overlap = await client.post(
        "/api/meters/readings", content=device.signed(start), headers=bearer(device.owner)
    )
    assert in_overlap.status_code == 201, in_overlap.text
    device.key = new
    revoked = await client.post(
        f"/api/admin/devices/{device.meter_id}/revoke",
        json={"reason": "stolen"},
        headers=bearer(device.admin),
    )
    assert revoked.status_code == 200, revoked.text
    backdated = device.signed(start + INTERVAL, created=start + INTERVAL, expires=start + INTERVAL + 240)
    response = await client.post("/api/meters/readings", content=backdated, headers=bearer(device.owner))
    assert error_code(response) in ("DEVICE_KEY_REVOKED", "MESSAGE_EXPIRED"), response.text
    fresh = await client.post(
        "/api/meters/readings", content=device.signed(start + 2 * INTERVAL), headers=bearer(device.owner)
    )
    assert fresh.status_code == 401 and error_code(fresh) == "DEVICE_KEY_REVOKED", fresh.text
    device.key = old
    stolen_old = await client.post(
        "/api/meters/readings", content=device.signed(start + 3 * INTERVAL), headers=bearer(device.owner)
    )
    assert stolen_old.status_code == 401 and error_code(stolen_old) == "DEVICE_KEY_REVOKED", stolen_old.text
    page = await client.get(f"/api/meters/{device.meter_id}/readings", headers=bearer(device.owner))
    assert page.json()["total"] == 1


async def test_an_estimate_never_replaces_a_measurement(database: Database) -> None:
    at = datetime(2026, 3, 1, 12, 15, tzinfo=UTC)

    def row(meter_id: uuid.UUID, trust: str, export_wh: int) -> NewReading:
        source = "estimate" if trust == "estimated" else "native"
        return NewReading(meter_id, 0, at, 900, trust, source, at, 0, export_wh)

    async with database.session() as session:
        meter = await added_meter(session, "EST-1", at - timedelta(days=1))
        [measured] = await store_readings(session, [row(meter.id, "device-signed", 500)])
        [estimate] = await store_readings(session, [row(meter.id, "estimated", 900)])
        await session.commit()
    assert measured.status is StoreStatus.ACCEPTED
    assert estimate.status is StoreStatus.DUPLICATE and estimate.reading_id == measured.reading_id
    async with database.session() as session:
        stored = (await session.execute(select(MeterReading))).scalar_one()
    assert (stored.trust, stored.export_wh, stored.version) == ("device-signed", 500, 1)
