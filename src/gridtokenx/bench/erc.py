"""`gridtokenx bench erc`: certificates issued per second beside the raw Token-2022 mint rate of
the same embedded ledger, measured in the same run, and public verification latency.

Three figures, so the cost of each layer shows:
- raw: one Token-2022 `mint_to` per call on a 0-decimal mint (the ledger's cheapest write);
- NFT: `Ledger.issue_certificate` alone (mint account, metadata pointer, seven metadata fields,
  mint 1, authorities removed), no database; then the same under an idempotency key, as issuance
  sends it (the ledger keeps the signed plan for a retry);
- issued: the whole use case (meter lock row, overlap check, readings query and hash, the
  pending row before the send, the ledger, the history row and events after).
Verification reads the certificate back from the ledger and recomputes the readings hash.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table
from solders.keypair import Keypair
from spl.token.constants import TOKEN_2022_PROGRAM_ID

from gridtokenx.accounts.service import create_admin
from gridtokenx.certificates import rules
from gridtokenx.certificates.service import Certificates
from gridtokenx.certificates.verification import verify
from gridtokenx.core.context import AppContext
from gridtokenx.core.migrate import upgrade
from gridtokenx.core.settings import Settings
from gridtokenx.core.types import utc_from_epoch, utcnow
from gridtokenx.domains import wire
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.ledger.records import CertificateMetadata
from gridtokenx.meters.models import Meter
from gridtokenx.readings.models import MeterReading
from gridtokenx.readings.reading import Trust

PERIOD = 900


async def _rate(count: int, concurrency: int, call: Callable[[int], Awaitable[object]]) -> float:
    """Calls per second of `call(0..count-1)` spread over `concurrency` tasks."""
    indices = iter(range(count))

    async def worker() -> None:
        for k in indices:  # one shared iterator: each index is taken once
            await call(k)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - began)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _seed(ctx: AppContext, count: int, meters: int) -> list[tuple[uuid.UUID, int]]:
    """`meters` owned meters with one signed-looking reading per period: `count` periods in all."""
    now = int(utcnow().timestamp())
    first = now - now % 3600 - PERIOD * (count // meters + 2)
    async with ctx.db.session() as session:
        owner = await create_admin(session, f"bench-{uuid.uuid4().hex[:8]}@example.com", "bench-password-1")
        rows = [
            Meter(serial=f"ERC-BENCH-{i}", owner_id=owner.id, commissioned_at=utc_from_epoch(first - 86_400))
            for i in range(meters)
        ]
        session.add_all(rows)
        await session.flush()
        work = []
        for k in range(count):
            meter, start = rows[k % meters], first + (k // meters) * PERIOD
            session.add(
                MeterReading(
                    meter_id=meter.id,
                    channel=0,
                    interval_start=utc_from_epoch(start),
                    duration_s=PERIOD,
                    import_wh=0,
                    export_wh=400 + k,
                    generation_wh=500 + k,
                    consumption_wh=100,
                    trust=Trust.DEVICE_SIGNED,
                    source="native",
                    flags=[],
                    seq=k,
                    key_id="0" * 16,
                    signature=os.urandom(64),
                    observed_at=utc_from_epoch(start + PERIOD),
                )
            )
            work.append((meter.id, start))
    return work


async def _bench(count: int, meters: int, concurrency: int, directory: Path) -> list[tuple[str, str, float]]:
    settings = Settings(
        environment="embedded",
        database_url=f"sqlite+aiosqlite:///{directory / 'bench.db'}",
        data_dir=directory / "var",
        log_json=False,
        erc_settle_seconds=0,
    )
    ctx = AppContext.from_settings(settings)
    await upgrade(ctx.db)
    wire(ctx)
    handle = ctx.services.get(LedgerHandle)
    ledger = await handle.get()
    certificates = ctx.services.get(Certificates)
    figures: list[tuple[str, str, float]] = []
    try:
        work = await _seed(ctx, count, meters)

        mint = await ledger.create_mint(0, token_program=TOKEN_2022_PROGRAM_ID)
        holder = Keypair().pubkey()
        await ledger.create_associated_token_accounts(mint, [holder])
        raw = await _rate(count, concurrency, lambda _: ledger.mint_to(mint, [(holder, 1)]))
        figures.append(("raw Token-2022 mint_to (1 per call)", "calls/s", raw))

        fields = rules.metadata_fields(
            facility_id="ERC-BENCH-X",
            energy_wh=1234,
            period=rules.Period(0, PERIOD),
            technology="solar-pv",
            country="TH",
            zone="1",
            readings_hash="ab" * 32,
        )
        metadata = CertificateMetadata(
            name=rules.NAME, symbol=rules.SYMBOL, uri="https://example.org/x", fields=fields
        )
        nft = await _rate(count, concurrency, lambda _: ledger.issue_certificate(metadata, holder))
        figures.append(("certificate NFT on the ledger alone", "NFTs/s", nft))
        keyed = await _rate(
            count,
            concurrency,
            lambda k: ledger.issue_certificate(metadata, holder, idempotency_key=f"bench-nft:{k}"),
        )
        figures.append(("  the same with an idempotency key", "NFTs/s", keyed))

        issued: list[uuid.UUID] = []

        async def issue(k: int) -> None:
            meter_id, start = work[k]
            out = await certificates.issue(
                meter_id, utc_from_epoch(start), utc_from_epoch(start + PERIOD), actor=None
            )
            issued.append(out.id)

        rate = await _rate(count, concurrency, issue)
        figures.append(("certificates issued (whole use case)", "certs/s", rate))
        figures.append(("  issued / raw mint_to", "ratio", rate / raw))

        latencies = []
        for certificate_id in issued[: min(len(issued), 200)]:
            began = time.perf_counter()
            async with ctx.db.sessionmaker() as session:
                verdict = await verify(session, ledger, certificate_id=certificate_id)
            latencies.append(time.perf_counter() - began)
            if not verdict.valid:
                raise RuntimeError(f"bench certificate {certificate_id} does not verify: {verdict.reasons}")
        figures.append(("verify latency p50", "ms", 1000 * _percentile(latencies, 0.50)))
        figures.append(("verify latency p95", "ms", 1000 * _percentile(latencies, 0.95)))
    finally:
        await handle.stop()
        await ctx.close()
    return figures


def run(count: int = 200, meters: int = 8, concurrency: int = 8) -> None:
    console = Console()
    with tempfile.TemporaryDirectory(prefix="gtx-bench-erc-") as tmp:
        figures = asyncio.run(_bench(count, meters, concurrency, Path(tmp)))
    table = Table(
        title=f"Certificates on the embedded ledger: {count} per part, {concurrency} concurrent callers, "
        "SQLite, LiteSVM with its durable log"
    )
    table.add_column("figure")
    table.add_column("unit")
    table.add_column("value", justify="right")
    for name, unit, value in figures:
        table.add_row(name, unit, f"{value:,.2f}")
    console.print(table)
