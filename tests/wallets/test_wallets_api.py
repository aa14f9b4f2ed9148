"""Wallets over HTTP on both backends, with the real embedded ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from solders.pubkey import Pubkey

from gridtokenx.app import create_app
from gridtokenx.core.context import AppContext
from gridtokenx.core.settings import SettingsError
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.wallets.sealing import KEY_FILE
from tests.conftest import make_settings
from tests.helpers import bearer, error_code, user_token


async def test_custodial_wallet_is_created_once_and_shows_balances(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    token = await user_token(client, ctx, "alice@example.com")
    first, second = await asyncio.gather(
        client.get("/api/wallets/me", headers=bearer(token)),
        client.get("/api/wallets/me", headers=bearer(token)),
    )
    assert first.status_code == second.status_code == 200, first.text
    assert first.json()["address"] == second.json()["address"]
    assert first.json()["custodial"] is True

    ledger = await ctx.services.get(LedgerHandle).get()
    mint = await ledger.ensure_mint("energy", 9)
    owner = Pubkey.from_string(first.json()["address"])
    await ledger.create_associated_token_accounts(mint, [owner])
    await ledger.mint_to(mint, [(owner, 1_500_000_123)])

    mine = (await client.get("/api/wallets/me", headers=bearer(token))).json()
    [energy] = [b for b in mine["balances"] if b["token"] == "energy"]
    assert energy == {
        "token": "energy",
        "mint": str(mint),
        "decimals": 9,
        "amount": "1500000123",
        "amount_decimal": "1.500000123",
    }
    public = await client.get(f"/api/wallets/{owner}/balance")
    assert public.status_code == 200 and public.json()["balances"] == mine["balances"]


async def test_linked_wallet_is_not_custodial(client: httpx.AsyncClient, ctx: AppContext) -> None:
    from sqlalchemy import update

    from gridtokenx.accounts.models import User

    token = await user_token(client, ctx, "bob@example.com")
    own = str(Pubkey.new_unique())
    async with ctx.db.session() as session:
        await session.execute(update(User).where(User.email == "bob@example.com").values(wallet_address=own))
    body = (await client.get("/api/wallets/me", headers=bearer(token))).json()
    assert (body["address"], body["custodial"]) == (own, False)


async def test_bad_address_and_anonymous_caller_are_refused(client: httpx.AsyncClient) -> None:
    bad = await client.get("/api/wallets/not-an-address/balance")
    assert bad.status_code == 422 and error_code(bad) == "WALLET_ADDRESS_INVALID"
    anonymous = await client.get("/api/wallets/me")
    assert anonymous.status_code == 401


async def test_embedded_key_is_generated_private(ctx: AppContext) -> None:
    create_app(context=ctx)
    key_file = ctx.settings.data_dir / KEY_FILE
    assert key_file.exists() and key_file.stat().st_mode & 0o777 == 0o600


def test_distributed_mode_requires_the_key(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "sqlite+aiosqlite:///x.db", environment="distributed")
    with pytest.raises(SettingsError, match="WALLET_ENCRYPTION_KEY: required"):
        create_app(context=AppContext.from_settings(settings))


async def test_a_wrong_key_stops_start_up(client: httpx.AsyncClient, ctx: AppContext, tmp_path: Path) -> None:
    token = await user_token(client, ctx, "carol@example.com")
    assert (await client.get("/api/wallets/me", headers=bearer(token))).status_code == 200
    wrong = make_settings(tmp_path, ctx.settings.database_url, wallet_encryption_key="11" * 32)
    other = AppContext.from_settings(wrong)
    await other.db.dispose()
    other.db = ctx.db
    app = create_app(context=other)
    with pytest.raises(SettingsError, match="wrong key"):
        async with app.router.lifespan_context(app):
            pass
