"""Builders for the certificate tests: a metered owner with signed generation, issuance calls."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from solders.pubkey import Pubkey

from gridtokenx.core.context import AppContext
from gridtokenx.core.types import utcnow
from gridtokenx.events.bus import Event
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.ledger.interface import Ledger
from tests.helpers import bearer
from tests.readings.ingest_helpers import INTERVAL, Device, make_device


def hour_start(hours_back: int = 2) -> int:
    now = int(utcnow().timestamp())
    return now - now % 3600 - 3600 * hours_back


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


async def device_with_generation(
    client: httpx.AsyncClient, ctx: AppContext, start: int, generation: list[int], **device: Any
) -> Device:
    """A claimed, keyed meter with one signed reading per interval from `start` (values vary, so
    the frozen-value rule stays quiet)."""
    made = await make_device(client, ctx, **device)
    await post_readings(client, made, start, generation)
    return made


async def post_readings(
    client: httpx.AsyncClient, device: Device, start: int, generation: list[int], **values: Any
) -> None:
    for k, wh in enumerate(generation):
        body = device.signed(
            start + k * INTERVAL,
            **{"generation_wh": wh, "export_wh": wh // 2, "consumption_wh": wh // 3, **values},
        )
        response = await client.post("/api/meters/readings", content=body, headers=bearer(device.owner))
        assert response.status_code in (200, 201), response.text


async def issue(
    client: httpx.AsyncClient, token: str, meter_id: str, start: int, end: int, admin: bool = False
) -> httpx.Response:
    path = "/api/admin/erc/issue" if admin else "/api/erc/issue"
    body = {"meter_id": meter_id, "period_start": iso(start), "period_end": iso(end)}
    return await client.post(path, json=body, headers=bearer(token))


async def wallet(client: httpx.AsyncClient, token: str) -> Pubkey:
    response = await client.get("/api/wallets/me", headers=bearer(token))
    assert response.status_code == 200, response.text
    return Pubkey.from_string(response.json()["address"])


async def ledger_of(ctx: AppContext) -> Ledger:
    return await ctx.services.get(LedgerHandle).get()


async def holds(ledger: Ledger, owner: Pubkey, mint: Pubkey) -> int:
    return await ledger.get_token_account_balance(await ledger.associated_address(owner, mint)) or 0


def capture(ctx: AppContext, *names: str) -> list[Event]:
    seen: list[Event] = []

    async def keep(event: Event) -> None:
        seen.append(event)

    for name in names:
        ctx.bus.subscribe(name, keep)
    return seen
