"""`gridtokenx bench ws`: WebSocket fan-out through real gateway processes.

The bench starts G gateway processes (`gridtokenx serve`) on one SQLite file (only read, for
authentication) and the local Redis (a fresh events prefix), connects C WebSocket clients spread
evenly over them (all subscribed to `orderbook`), and publishes E public events through the
Redis bus from its own process at R events a second, each stamped with its wall-clock send time.
Every client records when each event arrives: delivery latency is publish -> Redis -> every
gateway's listener -> hub fan-out -> client, the path a real event takes. Figures: p50/p95/p99
of all deliveries (target p95 < 50 ms) and fan-out messages per second over the run.

The clients run in the bench's own process, on the same 2 cores as the gateways and Redis: the
figures are a floor for what a dedicated machine would give, not a ceiling.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from gridtokenx.bench.common import free_port, percentile, start_gateway, stop_all, wait_healthy
from gridtokenx.core.db import Database
from gridtokenx.core.migrate import upgrade
from gridtokenx.core.security import JwtCodec
from gridtokenx.events.model import Event
from gridtokenx.events.redis_bus import RedisEventBus

REDIS_URL = "redis://127.0.0.1:6379/14"
SECRET = "bench-ws-secret-" + "x" * 40


@dataclass
class WsResult:
    gateways: int
    clients: int
    events: int
    deliveries: int
    expected: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    messages_per_s: float

    def line(self) -> str:
        return (
            f"{self.gateways} gateway(s), {self.clients} clients, {self.events} events: "
            f"{self.deliveries}/{self.expected} delivered; latency p50 {self.p50_ms:.1f} ms, "
            f"p95 {self.p95_ms:.1f} ms, p99 {self.p99_ms:.1f} ms; {self.messages_per_s:,.0f} messages/s"
        )


async def _token(db_url: str) -> str:
    from gridtokenx.accounts.service import create_admin

    db = Database(db_url)
    try:
        await upgrade(db)
        async with db.session() as session:
            user = await create_admin(session, "bench-ws@example.com", "bench-password-1")
            user_id, role, email = user.id, user.role, user.email
    finally:
        await db.dispose()
    return JwtCodec(SECRET, "gridtokenx", 3600).issue(user_id, role, email)


async def _client(
    url: str, events: int, latencies: list[float], ready: asyncio.Event, done: asyncio.Event
) -> int:
    received = 0
    async with connect(url, compression=None, max_queue=None, ping_interval=None) as ws:
        await ws.recv()  # welcome
        ready.set()
        closer = asyncio.create_task(_close_when(done, ws))
        async for raw in ws:  # one recv per frame, no timer per frame (the clients share the cores)
            frame = orjson.loads(raw)
            if frame.get("type") == "OrderBookChanged":
                latencies.append((time.time_ns() - frame["data"]["sent_ns"]) / 1e6)
                received += 1
                if received == events:
                    break
        closer.cancel()
    return received


async def _close_when(done: asyncio.Event, ws: ClientConnection) -> None:
    await done.wait()
    await ws.close()


async def _connect_all(
    urls: list[str], events: int, latencies: list[float], done: asyncio.Event
) -> list[asyncio.Task[int]]:
    tasks: list[asyncio.Task[int]] = []
    for start in range(0, len(urls), 50):  # connect in waves: 1,000 handshakes at once time out here
        wave = []
        for url in urls[start : start + 50]:
            ready = asyncio.Event()
            tasks.append(asyncio.create_task(_client(url, events, latencies, ready, done)))
            wave.append(ready.wait())
        await asyncio.wait_for(asyncio.gather(*wave), 120)
    return tasks


async def _run(ports: list[int], token: str, prefix: str, clients: int, events: int, rate: float) -> WsResult:
    urls = [
        f"ws://127.0.0.1:{ports[i % len(ports)]}/ws?token={token}&channels=orderbook" for i in range(clients)
    ]
    latencies: list[float] = []
    done = asyncio.Event()
    tasks = await _connect_all(urls, events, latencies, done)
    await asyncio.sleep(0.5)  # every gateway's listener is subscribed long before this
    bus = RedisEventBus(REDIS_URL, prefix=prefix)
    started = time.perf_counter()
    try:
        for n in range(events):
            await bus.publish(Event.make("OrderBookChanged", {"n": n, "sent_ns": time.time_ns()}))
            await asyncio.sleep(1 / rate)
        try:
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
        except TimeoutError:
            done.set()
        elapsed = time.perf_counter() - started
    finally:
        done.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await bus.stop()
    ordered = sorted(latencies)
    return WsResult(
        len(ports),
        clients,
        events,
        len(ordered),
        clients * events,
        percentile(ordered, 0.50),
        percentile(ordered, 0.95),
        percentile(ordered, 0.99),
        len(ordered) / elapsed,
    )


def run_scenario(*, gateways: int, clients: int, events: int, rate: float) -> WsResult:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:events"
    with tempfile.TemporaryDirectory(prefix="gtx-bench-ws-") as tmp:
        directory = Path(tmp)
        db_url = f"sqlite+aiosqlite:///{directory / 'bench.db'}"
        token = asyncio.run(_token(db_url))
        env = {
            "GRIDTOKENX_ENVIRONMENT": "test",
            "GRIDTOKENX_DATABASE_URL": db_url,
            "GRIDTOKENX_JWT_SECRET": SECRET,
            "GRIDTOKENX_REDIS_URL": REDIS_URL,
            "GRIDTOKENX_EVENTS_PREFIX": prefix,
            "GRIDTOKENX_CACHE_ENABLED": "false",
            "GRIDTOKENX_RUN_DUTIES": "false",
            "GRIDTOKENX_WS_SEND_QUEUE": str(max(1000, events * 2)),
            "GRIDTOKENX_DATA_DIR": str(directory / "var"),
            "GRIDTOKENX_LOG_LEVEL": "warning",
        }
        ports = [free_port() for _ in range(gateways)]
        children: list[subprocess.Popen[bytes]] = []
        try:
            for port in ports:
                children.append(start_gateway(port, env, directory / f"gateway-{port}.log"))
            for port, child in zip(ports, children, strict=True):
                wait_healthy(port, child)
            return asyncio.run(_run(ports, token, prefix, clients, events, rate))
        finally:
            stop_all(children)
            asyncio.run(_drop_prefix(prefix))


async def _drop_prefix(prefix: str) -> None:
    redis = Redis.from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(f"{prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def run(*, clients: int, events: int, rate: float, gateways: tuple[int, ...]) -> list[WsResult]:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    results = []
    for count in gateways:
        result = run_scenario(gateways=count, clients=clients, events=events, rate=rate)
        print(result.line(), flush=True)
        results.append(result)
    return results
