"""Meter registry, ownership claims (rate-limited, logged, exclusive) and device keys."""

from __future__ import annotations

import httpx
from nacl.signing import SigningKey
from sqlalchemy import func, select

from gridtokenx.core.context import AppContext
from gridtokenx.meters.models import MeterClaimAttempt
from gridtokenx.meters.rules import key_id, rotation_message
from tests.helpers import admin_token, bearer, claim, create_meter, error_code, user_token


async def test_claim_flow_and_exclusivity(client: httpx.AsyncClient, ctx: AppContext) -> None:
    admin = await admin_token(client, ctx)
    await create_meter(client, admin, "MTR-1", capacity_kw="7.5", interval_seconds=900)
    alice = await user_token(client, ctx, "alice@example.com")
    bob = await user_token(client, ctx, "bob@example.com")

    meter = await claim(client, alice, "MTR-1")
    assert meter["capacity_w"] == 7500 and meter["owner_id"] is not None
    mine = await client.get("/api/meters/registered", headers=bearer(alice))
    assert [m["serial"] for m in mine.json()] == ["MTR-1"]

    stolen = await client.post(
        "/api/meters/verify", json={"serial": "MTR-1", "meter_key": "key-MTR-1-secret"}, headers=bearer(bob)
    )
    assert stolen.status_code == 409 and error_code(stolen) == "METER_ALREADY_CLAIMED"
    assert (await client.get("/api/meters/registered", headers=bearer(bob))).json() == []


async def test_wrong_key_is_refused_and_attempts_are_limited(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    admin = await admin_token(client, ctx)
    await create_meter(client, admin, "MTR-2")
    eve = await user_token(client, ctx, "eve@example.com")
    for _ in range(5):
        wrong = await client.post(
            "/api/meters/verify", json={"serial": "MTR-2", "meter_key": "guess-guess"}, headers=bearer(eve)
        )
        assert wrong.status_code == 401 and error_code(wrong) == "METER_KEY_INVALID"
    blocked = await client.post(
        "/api/meters/verify", json={"serial": "MTR-2", "meter_key": "key-MTR-2-secret"}, headers=bearer(eve)
    )
    assert blocked.status_code == 429 and error_code(blocked) == "METER_CLAIM_RATE_LIMITED"
    assert int(blocked.headers["retry-after"]) > 3000
    async with ctx.db.session() as session:
        logged = await session.scalar(select(func.count()).select_from(MeterClaimAttempt))
    assert logged == 5

    # The per-meter budget is shared by every user: another user is blocked on MTR-2 as well.
    other = await user_token(client, ctx, "other@example.com")
    also = await client.post(
        "/api/meters/verify", json={"serial": "MTR-2", "meter_key": "key-MTR-2-secret"}, headers=bearer(other)
    )
    assert also.status_code == 429


async def test_unknown_serial_gives_no_hint(client: httpx.AsyncClient, ctx: AppContext) -> None:
    user = await user_token(client, ctx, "u@example.com")
    response = await client.post(
        "/api/meters/verify", json={"serial": "NOPE", "meter_key": "whatever1"}, headers=bearer(user)
    )
    assert response.status_code == 401 and error_code(response) == "METER_KEY_INVALID"


async def test_admin_only_registry(client: httpx.AsyncClient, ctx: AppContext) -> None:
    user = await user_token(client, ctx, "u2@example.com")
    response = await client.post(
        "/api/admin/meters", json={"serial": "X", "meter_key": "abcdefgh"}, headers=bearer(user)
    )
    assert response.status_code == 403 and error_code(response) == "ROLE_FORBIDDEN"
    admin = await admin_token(client, ctx)
    await create_meter(client, admin, "DUP")
    again = await client.post(
        "/api/admin/meters", json={"serial": "DUP", "meter_key": "abcdefgh"}, headers=bearer(admin)
    )
    assert again.status_code == 409 and error_code(again) == "METER_EXISTS"
    odd = await client.post(
        "/api/admin/meters",
        json={"serial": "ODD", "meter_key": "abcdefgh", "interval_seconds": 7},
        headers=bearer(admin),
    )
    assert odd.status_code == 422


async def test_device_key_provision_rotate_revoke(client: httpx.AsyncClient, ctx: AppContext) -> None:
    admin = await admin_token(client, ctx)
    meter = await create_meter(client, admin, "MTR-K")
    first = SigningKey.generate()
    first_pub = bytes(first.verify_key)
    provisioned = await client.post(
        "/api/admin/devices/register",
        json={"serial": "MTR-K", "public_key": first_pub.hex()},
        headers=bearer(admin),
    )
    assert provisioned.status_code == 201 and provisioned.json()["key_id"] == key_id(first_pub)
    again = await client.post(
        "/api/admin/devices/register",
        json={"serial": "MTR-K", "public_key": first_pub.hex()},
        headers=bearer(admin),
    )
    assert again.status_code == 409 and error_code(again) == "DEVICE_KEY_EXISTS"
    mismatch = await client.post(
        "/api/admin/devices/register",
        json={
            "serial": "MTR-K",
            "public_key": bytes(SigningKey.generate().verify_key).hex(),
            "key_id": "0" * 16,
        },
        headers=bearer(admin),
    )
    assert mismatch.status_code == 422 and error_code(mismatch) == "KEY_ID_MISMATCH"

    # Device-initiated rotation, signed by the current key.
    second = SigningKey.generate()
    second_pub = bytes(second.verify_key)
    message = rotation_message(
        ctx.settings.network_id, "MTR-K", key_id(first_pub), key_id(second_pub), second_pub.hex()
    )
    forged = await client.post(
        "/api/devices/MTR-K/rotate",
        json={
            "old_key_id": key_id(first_pub),
            "new_public_key": second_pub.hex(),
            "signature": second.sign(message).signature.hex(),
        },
    )
    assert forged.status_code == 401 and error_code(forged) == "SIGNATURE_INVALID"
    rotated = await client.post(
        "/api/devices/MTR-K/rotate",
        json={
            "old_key_id": key_id(first_pub),
            "new_public_key": second_pub.hex(),
            "signature": first.sign(message).signature.hex(),
            "overlap_seconds": 600,
        },
    )
    assert rotated.status_code == 201 and rotated.json()["key_id"] == key_id(second_pub)
    keys = (await client.get(f"/api/admin/devices/{meter['id']}/keys", headers=bearer(admin))).json()
    old = next(k for k in keys if k["key_id"] == key_id(first_pub))
    assert old["status"] == "active" and old["valid_until"] is not None

    revoked = await client.post(
        f"/api/admin/devices/{meter['id']}/revoke", json={"key_id": key_id(second_pub)}, headers=bearer(admin)
    )
    assert revoked.status_code == 200 and revoked.json()[0]["status"] == "revoked"
    twice = await client.post(
        f"/api/admin/devices/{meter['id']}/revoke", json={"key_id": key_id(second_pub)}, headers=bearer(admin)
    )
    assert twice.status_code == 404 and error_code(twice) == "DEVICE_KEY_NOT_FOUND"
