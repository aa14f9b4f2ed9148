"""Helpers for market tests: traders with funded wallets, balances read from the ledger."""

from __future__ import annotations

from typing import Any

import httpx
from solders.pubkey import Pubkey

from gridtokenx.core.context import AppContext
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.market.rules import Asset
from gridtokenx.market.tokens import energy_mint
from gridtokenx.market.vault import Vault, Vaults
from tests.helpers import bearer, user_token


class Trader:
    def __init__(self, token: str, address: str) -> None:
        self.token = token
        self.address = address
        self.headers = bearer(token)

    @property
    def pubkey(self) -> Pubkey:
        return Pubkey.from_string(self.address)


async def trader(
    client: httpx.AsyncClient, ctx: AppContext, email: str, role: str, *, energy_wh: int = 0, money: str = ""
) -> Trader:
    """A verified user with a custodial wallet holding `energy_wh` of energy tokens and `money`."""
    token = await user_token(client, ctx, email, role)
    address = (await client.get("/api/wallets/me", headers=bearer(token))).json()["address"]
    who = Trader(token, address)
    if energy_wh:
        ledger = await ctx.services.get(LedgerHandle).get()
        await ledger.mint_to(await energy_mint(ledger, ctx.settings), [(who.pubkey, energy_wh * 10**6)])
    if money:
        response = await client.post("/api/faucet", json={"amount": money}, headers=who.headers)
        assert response.status_code == 200, response.text
    return who


async def vault(ctx: AppContext) -> Vault:
    return await ctx.services.get(Vaults).get()


async def balances(ctx: AppContext, owner: Pubkey) -> tuple[int, int]:
    """(energy, payment) base units held by `owner`."""
    v = await vault(ctx)
    return await v.balance(Asset.ENERGY, owner), await v.balance(Asset.PAYMENT, owner)


async def place(client: httpx.AsyncClient, who: Trader, side: str, kwh: str, price: str) -> httpx.Response:
    body: dict[str, Any] = {"order_type": side, "energy_amount": kwh, "price_per_kwh": price}
    return await client.post("/api/trading/orders", json=body, headers=who.headers)
