"""A real gateway process (`gridtokenx serve`) on the local PostgreSQL and Mosquitto, for driving
the simulator over its public interfaces only; it can be stopped and started again on its port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from gridtokenx.core.db import Database
from gridtokenx.core.migrate import upgrade
from tests.conftest import MQTT_HOST, MQTT_PORT, PG_HOST, PG_PORT, PG_USER
from tests.live import free_port

ADMIN_EMAIL = "sim-admin@example.com"
ADMIN_PASSWORD = "sim-admin-pass-123"


async def _admin_sql(sql: str) -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@dataclass
class Gateway:
    tmp: Path
    rate_limit: str = "100000/minute"
    port: int = field(default_factory=free_port)
    name: str = field(default_factory=lambda: f"gtx_sim_{uuid.uuid4().hex[:10]}")
    mqtt_prefix: str = field(default_factory=lambda: f"gtxsim/{uuid.uuid4().hex[:8]}")
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_url(self) -> str:
        return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.name}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in ("src", os.environ.get("PYTHONPATH", "")) if p),
            "GRIDTOKENX_ENVIRONMENT": "test",
            "GRIDTOKENX_DATABASE_URL": self.db_url,
            "GRIDTOKENX_DATA_DIR": str(self.tmp / "gateway"),
            "GRIDTOKENX_JWT_SECRET": "sim-test-secret-" + "x" * 40,
            "GRIDTOKENX_LOG_JSON": "false",
            "GRIDTOKENX_LOG_LEVEL": "warning",
            "GRIDTOKENX_RUN_DUTIES": "false",
            "GRIDTOKENX_RATE_LIMIT_DEFAULT": self.rate_limit,
            "GRIDTOKENX_MQTT_BROKER_HOST": MQTT_HOST,
            "GRIDTOKENX_MQTT_BROKER_PORT": str(MQTT_PORT),
            "GRIDTOKENX_MQTT_TOPIC_PREFIX": self.mqtt_prefix,
            "GRIDTOKENX_MQTT_SHARED_GROUP": f"g{uuid.uuid4().hex[:8]}",
        }

    def create(self) -> None:
        """A fresh database, migrated, with the utility's admin account."""

        async def make() -> None:
            await _admin_sql(f'CREATE DATABASE "{self.name}"')
            db = Database(self.db_url)
            await upgrade(db)
            await db.dispose()

        asyncio.run(make())
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gridtokenx.cli",
                "admin",
                "create",
                "--email",
                ADMIN_EMAIL,
                "--password",
                ADMIN_PASSWORD,
            ],
            env=self.env(),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gridtokenx.cli", "serve", "--port", str(self.port)],
            env=self.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the gateway did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def drop(self) -> None:
        self.stop()
        asyncio.run(_admin_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))

    def count(self, sql: str) -> int:
        return int(self.fetch(sql)[0][0])

    def fetch(self, sql: str) -> list[tuple[object, ...]]:
        async def run() -> list[tuple[object, ...]]:
            conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=self.name)
            try:
                return [tuple(row) for row in await conn.fetch(sql)]
            finally:
                await conn.close()

        return asyncio.run(run())
