"""Real processes SIGKILLed between clear and settle and between two settlement transactions; a
restarted worker settles every trade exactly once and the audit finds nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gridtokenx.core.context import AppContext
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.market.clearing import Order, clear
from gridtokenx.market.models import MarketEpoch, MarketOrder, MarketSettlement
from gridtokenx.market.rules import Asset
from gridtokenx.market.settlement import audit  # the energy here is minted straight on the ledger
from tests.market.market_helpers import balances, place, trader, vault

STAGE = Path(__file__).with_name("crash_stage.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"run_duties": False, "market_settlement_orders_per_tx": 1}


def environment(ctx: AppContext) -> dict[str, str]:
    s = ctx.settings
    env = dict(os.environ)
    env.update(
        GRIDTOKENX_ENVIRONMENT="test",
        GRIDTOKENX_DATABASE_URL=s.effective_database_url,
        GRIDTOKENX_DATA_DIR=str(s.data_dir),
        GRIDTOKENX_JWT_SECRET=s.jwt_secret or "",
        GRIDTOKENX_MARKET_SETTLEMENT_ORDERS_PER_TX="1",
        GRIDTOKENX_LOG_JSON="false",
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")]),
    )
    return env


def run_until(env: dict[str, str], stage: str, marker: str) -> list[str]:
    """Start a stage, wait for its marker line, SIGKILL it; the lines it printed."""
    process = subprocess.Popen(
        [sys.executable, str(STAGE), stage], env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert process.stdout is not None
    lines = []
    try:
        for line in process.stdout:
            lines.append(line.strip())
            if line.startswith(marker):
                break
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert any(line.startswith(marker) for line in lines), lines
    return lines


async def test_killed_between_clear_and_settle_and_between_settlements(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    sellers = [await trader(client, ctx, f"p{i}@example.com", "prosumer", energy_wh=4000) for i in (1, 2)]
    buyers = [await trader(client, ctx, f"c{i}@example.com", "consumer", money="5") for i in (1, 2, 3)]
    orders = [
        (sellers[0], "sell", 3000, 100_000),
        (sellers[1], "sell", 2000, 150_000),
        (buyers[0], "buy", 2000, 300_000),
        (buyers[1], "buy", 1500, 160_000),
        (buyers[2], "buy", 2000, 120_000),
    ]
    ids = []
    for who, side, wh, price in orders:
        response = await place(client, who, side, f"{wh / 1000:.3f}", f"{price / 1e6:.6f}")
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    owner = {id(w): str(n) for n, w in enumerate(sellers + buyers)}
    book = [Order(ids[n], wh, price, owner[id(who)]) for n, (who, _, wh, price) in enumerate(orders)]
    result = clear(book[2:], book[:2])
    await ctx.services.get(LedgerHandle).stop()  # the stages below own the embedded ledger in turn

    env = environment(ctx)
    epoch_id = int(run_until(env, "clear", "cleared")[-1].split()[1])
    async with ctx.db.session() as session:
        assert await session.scalar(select(MarketEpoch.status).where(MarketEpoch.id == epoch_id)) == "cleared"
        assert (
            await session.scalar(select(MarketSettlement.status).where(MarketSettlement.seq == 0))
            == "pending"
        )
    run_until(env, "settle", "signed")
    async with ctx.db.session() as session:
        rows = list(await session.scalars(select(MarketSettlement).order_by(MarketSettlement.seq)))
    assert [r.status for r in rows[:2]] == ["confirmed", "sent"] and rows[1].tx_bytes is not None
    assert all(r.status == "pending" for r in rows[2:]) and len(rows) == 5

    worker = subprocess.Popen(
        [sys.executable, "-m", "gridtokenx.cli", "worker"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(600):
            async with ctx.db.session() as session:
                if (await session.get(MarketEpoch, epoch_id, populate_existing=True)).status == "settled":  # type: ignore[union-attr]
                    break
            await asyncio.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    async with ctx.db.session() as session:
        assert await session.scalar(select(MarketEpoch.status).where(MarketEpoch.id == epoch_id)) == "settled"
        settled = list(await session.scalars(select(MarketSettlement).order_by(MarketSettlement.seq)))
        statuses = set(await session.scalars(select(MarketOrder.status)))
    assert [r.status for r in settled] == ["confirmed"] * 5 and statuses == {"settled"}
    assert settled[0].signature == rows[0].signature  # the landed one was never signed again
    assert len({r.signature for r in settled}) == 5

    for n, seller in enumerate(sellers):
        assert await balances(ctx, seller.pubkey) == (
            (4000 - result.fills.get(ids[n], 0)) * 10**6,
            result.payments.get(ids[n], 0),
        )
    for n, buyer in enumerate(buyers):
        assert await balances(ctx, buyer.pubkey) == (
            result.fills.get(ids[2 + n], 0) * 10**6,
            5_000_000 - result.payments.get(ids[2 + n], 0),
        )
    v = await vault(ctx)
    assert (await v.escrow_balance(Asset.ENERGY), await v.escrow_balance(Asset.PAYMENT)) == (0, 0)
    assert await audit(ctx) == []
