"""The original platform's clients, with bodies in exactly their shapes, over the same pipeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from gridtokenx.core.context import AppContext
from gridtokenx.core.types import utcnow
from tests.helpers import admin_token, bearer, claim, create_meter, error_code, user_token

SERIAL = "SIM-METER-001"


async def _operator(client: httpx.AsyncClient, ctx: AppContext, **meter: Any) -> tuple[str, str]:
    """A claimed meter and an API key of its owner (how the head-end/simulator authenticates)."""
    admin = await admin_token(client, ctx)
    await create_meter(
        client, admin, SERIAL, capacity_kw="10", commissioned_at="2020-01-01T00:00:00Z", **meter
    )
    owner = await user_token(client, ctx, "prosumer@example.com")
    await claim(client, owner, SERIAL)
    created = await client.post(
        "/api/users/me/api-keys",
        json={"name": "simulator", "scopes": ["readings:write"]},
        headers=bearer(owner),
    )
    return owner, created.json()["key"]


def _stamp(minutes_ago: int) -> datetime:
    moment = utcnow() - timedelta(minutes=minutes_ago)
    return moment.replace(second=7, microsecond=0)


def _a1_payload(moment: datetime, kwh: float) -> dict[str, Any]:
    """`EnergyReading.to_grid_monitoring_payload` of the A1 simulator."""
    return {
        "meter_serial": SERIAL,
        "meter_id": SERIAL,
        "kwh": kwh,
        "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "energy_generated": 1.2345,
        "energy_consumed": 0.4321,
        "voltage": 239.87,
        "frequency": 50.01,
        "power_factor": 0.95,
        "thd_voltage": 0.0,
        "thd_current": 0.0,
        "zone_id": 3,
        "latitude": 13.7563,
        "longitude": 100.5018,
        "battery_level": 42.5,
    }


async def test_simulator_batch_route_and_resend(client: httpx.AsyncClient, ctx: AppContext) -> None:
    _owner, key = await _operator(client, ctx)
    body = {"readings": [_a1_payload(_stamp(40), 0.8024), _a1_payload(_stamp(20), -0.25)]}
    for route in ("/api/v1/public/meters/batch/readings", "/api/v1/meters/batch/readings"):
        response = await client.post(route, json=body, headers=bearer(key))
        assert response.status_code == 200, response.text
        data = response.json()
        assert data["success_count"] == 2 and data["failed_count"] == 0
        expected = (2, 0) if route.endswith("public/meters/batch/readings") else (0, 2)
        assert (data["accepted"], data["duplicates"]) == expected
    results = data["results"]
    assert {r["trust"] for r in results} == {"gateway-attested"}


async def test_public_batch_route_is_not_open(client: httpx.AsyncClient, ctx: AppContext) -> None:
    await _operator(client, ctx)
    response = await client.post(
        "/api/v1/public/meters/batch/readings", json={"readings": [_a1_payload(_stamp(5), 1)]}
    )
    assert response.status_code == 401 and error_code(response) == "AUTH_REQUIRED"
    legacy_default = await client.post(
        "/api/v1/public/meters/batch/readings",
        json={"readings": []},
        headers=bearer("engineering-department-api-key-2025"),
    )
    assert legacy_default.status_code == 401 and error_code(legacy_default) == "API_KEY_INVALID"


async def test_simulator_single_route_converts_kwh_exactly(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    owner, key = await _operator(client, ctx)
    moment = _stamp(30)
    response = await client.post(
        f"/api/v1/meters/{SERIAL}/readings", json=_a1_payload(moment, 0.0005), headers=bearer(key)
    )
    assert response.status_code == 200, response.text
    assert response.json()["serial_number"] == SERIAL and response.json()["kwh"] == "0.000"
    again = await client.post(
        f"/api/v1/meters/{SERIAL}/readings", json=_a1_payload(moment, 0.0005), headers=bearer(key)
    )
    assert again.json()["duplicate"] is True and again.json()["id"] == response.json()["id"]

    meter_id = (await client.get("/api/meters/registered", headers=bearer(owner))).json()[0]["id"]
    items = (await client.get(f"/api/meters/{meter_id}/readings", headers=bearer(owner))).json()["items"]
    # 0.0005 kWh = 0.5 Wh rounds half to even: 0 Wh; the interval is the quarter hour containing the stamp.
    assert items[0]["export_wh"] == 0 and items[0]["import_wh"] == 0
    start = datetime.fromisoformat(items[0]["interval_start"])
    assert start <= moment < start + timedelta(minutes=15) and start.minute % 15 == 0


async def test_simulator_single_route_rejects_other_serial(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    _owner, key = await _operator(client, ctx)
    body = {**_a1_payload(_stamp(10), 1.0), "meter_serial": "SIM-METER-999"}
    response = await client.post(f"/api/v1/meters/{SERIAL}/readings", json=body, headers=bearer(key))
    assert response.status_code == 422 and error_code(response) == "SERIAL_MISMATCH"


async def test_submit_reading_shape(client: httpx.AsyncClient, ctx: AppContext) -> None:
    owner, key = await _operator(client, ctx)
    moment = utcnow() - timedelta(minutes=25)
    body = {
        "wallet_address": "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin",
        "kwh_amount": 1.234567,
        "reading_timestamp": moment.isoformat(),
        "meter_signature": "3Bxs4Bc3VYuGVB19jSuoiMrpkr4aqyLiqEJqGcNHTs8Kva3vKFmoDtsr8kp"
        "NtBAqbTbbf8Lq5Pc3hRmCLb3ow6J",
        "meter_serial": SERIAL,
        "energy_generated": 2.5,
        "energy_consumed": 1.265433,
        "surplus_energy": 1.234567,
        "deficit_energy": 0.0,
        "power_generated": 10.0,
        "power_consumed": 5.061732,
        "voltage": 230.1,
        "current": 5.2,
        "power_factor": 0.97,
        "frequency": 50.0,
        "temperature": 31.5,
        "battery_level": 80.0,
        "firmware_build": "a2-2026.02",
    }
    response = await client.post("/api/meters/submit-reading", json=body, headers=bearer(key))
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["kwh_amount"] == "1.235" and data["minted"] is False and data["duplicate"] is False
    assert (
        data["trust"] == "gateway-attested"
    )  # the upstream signature is a placeholder: never trusted blindly
    resend = await client.post("/api/meters/submit-reading", json=body, headers=bearer(key))
    assert (
        resend.status_code == 200 and resend.json()["duplicate"] is True and resend.json()["id"] == data["id"]
    )

    meter_id = (await client.get("/api/meters/registered", headers=bearer(owner))).json()[0]["id"]
    stored = (await client.get(f"/api/meters/{meter_id}/readings", headers=bearer(owner))).json()["items"][0]
    assert stored["export_wh"] == 1235 and stored["generation_wh"] == 2500


async def test_submit_reading_bad_inputs(client: httpx.AsyncClient, ctx: AppContext) -> None:
    _owner, key = await _operator(client, ctx)
    base = {
        "wallet_address": "w",
        "kwh_amount": 1.0,
        "reading_timestamp": utcnow().isoformat(),
        "meter_serial": SERIAL,
    }
    too_big = await client.post(
        "/api/meters/submit-reading", json={**base, "kwh_amount": 150}, headers=bearer(key)
    )
    assert too_big.status_code == 422 and error_code(too_big) == "EXCEEDS_MAX_READING"
    unknown = await client.post(
        "/api/meters/submit-reading", json={**base, "meter_serial": "NOPE-1"}, headers=bearer(key)
    )
    assert unknown.status_code == 404 and error_code(unknown) == "METER_NOT_FOUND"
    missing = {k: v for k, v in base.items() if k != "wallet_address"}
    no_wallet = await client.post("/api/meters/submit-reading", json=missing, headers=bearer(key))
    assert no_wallet.status_code == 422 and error_code(no_wallet) == "SCHEMA_INVALID"
    dup = b'{"meter_serial":"SIM-METER-001","meter_serial":"X","kwh_amount":1}'
    response = await client.post(
        "/api/meters/submit-reading", content=dup, headers={**bearer(key), "content-type": "application/json"}
    )
    assert response.status_code == 422 and error_code(response) == "DUPLICATE_KEY"


async def test_energy_reading_shape(client: httpx.AsyncClient, ctx: AppContext) -> None:
    _owner, key = await _operator(client, ctx)
    body = {
        "meter_id": SERIAL,
        "timestamp": (utcnow() - timedelta(minutes=50)).astimezone(UTC).isoformat(),
        "energy_generated": 1.75,
        "energy_consumed": 0.5,
        "solar_irradiance": 812.4,
        "temperature": 33.1,
        "engineering_authority_signature": "engineering-dept-sig",
        "metadata": {"location": "Bangkok", "device_type": "smart_meter", "weather_conditions": "sunny"},
    }
    response = await client.post("/api/v1/meters/readings", content=orjson.dumps(body), headers=bearer(key))
    assert response.status_code == 200, response.text
    assert response.json()["kwh"] == "1.250" and response.json()["duplicate"] is False
    again = await client.post("/api/v1/meters/readings", content=orjson.dumps(body), headers=bearer(key))
    assert again.json()["duplicate"] is True


async def test_api_key_of_another_owner_is_forbidden(client: httpx.AsyncClient, ctx: AppContext) -> None:
    await _operator(client, ctx)
    stranger = await user_token(client, ctx, "stranger@example.com")
    key = (
        await client.post(
            "/api/users/me/api-keys",
            json={"name": "x", "scopes": ["readings:write"]},
            headers=bearer(stranger),
        )
    ).json()["key"]
    response = await client.post(
        f"/api/v1/meters/{SERIAL}/readings", json=_a1_payload(_stamp(5), 1.0), headers=bearer(key)
    )
    assert response.status_code == 403 and error_code(response) == "METER_NOT_OWNED"
    unscoped = (
        await client.post(
            "/api/users/me/api-keys", json={"name": "y", "scopes": ["meters:read"]}, headers=bearer(stranger)
        )
    ).json()["key"]
    response = await client.post(
        f"/api/v1/meters/{SERIAL}/readings", json=_a1_payload(_stamp(5), 1.0), headers=bearer(unscoped)
    )
    assert response.status_code == 403 and error_code(response) == "SCOPE_MISSING"


async def test_submit_batch_route_the_original_gateway_lacked(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    _owner, key = await _operator(client, ctx)
    item = {
        "wallet_address": "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin",
        "kwh_amount": 0.5,
        "reading_timestamp": (utcnow() - timedelta(minutes=35)).isoformat(),
        "meter_serial": SERIAL,
    }
    body = {"readings": [item, {**item, "kwh_amount": "not-a-number"}, {**item, "meter_serial": "NOPE-2"}]}
    response = await client.post("/api/meters/submit-batch", json=body, headers=bearer(key))
    assert response.status_code == 200, response.text
    data = response.json()
    assert (data["accepted"], data["rejected"]) == (1, 2)
    codes = {r["index"]: r.get("code") for r in data["results"]}
    assert codes[2] == "METER_NOT_FOUND" and codes[1] is not None and codes[1] != "METER_NOT_FOUND"
    broken = await client.post(
        "/api/meters/submit-batch",
        content=b'{"readings": 5}',
        headers={**bearer(key), "content-type": "application/json"},
    )
    assert broken.status_code == 422 and error_code(broken) == "SCHEMA_INVALID"


async def test_legacy_reading_signed_by_a_provisioned_key_is_device_signed(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    from decimal import Decimal

    import base58

    from gridtokenx.readings.legacy import device_kwh_message
    from gridtokenx.readings.signing import DeviceSigner

    owner, key = await _operator(client, ctx)
    admin = await admin_token(client, ctx, "keys@example.com")
    device = DeviceSigner.generate()
    provisioned = await client.post(
        "/api/admin/devices/register",
        json={"serial": SERIAL, "public_key": device.public_key_base58},
        headers=bearer(admin),
    )
    assert provisioned.status_code == 201
    moment = _stamp(45)
    body = _a1_payload(moment, 0.75)
    message = device_kwh_message(SERIAL, Decimal("0.75"), int(moment.timestamp()) * 1000)
    body["meter_signature"] = base58.b58encode(device.sign(message)).decode()
    signed = await client.post(f"/api/v1/meters/{SERIAL}/readings", json=body, headers=bearer(key))
    assert signed.status_code == 200 and signed.json()["trust"] == "device-signed", signed.text

    forged = {**_a1_payload(_stamp(60), 0.75), "meter_signature": body["meter_signature"]}
    attested = await client.post(f"/api/v1/meters/{SERIAL}/readings", json=forged, headers=bearer(key))
    assert attested.status_code == 200 and attested.json()["trust"] == "gateway-attested"

    meter_id = (await client.get("/api/meters/registered", headers=bearer(owner))).json()[0]["id"]
    items = (await client.get(f"/api/meters/{meter_id}/readings", headers=bearer(owner))).json()["items"]
    telemetry = next(i for i in items if i["trust"] == "device-signed")["extras"]
    assert telemetry["voltage"] == "239.87" and telemetry["zone_id"] == 3  # unknown fields kept, exactly
