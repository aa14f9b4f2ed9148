"""The mint worker's rounds against the embedded ledger: dead letters and retry, corrections up and
down (burn, or a debt netted against the next mint), the events, and a bad ratio at start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from mint_helpers import ingest, states
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from spl.token import instructions as spl
from spl.token.models import AuthorityType, SetAuthorityParams
from sqlalchemy import select, update

from gridtokenx.accounts.models import User
from gridtokenx.app import create_app
from gridtokenx.core.context import AppContext
from gridtokenx.core.settings import SettingsError
from gridtokenx.domains import audit
from gridtokenx.events.bus import Event
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.ledger.interface import Ledger
from gridtokenx.tokenization.models import EntryState, Kind, MintDebt, MintEntry
from gridtokenx.tokenization.tokens import energy_mint
from gridtokenx.tokenization.worker import Minter
from gridtokenx.wallets.sealing import Sealer
from gridtokenx.wallets.service import wallet_of
from tests.conftest import make_settings
from tests.helpers import bearer, error_code
from tests.readings.ingest_helpers import Device, make_device

UNITS = 10**6  # base units per Wh by default


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "run_duties": False,  # the test drives the rounds
        "tokenization_max_attempts": 2,
        "tokenization_backoff_base_secs": 0.0,
    }


async def run_round(ctx: AppContext) -> None:
    await ctx.services.get(Minter).round(1)


async def balance_of(ctx: AppContext, user_id: Any) -> int:
    ledger = await ctx.services.get(LedgerHandle).get()
    async with ctx.db.session() as session:
        wallet = await wallet_of(session, ctx.services.get(Sealer), user_id)
    return await ledger.get_token_balance(wallet.pubkey, await energy_mint(ledger, ctx.settings))


async def owner_of(ctx: AppContext) -> Any:
    async with ctx.db.session() as session:
        return await session.scalar(select(MintEntry.user_id).limit(1))


async def set_mint_authority(ledger: Ledger, mint: Pubkey, current: Keypair, new: Pubkey) -> None:
    program = (await ledger.get_mint(mint)).token_program
    change = spl.set_authority(
        SetAuthorityParams(
            account=mint,
            authority=AuthorityType.MINT_TOKENS,
            current_authority=current.pubkey(),
            new_authority=new,
            program_id=program,
        )
    )
    await ledger.submit([change], [current])


def record_events(ctx: AppContext) -> list[Event]:
    seen: list[Event] = []

    async def keep(event: Event) -> None:
        seen.append(event)

    for name in ("TokensMinted", "MintFailed", "MintAdjusted"):
        ctx.bus.subscribe(name, keep)
    return seen


async def resend(client: httpx.AsyncClient, device: Device, reading_id: str, export_wh: int) -> None:
    """The same interval again with a new value: a revised reading."""
    page = (await client.get("/api/meters/readings", headers=bearer(device.owner))).json()
    [item] = [i for i in page["items"] if i["reading_id"] == reading_id and i["revision"] == 0]
    start = int(__import__("datetime").datetime.fromisoformat(item["interval_start"]).timestamp())
    from mint_helpers import varied_batch

    body = varied_batch(device, [start], [export_wh])
    stored = await client.post("/api/meters/readings/batch", content=body, headers=bearer(device.owner))
    assert stored.status_code == 200 and stored.json()["results"][0]["mintable_wh"] == export_wh, stored.text


async def test_dead_letter_then_retry(client: httpx.AsyncClient, ctx: AppContext) -> None:
    events = record_events(ctx)
    device = await make_device(client, ctx)
    await ingest(client, device, [450])
    ledger = await ctx.services.get(LedgerHandle).get()
    mint = await energy_mint(ledger, ctx.settings)
    elsewhere = Keypair()
    await set_mint_authority(ledger, mint, ledger.authority, elsewhere.pubkey())

    await run_round(ctx)  # attempt 1 fails, back in the queue
    assert await states(ctx) == {EntryState.PENDING.value: 1}
    await run_round(ctx)  # attempt 2 fails: the last one
    assert await states(ctx) == {EntryState.DEAD_LETTER.value: 1}
    assert [e.type for e in events] == ["MintFailed"]
    assert events[0].data["amount_wh"] == 450 and events[0].data["user_id"]

    status = (await client.get("/api/admin/tokenization/status", headers=bearer(device.admin))).json()
    assert status["dead_letters"] == 1 and status["last_error"]
    async with ctx.db.session() as session:
        entry_id = await session.scalar(select(MintEntry.id))
    manual = await client.post(
        "/api/admin/meters/mint-from-reading",
        json={"reading_id": (await ingested_ids(ctx))[0]},
        headers=bearer(device.admin),
    )
    assert manual.status_code == 409 and error_code(manual) == "MINT_DEAD_LETTER"

    await set_mint_authority(ledger, mint, elsewhere, ledger.authority.pubkey())
    retried = await client.post(f"/api/admin/tokenization/retry/{entry_id}", headers=bearer(device.admin))
    assert retried.status_code == 200 and retried.json()["state"] == "pending", retried.text
    again = await client.post(f"/api/admin/tokenization/retry/{entry_id}", headers=bearer(device.admin))
    assert again.status_code == 409 and error_code(again) == "MINT_ENTRY_NOT_DEAD_LETTER"
    missing = await client.post(
        "/api/admin/tokenization/retry/00000000-0000-0000-0000-000000000000", headers=bearer(device.admin)
    )
    assert missing.status_code == 404

    await run_round(ctx)
    assert await states(ctx) == {EntryState.CONFIRMED.value: 1}
    assert await balance_of(ctx, await owner_of(ctx)) == 450 * UNITS
    assert [e.type for e in events] == ["MintFailed", "TokensMinted"]
    assert await audit(ctx) == []


async def ingested_ids(ctx: AppContext) -> list[str]:
    async with ctx.db.session() as session:
        return list(await session.scalars(select(MintEntry.reading_id).order_by(MintEntry.created_at)))


async def test_corrections_down_burn_and_up_mint(client: httpx.AsyncClient, ctx: AppContext) -> None:
    events = record_events(ctx)
    device = await make_device(client, ctx)
    [reading_id] = await ingest(client, device, [500])
    await run_round(ctx)
    owner = await owner_of(ctx)
    assert await balance_of(ctx, owner) == 500 * UNITS

    await resend(client, device, reading_id, 300)  # down by 200: burned from the custodial wallet
    await run_round(ctx)
    assert await balance_of(ctx, owner) == 300 * UNITS
    await resend(client, device, reading_id, 800)  # up by 500: minted as a new entry
    await run_round(ctx)
    assert await balance_of(ctx, owner) == 800 * UNITS

    async with ctx.db.session() as session:
        rows = (
            await session.execute(
                select(MintEntry.revision, MintEntry.kind, MintEntry.amount_wh, MintEntry.state).order_by(
                    MintEntry.revision
                )
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        (0, Kind.MINT.value, 500, "confirmed"),
        (1, Kind.BURN.value, 200, "confirmed"),
        (2, Kind.MINT.value, 500, "confirmed"),
    ]
    assert [e.type for e in events] == ["TokensMinted", "MintAdjusted", "MintAdjusted"]
    assert events[1].data["burned_wh"] == 200 and events[2].data["amount_wh"] == 500

    stats = (await client.get("/api/meters/stats", headers=bearer(device.owner))).json()
    assert (stats["minted_wh"], stats["burned_wh"], stats["minted_tokens"]) == (1000, 200, "0.800000000")
    assert await audit(ctx) == []


async def test_correction_down_on_a_linked_wallet_is_a_debt_netted_next_time(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    device = await make_device(client, ctx)
    linked = Keypair().pubkey()  # the owner's own wallet: the platform cannot burn from it
    async with ctx.db.session() as session:
        await session.execute(
            update(User).where(User.email == "owner@example.com").values(wallet_address=str(linked))
        )
    [first] = await ingest(client, device, [500], offset=4)
    await run_round(ctx)
    owner = await owner_of(ctx)
    assert await balance_of(ctx, owner) == 500 * UNITS

    await resend(client, device, first, 300)
    await run_round(ctx)
    async with ctx.db.session() as session:
        assert (await session.get(MintDebt, owner)).units == 200 * UNITS  # type: ignore[union-attr]
    assert await balance_of(ctx, owner) == 500 * UNITS  # nothing burned, nothing lost

    await ingest(client, device, [350])  # the next mint pays the debt first
    await run_round(ctx)
    assert await balance_of(ctx, owner) == 650 * UNITS
    async with ctx.db.session() as session:
        assert (await session.get(MintDebt, owner)).units == 0  # type: ignore[union-attr]
    assert await audit(ctx) == []


def test_bad_ratio_is_refused_at_start_up(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        "sqlite+aiosqlite:///x.db",
        tokenization_kwh_to_token_ratio="0.0001",
        tokenization_decimals=6,
    )
    with pytest.raises(SettingsError, match=r"KWH_TO_TOKEN_RATIO: ratio 0\.0001 with 6 decimals"):
        create_app(context=AppContext.from_settings(settings))

    result = subprocess.run(
        [sys.executable, "-m", "gridtokenx.cli", "worker"],
        env={
            **__import__("os").environ,
            "GRIDTOKENX_DATA_DIR": str(tmp_path / "var"),
            "TOKENIZATION_KWH_TO_TOKEN_RATIO": "1.5",
            "TOKENIZATION_DECIMALS": "0",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "TOKENIZATION_KWH_TO_TOKEN_RATIO" in lines[0], lines
