"""The client side of `bench ingest`: the signed batch bodies posted to the gateways, and what
came back.

Kept apart from the fleet and the scenario: this is what runs on the client while the clock
runs, and it reads best on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import msgspec

from gridtokenx.bench.cpu import CpuMeter, CpuSplit

BATCH_PATH = "/api/meters/readings/batch"
ATTEMPTS = 5  # a batch refused with 5xx (e.g. SQLite busy) is resent; retries are idempotent


class _ItemReply(msgspec.Struct):
    status: str
    code: str | None = None


class _BatchReply(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: int
    results: list[_ItemReply]


_reply = msgspec.json.Decoder(_BatchReply)


@dataclass
class Load:
    """What the client saw: per-item verdicts, HTTP failures, per-batch latency of timed batches."""

    accepted: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    http_errors: Counter[str] = field(default_factory=Counter)
    lost_batches: int = 0
    latencies: list[float] = field(default_factory=list)
    timed_readings: int = 0
    seconds: float = 0.0
    cpu: CpuSplit | None = None

    def take(self, reply: _BatchReply) -> None:
        self.accepted += reply.accepted
        self.duplicates += reply.duplicates
        if reply.rejected:
            self.rejected.update(item.code or "?" for item in reply.results if item.status == "rejected")


async def _post(client: httpx.AsyncClient, body: bytes, load: Load) -> bool:
    """Post one batch until it is answered 200 (ATTEMPTS at most); False when it never was."""
    for attempt in range(ATTEMPTS):
        try:
            response = await client.post(BATCH_PATH, content=body)
        except httpx.HTTPError as exc:
            load.http_errors[type(exc).__name__] += 1
        else:
            if response.status_code == 200:
                load.take(_reply.decode(response.content))
                return True
            load.http_errors[f"HTTP {response.status_code}"] += 1
        await asyncio.sleep(0.05 * (attempt + 1))
    load.lost_batches += 1
    return False


async def drive(
    urls: list[str],
    api_key: str,
    bodies: list[list[bytes]],
    connections: int,
    batch: int,
    advance: Callable[[int], None],
    cpu: CpuMeter,
) -> Load:
    """Warm every server with one batch (untimed), then keep `connections` batches in flight per
    server; a group is never in flight twice, so its batches arrive in order."""
    headers = {"x-api-key": api_key, "content-type": "application/json", "accept-encoding": "identity"}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    clients = [httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=120.0) for url in urls]
    load = Load()
    pending = [list(reversed(group)) for group in bodies]  # pop() takes the next batch
    try:
        warm = [(clients[i], pending[i].pop()) for i in range(min(len(clients), len(pending)))]
        await asyncio.gather(*(_post(client, body, load) for client, body in warm))
        advance(len(warm) * batch)

        queue: asyncio.Queue[int | None] = asyncio.Queue()
        for group, remaining in enumerate(pending):
            if remaining:
                queue.put_nowait(group)
        open_groups = queue.qsize()
        workers = len(clients) * connections

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal open_groups
            while (group := await queue.get()) is not None:
                began = time.perf_counter()
                if await _post(client, pending[group].pop(), load):
                    load.latencies.append(time.perf_counter() - began)
                    load.timed_readings += batch
                advance(batch)
                if pending[group]:
                    queue.put_nowait(group)
                else:
                    open_groups -= 1
                    if open_groups == 0:
                        for _ in range(workers):
                            queue.put_nowait(None)

        if open_groups:
            cpu.start()
            began = time.perf_counter()
            await asyncio.gather(*(worker(clients[i % len(clients)]) for i in range(workers)))
            load.seconds = time.perf_counter() - began
            load.cpu = cpu.stop()
    finally:
        for client in clients:
            await client.aclose()
    return load
