"""The RPC ledger backend for the certificate tests: the local LiteSVM JSON-RPC server, and an
app whose ledger talks to it from the settings' ledger directory (so a second process with the
same settings shares its store of signed transactions)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from solders.keypair import Keypair

from gridtokenx.app import create_app
from gridtokenx.core.context import AppContext
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.ledger.factory import AUTHORITY_FILE, FEE_PAYER_FILE
from gridtokenx.ledger.keypairs import save_keypair
from gridtokenx.ledger.local_rpc import LiteSvmRpcServer
from gridtokenx.ledger.rpc_backend import RpcLedger

SOL = 1_000_000_000


@pytest.fixture
def rpc_server() -> Iterator[LiteSvmRpcServer]:
    with LiteSvmRpcServer(block_time=0.05, timeout_hold=0.6) as server:
        yield server


@pytest.fixture
async def rpc_client(ctx: AppContext, rpc_server: LiteSvmRpcServer) -> AsyncIterator[httpx.AsyncClient]:
    directory = ctx.settings.ledger_dir
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    authority, fee_payer = Keypair(), Keypair()
    save_keypair(directory / AUTHORITY_FILE, authority)
    save_keypair(directory / FEE_PAYER_FILE, fee_payer)
    ledger = RpcLedger(
        rpc_server.url,
        authority,
        fee_payer,
        directory,
        request_timeout=0.3,
        send_timeout=1.5,
        read_timeout=5.0,
        poll_interval=0.01,
        rebroadcast_interval=0.05,
    )
    ctx.services.add(LedgerHandle(ctx.settings, ledger))  # the first registration wins
    app = create_app(context=ctx)
    async with app.router.lifespan_context(app):
        await (await ctx.services.get(LedgerHandle).get()).airdrop(fee_payer.pubkey(), 100 * SOL)
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
