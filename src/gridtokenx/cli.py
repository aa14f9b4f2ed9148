"""The `gridtokenx` command."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from gridtokenx.cluster import app as cluster_app
from gridtokenx.core.settings import SettingsError, get_settings
from gridtokenx.ledger.cli import app as ledger_app
from gridtokenx.simulator.cli import simulate

app = typer.Typer(
    help="GridTokenX platform command line.", no_args_is_help=True, pretty_exceptions_enable=False
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
admin_app = typer.Typer(help="Administration.", no_args_is_help=True)
bench_app = typer.Typer(
    help="Benchmarks, reported as ratios against this machine's own ceilings.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
app.add_typer(bench_app, name="bench")
app.add_typer(ledger_app, name="ledger")
app.add_typer(cluster_app, name="cluster")

app.command("simulate")(simulate)

console = Console()
DEFAULT_BOOK_SIZES = "1000,10000,100000,1000000"
F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(func: F) -> F:
    """Configuration mistakes end the command with one clear line, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SettingsError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@app.command()
@friendly_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
) -> None:
    """Run the HTTP gateway (uvicorn)."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "gridtokenx.app:create_server_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_level="warning",
        access_log=False,
    )


@app.command()
@friendly_errors
def worker() -> None:
    """Run the background duties (minting, epochs, certificates, jobs), one lease holder each."""
    from gridtokenx.worker import run_worker

    asyncio.run(run_worker(get_settings()))


@app.command()
@friendly_errors
def audit() -> None:
    """Reconcile the database with the ledger; exits 1 on any difference."""
    from gridtokenx.core.context import AppContext
    from gridtokenx.domains import audit as audit_all
    from gridtokenx.domains import wire

    async def run() -> list[str]:
        ctx = AppContext.from_settings(get_settings())
        wire(ctx)
        try:
            return await audit_all(ctx)
        finally:
            from gridtokenx.ledger.domain import LedgerHandle

            await ctx.services.get(LedgerHandle).stop()
            await ctx.close()

    problems = asyncio.run(run())
    for line in problems:
        console.print(f"[red]difference:[/red] {line}")
    if problems:
        raise typer.Exit(1)
    console.print("[green]audit clean[/green]: the database and the ledger agree")


@db_app.command("upgrade")
@friendly_errors
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the database migrations."""
    from gridtokenx.core.db import open_database
    from gridtokenx.core.migrate import current_revision, upgrade

    settings = get_settings()

    async def run() -> str | None:
        async with open_database(settings.effective_database_url) as db:
            await upgrade(db, revision)
            return await current_revision(db)

    console.print(f"database at revision [bold]{asyncio.run(run())}[/bold]")


@db_app.command("retention")
@friendly_errors
def db_retention() -> None:
    """Drop readings older than GRIDTOKENX_READINGS_RETENTION_DAYS (whole partitions on PostgreSQL)."""
    from gridtokenx.core.db import open_database
    from gridtokenx.core.types import utcnow
    from gridtokenx.readings.partitions import PartitionManager

    settings = get_settings()
    if settings.readings_retention_days <= 0:
        console.print("retention is off (GRIDTOKENX_READINGS_RETENTION_DAYS=0): nothing dropped")
        return

    async def run() -> int:
        async with open_database(settings.effective_database_url) as db:
            return await PartitionManager(db).apply_retention(settings.readings_retention_days, utcnow())

    removed = asyncio.run(run())
    unit = "rows" if settings.is_sqlite else "monthly partitions"
    console.print(f"removed {removed} {unit} older than {settings.readings_retention_days} days")


@admin_app.command("create")
@friendly_errors
def admin_create(
    email: Annotated[str, typer.Option(help="The admin's email address.")],
    password: Annotated[
        str | None, typer.Option(help="Password; generated and printed once if omitted.")
    ] = None,
) -> None:
    """Create (or promote) an admin account; its email counts as verified."""
    generated = password is None
    password = password or secrets.token_urlsafe(12) + "9"
    if len(password) < 8:
        console.print("[red]error:[/red] password must be at least 8 characters")
        raise typer.Exit(2)
    from gridtokenx.accounts.admin import create_admin_account

    user_id = asyncio.run(create_admin_account(get_settings(), email, password))
    console.print(f"admin [bold]{email}[/bold] ready (id {user_id})")
    if generated:
        console.print(f"password: [bold]{password}[/bold] (shown once)")


async def issue_api_key(email: str, name: str, scopes: list[str], raw_key: str | None) -> str:
    from sqlalchemy import select

    from gridtokenx.accounts.models import User
    from gridtokenx.accounts.service import create_api_key, normalise_email
    from gridtokenx.core.db import open_database

    settings = get_settings()
    async with open_database(settings.effective_database_url) as db, db.session() as session:
        user = await session.scalar(select(User).where(User.email == normalise_email(email)))
        if user is None:
            raise typer.BadParameter(f"no account with email {email}")
        _, key = await create_api_key(session, user, name, scopes, raw_key)
        return key


@admin_app.command("api-key")
@friendly_errors
def admin_api_key(
    email: Annotated[str, typer.Option(help="Owner of the key (an admin key may report for every meter).")],
    name: Annotated[str, typer.Option(help="What the key is for.")] = "head-end",
    scope: Annotated[list[str], typer.Option(help="Scopes, repeatable.")] = ["readings:write"],  # noqa: B006
    key: Annotated[
        str | None,
        typer.Option(help="Import an existing key of a head-end system instead of generating one."),
    ] = None,
) -> None:
    """Issue an API key (shown once; only its hash is stored), or import a legacy head-end key."""
    issued = asyncio.run(issue_api_key(email, name, scope, key))
    console.print("imported; only its hash is stored" if key else f"key: [bold]{issued}[/bold] (shown once)")


@app.command()
@friendly_errors
def demo(
    port: Annotated[int, typer.Option(help="Port for the demo server.")] = 8000,
    duration: Annotated[
        float, typer.Option(help="Stop after this many seconds (0 = run until Ctrl-C).")
    ] = 0.0,
    reset: Annotated[bool, typer.Option(help="Start fresh instead of resuming ./var.")] = False,
) -> None:
    """The live embedded platform: demo users, a streaming fleet, minting, epochs, certificates."""
    from gridtokenx.demo import run_demo

    if not run_demo(console, port=port, duration=duration, reset=reset):
        raise typer.Exit(1)


@bench_app.command("clearing")
def bench_clearing(
    sizes: Annotated[str, typer.Option(help="Orders per side, comma-separated.")] = DEFAULT_BOOK_SIZES,
    seed: Annotated[int, typer.Option(help="Seed of the random book.")] = 42,
) -> None:
    """Clearing engine speed per book size, growth per doubling, ratio against the brute force."""
    from gridtokenx.bench import clearing

    clearing.run([int(n) for n in sizes.split(",") if n.strip()], seed)


@bench_app.command("ledger")
@friendly_errors
def bench_ledger() -> None:
    """Embedded ledger minting and replay speed beside raw LiteSVM."""
    from gridtokenx.bench import ledger

    ledger.run()


@bench_app.command("market")
@friendly_errors
def bench_market(
    sizes: Annotated[
        str, typer.Option(help="Orders per side to settle, comma-separated (e.g. 1000,10000).")
    ] = "1000",
    http_orders: Annotated[int, typer.Option(help="Orders placed over HTTP for the acceptance rate.")] = 200,
) -> None:
    """Orders accepted over HTTP and gate closure to settled, beside the ledger's raw transfer rate."""
    from gridtokenx.bench import market

    market.run([int(n) for n in sizes.split(",") if n.strip()], http_orders)


@bench_app.command("mint")
@friendly_errors
def bench_mint(
    samples: Annotated[int, typer.Option(help="Readings timed one at a time (latency).")] = 100,
    readings: Annotated[
        int,
        typer.Option(help="Readings drained by the worker (throughput; a deep queue, as after an outage)."),
    ] = 10_000,
    owners: Annotated[int, typer.Option(help="Owners (two meters each).")] = 50,
) -> None:
    """HTTP-accepted reading -> tokens in the wallet: latency, and the worker's rate beside the raw one."""
    from gridtokenx.bench import mint

    mint.run(samples=samples, readings=readings, owners=owners)


@bench_app.command("erc")
@friendly_errors
def bench_erc(
    count: Annotated[int, typer.Option(help="Certificates (and raw mints) in each timed part.")] = 200,
    concurrency: Annotated[int, typer.Option(help="Concurrent issuers.")] = 8,
) -> None:
    """Certificates issued per second beside the raw Token-2022 mint rate; verification p95."""
    from gridtokenx.bench import erc

    erc.run(count=count, concurrency=concurrency)


@bench_app.command("ingest")
@friendly_errors
def bench_ingest(
    readings: Annotated[int, typer.Option(help="Readings per scenario.")] = 100_000,
    batch: Annotated[int, typer.Option(help="Readings per HTTP batch.")] = 1000,
    backends: Annotated[str, typer.Option(help="Comma-separated: postgres, sqlite.")] = "postgres,sqlite",
    processes: Annotated[str, typer.Option(help="Server process counts, comma-separated.")] = "1,2",
    pg_url: Annotated[
        str | None, typer.Option(help="PostgreSQL server to create the bench database on.")
    ] = None,
    meters: Annotated[int, typer.Option(help="Meters in the fleet.")] = 1000,
    meters_per_batch: Annotated[
        int,
        typer.Option(help="Meters in one batch, each with batch/meters-per-batch consecutive intervals."),
    ] = 100,
    history_days: Annotated[
        int,
        typer.Option(help="Days of stored history per meter before the timed part (the spike rule's week)."),
    ] = 7,
    bare: Annotated[
        bool,
        typer.Option(
            help="Also run the bare path (decode, verify, insert) on PostgreSQL, the target's shape."
        ),
    ] = True,
) -> None:
    """Signed native batches over real HTTP, beside the all-core Ed25519 verify ceiling."""
    from gridtokenx.bench import ingest as bench

    bench.run(
        readings=readings,
        batch=batch,
        backends=tuple(b.strip() for b in backends.split(",") if b.strip()),
        processes=tuple(int(p) for p in processes.split(",") if p.strip()),
        pg_url=pg_url,
        meters=meters,
        meters_per_batch=meters_per_batch,
        history_days=history_days,
        bare=bare,
    )


@bench_app.command("ws")
def bench_ws(
    clients: Annotated[int, typer.Option(min=1, help="Connected WebSocket clients.")] = 1000,
    events: Annotated[int, typer.Option(min=1, help="Events fanned out to every client.")] = 100,
    rate: Annotated[float, typer.Option(min=0.1, help="Events published per second.")] = 10.0,
    gateways: Annotated[str, typer.Option(help="Gateway process counts to run, comma-separated.")] = "1,2",
) -> None:
    """WebSocket fan-out through real gateways over Redis: delivery latency p50/p95/p99, messages/s."""
    from gridtokenx.bench import ws

    counts = tuple(int(g) for g in gateways.split(",") if g.strip())
    ws.run(clients=clients, events=events, rate=rate, gateways=counts)


@bench_app.command("cluster")
def bench_cluster(
    readings: Annotated[int, typer.Option(min=1000, help="Readings per scenario.")] = 20_000,
    batch: Annotated[int, typer.Option(min=1, help="Readings per batch.")] = 1000,
    meters: Annotated[int, typer.Option(min=1)] = 200,
    pg_url: Annotated[str | None, typer.Option(help="PostgreSQL admin URL for the scratch database.")] = None,
) -> None:
    """Signed ingest through 1 and 2 gateways on PostgreSQL with the Redis bus; the 2:1 ratio."""
    from gridtokenx.bench import cluster

    cluster.run(readings=readings, batch=batch, meters=meters, pg_url=pg_url)


@bench_app.command("fleet")
@friendly_errors
def bench_fleet(
    setups: Annotated[
        str, typer.Option(help="Comma-separated: embedded, postgres-1, postgres-2.")
    ] = "embedded",
    meters: Annotated[str, typer.Option(help="Fleet sizes to try, comma-separated.")] = "50",
    speed: Annotated[
        str, typer.Option(help="Time accelerations, comma-separated: the load of meters x speed.")
    ] = "10",
    duration: Annotated[float, typer.Option(help="Wall seconds per run.")] = 10.0,
    interval: Annotated[int, typer.Option(help="Seconds per reading interval.")] = 15,
    pg_url: Annotated[
        str | None, typer.Option(help="PostgreSQL server to create the bench databases on.")
    ] = None,
) -> None:
    """The largest meter fleet a gateway set-up sustains: each set-up climbs the meters x speed
    loads until one is not sustained (short by default)."""
    from gridtokenx.bench import fleet

    fleet.run(
        setups=tuple(s.strip() for s in setups.split(",") if s.strip()),
        meters=tuple(int(m) for m in meters.split(",") if m.strip()),
        speeds=tuple(float(x) for x in speed.split(",") if x.strip()),
        duration_s=duration,
        interval_s=interval,
        pg_admin_url=pg_url or fleet.DEFAULT_PG_ADMIN_URL,
    )


if __name__ == "__main__":  # pragma: no cover
    app()
