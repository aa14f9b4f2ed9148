"""Helpers of the tokenization tests: varied signed readings, waiting, worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import func, select

from gridtokenx.core.context import AppContext
from gridtokenx.readings.native import encode_batch
from gridtokenx.tokenization.models import EntryState, MintEntry, MintTx
from tests.helpers import bearer
from tests.readings.ingest_helpers import INTERVAL, Device, aligned_now


def varied_batch(device: Device, starts: list[int], export_wh: list[int]) -> bytes:
    """Signed readings with distinct values (a repeated value is flagged frozen, never minted)."""
    return encode_batch(
        [
            device.key.sign_reading(
                device.reading(s, export_wh=wh, generation_wh=wh + 300, consumption_wh=300 + wh % 97),
                device.network_id,
            )
            for s, wh in zip(starts, export_wh, strict=True)
        ]
    )


async def ingest(
    client: httpx.AsyncClient, device: Device, export_wh: list[int], offset: int = 0
) -> list[str]:
    """Store one reading per value (older intervals first); returns their reading ids."""
    start = aligned_now(offset + len(export_wh))
    body = varied_batch(device, [start + i * INTERVAL for i in range(len(export_wh))], export_wh)
    stored = await client.post("/api/meters/readings/batch", content=body, headers=bearer(device.owner))
    assert stored.status_code == 200, stored.text
    results = stored.json()["results"]
    assert [r["mintable_wh"] for r in results] == export_wh, results
    return [r["reading_id"] for r in results]


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def states(ctx: AppContext) -> dict[str, int]:
    async with ctx.db.session() as session:
        rows = await session.execute(select(MintEntry.state, func.count()).group_by(MintEntry.state))
        return {state: int(n) for state, n in rows}


async def tx_states(ctx: AppContext) -> list[str]:
    async with ctx.db.session() as session:
        return list(await session.scalars(select(MintTx.state).order_by(MintTx.created_at)))


async def all_confirmed(ctx: AppContext, count: int) -> bool:
    return (await states(ctx)) == {EntryState.CONFIRMED.value: count}


def worker_env(ctx: AppContext, **extra: str) -> dict[str, str]:
    """The environment of a `gridtokenx worker` process sharing this test's database and data."""
    s = ctx.settings
    env = {
        **os.environ,
        "GRIDTOKENX_ENVIRONMENT": "test",
        "GRIDTOKENX_DATABASE_URL": s.effective_database_url,
        "GRIDTOKENX_DATA_DIR": str(s.data_dir),
        "GRIDTOKENX_JWT_SECRET": s.jwt_secret or "",
        "GRIDTOKENX_LOG_JSON": "false",
        "GRIDTOKENX_TOKENIZATION_POLLING_INTERVAL_SECS": "0.2",
        "GRIDTOKENX_LEDGER_BACKEND": s.ledger_backend,
    }
    if s.solana_rpc_url:
        env["GRIDTOKENX_SOLANA_RPC_URL"] = s.solana_rpc_url
    env.pop("GRIDTOKENX_TOKENIZATION_FAULT", None)
    env.update(extra)
    return env


def start_worker(ctx: AppContext, log_path: Any, **extra: str) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gridtokenx.cli", "worker"],
            env=worker_env(ctx, **extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def run_audit(ctx: AppContext, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridtokenx.cli", "audit"],
        env=worker_env(ctx, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )
