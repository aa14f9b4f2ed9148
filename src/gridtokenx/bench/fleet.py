"""`gridtokenx bench fleet`: how large a meter fleet a gateway set-up sustains.

The simulator drives real gateway processes over HTTP as a head-end would (one signed batch per
interval for the whole fleet, every reading device-signed), with time accelerated: a fleet of M
meters at speed X offers the load of M x X meters reporting every `interval` seconds. A run
counts as sustained when every reading was stored exactly once (checked in the database), nothing
was lost or left spooled, the spool never held more than three intervals' worth (delivery kept
pace), and the p95 answer time stayed under 200 ms. Capacity at 15-minute intervals (the
original plan's 4 readings per meter per hour) is derived from the sustained readings per second.

Set-ups: `embedded` (SQLite, one process, the embedded defaults), `postgres-1` and `postgres-2`
(one or two gateway processes on one PostgreSQL database, requests round-robin).
"""

from __future__ import annotations

import asyncio
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from gridtokenx.core.db import Database
from gridtokenx.core.migrate import upgrade
from gridtokenx.simulator.driver import FleetConfig, FleetDriver, Report
from gridtokenx.simulator.stats import percentile
from gridtokenx.simulator.transport import RetryPolicy

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
NETWORK = "gridtokenx-fleet-bench"
ADMIN_EMAIL = "fleet-bench-admin@example.com"
P95_LIMIT_S = 0.200
PHASES = (1_000, 10_000, 100_000)


@dataclass(frozen=True)
class Outcome:
    setup: str
    meters: int
    speed: float
    interval_s: int
    seconds: float
    generated: int
    stored_rows: int
    report: Report

    @property
    def offered_per_s(self) -> float:
        return self.meters * self.speed / self.interval_s

    @property
    def stored_per_s(self) -> float:
        return self.stored_rows / self.seconds if self.seconds else 0.0

    @property
    def p95(self) -> float | None:
        return percentile(self.report.stats.total.answer_seconds, 95)

    @property
    def sustained(self) -> bool:
        stats = self.report.stats
        return (
            self.report.ok
            and self.stored_rows == self.generated
            and stats.max_spool_depth <= 3 * self.meters
            and (self.p95 or 0.0) < P95_LIMIT_S
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _sql(url: str, sql: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(sql) or 0)
    finally:
        await conn.close()


@contextmanager
def gateways(setup: str, workdir: Path, pg_admin_url: str) -> Iterator[tuple[list[str], dict[str, str], str]]:
    """Start the set-up's gateway processes on a fresh database with an admin account; yield
    their URLs, the admin credentials and a plain DSN to count rows (empty for SQLite)."""
    processes = 2 if setup == "postgres-2" else 1
    name = f"gtx_fleet_{secrets.token_hex(5)}"
    if setup == "embedded":
        url, dsn = f"sqlite+aiosqlite:///{workdir / 'gateway.db'}", ""
    else:
        base = make_url(pg_admin_url)
        url = base.set(drivername="postgresql+asyncpg", database=name).render_as_string(hide_password=False)
        dsn = base.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
        asyncio.run(_sql(pg_admin_url, f'CREATE DATABASE "{name}"'))

    async def migrate() -> None:
        db = Database(url)
        await upgrade(db)
        await db.dispose()

    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDTOKENX_")}
    env.update(
        GRIDTOKENX_DATABASE_URL=url,
        GRIDTOKENX_DATA_DIR=str(workdir / "var"),
        GRIDTOKENX_ENVIRONMENT="embedded" if setup == "embedded" else "distributed",
        GRIDTOKENX_JWT_SECRET=secrets.token_urlsafe(48),
        GRIDTOKENX_WALLET_ENCRYPTION_KEY=secrets.token_hex(32),  # required in distributed mode
        GRIDTOKENX_NETWORK_ID=NETWORK,
        GRIDTOKENX_RATE_LIMIT_DEFAULT="1000000000/minute",
        GRIDTOKENX_LOG_LEVEL="warning",
        GRIDTOKENX_LOG_JSON="false",
        GRIDTOKENX_AUTO_MIGRATE="false",
    )
    admin = {"email": ADMIN_EMAIL, "password": secrets.token_urlsafe(12) + "9"}
    started: list[subprocess.Popen[bytes]] = []
    try:
        asyncio.run(migrate())
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gridtokenx.cli",
                "admin",
                "create",
                "--email",
                admin["email"],
                "--password",
                admin["password"],
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        urls = []
        logs = []
        for index in range(processes):
            port = _free_port()
            logs.append(workdir / f"gateway-{index + 1}.log")
            with logs[-1].open("wb") as log:
                started.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "gridtokenx.cli", "serve", "--port", str(port)],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            urls.append(f"http://127.0.0.1:{port}")
        for url_, log_path in zip(urls, logs, strict=True):
            _wait_healthy(url_, log_path)
        yield urls, admin, dsn
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if setup != "embedded":
            asyncio.run(_sql(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _wait_healthy(url: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"gateway {url} did not become healthy; its log ends:\n{tail}")


def _stored_rows(setup: str, workdir: Path, dsn: str) -> int:
    sql = "SELECT count(*) FROM meter_readings WHERE trust = 'device-signed'"
    if setup != "embedded":
        return asyncio.run(_sql(dsn, sql))
    import sqlite3

    with sqlite3.connect(workdir / "gateway.db") as conn:
        return int(conn.execute(sql).fetchone()[0])


def run_one(
    setup: str, meters: int, speed: float, duration_s: float, interval_s: int, pg_admin_url: str
) -> Outcome:
    workdir = Path(tempfile.mkdtemp(prefix="gtx-fleet-bench-"))
    try:
        with gateways(setup, workdir, pg_admin_url) as (urls, admin, dsn):
            config = FleetConfig(
                gateway=urls[0],
                more_gateways=tuple(urls[1:]),
                fleet_file=workdir / "fleet.db",
                meters=meters,
                interval_s=interval_s,
                transport="batch",
                speed=speed,
                duration_s=duration_s,
                prefix="BENCH",
                admin_email=admin["email"],
                admin_password=admin["password"],
                network_id=NETWORK,
                claim=False,
                drain_timeout_s=30.0,
                retry=RetryPolicy(attempts=3, base_s=0.1, cap_s=2.0),
            )

            async def drive() -> tuple[Report, float]:
                driver = FleetDriver(config)
                await driver.start()
                began = time.monotonic()
                report = await driver.wait()
                return report, time.monotonic() - began

            report, seconds = asyncio.run(drive())
            stored = _stored_rows(setup, workdir, dsn)
        return Outcome(
            setup, meters, speed, interval_s, seconds, report.stats.total.generated, stored, report
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(
    *,
    setups: tuple[str, ...],
    meters: tuple[int, ...],
    speeds: tuple[float, ...],
    duration_s: float,
    interval_s: int,
    pg_admin_url: str = DEFAULT_PG_ADMIN_URL,
    console: Console | None = None,
) -> list[Outcome]:
    """Per set-up, a ladder: every meters x speed load in increasing order of readings offered per
    second, up to the first one the set-up does not sustain (a larger load would not be either)."""
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    ladder = sorted(((m, x) for m in meters for x in speeds), key=lambda load: (load[0] * load[1], load[0]))
    outcomes = []
    for setup in setups:
        for count, speed in ladder:
            console.print(f"[dim]{setup}: {count} meters x{speed:g} for {duration_s:g} s ...[/dim]")
            outcome = run_one(setup, count, speed, duration_s, interval_s, pg_admin_url)
            outcomes.append(outcome)
            if not outcome.sustained:
                break
    console.print(table(outcomes))
    for line in capacity_lines(outcomes):
        console.print(line)
    return outcomes


def table(outcomes: list[Outcome]) -> Table:
    out = Table(title="Fleet capacity (head-end batches, device-signed readings)")
    for column in (
        "set-up", "meters", "speed", "offered/s", "generated", "stored once", "stored/s", "p50 ms", "p95 ms",
        "max spool", "sustained",
    ):  # fmt: skip
        out.add_column(column, justify="left" if column == "set-up" else "right")
    for o in outcomes:
        p50 = percentile(o.report.stats.total.answer_seconds, 50)
        out.add_row(
            o.setup,
            str(o.meters),
            f"{o.speed:g}",
            f"{o.offered_per_s:,.0f}",
            str(o.generated),
            str(o.stored_rows),
            f"{o.stored_per_s:,.0f}",
            "-" if p50 is None else f"{p50 * 1000:.0f}",
            "-" if o.p95 is None else f"{o.p95 * 1000:.0f}",
            str(o.report.stats.max_spool_depth),
            "yes" if o.sustained else "no",
        )
    return out


def capacity_lines(outcomes: list[Outcome]) -> list[str]:
    """Per set-up: the best sustained rate, as meters at 15 s and at 15 min, and machines per phase."""
    lines = []
    for setup in dict.fromkeys(o.setup for o in outcomes):
        sustained = [o for o in outcomes if o.setup == setup and o.sustained]
        if not sustained:
            lines.append(f"{setup}: no load sustained at these sizes (lower --meters or --speed)")
            continue
        best = max(sustained, key=lambda o: o.stored_per_s)
        rate = best.stored_per_s
        at_15s, at_15min = int(rate * 15), int(rate * 900)

        def machines(per_machine: int) -> str:
            return ", ".join(f"{p:,}: {math.ceil(p / per_machine)}" for p in PHASES)

        lines.append(
            f"{setup}: sustained {rate:,.0f} readings/s (a lower bound: the load offered)"
            f" = {at_15s:,} meters at 15 s, {at_15min:,} meters at 15 min; machines per phase"
            f" at 15 min: {machines(at_15min)}; at 15 s: {machines(at_15s)}"
        )
    return lines
