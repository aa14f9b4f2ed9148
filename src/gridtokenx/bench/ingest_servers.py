"""The scratch databases and server processes `bench ingest` sets up around each timed part.

Kept apart from the benchmark so that `ingest` reads as the fleet, the load and the figures: a
fresh database per scenario (created, migrated by the seed, dropped afterwards), its rows counted
afterwards, and N single-worker uvicorn processes on their own ports, started and stopped.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from gridtokenx.bench.common import free_port
from gridtokenx.bench.ingest_bare import BARE_TABLE, asyncpg_dsn
from gridtokenx.core.db import Database
from gridtokenx.core.types import utc_from_epoch
from gridtokenx.readings.models import MeterReading
from gridtokenx.readings.reading import Trust

BENCH_NETWORK = "gridtokenx-bench"  # the servers' network id, which the fleet signs for
SERVER_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ScratchDatabase:
    """A fresh database for one scenario; `url` is what the servers get."""

    backend: str
    url: str


async def execute_sql(url: str, sql: str) -> Any:
    """One statement on its own connection to `url` (the admin database, or a bench database);
    its first value, if it returns rows."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


@contextmanager
def scratch_database(backend: str, pg_admin_url: str, workdir: Path) -> Iterator[ScratchDatabase]:
    """PostgreSQL: `gtx_bench_<random>` on the server of `pg_admin_url`, dropped afterwards;
    SQLite: a file in `workdir`, which goes with it."""
    if backend == "sqlite":
        yield ScratchDatabase(backend, f"sqlite+aiosqlite:///{workdir / 'bench.db'}")
        return
    if backend != "postgres":
        raise ValueError(f"unknown backend {backend!r}: postgres or sqlite")
    name = f"gtx_bench_{secrets.token_hex(5)}"
    url = make_url(pg_admin_url).set(drivername="postgresql+asyncpg", database=name)
    asyncio.run(execute_sql(pg_admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield ScratchDatabase(backend, url.render_as_string(hide_password=False))
    finally:
        asyncio.run(execute_sql(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def count_bare_rows(url: str) -> int:
    return int(await execute_sql(url, f"SELECT count(*) FROM {BARE_TABLE}"))


async def count_rows(url: str, since: int) -> tuple[int, int, int]:
    """Reading rows from `since` on (the timed part's), those of them stored as device-signed,
    and the rows before (the seeded history)."""
    db = Database(url)
    timed = MeterReading.interval_start >= utc_from_epoch(since)
    count = select(func.count()).select_from(MeterReading)
    try:
        async with db.session() as session:
            total = await session.scalar(count.where(timed))
            signed = await session.scalar(count.where(timed, MeterReading.trust == Trust.DEVICE_SIGNED))
            history = await session.scalar(count.where(~timed))
        return int(total or 0), int(signed or 0), int(history or 0)
    finally:
        await db.dispose()


class Servers:
    """N single-worker uvicorn processes on their own ports, each with its own log file."""

    def __init__(self, count: int, database_url: str, workdir: Path, app: str) -> None:
        self.count = count
        self.app = app
        self.database_url = database_url
        self.workdir = workdir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []

    def _env(self, distributed: bool) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDTOKENX_")}
        env.update(
            GRIDTOKENX_DATABASE_URL=self.database_url,
            GRIDTOKENX_DATA_DIR=str(self.workdir / "var"),
            GRIDTOKENX_ENVIRONMENT="distributed" if distributed else "embedded",
            GRIDTOKENX_JWT_SECRET=secrets.token_urlsafe(48),
            GRIDTOKENX_WALLET_ENCRYPTION_KEY=secrets.token_hex(32),
            GRIDTOKENX_NETWORK_ID=BENCH_NETWORK,
            GRIDTOKENX_RATE_LIMIT_DEFAULT="1000000000/minute",
            GRIDTOKENX_LOG_LEVEL="warning",
            GRIDTOKENX_AUTO_MIGRATE="false",
        )
        return env

    def start(self) -> None:
        env = self._env(distributed=not self.database_url.startswith("sqlite"))
        extra = ["--loop", "uvloop"] if find_spec("uvloop") else []
        extra += ["--http", "httptools"] if find_spec("httptools") else []
        for index in range(self.count):
            port = free_port()
            log = open(self.workdir / f"server-{index}.log", "wb")  # noqa: SIM115 - handed to the child
            command = [
                sys.executable, "-m", "uvicorn", self.app, "--factory",
                "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
                *extra,
            ]  # fmt: skip
            process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            self.processes.append(process)
            self.urls.append(f"http://127.0.0.1:{port}")
        asyncio.run(self._wait_healthy())

    async def _wait_healthy(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2.0) as client:
            for index, url in enumerate(self.urls):
                while True:
                    if self.processes[index].poll() is not None:
                        raise RuntimeError(f"server {index} exited at start-up:\n{self.log_tail(index)}")
                    try:
                        if (await client.get(url + "/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"server {index} not healthy in time:\n{self.log_tail(index)}")
                    await asyncio.sleep(0.1)

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def log_tail(self, index: int, lines: int = 30) -> str:
        path = self.workdir / f"server-{index}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self.processes.clear()
