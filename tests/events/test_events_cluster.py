"""The distributed topology as real processes (`gridtokenx cluster up`) on the local PostgreSQL,
Redis and Mosquitto: a reading posted to gateway A reaches a WebSocket client on gateway B, and a
gateway killed with SIGKILL in the middle of a batch loses nothing and stores nothing twice when
the client retries on the other gateway."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from gridtokenx.cluster import Process, load, stop
from gridtokenx.core.context import AppContext
from tests.conftest import PG_HOST, PG_PORT, PG_USER, make_settings
from tests.events.test_events_hub import next_event, receive
from tests.helpers import bearer
from tests.readings.ingest_helpers import aligned_now, make_device

pytestmark = pytest.mark.cluster


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _base_port() -> int:
    while True:
        base = random.randrange(20_000, 40_000)
        if all(_free(p) for p in (base, base + 1, base + 100)):
            return base


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridtokenx.cli", "cluster", *args],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Path, str, list[Process]]]:
    name = f"gtx_cluster_{uuid.uuid4().hex[:10]}"
    url = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    directory = tmp_path / "cluster"
    tag = uuid.uuid4().hex[:8]
    started = _cli(
        "up",
        "--gateways", "2",
        "--workers", "1",
        "--base-port", str(_base_port()),
        "--database-url", url,
        "--redis-url", "redis://127.0.0.1:6379/15",
        "--mqtt-prefix", f"test-{tag}",
        "--events-prefix", f"test:{tag}:events",
        "--directory", str(directory),
    )  # fmt: skip
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "gateway-2" in started.stdout and "worker-1" in started.stdout
        yield directory, url, load(directory)
    finally:
        stopped = _cli("down", "--directory", str(directory))
        assert stopped.returncode == 0, stopped.stderr
        assert all(
            not Path(f"/proc/{p.pid}").exists() or b"gridtokenx" not in _cmdline(p.pid)
            for p in load(directory)
        )

        async def drop() -> None:
            conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.close()

        asyncio.run(drop())


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


async def test_an_event_crosses_gateways_and_a_killed_gateway_loses_nothing(
    cluster: tuple[Path, str, list[Process]], tmp_path: Path
) -> None:
    directory, url, processes = cluster
    by_name = {p.name: p for p in processes}
    a, b = by_name["gateway-1"], by_name["gateway-2"]
    secret = (directory / "jwt_secret").read_text().strip()
    ctx = AppContext.from_settings(make_settings(tmp_path, url, jwt_secret=secret))
    try:
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=60) as on_a,
            httpx.AsyncClient(base_url=b.url, timeout=60) as on_b,
        ):
            device = await make_device(on_a, ctx)
            ws_url = b.url.replace("http://", "ws://") + f"/ws?token={device.owner}&channels=user"
            async with connect(ws_url) as ws:
                await receive(ws, 10)
                posted = await on_a.post(
                    "/api/meters/readings", content=device.signed(aligned_now()), headers=bearer(device.owner)
                )
                assert posted.status_code == 201, posted.text
                heard = await next_event(ws, 15)
                assert heard["type"] == "MeterReadingReceived"
                assert heard["data"]["reading_id"] == posted.json()["reading_id"]
                assert heard["id"] > 0

            starts = [aligned_now(k) for k in range(1, 1001)]
            body = device.signed_batch(starts)
            sending = asyncio.create_task(
                on_a.post("/api/meters/readings/batch", content=body, headers=bearer(device.owner))
            )
            await asyncio.sleep(0.15)
            stop(a, sig=9)  # SIGKILL, mid-batch
            with pytest.raises(httpx.TransportError):
                await sending
            retried = await on_b.post(
                "/api/meters/readings/batch", content=body, headers=bearer(device.owner)
            )
            assert retried.status_code == 200, retried.text
            statuses = {r["status"] for r in orjson.loads(retried.content)["results"]}
            assert statuses <= {"accepted", "duplicate"}

        conn = await asyncpg.connect(url)
        try:
            stored = await conn.fetch(
                "SELECT interval_start, count(*) AS n FROM meter_readings WHERE meter_id = $1 "
                "AND trust <> 'estimated' GROUP BY interval_start",
                uuid.UUID(device.meter_id),
            )
        finally:
            await conn.close()
        assert len(stored) == 1001 and all(row["n"] == 1 for row in stored)  # each reading once
    finally:
        await ctx.db.dispose()
