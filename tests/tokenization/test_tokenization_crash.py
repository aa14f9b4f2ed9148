"""The worker process SIGKILLed at each point of a mint, restarted: every reading minted, once.

Real processes (`gridtokenx worker`), the embedded LiteSVM ledger, SQLite; the audit runs after each."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from mint_helpers import all_confirmed, ingest, run_audit, start_worker, stop_worker, tx_states, wait_for
from sqlalchemy import select

from gridtokenx.core.context import AppContext
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.tokenization.models import MintEntry, TxState
from gridtokenx.tokenization.tokens import energy_mint
from gridtokenx.wallets.sealing import Sealer
from gridtokenx.wallets.service import wallet_of
from tests.readings.ingest_helpers import make_device

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"run_duties": False}  # the worker processes mint, not the test's gateway


@pytest.mark.parametrize("point", ["before_send", "after_send", "after_confirm"])
async def test_killed_worker_restarts_without_double_or_lost_mint(
    client: httpx.AsyncClient, ctx: AppContext, tmp_path: Path, point: str
) -> None:
    device = await make_device(client, ctx)
    await ingest(client, device, [410, 520, 630])
    log = tmp_path / "worker.log"

    crashed = start_worker(ctx, log, GRIDTOKENX_TOKENIZATION_FAULT=point)
    assert await asyncio.to_thread(crashed.wait, 60) == -9, log.read_text()
    assert "mint_fault_injected" in log.read_text()
    assert await tx_states(ctx) == [TxState.SUBMITTED.value]  # stored before the send, never settled

    restarted = start_worker(ctx, log)
    try:
        await wait_for(lambda: all_confirmed(ctx, 3), timeout=60)
    finally:
        stop_worker(restarted)
    confirmed = [s for s in await tx_states(ctx) if s == TxState.CONFIRMED.value]
    assert len(confirmed) == 1

    result = run_audit(ctx)
    assert result.returncode == 0, result.stdout + result.stderr

    ledger = await ctx.services.get(LedgerHandle).get()
    async with ctx.db.session() as session:
        user_id = await session.scalar(select(MintEntry.user_id).limit(1))
        assert user_id is not None
        owner = await wallet_of(session, ctx.services.get(Sealer), user_id)
    assert (
        await ledger.get_token_balance(owner.pubkey, await energy_mint(ledger, ctx.settings)) == 1560 * 10**6
    )
