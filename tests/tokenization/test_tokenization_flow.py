"""Reading -> outbox -> minted -> balance over HTTP, on SQLite and PostgreSQL, with the embedded ledger."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from mint_helpers import varied_batch, wait_for
from sqlalchemy import func, select

from gridtokenx.core.context import AppContext
from gridtokenx.domains import audit
from gridtokenx.tokenization.models import MintEntry
from tests.helpers import bearer, error_code
from tests.readings.ingest_helpers import INTERVAL, aligned_now, make_device


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"tokenization_polling_interval_secs": 0.2}


async def energy_of(client: httpx.AsyncClient, token: str) -> int:
    mine = (await client.get("/api/wallets/me", headers=bearer(token))).json()
    return sum(int(b["amount"]) for b in mine["balances"] if b["token"] == "energy")


async def test_reading_is_minted_once_to_the_owner(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    start = aligned_now(4)
    body = varied_batch(device, [start + i * INTERVAL for i in range(3)], [500, 600, 700])
    stored = await client.post("/api/meters/readings/batch", content=body, headers=bearer(device.owner))
    assert stored.status_code in (200, 201, 207), stored.text

    async def minted() -> bool:
        page = (await client.get("/api/meters/readings?minted=true", headers=bearer(device.owner))).json()
        return bool(page["total"] == 3)

    await wait_for(minted)
    assert await energy_of(client, device.owner) == 1800 * 10**6

    page = (await client.get("/api/meters/readings?minted=true", headers=bearer(device.owner))).json()
    item = page["items"][0]
    assert (
        item["amount_wh"] == 700 and item["amount"] == "700000000" and item["amount_tokens"] == "0.700000000"
    )
    assert item["signature"] and item["minted"] is True
    assert (await client.get("/api/meters/readings?minted=false", headers=bearer(device.owner))).json()[
        "total"
    ] == 0

    stats = (await client.get("/api/meters/stats", headers=bearer(device.owner))).json()
    assert stats["minted_wh"] == 1800 and stats["unminted_wh"] == 0
    assert stats["minted_tokens"] == "1.800000000" and stats["mintable_wh"] == 1800

    # the same batch again is a duplicate: nothing more to mint
    again = await client.post("/api/meters/readings/batch", content=body, headers=bearer(device.owner))
    assert again.status_code in (200, 201, 207)
    async with ctx.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(MintEntry)) == 3

    # the manual mint is idempotent: the same signature, no second mint
    reading_id = item["reading_id"]
    manual = await client.post(
        "/api/admin/meters/mint-from-reading", json={"reading_id": reading_id}, headers=bearer(device.admin)
    )
    assert manual.status_code == 200, manual.text
    assert manual.json()["signature"] == item["signature"]
    assert await energy_of(client, device.owner) == 1800 * 10**6
    assert await audit(ctx) == []

    status = (await client.get("/api/admin/tokenization/status", headers=bearer(device.admin))).json()
    assert status["queue_depth"] == 0 and status["in_flight"] == 0 and status["dead_letters"] == 0
    assert status["lease_holder"]


async def test_manual_mint_refuses_what_is_not_mintable(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    start = aligned_now(2)
    nothing = await client.post(
        "/api/meters/readings", content=device.signed(start, export_wh=0), headers=bearer(device.owner)
    )
    assert nothing.status_code == 201, nothing.text
    refused = await client.post(
        "/api/admin/meters/mint-from-reading",
        json={"reading_id": nothing.json()["reading_id"]},
        headers=bearer(device.admin),
    )
    assert refused.status_code == 409 and error_code(refused) == "READING_NOT_MINTABLE"
    bad = await client.post(
        "/api/admin/meters/mint-from-reading", json={"reading_id": "nope"}, headers=bearer(device.admin)
    )
    assert bad.status_code == 422
    owner_only = await client.post(
        "/api/admin/meters/mint-from-reading",
        json={"reading_id": nothing.json()["reading_id"]},
        headers=bearer(device.owner),
    )
    assert owner_only.status_code == 403
