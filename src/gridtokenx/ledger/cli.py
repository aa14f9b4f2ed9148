"""`gridtokenx ledger ...`: inspect the ledger, snapshot the embedded one, serve a local RPC node."""

from __future__ import annotations

import asyncio
import signal
import threading
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from spl.token.constants import TOKEN_2022_PROGRAM_ID

from gridtokenx.core.settings import Settings, get_settings
from gridtokenx.ledger.errors import LedgerError
from gridtokenx.ledger.factory import build_ledger
from gridtokenx.ledger.keypairs import load_keypair
from gridtokenx.ledger.litesvm_backend import LiteSvmLedger
from gridtokenx.ledger.local_rpc import LiteSvmRpcServer
from gridtokenx.ledger.rpc_backend import RpcLedger

app = typer.Typer(help="The Solana ledger: embedded LiteSVM or a real cluster.", no_args_is_help=True)
console = Console()
SOL_DECIMALS = 9
LAMPORTS_PER_SOL = 10**SOL_DECIMALS


def _whole(amount: int, decimals: int) -> str:
    return f"{Decimal(amount).scaleb(-decimals):f}"


async def _info(settings: Settings) -> None:
    async with build_ledger(settings, read_only=True) as ledger:
        summary = Table(title="Ledger", show_header=False)
        summary.add_row("backend", ledger.backend)
        if isinstance(ledger, LiteSvmLedger):
            summary.add_row("directory", str(ledger.directory))
            summary.add_row("log position", str(ledger.log_position))
            summary.add_row("snapshot position", str(ledger.snapshot_position))
        elif isinstance(ledger, RpcLedger):
            summary.add_row("endpoint", ledger.url)
            summary.add_row("pending transactions", str(ledger.pending_count))
        summary.add_row("authority", str(ledger.authority.pubkey()))
        payer = ledger.fee_payer.pubkey()
        balance = await ledger.get_balance(payer)
        summary.add_row("fee payer", f"{payer} ({_whole(balance, SOL_DECIMALS)} SOL)")
        console.print(summary)

        mints = Table(title="Mints")
        for column in ("label", "address", "program", "decimals", "supply"):
            mints.add_column(column)
        for record in await ledger.mints():
            supply = await ledger.get_supply(record.address)
            program = "Token-2022" if record.token_program == TOKEN_2022_PROGRAM_ID else "Token"
            mints.add_row(
                record.label,
                str(record.address),
                program,
                str(record.decimals),
                f"{_whole(supply, record.decimals)} ({supply} base units)",
            )
        console.print(mints)


async def _snapshot(settings: Settings) -> int:
    async with build_ledger(settings) as ledger:
        if not isinstance(ledger, LiteSvmLedger):
            raise typer.BadParameter(
                "snapshots belong to the embedded backend (GRIDTOKENX_LEDGER_BACKEND=litesvm)"
            )
        return await ledger.snapshot()


@app.command()
def info() -> None:
    """Backend, authority, fee payer and every registered mint with its supply."""
    try:
        asyncio.run(_info(get_settings()))
    except LedgerError as exc:
        console.print(f"[red]ledger error:[/red] {exc}")
        raise typer.Exit(1) from None


@app.command()
def snapshot() -> None:
    """Write a snapshot of the embedded ledger now, so the next start replays less."""
    try:
        position = asyncio.run(_snapshot(get_settings()))
    except LedgerError as exc:
        console.print(f"[red]ledger error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"snapshot written at log position {position}")


@app.command("serve-rpc")
def serve_rpc(
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one; the URL is printed).")] = 8899,
    block_time: Annotated[
        float, typer.Option(help="Seconds per block; a blockhash stays valid for 150 blocks.")
    ] = 0.4,
    fund: Annotated[
        list[Path] | None,
        typer.Option(help="A keypair file whose account starts with --fund-sol (the ledger authority)."),
    ] = None,
    fund_sol: Annotated[int, typer.Option(min=1, help="SOL given to each --fund account.")] = 1000,
) -> None:
    """Serve Solana JSON-RPC backed by an in-memory LiteSVM (a local stand-in for a cluster)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        funded = [load_keypair(path).pubkey() for path in fund or []]
    except LedgerError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    server = LiteSvmRpcServer(block_time=block_time, host=host, port=port)
    for pubkey in funded:  # its state is in memory: the fee payer needs lamports on every start
        server.dispatch("requestAirdrop", [str(pubkey), fund_sol * LAMPORTS_PER_SOL])
    try:
        server.start()
    except OSError as exc:
        console.print(f"[red]error:[/red] cannot listen on {host}:{port}: {exc.strerror}")
        raise typer.Exit(2) from None
    # One plain line on stdout, flushed, so a supervisor or a test can read the URL.
    print(server.url, flush=True)
    try:
        stop.wait()
    finally:
        server.stop()
