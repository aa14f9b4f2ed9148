"""`gridtokenx bench mint`: from a reading accepted over HTTP to tokens in the owner's wallet.

Embedded set-up with default settings (SQLite, LiteSVM, the mint duty in the gateway, woken by each
verified reading). Two parts, in one run:
- latency: signed readings posted one at a time over HTTP (the app in this process, through ASGI);
  per reading, the time from the accepted answer to the owner's ledger balance showing it;
- throughput: many mintable readings stored at once through the readings store (so the outbox rows
  are made as at ingest), then timed from the worker's wake-up until every row is confirmed in the
  database; beside it, the raw packed-mint rate of the same ledger (`Ledger.mint_to` with the same
  shape: one mint per owner, packed, with a memo) measured in the same run.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from solders.pubkey import Pubkey
from sqlalchemy import func, select

from gridtokenx.accounts import service as accounts
from gridtokenx.accounts.models import Role, User
from gridtokenx.accounts.schemas import RegisterRequest
from gridtokenx.app import create_app
from gridtokenx.core.context import AppContext
from gridtokenx.core.settings import load_settings
from gridtokenx.core.types import utc_from_epoch, utcnow
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.meters import service as meters
from gridtokenx.meters.models import Meter, MeterStatus, MeterType
from gridtokenx.readings.native import encode_reading
from gridtokenx.readings.signing import DeviceSigner
from gridtokenx.readings.store import NewReading, store_readings
from gridtokenx.tokenization.models import EntryState, MintEntry
from gridtokenx.tokenization.tokens import energy_mint
from gridtokenx.tokenization.worker import MintDuty
from gridtokenx.wallets.sealing import Sealer
from gridtokenx.wallets.service import wallet_of

INTERVAL_S = 900
LATENCY_TARGET_P95_S = 5.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _fleet(
    ctx: AppContext, owners: int, meters_per_owner: int
) -> tuple[str, list[tuple[Meter, DeviceSigner]]]:
    """Owners (the first with an API key) and their claimed meters with device keys, inserted directly."""
    fleet: list[tuple[Meter, DeviceSigner]] = []
    async with ctx.db.session() as session:
        request = RegisterRequest(
            email="bench-mint-0@example.com", password="Bench-pass-" + uuid.uuid4().hex[:8]
        )
        first, _ = await accounts.register(
            session, ctx.settings, request.model_copy(update={"role": Role.PROSUMER})
        )
        _, api_key = await accounts.create_api_key(session, first, "bench mint", ["readings:write"])
        users = [first] + [
            User(email=f"bench-mint-{i}@example.com", password_hash="!", role=Role.PROSUMER.value)
            for i in range(1, owners)
        ]
        session.add_all(users[1:])
        await session.flush()
        now = utcnow()
        for o, user in enumerate(users):
            for m in range(meters_per_owner):
                meter = Meter(
                    serial=f"BENCH-MINT-{o:04d}-{m}",
                    meter_type=MeterType.PROSUMER.value,
                    interval_seconds=INTERVAL_S,
                    commissioned_at=now - timedelta(days=30),
                    status=MeterStatus.ACTIVE.value,
                    meter_key_hash="!",
                    owner_id=user.id,
                    claimed_at=now,
                )
                session.add(meter)
                await session.flush()
                key = DeviceSigner.generate()
                await meters.add_device_key(session, meter, key.public_key_hex, key.key_id)
                fleet.append((meter, key))
    return api_key, fleet


def _body(meter: Meter, key: DeviceSigner, start: int, k: int, network_id: str) -> bytes:
    now = int(time.time())
    export = 300 + (k * 37) % 500
    reading = {
        "device_id": meter.serial,
        "interval_start": start,
        "duration": INTERVAL_S,
        "import_wh": 0,
        "export_wh": export,
        "generation_wh": export + 200 + k % 7,
        "consumption_wh": 200 + k % 7,
        "quality": 0,
        "firmware": "1.0.0",
        "seq": k + 1,
        "created": now,
        "expires": now + 240,
    }
    return encode_reading(key.sign_reading(reading, network_id))


async def _latency(
    ctx: AppContext,
    http: httpx.AsyncClient,
    api_key: str,
    fleet: list[tuple[Meter, DeviceSigner]],
    samples: int,
) -> list[float]:
    ledger = await ctx.services.get(LedgerHandle).get()
    mint = await energy_mint(ledger, ctx.settings)
    meter, key = fleet[0]
    assert meter.owner_id is not None
    async with ctx.db.session() as session:
        wallet: Pubkey = (await wallet_of(session, ctx.services.get(Sealer), meter.owner_id)).pubkey
    now = int(time.time())
    first = now - now % INTERVAL_S - INTERVAL_S * (samples + 1)
    waits: list[float] = []
    held = await ledger.get_token_balance(wallet, mint)
    for k in range(samples):
        body = _body(meter, key, first + k * INTERVAL_S, k, ctx.settings.network_id)
        answer = await http.post(
            "/api/meters/readings",
            content=body,
            headers={"x-api-key": api_key, "content-type": "application/json"},
        )
        accepted = time.perf_counter()
        if answer.status_code != 201 or answer.json().get("mintable_wh", 0) <= 0:
            raise RuntimeError(f"reading {k} not accepted as mintable: {answer.status_code} {answer.text}")
        while (now_held := await ledger.get_token_balance(wallet, mint)) == held:
            await asyncio.sleep(0.002)
            if time.perf_counter() - accepted > 60:
                raise RuntimeError("a reading was not minted within 60 s")
        waits.append(time.perf_counter() - accepted)
        held = now_held
    return waits


async def _throughput(
    ctx: AppContext, fleet: list[tuple[Meter, DeviceSigner]], readings: int
) -> tuple[float, int]:
    """Readings/s from the worker's wake-up until every row is confirmed (outbox -> ledger -> DB)."""
    per_meter = -(-readings // len(fleet))
    now = int(time.time())
    first = now - now % INTERVAL_S - INTERVAL_S * (per_meter + 400)
    rows = [
        NewReading(
            meter_id=meter.id,
            channel=0,
            interval_start=utc_from_epoch(first + k * INTERVAL_S),
            duration_s=INTERVAL_S,
            trust="device-signed",
            source="bench",
            observed_at=utcnow(),
            export_wh=300 + (k * 37 + i) % 500,
            mintable_wh=300 + (k * 37 + i) % 500,
        )
        for k in range(per_meter)
        for i, (meter, _) in enumerate(fleet)
    ][:readings]
    duty = ctx.services.get(MintDuty)
    async with ctx.db.session() as session:
        await store_readings(session, rows)
    started = time.perf_counter()
    duty.wake()
    while True:
        async with ctx.db.session() as session:
            left = await session.scalar(
                select(func.count())
                .select_from(MintEntry)
                .where(MintEntry.state != EntryState.CONFIRMED.value)
            )
        if not left:
            break
        await asyncio.sleep(0.01)
    return len(rows) / (time.perf_counter() - started), len(rows)


async def _raw_rate(ctx: AppContext, owners: int, mints: int) -> float:
    """Packed mint instructions/s of the same ledger through `Ledger.mint_to`, memo included."""
    ledger = await ctx.services.get(LedgerHandle).get()
    mint = await energy_mint(ledger, ctx.settings)
    recipients = [Pubkey.new_unique() for _ in range(owners)]
    await ledger.create_associated_token_accounts(mint, recipients)
    memo = "gtx:v1:mint:sha256:" + "0" * 64 + ":" + "0" * 32
    started = time.perf_counter()
    done = 0
    while done < mints:
        chunk = recipients[: min(owners, mints - done)]
        await ledger.mint_to(mint, [(owner, 1_000_000) for owner in chunk], memo=memo)
        done += len(chunk)
    return done / (time.perf_counter() - started)


async def _run(samples: int, readings: int, owners: int, console: Console) -> None:
    with tempfile.TemporaryDirectory(prefix="gtx-bench-mint-") as tmp:
        settings = load_settings(
            data_dir=Path(tmp),
            database_url="",
            environment="embedded",
            require_email_verification=False,
            log_level="warning",
            log_json=False,
            rate_limit_default="1000000/minute",
        )
        ctx = AppContext.from_settings(settings)
        app = create_app(context=ctx)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
                api_key, fleet = await _fleet(ctx, owners, 2)
                console.print(f"latency: {samples} readings over HTTP, one at a time ...")
                waits = await _latency(ctx, http, api_key, fleet, samples)
                console.print(
                    f"throughput: {readings} stored readings of {len(fleet)} meters, {owners} owners ..."
                )
                rate, count = await _throughput(ctx, fleet, readings)
                console.print("raw packed mint_to rate of the same ledger ...")
                raw = await _raw_rate(ctx, owners, count)
    table = Table(title="gridtokenx bench mint (embedded: SQLite + LiteSVM, default settings)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("HTTP accepted -> tokens in wallet, p50", f"{statistics.median(waits) * 1000:.1f} ms")
    table.add_row(
        "  p95", f"{_percentile(waits, 0.95) * 1000:.1f} ms (target < {LATENCY_TARGET_P95_S:.0f} s)"
    )
    table.add_row("  p99", f"{_percentile(waits, 0.99) * 1000:.1f} ms")
    table.add_row("worker: readings minted/s (outbox -> confirmed)", f"{rate:,.0f}")
    table.add_row("raw packed mint_to, mints/s (same ledger)", f"{raw:,.0f}")
    table.add_row("worker / raw", f"{rate / raw:.0%} (target >= 50%)")
    console.print(table)


def run(samples: int = 100, readings: int = 2_000, owners: int = 50, console: Any = None) -> None:
    asyncio.run(_run(samples, readings, owners, console or Console()))
