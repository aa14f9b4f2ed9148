"""Orders over HTTP: refunds, refusals with their codes, self-custody approval, concurrency, limits."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import pytest
from solders.keypair import Keypair
from sqlalchemy import update

from gridtokenx.accounts.models import User
from gridtokenx.core.context import AppContext
from gridtokenx.market.rules import Asset, buy_escrow
from gridtokenx.market.settlement import audit  # the energy here is minted straight on the ledger
from tests.helpers import admin_token, bearer, error_code, user_token
from tests.market.market_helpers import balances, place, trader, vault


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"run_duties": False, "market_order_rate_limit": "4/minute"}


async def test_cancel_refunds_in_full_and_only_once(client: httpx.AsyncClient, ctx: AppContext) -> None:
    buyer = await trader(client, ctx, "b@example.com", "consumer", money="5")
    seller = await trader(client, ctx, "s@example.com", "prosumer", energy_wh=3000)
    bid = (await place(client, buyer, "buy", "2.5", "0.333333")).json()
    ask = (await place(client, seller, "sell", "1.5", "0.2")).json()
    assert await balances(ctx, buyer.pubkey) == (0, 5_000_000 - buy_escrow(2500, 333_333))
    assert bid["escrow_amount"] == "0.833333"  # 2.5 × 0.333333 = 0.8333325, rounded up
    for who, order in ((buyer, bid), (seller, ask)):
        gone = await client.delete(f"/api/trading/orders/{order['id']}", headers=who.headers)
        assert gone.status_code == 200 and gone.json()["status"] == "cancelled", gone.text
    assert await balances(ctx, buyer.pubkey) == (0, 5_000_000)
    assert await balances(ctx, seller.pubkey) == (3000 * 10**6, 0)
    twice = await client.delete(f"/api/trading/orders/{bid['id']}", headers=buyer.headers)
    assert twice.status_code == 409 and error_code(twice) == "ORDER_NOT_CANCELLABLE"
    stranger = await client.delete(f"/api/trading/orders/{bid['id']}", headers=seller.headers)
    assert stranger.status_code == 404
    assert (await client.get("/api/market/orderbook")).json()["bids"] == []
    assert await audit(ctx) == []


async def test_insufficient_balance_moves_nothing(client: httpx.AsyncClient, ctx: AppContext) -> None:
    buyer = await trader(client, ctx, "poor@example.com", "consumer", money="1")
    seller = await trader(client, ctx, "dry@example.com", "prosumer", energy_wh=1000)
    short = await place(client, buyer, "buy", "10", "0.5")
    assert short.status_code == 409 and error_code(short) == "INSUFFICIENT_BALANCE"
    assert short.json()["error"]["details"] == {
        "asset": "payment",
        "required": "5000000",
        "available": "1000000",
    }
    unsold = await place(client, seller, "sell", "1.001", "0.1")
    assert unsold.status_code == 409 and error_code(unsold) == "INSUFFICIENT_BALANCE"
    assert await balances(ctx, buyer.pubkey) == (0, 1_000_000)
    assert await balances(ctx, seller.pubkey) == (1000 * 10**6, 0)
    assert (await client.get("/api/trading/orders", headers=buyer.headers)).json() == []
    assert await audit(ctx) == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"order_type": "buy", "energy_amount": 50.0, "price_per_kwh": "0.15"},
            422,
            "DECIMAL_STRING_REQUIRED",
        ),
        ({"order_type": "buy", "energy_amount": "50", "price_per_kwh": 0.15}, 422, "DECIMAL_STRING_REQUIRED"),
        ({"order_type": "buy", "energy_amount": "-1", "price_per_kwh": "0.15"}, 422, "DECIMAL_NEGATIVE"),
        ({"order_type": "buy", "energy_amount": "NaN", "price_per_kwh": "0.15"}, 422, "DECIMAL_INVALID"),
        (
            {"order_type": "buy", "energy_amount": "1.0001", "price_per_kwh": "0.15"},
            422,
            "DECIMAL_TOO_PRECISE",
        ),
        (
            {"order_type": "buy", "energy_amount": "1", "price_per_kwh": "0.1500001"},
            422,
            "DECIMAL_TOO_PRECISE",
        ),
        ({"order_type": "buy", "energy_amount": "0.5", "price_per_kwh": "0.15"}, 422, "ORDER_TOO_SMALL"),
        ({"order_type": "buy", "energy_amount": "1", "price_per_kwh": "0"}, 422, "PRICE_NOT_POSITIVE"),
        ({"order_type": "sell", "energy_amount": "1", "price_per_kwh": "0.15"}, 422, "ROLE_CANNOT_SELL"),
        ({"order_type": "hold", "energy_amount": "1", "price_per_kwh": "0.15"}, 422, "ORDER_SIDE_INVALID"),
    ],
)
async def test_bad_orders_get_their_codes(
    client: httpx.AsyncClient, ctx: AppContext, body: dict[str, Any], status: int, code: str
) -> None:
    token = await user_token(client, ctx, "consumer@example.com", "consumer")
    response = await client.post("/api/trading/orders", json=body, headers=bearer(token))
    assert response.status_code == status and error_code(response) == code, response.text


async def test_other_bad_inputs(client: httpx.AsyncClient, ctx: AppContext) -> None:
    token = await user_token(client, ctx, "x@example.com", "consumer")
    anonymous = await client.post("/api/trading/orders", json={"order_type": "buy"})
    assert anonymous.status_code == 401
    for amount, code in (
        (1, "DECIMAL_STRING_REQUIRED"),
        ("0", "FAUCET_AMOUNT_INVALID"),
        ("1e9", "DECIMAL_INVALID"),
    ):
        refused = await client.post("/api/faucet", json={"amount": amount}, headers=bearer(token))
        assert refused.status_code == 422 and error_code(refused) == code
    assert (await client.get("/api/market/epochs/999")).status_code == 404
    admin = await admin_token(client, ctx)
    retry = await client.post("/api/admin/settlements/999/retry", headers=bearer(admin))
    assert retry.status_code == 404 and error_code(retry) == "SETTLEMENT_NOT_FOUND"
    not_admin = await client.post("/api/admin/epochs/clear", headers=bearer(token))
    assert not_admin.status_code == 403


async def test_rate_limit_per_user(client: httpx.AsyncClient, ctx: AppContext) -> None:
    buyer = await trader(client, ctx, "busy@example.com", "consumer", money="100")
    codes = [(await place(client, buyer, "buy", "1", "0.01")).status_code for _ in range(5)]
    assert codes == [201, 201, 201, 201, 429]


async def test_self_custody_order_opens_once_its_owner_signs(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    admin = await admin_token(client, ctx)
    token = await user_token(client, ctx, "own@example.com", "consumer")
    keys = Keypair()
    async with ctx.db.session() as session:
        await session.execute(
            update(User).where(User.email == "own@example.com").values(wallet_address=str(keys.pubkey()))
        )
    me = (await client.get("/api/users/me", headers=bearer(token))).json()
    funded = await client.post(
        "/api/admin/faucet", json={"user_id": me["id"], "amount": "3"}, headers=bearer(admin)
    )
    assert funded.status_code == 200 and funded.json()["wallet_address"] == str(keys.pubkey())
    body = {"order_type": "buy", "energy_amount": "2", "price_per_kwh": "1"}
    placed = await client.post("/api/trading/orders", json=body, headers=bearer(token))
    assert placed.status_code == 201 and placed.json()["status"] == "approval", placed.text
    assert await balances(ctx, keys.pubkey()) == (0, 3_000_000)  # nothing moves before the signature
    message = base64.b64decode(placed.json()["approval_message"])
    order_id = placed.json()["id"]
    forged = await client.post(
        f"/api/trading/orders/{order_id}/approve",
        json={"signature": str(Keypair().sign_message(message))},
        headers=bearer(token),
    )
    assert forged.status_code == 422 and error_code(forged) == "SIGNATURE_INVALID"
    signed = await client.post(
        f"/api/trading/orders/{order_id}/approve",
        json={"signature": str(keys.sign_message(message))},
        headers=bearer(token),
    )
    assert signed.status_code == 200 and signed.json()["status"] == "open", signed.text
    assert await balances(ctx, keys.pubkey()) == (0, 1_000_000)
    v = await vault(ctx)
    assert await v.escrow_balance(Asset.PAYMENT) == 2_000_000
    cancelled = await client.delete(f"/api/trading/orders/{order_id}", headers=bearer(token))
    assert cancelled.status_code == 200
    assert await balances(ctx, keys.pubkey()) == (0, 3_000_000)
    assert await audit(ctx) == []


async def test_concurrent_orders_all_escrow_exactly(client: httpx.AsyncClient, ctx: AppContext) -> None:
    buyers = [await trader(client, ctx, f"many{i}@example.com", "consumer", money="10") for i in range(4)]
    responses = await asyncio.gather(
        *(place(client, b, "buy", f"{1 + n}", "0.5") for b in buyers for n in range(3))
    )
    assert [r.status_code for r in responses] == [201] * 12, [
        r.text for r in responses if r.status_code != 201
    ]
    assert len({r.json()["epoch_id"] for r in responses}) == 1
    v = await vault(ctx)
    assert await v.escrow_balance(Asset.PAYMENT) == 4 * (500_000 + 1_000_000 + 1_500_000)
    for b in buyers:
        assert await balances(ctx, b.pubkey) == (0, 10_000_000 - 3_000_000)
    book = (await client.get("/api/market/orderbook")).json()
    assert book["bids"] == [{"price_per_kwh": "0.500000", "energy_amount": "24.000", "orders": 12}]
    assert await audit(ctx) == []
