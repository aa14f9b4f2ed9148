"""`gridtokenx bench market`: orders accepted over HTTP and gate closure to settled, on the embedded ledger.

Every figure is printed beside the raw transfer rate of the same ledger in the same run (one
transfer_checked per transaction through the `Ledger` interface), so the ratios say what the market
adds. The settlement book is seeded in bulk (rows written, escrow minted straight into the escrow
accounts, as deposits would have left it) so that only gate closure to the last confirmation is timed.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy import func, insert, select

from gridtokenx.accounts.models import User
from gridtokenx.app import create_app
from gridtokenx.core.context import AppContext
from gridtokenx.core.ids import uuid7
from gridtokenx.core.settings import Settings
from gridtokenx.core.types import utcnow
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.ledger.interface import Ledger
from gridtokenx.market.clearing import clear
from gridtokenx.market.epochs import K, book_of, open_epoch
from gridtokenx.market.models import MarketOrder, MarketSettlement
from gridtokenx.market.rules import Asset, Side, buy_escrow, energy_units
from gridtokenx.market.scheduler import close_current, settle_cleared
from gridtokenx.market.vault import Vault, Vaults
from gridtokenx.wallets.sealing import Sealer
from gridtokenx.wallets.service import wallet_of

TARGET_SECONDS_10K = 10.0
TARGET_RATIO = 0.5
TRADERS_PER_SIDE = 100


class Timed:
    """Wraps the ledger's chain calls to add up the time settlement spends in them."""

    def __init__(self, ledger: Ledger) -> None:
        self.seconds = 0.0
        for name in ("send_transaction", "get_signature_status", "latest_blockhash"):
            setattr(ledger, name, self._wrap(getattr(ledger, name)))

    def _wrap(self, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return await call(*args)
            finally:
                self.seconds += time.perf_counter() - started

        return timed


async def _users(ctx: AppContext, count: int, role: str) -> list[tuple[uuid.UUID, str]]:
    """Users with custodial wallets, written directly (a password hash per user would dominate)."""
    ids = [uuid.uuid4() for _ in range(count)]
    rows = [
        {
            "id": ids[n],
            "email": f"{role}-{n}-{uuid.uuid4().hex[:6]}@bench",
            "password_hash": "-",
            "role": role,
        }
        for n in range(count)
    ]
    out = []
    async with ctx.db.session() as session:
        await session.execute(insert(User), rows)
    async with ctx.db.session() as session:
        for user_id in ids:
            wallet = await wallet_of(session, ctx.services.get(Sealer), user_id)
            out.append((user_id, wallet.address))
    return out


async def _raw_transfer_rate(vault: Vault, transfers: int) -> float:
    """Transfers per second, one transfer_checked per transaction, through the same ledger."""
    ledger = vault.ledger
    token = vault.tokens[Asset.PAYMENT]
    source, target = Keypair(), Keypair()
    await ledger.mint_to(token.mint, [(source.pubkey(), transfers)])
    await ledger.create_associated_token_accounts(token.mint, [target.pubkey()])
    started = time.perf_counter()
    for n in range(transfers):
        await ledger.transfer_checked(token.mint, source, target.pubkey(), 1, memo=f"raw:{n}")
    return transfers / (time.perf_counter() - started)


async def _http_orders(ctx: AppContext, client: httpx.AsyncClient, orders: int, concurrency: int) -> float:
    """Buy orders per second over HTTP, each escrowed on the ledger before it is accepted."""
    traders = await _users(ctx, max(1, orders // 10), "consumer")
    vault = await ctx.services.get(Vaults).get()
    token = vault.tokens[Asset.PAYMENT]
    await vault.ledger.mint_to(token.mint, [(Pubkey.from_string(a), 10**9) for _, a in traders])
    headers = [{"Authorization": f"Bearer {ctx.jwt.issue(uid, 'consumer', 'b@bench')}"} for uid, _ in traders]
    body = {"order_type": "buy", "energy_amount": "1", "price_per_kwh": "0.1"}
    queue = list(range(orders))
    failures = 0

    async def agent() -> None:
        nonlocal failures
        while queue:
            n = queue.pop()
            response = await client.post("/api/trading/orders", json=body, headers=headers[n % len(headers)])
            failures += response.status_code != 201

    started = time.perf_counter()
    await asyncio.gather(*(agent() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{failures} of {orders} orders were refused")
    return orders / elapsed


async def _seed_book(ctx: AppContext, vault: Vault, per_side: int, rng: random.Random) -> None:
    """`per_side` open bids and offers in the current epoch, their escrow already in escrow."""
    sellers = await _users(ctx, TRADERS_PER_SIDE, "prosumer")
    buyers = await _users(ctx, TRADERS_PER_SIDE, "consumer")
    for _, address in sellers + buyers:
        await vault.open_accounts(Pubkey.from_string(address))
    async with ctx.db.session() as session:
        epoch = await open_epoch(session, ctx.settings.market_epoch_seconds, utcnow())
        epoch_id = epoch.id
    rows = []
    held = dict.fromkeys(Asset, 0)
    for side, traders in ((Side.SELL, sellers), (Side.BUY, buyers)):
        for n in range(per_side):
            user_id, address = traders[n % len(traders)]
            wh = rng.randrange(1_000, 20_000)
            price = rng.randrange(50_000, 150_000, 10)
            escrow = energy_units(wh) if side is Side.SELL else buy_escrow(wh, price)
            held[Asset.ENERGY if side is Side.SELL else Asset.PAYMENT] += escrow
            rows.append(
                {
                    "id": uuid7(),
                    "epoch_id": epoch_id,
                    "user_id": user_id,
                    "wallet": address,
                    "side": side.value,
                    "quantity_wh": wh,
                    "limit_price": price,
                    "escrow": escrow,
                    "status": "open",
                    "filled_wh": 0,
                    "payment": 0,
                }
            )
    async with ctx.db.session() as session:
        await session.execute(insert(MarketOrder), rows)
    for asset, amount in held.items():
        await vault.ledger.mint_to(vault.tokens[asset].mint, [(vault.owner_key, amount)])


async def _settle_run(ctx: AppContext, per_side: int, seed: int) -> dict[str, float]:
    vault = await ctx.services.get(Vaults).get()
    await _seed_book(ctx, vault, per_side, random.Random(seed))
    async with ctx.db.session() as session:
        orders = list(await session.scalars(select(MarketOrder).where(MarketOrder.status == "open")))
    bids, offers = book_of(orders)
    started = time.perf_counter()
    clear(bids, offers, k=K)
    engine = time.perf_counter() - started
    timed = Timed(vault.ledger)
    started = time.perf_counter()
    await close_current(ctx)
    cleared = time.perf_counter() - started
    settled, waiting = await settle_cleared(ctx)
    total = time.perf_counter() - started
    if waiting or not settled:
        raise RuntimeError(f"settlement incomplete: waiting on epochs {waiting}")
    async with ctx.db.session() as session:
        transactions = await session.scalar(select(func.count()).select_from(MarketSettlement))
        legs = sum(len(json.loads(row)) for row in await session.scalars(select(MarketSettlement.legs)))
    return {
        "total": total,
        "clearing": engine,
        "database": total - engine - timed.seconds,
        "ledger": timed.seconds,
        "clear_step": cleared,
        "transactions": float(transactions or 0),
        "legs": float(legs),
    }


async def _run(sizes: list[int], http_orders: int, raw_transfers: int, seed: int, console: Console) -> None:
    table = Table(title="gridtokenx bench market (embedded: SQLite + LiteSVM)")
    for column in ("measure", "value", "beside the raw ledger"):
        table.add_column(column)
    raw = 0.0
    for n, per_side in enumerate([0, *sizes]):
        with tempfile.TemporaryDirectory(prefix="gtx-bench-market-") as tmp:
            settings = Settings(
                environment="test",
                data_dir=Path(tmp),
                database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}",
                jwt_secret="bench-" + "x" * 40,
                log_json=False,
                log_level="warning",
                run_duties=False,
                rate_limit_default="100000000/minute",
                market_order_rate_limit="100000000/minute",
                market_min_order_wh=1,
            )
            ctx = AppContext.from_settings(settings)
            app = create_app(context=ctx)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                    vault = await ctx.services.get(Vaults).get()
                    if n == 0:
                        raw = await _raw_transfer_rate(vault, raw_transfers)
                        table.add_row("raw transfers/s (1 transfer per tx)", f"{raw:,.0f}", "1.00")
                        rate = await _http_orders(ctx, client, http_orders, 8)
                        table.add_row(
                            f"orders accepted/s over HTTP ({http_orders})",
                            f"{rate:,.0f}",
                            f"{rate / raw:.2f}",
                        )
                        continue
                    figures = await _settle_run(ctx, per_side, seed)
                    await ctx.services.get(LedgerHandle).stop()
            total = figures["total"]
            legs_rate = figures["legs"] / total
            verdict = (
                ""
                if per_side != 10_000
                else (" (target < 10 s: " + ("met" if total < TARGET_SECONDS_10K else "missed") + ")")
            )
            table.add_row(f"{per_side:,}/side: gate to all settled", f"{total:.2f} s{verdict}", "")
            table.add_row(
                "  shares: clearing / database / ledger",
                " / ".join(f"{figures[part] / total:.0%}" for part in ("clearing", "database", "ledger")),
                "",
            )
            table.add_row(
                f"  settlement transfers/s ({figures['legs']:.0f} legs in {figures['transactions']:.0f} txs)",
                f"{legs_rate:,.0f}",
                f"{legs_rate / raw:.2f} (target >= {TARGET_RATIO:.2f})",
            )
    console.print(table)


def run(sizes: list[int], http_orders: int = 200, raw_transfers: int = 500, seed: int = 7) -> None:
    asyncio.run(_run(sizes, http_orders, raw_transfers, seed, Console()))
