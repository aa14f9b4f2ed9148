"""Fixtures for the ledger tests: both backends behind the same `ledger` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from solders.keypair import Keypair

from gridtokenx.ledger.interface import Ledger
from gridtokenx.ledger.litesvm_backend import LiteSvmLedger
from gridtokenx.ledger.rpc_backend import RpcLedger
from gridtokenx.ledger.testing_rpc import LiteSvmRpcServer

SOL = 1_000_000_000


def fast_rpc_ledger(
    url: str,
    directory: Path,
    authority: Keypair,
    fee_payer: Keypair,
    *,
    send_timeout: float = 10.0,
    read_timeout: float = 5.0,
) -> RpcLedger:
    """An RPC ledger with timings scaled to the test server's 10 ms blocks."""
    return RpcLedger(
        url,
        authority,
        fee_payer,
        directory,
        request_timeout=0.3,
        send_timeout=send_timeout,
        read_timeout=read_timeout,
        poll_interval=0.01,
        rebroadcast_interval=0.05,
    )


@pytest.fixture
def rpc_server() -> Iterator[LiteSvmRpcServer]:
    with LiteSvmRpcServer(block_time=0.01, timeout_hold=0.6) as server:
        yield server


@pytest.fixture(params=["litesvm", "rpc"])
async def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Ledger]:
    authority, fee_payer = Keypair(), Keypair()
    if request.param == "litesvm":
        async with LiteSvmLedger(tmp_path, authority, fee_payer) as embedded:
            yield embedded
        return
    server: LiteSvmRpcServer = request.getfixturevalue("rpc_server")
    async with fast_rpc_ledger(server.url, tmp_path, authority, fee_payer) as remote:
        await remote.airdrop(fee_payer.pubkey(), 100 * SOL)
        yield remote
