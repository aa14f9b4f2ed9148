"""A process SIGKILLed in the middle of an issuance (its transactions signed, stored and sent
into a chain that drops them): another process finishes the same certificate from the stored
record, and nothing lands twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from typing import Any

import httpx
import pytest
from solders.pubkey import Pubkey
from sqlalchemy import select

from gridtokenx.certificates.models import Certificate
from gridtokenx.certificates.service import Certificates
from gridtokenx.certificates.verification import verify
from gridtokenx.core.context import AppContext
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.ledger.local_rpc import Fault, LiteSvmRpcServer
from gridtokenx.ledger.rpc_backend import DB_NAME
from tests.certificates.cert_helpers import device_with_generation, hour_start

ISSUER = """
import asyncio, sys, uuid
from datetime import UTC, datetime
from gridtokenx.certificates.service import Certificates
from gridtokenx.certificates.verification import verify
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.core.context import AppContext
from gridtokenx.core.settings import Settings
from gridtokenx.domains import wire

async def main() -> None:
    url, data_dir, rpc, secret, meter, start, end = sys.argv[1:]
    settings = Settings(environment="test", database_url=url, data_dir=data_dir, jwt_secret=secret,
                        ledger_backend="rpc", solana_rpc_url=rpc, erc_settle_seconds=0, log_json=False)
    ctx = AppContext.from_settings(settings)
    wire(ctx)
    at = lambda epoch: datetime.fromtimestamp(int(epoch), UTC)
    await ctx.services.get(Certificates).issue(uuid.UUID(meter), at(start), at(end), actor=None)
    print("issued", flush=True)

asyncio.run(main())
"""


@pytest.fixture
def backend() -> str:
    return "postgres"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"erc_settle_seconds": 0, "run_duties": False}  # only the processes under test send


def _sent(ledger_dir: Any) -> list[tuple[str, str]]:
    with sqlite3.connect(ledger_dir / DB_NAME) as conn:
        return [(bytes(sig).hex(), state) for sig, state in conn.execute("SELECT signature, state FROM sent")]


async def test_issuer_killed_mid_send_is_finished_by_another_process(
    rpc_client: httpx.AsyncClient, ctx: AppContext, rpc_server: LiteSvmRpcServer
) -> None:
    start = hour_start()
    device = await device_with_generation(rpc_client, ctx, start, [250])
    sent_before = len(_sent(ctx.settings.ledger_dir))
    rpc_server.faults.add("sendTransaction", Fault.DROP, times=10_000)
    settings = ctx.settings
    issuer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ISSUER,
            settings.effective_database_url,
            str(settings.data_dir),
            rpc_server.url,
            str(settings.jwt_secret),
            device.meter_id,
            str(start),
            str(start + 900),
        ],
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(600):  # until its first transaction is stored and being resent
            if rpc_server.faults.injected[Fault.DROP] >= 2 or issuer.poll() is not None:
                break
            await asyncio.sleep(0.05)
        assert issuer.poll() is None, issuer.communicate()
        issuer.send_signal(signal.SIGKILL)
        issuer.wait(timeout=10)
    finally:
        if issuer.poll() is None:
            issuer.kill()
    stored = _sent(ctx.settings.ledger_dir)[sent_before:]
    assert stored and all(state == "pending" for _, state in stored)  # stored before it was sent
    async with ctx.db.session() as session:
        [row] = list(await session.scalars(select(Certificate)))
        assert row.status == "pending" and row.pending is not None

    rpc_server.faults.clear()
    assert await ctx.services.get(Certificates).resume_pending() == 1
    mint = Pubkey.from_string(row.mint)
    assert rpc_server.supply(mint) == 1
    assert all(count == 1 for count in rpc_server.executions.values())
    after = dict(_sent(ctx.settings.ledger_dir))
    landed_first = [sig for sig, _ in stored if after[sig] == "landed"]
    assert landed_first, "the killed process's signed bytes were resent, not signed again"
    async with ctx.db.session() as session:
        verdict = await verify(session, await ctx.services.get(LedgerHandle).get(), certificate_id=row.id)
    assert verdict.valid and verdict.status == "active", verdict.reasons
