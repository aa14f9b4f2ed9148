"""The epoch scheduler's rounds: gate closure on time, clearing and settlement once, epochs ahead."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from gridtokenx.accounts.models import User
from gridtokenx.core.context import AppContext
from gridtokenx.core.types import utcnow
from gridtokenx.market.epochs import open_epoch
from gridtokenx.market.models import MarketEpoch, MarketOrder, MarketSettlement
from gridtokenx.market.orders import recover
from gridtokenx.market.rules import Asset
from gridtokenx.market.scheduler import EpochScheduler
from gridtokenx.market.settlement import audit  # the energy here is minted straight on the ledger
from gridtokenx.wallets.sealing import Sealer
from gridtokenx.wallets.service import custodial_signer
from tests.helpers import admin_token, bearer, error_code
from tests.market.market_helpers import balances, place, trader, vault


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"run_duties": False, "market_epoch_seconds": 60}


async def test_rounds_close_clear_and_settle_each_epoch_once(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    seller = await trader(client, ctx, "s@example.com", "prosumer", energy_wh=2000)
    buyer = await trader(client, ctx, "b@example.com", "consumer", money="1")
    sold = await place(client, seller, "sell", "2", "0.2")
    bought = await place(client, buyer, "buy", "1.5", "0.4")
    assert sold.status_code == bought.status_code == 201
    epoch_id = sold.json()["epoch_id"]
    status = (await client.get("/api/market/epoch/status")).json()
    assert status["current"]["id"] == epoch_id and status["epoch_seconds"] == 60
    assert 0 <= status["seconds_to_gate"] <= 60

    scheduler = EpochScheduler(ctx)
    await scheduler.round(1)  # the gate is not due yet: nothing clears
    async with ctx.db.session() as session:
        assert (await session.get(MarketEpoch, epoch_id)).status == "active"  # type: ignore[union-attr]
        await session.execute(
            update(MarketEpoch)
            .where(MarketEpoch.id == epoch_id)
            .values(ends_at=utcnow() - timedelta(seconds=1))
        )
    pause = await scheduler.round(1)
    assert 0 < pause <= 60
    epochs = {e["id"]: e for e in (await client.get("/api/market/epochs")).json()}
    assert epochs[epoch_id]["status"] == "settled"
    # the seller's partial fill pins the price at its limit (rule R): 1.5 kWh x 0.2 = 0.30
    assert epochs[epoch_id]["clearing_price"] == "0.2" and epochs[epoch_id]["volume"] == "1.500"
    assert await balances(ctx, buyer.pubkey) == (1_500_000_000, 1_000_000 - 300_000)
    assert await balances(ctx, seller.pubkey) == (500_000_000, 300_000)
    assert sorted(e["status"] for e in epochs.values()) in (
        ["active", "settled"],
        ["active", "pending", "settled"],
    )

    await scheduler.round(1)  # a later round (or a restarted holder) finds nothing left to do
    async with ctx.db.session() as session:
        count = await session.scalar(select(func.count()).select_from(MarketSettlement))
    assert count == 1
    assert await balances(ctx, buyer.pubkey) == (1_500_000_000, 700_000)
    verified = (await client.get(f"/api/market/epochs/{epoch_id}/verify")).json()
    assert verified["valid"] is True
    assert await audit(ctx) == []


async def test_orders_cut_off_mid_placement_are_finished_once(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    buyer = await trader(client, ctx, "cut@example.com", "consumer", money="2")
    async with ctx.db.session() as session:
        user_id = await session.scalar(select(User.id).where(User.email == "cut@example.com"))
        epoch = await open_epoch(session, 60, utcnow())
        for n in range(2):
            session.add(
                MarketOrder(
                    id=f"0000000{n}-cut",
                    epoch_id=epoch.id,
                    user_id=user_id,
                    wallet=buyer.address,
                    side="buy",
                    quantity_wh=1000,
                    limit_price=500_000,
                    escrow=500_000,
                    status="escrowing",
                    filled_wh=0,
                    payment=0,
                )
            )
    # The first died after its deposit landed, the second before it was sent.
    async with ctx.db.session() as session:
        signer = await custodial_signer(session, ctx.services.get(Sealer), user_id)  # type: ignore[arg-type]
    assert signer is not None
    await (await vault(ctx)).deposit("00000000-cut", Asset.PAYMENT, signer, 500_000)
    assert await audit(ctx) != []  # escrow holds a deposit no open order accounts for
    assert await recover(ctx, timedelta(0)) == 2
    assert await recover(ctx, timedelta(0)) == 0
    mine = (await client.get("/api/trading/orders", headers=buyer.headers)).json()
    assert sorted(o["status"] for o in mine) == ["open", "open"]
    assert await balances(ctx, buyer.pubkey) == (0, 1_000_000)
    assert await audit(ctx) == []


async def test_orders_racing_gate_closure_end_in_a_book_or_refunded(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    admin = await admin_token(client, ctx)
    buyers = [await trader(client, ctx, f"race{i}@example.com", "consumer", money="10") for i in range(3)]
    first = await place(client, buyers[0], "buy", "1", "0.5")
    assert first.status_code == 201
    orders = [place(client, b, "buy", "1", "0.5") for b in buyers for _ in range(3)]
    gate = client.post("/api/admin/epochs/clear", headers=bearer(admin))
    responses = await asyncio.gather(*orders[:4], gate, *orders[4:])
    placed = [r for n, r in enumerate(responses) if n != 4]
    assert responses[4].status_code == 200
    for response in placed:
        assert response.status_code == 201 or error_code(response) == "GATE_CLOSED", response.text
    settled = await client.post("/api/admin/epochs/settle", headers=bearer(admin))
    assert settled.status_code == 200 and settled.json()["waiting"] == []
    # No seller: the cleared book refunds its bids; later orders wait, escrowed, in the next epoch.
    v = await vault(ctx)
    still_open = 0
    for b in buyers:
        mine = (await client.get("/api/trading/orders", headers=b.headers)).json()
        assert {o["status"] for o in mine} <= {"settled", "open", "rejected"}
        opened = sum(o["status"] == "open" for o in mine)
        still_open += opened
        assert await balances(ctx, b.pubkey) == (0, 10_000_000 - 500_000 * opened)
    assert await v.escrow_balance(Asset.PAYMENT) == 500_000 * still_open
    assert await audit(ctx) == []
