"""Fixtures for the ledger tests: both backends behind the same `ledger` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from ledger_helpers import SOL, fast_rpc_ledger
from solders.keypair import Keypair

from gridtokenx.ledger.interface import Ledger
from gridtokenx.ledger.litesvm_backend import LiteSvmLedger
from gridtokenx.ledger.local_rpc import LiteSvmRpcServer


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
