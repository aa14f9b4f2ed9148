"""The mint worker over the RPC backend (the local JSON-RPC server over LiteSVM, with its faults):
a dropped send, a send that times out and an expired blockhash never mint a reading twice or skip
one; two worker processes share the duty, one mints, and the other takes over from a killed holder."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from mint_helpers import all_confirmed, ingest, start_worker, states, stop_worker, tx_states, wait_for
from solders.keypair import Keypair
from solders.signature import Signature
from sqlalchemy import select

from gridtokenx.core.context import AppContext
from gridtokenx.core.db import Database
from gridtokenx.core.lease import holders
from gridtokenx.domains import audit
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.ledger.factory import AUTHORITY_FILE
from gridtokenx.ledger.keypairs import save_keypair
from gridtokenx.ledger.local_rpc import Fault, LiteSvmRpcServer
from gridtokenx.tokenization.models import EntryState, MintTx, TxState
from gridtokenx.tokenization.tokens import energy_mint
from gridtokenx.tokenization.worker import Minter
from tests.conftest import make_settings
from tests.ledger.ledger_helpers import SOL, fast_rpc_ledger
from tests.readings.ingest_helpers import make_device


@pytest.fixture
def rpc_server() -> Iterator[LiteSvmRpcServer]:
    with LiteSvmRpcServer(block_time=0.01, timeout_hold=0.6) as server:
        yield server


@pytest.fixture
async def ctx(
    database: Database, db_url: str, tmp_path: Path, rpc_server: LiteSvmRpcServer
) -> AsyncIterator[AppContext]:
    """The app's context with the RPC ledger, its authority (and fee payer) funded on the server."""
    settings = make_settings(
        tmp_path,
        db_url,
        run_duties=False,
        ledger_backend="rpc",
        solana_rpc_url=rpc_server.url,
        tokenization_backoff_base_secs=0.0,
        tokenization_lease_ttl_secs=2.0,
    )
    context = AppContext.from_settings(settings)
    await context.db.dispose()
    context.db = database
    authority = Keypair()
    settings.ledger_dir.mkdir(parents=True)
    save_keypair(settings.ledger_dir / AUTHORITY_FILE, authority)
    ledger = fast_rpc_ledger(rpc_server.url, tmp_path / "rpc", authority, authority)
    context.services.add(LedgerHandle(settings, ledger))
    opened = await context.services.get(LedgerHandle).get()
    await opened.airdrop(authority.pubkey(), 100 * SOL)
    await energy_mint(opened, settings)  # before any fault: the faults are for the mints
    yield context


async def confirmed_signatures(ctx: AppContext) -> list[Signature]:
    async with ctx.db.session() as session:
        rows = await session.scalars(select(MintTx.signature).where(MintTx.state == TxState.CONFIRMED.value))
        return [Signature.from_string(s) for s in rows]


async def supply(ctx: AppContext, server: LiteSvmRpcServer) -> int:
    ledger = await ctx.services.get(LedgerHandle).get()
    return server.supply(await energy_mint(ledger, ctx.settings))


@pytest.mark.parametrize("fault", [Fault.DROP, Fault.TIMEOUT, Fault.LOST_REPLY])
async def test_send_faults_mint_each_reading_once(
    client: httpx.AsyncClient, ctx: AppContext, rpc_server: LiteSvmRpcServer, fault: Fault
) -> None:
    device = await make_device(client, ctx)
    await ingest(client, device, [310, 420, 530])
    rpc_server.faults.add("sendTransaction", fault, times=2)

    await ctx.services.get(Minter).round(1)

    assert rpc_server.faults.injected[fault] >= 1
    assert await all_confirmed(ctx, 3)
    [signature] = await confirmed_signatures(ctx)
    assert rpc_server.executions[signature] == 1
    assert await supply(ctx, rpc_server) == 1260 * 10**6
    assert await audit(ctx) == []


async def test_expired_blockhash_is_signed_again_and_never_lands_twice(
    client: httpx.AsyncClient, ctx: AppContext, rpc_server: LiteSvmRpcServer
) -> None:
    device = await make_device(client, ctx)
    await ingest(client, device, [640])
    rpc_server.faults.add("sendTransaction", Fault.DROP, times=100_000)  # nothing lands: it expires

    await ctx.services.get(Minter).round(1)
    assert await tx_states(ctx) == [TxState.EXPIRED.value]
    assert await states(ctx) == {EntryState.PENDING.value: 1}
    async with ctx.db.session() as session:
        expired = Signature.from_string(str(await session.scalar(select(MintTx.signature))))

    rpc_server.faults.clear()
    await ctx.services.get(Minter).round(1)
    assert await tx_states(ctx) == [TxState.EXPIRED.value, TxState.CONFIRMED.value]
    assert rpc_server.executions[expired] == 0
    [signature] = await confirmed_signatures(ctx)
    assert signature != expired and rpc_server.executions[signature] == 1
    assert await supply(ctx, rpc_server) == 640 * 10**6
    assert await audit(ctx) == []


@pytest.mark.parametrize("backend", ["postgres"])
async def test_two_workers_one_mints_and_the_other_takes_over(
    client: httpx.AsyncClient, ctx: AppContext, rpc_server: LiteSvmRpcServer, tmp_path: Path
) -> None:
    device = await make_device(client, ctx)
    env = {"GRIDTOKENX_TOKENIZATION_LEASE_TTL_SECS": "2"}
    workers = [start_worker(ctx, tmp_path / f"worker-{i}.log", **env) for i in range(2)]
    try:
        await ingest(client, device, [310, 420, 530], offset=8)
        await wait_for(lambda: all_confirmed(ctx, 3), timeout=60)
        [lease] = [h for h in await holders(ctx.db) if h.name == "mint"]
        holder_pid = int(lease.holder.split(":")[1])
        [survivor] = [w for w in workers if w.pid != holder_pid]
        [holder] = [w for w in workers if w.pid == holder_pid]
        os.kill(holder_pid, signal.SIGKILL)
        await asyncio.to_thread(holder.wait, 30)

        await ingest(client, device, [640, 750])
        await wait_for(lambda: all_confirmed(ctx, 5), timeout=60)
        [lease] = [h for h in await holders(ctx.db) if h.name == "mint"]
        assert int(lease.holder.split(":")[1]) == survivor.pid
    finally:
        for worker in workers:
            stop_worker(worker)
    signatures = await confirmed_signatures(ctx)
    assert all(rpc_server.executions[s] == 1 for s in signatures)
    assert await supply(ctx, rpc_server) == 2650 * 10**6
    assert await audit(ctx) == []
