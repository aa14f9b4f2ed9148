"""The Redis read cache: hits and misses counted, invalidated by the after-commit events of the
writes that change the cached reads, and the same answers with the cache off."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from gridtokenx.core.cache import Cache, CacheName
from gridtokenx.core.context import AppContext
from gridtokenx.core.metrics import CACHE_HITS, CACHE_MISSES
from gridtokenx.events.invalidation import stale_entries
from gridtokenx.events.model import Event
from tests.conftest import REDIS_URL
from tests.events.test_events_bus import wait_for
from tests.helpers import bearer
from tests.readings.ingest_helpers import aligned_now, make_device

TAG = uuid.uuid4().hex[:8]


@pytest.fixture
def backend() -> str:
    return "postgres"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "redis_url": REDIS_URL,
        "cache_prefix": f"test:{TAG}:cache",
        "events_prefix": f"test:{TAG}:ev",
        "run_duties": False,
    }


@pytest.fixture(autouse=True)
async def _clean() -> AsyncIterator[None]:
    yield
    redis = Redis.from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(f"test:{TAG}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def test_which_events_make_which_entries_stale() -> None:
    received = Event.make("MeterReadingReceived", {"meter_id": "m1", "owner_id": "u1"})
    assert stale_entries(received) == [(CacheName.RECENT_READINGS, "m1"), (CacheName.USER_STATS, "u1")]
    duplicate = Event.make("MeterReadingReceived", {"meter_id": "m1", "user_id": "u1", "duplicate": True})
    assert stale_entries(duplicate) == []
    assert stale_entries(Event.make("TokensMinted", {"user_id": "u1"})) == [(CacheName.USER_STATS, "u1")]
    assert stale_entries(Event.make("OrderPlaced", {"user_id": "u1"})) == [(CacheName.ORDER_BOOK, "current")]
    assert stale_entries(Event.make("CertificateRetired", {"user_id": "u1"})) == []


def _count(metric: Any, name: str) -> float:
    return float(metric.labels(name)._value.get())


async def test_reads_are_cached_and_invalidated_by_new_readings(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    await wait_for(lambda: ctx.bus.connected.is_set(), 10)  # type: ignore[attr-defined]
    device = await make_device(client, ctx)
    headers = bearer(device.owner)
    path = f"/api/meters/{device.meter_id}/readings"
    first = await client.post("/api/meters/readings", content=device.signed(aligned_now(2)), headers=headers)
    assert first.status_code == 201

    hits, misses = _count(CACHE_HITS, "recent_readings"), _count(CACHE_MISSES, "recent_readings")
    page = await client.get(path, headers=headers)
    again = await client.get(path, headers=headers)
    assert page.json()["total"] == 1 and again.content == page.content
    assert _count(CACHE_MISSES, "recent_readings") == misses + 1
    assert _count(CACHE_HITS, "recent_readings") == hits + 1
    stats = await client.get("/api/meters/stats", headers=headers)
    assert stats.status_code == 200 and stats.json()["readings"] == 1
    assert (await client.get("/api/meters/stats", headers=headers)).json() == stats.json()

    second = await client.post("/api/meters/readings", content=device.signed(aligned_now(1)), headers=headers)
    assert second.status_code == 201

    async def fresh() -> bool:
        return bool((await client.get(path, headers=headers)).json()["total"] == 2)

    for _ in range(100):  # the invalidation follows the event through Redis
        if await fresh():
            break
        await asyncio.sleep(0.05)
    assert await fresh()
    assert (await client.get("/api/meters/stats", headers=headers)).json()["readings"] == 2
    other = await client.get(path, headers=headers, params={"limit": 1})  # not the cached shape
    assert other.json()["limit"] == 1 and len(other.json()["items"]) == 1


async def test_cache_off_or_down_reads_straight_through() -> None:
    calls = 0

    async def load() -> bytes:
        nonlocal calls
        calls += 1
        return b'{"n": %d}' % calls

    off = Cache(None)
    assert await off.get_or_load(CacheName.USER_STATS, "u", load) == b'{"n": 1}'
    assert await off.get_or_load(CacheName.USER_STATS, "u", load) == b'{"n": 2}'
    down = Cache("redis://127.0.0.1:1/0")  # nothing listens there
    assert await down.get_or_load(CacheName.USER_STATS, "u", load) == b'{"n": 3}'
    await down.invalidate([(CacheName.USER_STATS, "u")])  # never raises
    await down.stop()
