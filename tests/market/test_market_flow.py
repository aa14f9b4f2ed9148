"""The market over HTTP on both backends with the real embedded ledger: place, clear, settle, audit."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gridtokenx.core.context import AppContext
from gridtokenx.events.bus import Event
from gridtokenx.market.clearing import Order, clear
from gridtokenx.market.rules import Asset, buy_escrow
from gridtokenx.market.settlement import audit  # the energy here is minted straight on the ledger
from tests.helpers import admin_token, bearer, error_code
from tests.market.market_helpers import balances, place, trader, vault


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # The admin drives the epochs here; the scheduler has its own tests.
    return {"run_duties": False}


def record(ctx: AppContext) -> list[Event]:
    seen: list[Event] = []
    for name in (
        "OrderPlaced",
        "OrderCancelled",
        "OrderBookChanged",
        "EpochTransition",
        "TradeExecuted",
        "SettlementConfirmed",
    ):

        async def keep(event: Event) -> None:
            seen.append(event)

        ctx.bus.subscribe(name, keep)
    return seen


async def test_two_sellers_three_buyers_clear_and_settle_to_the_base_unit(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    events = record(ctx)
    admin = await admin_token(client, ctx)
    sellers = [
        await trader(client, ctx, "p1@example.com", "prosumer", energy_wh=5000),
        await trader(client, ctx, "p2@example.com", "prosumer", energy_wh=5000),
    ]
    buyers = [await trader(client, ctx, f"c{i}@example.com", "consumer", money="10") for i in range(1, 4)]
    book = [
        (sellers[0], "sell", "3.0", "0.10"),
        (sellers[1], "sell", "2.5", "0.12"),
        (buyers[0], "buy", "2.0", "0.20"),
        (buyers[1], "buy", "2.25", "0.13"),
        (buyers[2], "buy", "2.0", "0.09"),
    ]
    placed = []
    for who, side, kwh, price in book:
        response = await place(client, who, side, kwh, price)
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "open"
        placed.append(response.json())
    before = {w.address: await balances(ctx, w.pubkey) for w in sellers + buyers}
    assert before[buyers[0].address] == (0, 10_000_000 - buy_escrow(2000, 200_000))
    assert before[sellers[0].address] == (2000 * 10**6, 0)

    levels = (await client.get("/api/market/orderbook")).json()
    assert [lvl["price_per_kwh"] for lvl in levels["asks"]] == ["0.100000", "0.120000"]
    assert [lvl["price_per_kwh"] for lvl in levels["bids"]] == ["0.200000", "0.130000", "0.090000"]

    cleared = await client.post("/api/admin/epochs/clear", headers=bearer(admin))
    assert cleared.status_code == 200, cleared.text
    epoch_id = cleared.json()["cleared_epoch_id"]
    again = await client.post("/api/admin/epochs/clear", headers=bearer(admin))
    assert again.json()["cleared_epoch_id"] != epoch_id  # that gate is closed; nothing else was open

    # The engine on the same book gives what the market stored.
    owners = {w.address: str(i) for i, w in enumerate(sellers + buyers)}
    ids = [p["id"] for p in placed]
    offers = [
        Order(ids[i], 3000 if i == 0 else 2500, [100_000, 120_000][i], owners[book[i][0].address])
        for i in (0, 1)
    ]
    bid_q, bid_p = [2000, 2250, 2000], [200_000, 130_000, 90_000]
    bids = [Order(ids[2 + i], bid_q[i], bid_p[i], owners[book[2 + i][0].address]) for i in range(3)]
    result = clear(bids, offers)
    detail = (await client.get(f"/api/market/epochs/{epoch_id}")).json()
    assert detail["status"] == "cleared" and detail["clearing_price_exact"] == str(result.price)
    assert {f["order_id"]: f["energy_amount"] for f in detail["fills"]} == {
        k: f"{v / 1000:.3f}" for k, v in result.fills.items()
    }
    assert detail["certificate"]["merkle_root"] == result.certificate.merkle_root
    verified = (await client.get(f"/api/market/epochs/{epoch_id}/verify")).json()
    assert verified["valid"] is True, verified
    late = await client.delete(f"/api/trading/orders/{ids[0]}", headers=sellers[0].headers)
    assert late.status_code == 409 and error_code(late) == "GATE_CLOSED"

    settled = await client.post("/api/admin/epochs/settle", headers=bearer(admin))
    assert settled.status_code == 200 and epoch_id in settled.json()["settled"], settled.text
    assert (await client.get(f"/api/market/epochs/{epoch_id}")).json()["status"] == "settled"

    for i, seller in enumerate(sellers):
        energy, money = await balances(ctx, seller.pubkey)
        assert energy == 5000 * 10**6 - result.fills.get(ids[i], 0) * 10**6
        assert money == result.payments.get(ids[i], 0)
    for i, buyer in enumerate(buyers):
        energy, money = await balances(ctx, buyer.pubkey)
        assert energy == result.fills.get(ids[2 + i], 0) * 10**6
        assert money == 10_000_000 - result.payments.get(ids[2 + i], 0)
    v = await vault(ctx)
    assert await v.escrow_balance(Asset.ENERGY) == 0 and await v.escrow_balance(Asset.PAYMENT) == 0
    assert await audit(ctx) == []

    mine = (await client.get("/api/trading/orders", headers=buyers[0].headers)).json()
    assert [(o["id"], o["status"]) for o in mine] == [(ids[2], "settled")]
    trades = (await client.get("/api/market/trades")).json()
    assert sum(int(t["total"].replace(".", "")) for t in trades) == sum(
        result.payments[i] for i in ids[:2] if i in result.payments
    )
    stats = (await client.get("/api/market/stats")).json()
    assert stats["epochs_cleared"] >= 1 and stats["total_volume"] == f"{result.volume_wh / 1000:.3f}"
    names = [e.type for e in events]
    assert names.count("OrderPlaced") == 5 and names.count("TradeExecuted") == len(result.fills)
    assert "SettlementConfirmed" in names and names.count("EpochTransition") >= 2
    assert all(
        "user_id" in e.data
        for e in events
        if e.type in ("OrderPlaced", "TradeExecuted", "SettlementConfirmed")
    )
