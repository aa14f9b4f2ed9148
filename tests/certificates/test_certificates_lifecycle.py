"""Certificates over HTTP on both database backends with the real embedded ledger: issue,
transfer, retire, withdraw, checked on the ledger at each step; double issuance; exclusions."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import httpx
import pytest
from solders.pubkey import Pubkey

from gridtokenx.certificates import rules
from gridtokenx.certificates.service import Certificates
from gridtokenx.certificates.verification import audit
from gridtokenx.core.context import AppContext
from gridtokenx.readings.native import QualityBit
from tests.certificates.cert_helpers import (
    capture,
    device_with_generation,
    holds,
    hour_start,
    iso,
    issue,
    ledger_of,
    post_readings,
    wallet,
)
from tests.helpers import bearer, error_code, user_token
from tests.readings.ingest_helpers import INTERVAL, make_device


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"erc_settle_seconds": 0}


async def test_issue_transfer_retire_on_the_ledger(client: httpx.AsyncClient, ctx: AppContext) -> None:
    events = capture(ctx, "CertificateIssued", "CertificateTransferred", "CertificateRetired")
    start = hour_start()
    device = await device_with_generation(client, ctx, start, [800, 810])

    issued = await issue(client, device.owner, device.meter_id, start, start + 1800)
    assert issued.status_code == 201, issued.text
    cert = issued.json()
    assert (cert["energy_wh"], cert["status"], cert["excluded"]) == (1610, "active", [])
    ledger = await ledger_of(ctx)
    mint = Pubkey.from_string(cert["mint"])
    info = await ledger.get_certificate(mint)
    assert info is not None and info.supply == 1
    assert info.mint_authority is None and info.update_authority is None
    fields = dict(info.metadata.fields)
    assert fields["energy_wh"] == "1610" and fields["facility_id"] == "MTR-100"
    assert fields["readings_hash"] == cert["readings_hash"]
    assert fields["period"] == rules.Period(start, start + 1800).label()
    owner_wallet = await wallet(client, device.owner)
    assert await holds(ledger, owner_wallet, mint) == 1

    public = (await client.get(f"/api/erc/{cert['id']}/verify")).json()
    assert public["valid"] is True, public
    assert (public["owner"], public["supply"]) == (str(owner_wallet), 1)
    assert public["readings_hash_recomputed"] == public["readings_hash_on_ledger"] == cert["readings_hash"]
    by_mint = (await client.get("/api/erc/verify", params={"mint": cert["mint"]})).json()
    assert by_mint == public

    bob = await user_token(client, ctx, "bob@example.com")
    bob_wallet = await wallet(client, bob)
    moved = await client.post(
        f"/api/erc/{cert['id']}/transfer", json={"to_wallet": str(bob_wallet)}, headers=bearer(device.owner)
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["holder_wallet"] == str(bob_wallet)
    assert (await holds(ledger, bob_wallet, mint), await holds(ledger, owner_wallet, mint)) == (1, 0)
    again = await client.post(
        f"/api/erc/{cert['id']}/transfer", json={"to_wallet": str(bob_wallet)}, headers=bearer(device.owner)
    )
    assert again.status_code == 404  # no longer the holder

    retired = await client.post(
        f"/api/erc/{cert['id']}/retire",
        json={"beneficiary": "Bob's Bakery", "purpose": "scope 2", "location": "Bangkok"},
        headers=bearer(bob),
    )
    assert retired.status_code == 200, retired.text
    assert retired.json()["status"] == "retired"
    info = await ledger.get_certificate(mint)
    assert info is not None and info.supply == 0 and dict(info.metadata.fields)["energy_wh"] == "1610"
    assert await ledger.get_token_account(await ledger.associated_address(bob_wallet, mint)) is None  # closed

    after = await client.post(
        f"/api/erc/{cert['id']}/transfer", json={"to_wallet": str(owner_wallet)}, headers=bearer(bob)
    )
    assert after.status_code == 409 and error_code(after) == "CERTIFICATE_RETIRED"
    retire_twice = await client.post(
        f"/api/erc/{cert['id']}/retire", json={"beneficiary": "x", "purpose": "y"}, headers=bearer(bob)
    )
    assert retire_twice.status_code == 409 and error_code(retire_twice) == "CERTIFICATE_RETIRED"

    final = (await client.get(f"/api/erc/{cert['id']}/verify")).json()
    assert final["valid"] is True and final["supply"] == 0 and final["status"] == "retired"

    detail = (await client.get(f"/api/erc/{cert['id']}", headers=bearer(bob))).json()
    assert [h["action"] for h in detail["history"]] == ["issued", "transferred", "retired"]
    assert len(detail["reading_ids"]) == 2 and detail["beneficiary"] == "Bob's Bakery"
    mine = (await client.get("/api/erc", params={"status": "retired"}, headers=bearer(bob))).json()
    assert mine["total"] == 1 and mine["items"][0]["id"] == cert["id"]
    assert (await client.get("/api/erc", params={"status": "active"}, headers=bearer(bob))).json()[
        "total"
    ] == 0

    assert [e.type for e in events] == ["CertificateIssued", "CertificateTransferred", "CertificateRetired"]
    assert events[0].data["user_id"] == events[1].data["user_id"] != events[2].data["user_id"]
    assert await audit(ctx.db, await ledger_of(ctx)) == []


async def test_double_issuance_is_refused(client: httpx.AsyncClient, ctx: AppContext) -> None:
    start = hour_start()
    device = await device_with_generation(client, ctx, start, [500, 510, 520, 530])
    first = await issue(client, device.owner, device.meter_id, start, start + 1800)
    assert first.status_code == 201, first.text
    same = await issue(client, device.admin, device.meter_id, start, start + 1800, admin=True)
    assert same.status_code == 409 and error_code(same) == "CERTIFICATE_EXISTS"
    inside = await issue(client, device.owner, device.meter_id, start + 900, start + 1800)
    assert inside.status_code == 409 and error_code(inside) == "PERIOD_OVERLAPS"
    hour = await issue(client, device.owner, device.meter_id, start, start + 3600)
    assert hour.status_code == 409 and error_code(hour) == "PERIOD_OVERLAPS"
    neighbour = await issue(client, device.owner, device.meter_id, start + 1800, start + 2700)
    assert neighbour.status_code == 201 and neighbour.json()["energy_wh"] == 520, neighbour.text

    future = await issue(client, device.owner, device.meter_id, start + 3 * 3600, start + 3 * 3600 + 900)
    assert future.status_code == 409 and error_code(future) == "PERIOD_NOT_SETTLED"
    crooked = await issue(client, device.owner, device.meter_id, start + 300, start + 1200)
    assert crooked.status_code == 422 and error_code(crooked) == "PERIOD_NOT_ALIGNED"
    stranger = await user_token(client, ctx, "mallory@example.com")
    theirs = await issue(client, stranger, device.meter_id, start + 2700, start + 3600)
    assert theirs.status_code == 404 and error_code(theirs) == "METER_NOT_FOUND"


async def test_two_users_racing_get_one_certificate(client: httpx.AsyncClient, ctx: AppContext) -> None:
    start = hour_start()
    device = await device_with_generation(client, ctx, start, [600, 610, 620, 630])
    races = [
        ((start, start + 1800), (start + 900, start + 1800)),  # overlapping periods
        ((start + 1800, start + 2700), (start + 1800, start + 2700)),  # the very same period
    ]
    for (a_start, a_end), (b_start, b_end) in races:
        owner, admin = await asyncio.gather(
            issue(client, device.owner, device.meter_id, a_start, a_end),
            issue(client, device.admin, device.meter_id, b_start, b_end, admin=True),
        )
        assert sorted([owner.status_code, admin.status_code]) == [201, 409], (owner.text, admin.text)
        loser = owner if owner.status_code == 409 else admin
        assert error_code(loser) in ("PERIOD_OVERLAPS", "CERTIFICATE_EXISTS")
    listed = (await client.get("/api/erc", headers=bearer(device.owner))).json()
    assert listed["total"] == 2


async def test_estimated_or_flagged_readings_never_count(client: httpx.AsyncClient, ctx: AppContext) -> None:
    start = hour_start()
    device = await device_with_generation(client, ctx, start, [700])
    await post_readings(client, device, start + 900, [710], quality=int(QualityBit.TAMPER))
    await post_readings(client, device, start + 1800, [720], quality=int(QualityBit.POWER_OUTAGE))

    refused = await issue(client, device.owner, device.meter_id, start + 1800, start + 2700)
    assert refused.status_code == 422 and error_code(refused) == "NO_CERTIFIABLE_GENERATION"
    assert "flagged" in refused.json()["error"]["details"]["excluded"][0]["reason"]
    empty = await issue(client, device.owner, device.meter_id, start + 2700, start + 3600)
    assert empty.status_code == 422 and error_code(empty) == "NO_CERTIFIABLE_GENERATION"

    partial = await issue(client, device.owner, device.meter_id, start, start + 1800)
    assert partial.status_code == 201, partial.text
    body = partial.json()
    assert body["energy_wh"] == 700  # only the valid reading; the tampered one is named
    assert len(body["excluded"]) == 1 and "TAMPER_REPORTED" in body["excluded"][0]["reason"]


async def test_verify_catches_a_tampered_row_and_a_revised_reading(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    from sqlalchemy import update

    from gridtokenx.certificates.models import Certificate

    start = hour_start()
    device = await device_with_generation(client, ctx, start, [900, 910, 920, 930])
    first = (await issue(client, device.owner, device.meter_id, start, start + 900)).json()
    second = (await issue(client, device.owner, device.meter_id, start + 900, start + 1800)).json()

    async with ctx.db.session() as session:
        await session.execute(
            update(Certificate).where(Certificate.id == uuid.UUID(first["id"])).values(energy_wh=99_999)
        )
    tampered = (await client.get(f"/api/erc/{first['id']}/verify")).json()
    assert tampered["valid"] is False
    assert any("energy_wh" in reason for reason in tampered["reasons"]), tampered
    assert any("energy_wh" in line for line in await audit(ctx.db, await ledger_of(ctx)))

    await post_readings(client, device, start + 900, [999])  # a changed resend: a revision
    revised = (await client.get(f"/api/erc/{second['id']}/verify")).json()
    assert revised["valid"] is False
    assert any("readings changed after issuance" in r for r in revised["reasons"]), revised
    assert revised["readings_hash_recomputed"] != revised["readings_hash_on_ledger"]

    unknown = await client.get("/api/erc/verify", params={"mint": str(Pubkey.new_unique())})
    assert unknown.status_code == 404 and error_code(unknown) == "CERTIFICATE_NOT_FOUND"


async def test_withdraw_by_the_issuer(client: httpx.AsyncClient, ctx: AppContext) -> None:
    events = capture(ctx, "CertificateWithdrawn")
    start = hour_start()
    device = await device_with_generation(client, ctx, start, [400])
    cert = (await issue(client, device.owner, device.meter_id, start, start + 900)).json()
    by_owner = await client.post(
        f"/api/admin/erc/{cert['id']}/withdraw",
        json={"reason": "meter miscalibrated"},
        headers=bearer(device.owner),
    )
    assert by_owner.status_code == 403
    withdrawn = await client.post(
        f"/api/admin/erc/{cert['id']}/withdraw",
        json={"reason": "meter miscalibrated"},
        headers=bearer(device.admin),
    )
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    moved = await client.post(
        f"/api/erc/{cert['id']}/transfer",
        json={"to_wallet": str(Pubkey.new_unique())},
        headers=bearer(device.owner),
    )
    assert moved.status_code == 409 and error_code(moved) == "CERTIFICATE_WITHDRAWN"
    verdict = (await client.get(f"/api/erc/{cert['id']}/verify")).json()
    assert verdict["valid"] is False and "withdrawn by the issuer: meter miscalibrated" in verdict["reasons"]
    assert [e.data["certificate_id"] for e in events] == [cert["id"]]


async def test_expiry_after_the_configured_age(client: httpx.AsyncClient, ctx: AppContext) -> None:
    certificates = ctx.services.get(Certificates)
    start = hour_start(3)
    device = await device_with_generation(client, ctx, start, [500])
    cert = (await issue(client, device.owner, device.meter_id, start, start + 900)).json()
    certificates.config = dataclasses.replace(certificates.config, expiry_seconds=3600)
    await certificates.expire_due()
    detail = (await client.get(f"/api/erc/{cert['id']}", headers=bearer(device.owner))).json()
    assert detail["status"] == "expired" and detail["history"][-1]["action"] == "expired"
    moved = await client.post(
        f"/api/erc/{cert['id']}/retire",
        json={"beneficiary": "x", "purpose": "y"},
        headers=bearer(device.owner),
    )
    assert moved.status_code == 409 and error_code(moved) == "CERTIFICATE_EXPIRED"
    verdict = (await client.get(f"/api/erc/{cert['id']}/verify")).json()
    assert verdict["valid"] is False and "expired" in verdict["reasons"]


async def test_hourly_matching_for_a_consumer(client: httpx.AsyncClient, ctx: AppContext) -> None:
    start = hour_start()
    producer = await device_with_generation(client, ctx, start, [800, 810, 820, 830])
    consumer = await make_device(client, ctx, serial="MTR-200", email="consumer@example.com")
    for k, wh in enumerate([1000, 1001, 1002, 1003]):
        await post_readings(client, consumer, start + k * INTERVAL, [0], consumption_wh=wh, export_wh=0)
    first = (await issue(client, producer.owner, producer.meter_id, start, start + 1800)).json()
    second = await issue(client, producer.owner, producer.meter_id, start + 1800, start + 3600)
    assert second.status_code == 201
    to = await wallet(client, consumer.owner)
    moved = await client.post(
        f"/api/erc/{first['id']}/transfer", json={"to_wallet": str(to)}, headers=bearer(producer.owner)
    )
    assert moved.status_code == 200, moved.text
    retired = await client.post(
        f"/api/erc/{first['id']}/retire",
        json={"beneficiary": "me", "purpose": "24/7"},
        headers=bearer(consumer.owner),
    )
    assert retired.status_code == 200, retired.text

    view = await client.get(
        "/api/erc/matching",
        params={"from": iso(start), "to": iso(start + 3600)},
        headers=bearer(consumer.owner),
    )
    assert view.status_code == 200, view.text
    body = view.json()
    share = 1610 * 1_000_000 // 4006
    assert body["consumed_wh"] == 4006 and body["matched_wh"] == 1610
    [hour] = body["hours"]
    assert (hour["consumed_wh"], hour["matched_wh"], hour["matched_share"]) == (4006, 1610, f"0.{share:06d}")
