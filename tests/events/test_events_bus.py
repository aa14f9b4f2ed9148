"""The bus on real services: after-commit publishing, Redis fan-out between processes' buses,
the replay buffer in Redis, and a Redis outage that degrades to local delivery and recovers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from gridtokenx.app import create_app
from gridtokenx.core.context import AppContext
from gridtokenx.core.db import Database
from gridtokenx.core.metrics import REDIS_PUBSUB_ERRORS
from gridtokenx.events.bus import EventBus
from gridtokenx.events.model import Event
from gridtokenx.events.redis_bus import RedisEventBus
from gridtokenx.events.unit import unit_of_work
from tests.conftest import REDIS_URL
from tests.events.redis_proxy import RedisProxy
from tests.helpers import bearer
from tests.readings.ingest_helpers import aligned_now, make_device


def recorder(bus: EventBus) -> list[Event]:
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    bus.subscribe("*", record)
    return seen


async def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"test:{uuid.uuid4().hex}"
    yield name
    redis = Redis.from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(f"{name}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def _lease_rows(db: Database, name: str) -> int:
    async with db.engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM leases WHERE name = :n"), {"n": name}) or 0)


async def _insert_lease(session: object, name: str) -> None:
    await session.execute(  # type: ignore[attr-defined]
        text(
            "INSERT INTO leases (name, holder, token, expires_at, renewed_at) "
            "VALUES (:n, 'h', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        ),
        {"n": name},
    )


async def test_events_follow_the_commit_and_a_rollback_publishes_nothing(database: Database) -> None:
    bus = EventBus()
    seen: list[tuple[str, int]] = []

    async def record(event: Event) -> None:  # the row must be visible to another connection by now
        seen.append((event.type, await _lease_rows(database, "kept")))

    bus.subscribe("*", record)
    async with unit_of_work(database, bus) as (session, outbox):
        await _insert_lease(session, "kept")
        outbox.add("EpochTransition", epoch_id=1, status="open")
    assert seen == [("EpochTransition", 1)]

    with pytest.raises(RuntimeError):
        async with unit_of_work(database, bus) as (session, outbox):
            await _insert_lease(session, "dropped")
            outbox.add("EpochTransition", epoch_id=2, status="open")
            raise RuntimeError("the use case failed after writing")
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        async with unit_of_work(database, bus) as (session, outbox):
            outbox.add("EpochTransition", epoch_id=3, status="open")
            await _insert_lease(session, "kept")  # violates the primary key
    assert await _lease_rows(database, "dropped") == 0
    assert seen == [("EpochTransition", 1)]


async def test_in_process_ids_increase() -> None:
    bus = EventBus()
    seen = recorder(bus)
    await bus.publish_all([Event.make("OrderBookChanged", {}) for _ in range(3)])
    await bus.publish(Event.make("OrderBookChanged", {}))
    assert [e.id for e in seen] == [1, 2, 3, 4]
    assert [e.id for e in await bus.replay(2) or []] == [3, 4]


async def test_every_listening_process_hears_every_event_in_one_order(prefix: str) -> None:
    a, b = (RedisEventBus(REDIS_URL, prefix=prefix) for _ in range(2))
    seen_a, seen_b = recorder(a), recorder(b)
    await a.start()
    await b.start()
    try:
        await asyncio.wait_for(asyncio.gather(a.connected.wait(), b.connected.wait()), 5)
        await asyncio.gather(
            a.publish_all([Event.make("OrderBookChanged", {"epoch_id": i}) for i in range(3)]),
            b.publish_all([Event.make("EpochTransition", {"epoch_id": i}) for i in range(2)]),
            *(a.publish(Event.make("OrderPlaced", {"user_id": "u", "order_id": i})) for i in range(50)),
        )
        await wait_for(lambda: len(seen_a) == 55 and len(seen_b) == 55)
        assert [e.id for e in seen_a] == [e.id for e in seen_b]
        ids = [e.id for e in seen_a]
        assert ids == sorted(ids) and len(set(ids)) == 55 and ids[-1] - ids[0] == 54
        assert seen_a == seen_b
    finally:
        await a.stop()
        await b.stop()


async def test_replay_from_redis_and_too_old(prefix: str) -> None:
    bus = RedisEventBus(REDIS_URL, prefix=prefix, replay_size=3)
    try:
        await bus.publish_all([Event.make("OrderBookChanged", {"epoch_id": i}) for i in range(5)])
        assert [e.data["epoch_id"] for e in await bus.replay(2) or []] == [2, 3, 4]
        assert await bus.replay(1) is None
        assert await bus.replay(5) == []
        other = RedisEventBus(REDIS_URL, prefix=prefix, replay_size=3)  # another process's view
        assert [e.id for e in await other.replay(3) or []] == [4, 5]
        await other.stop()
    finally:
        await bus.stop()


async def test_redis_outage_degrades_to_local_delivery_and_recovers(prefix: str) -> None:
    proxy = RedisProxy()
    await proxy.up()
    bus = RedisEventBus(proxy.url, prefix=prefix, retry_after=0.2, timeout=0.3)
    peer = RedisEventBus(REDIS_URL, prefix=prefix)  # another gateway, on the healthy Redis
    seen, peer_seen = recorder(bus), recorder(peer)
    await bus.start()
    await peer.start()
    try:
        await asyncio.wait_for(asyncio.gather(bus.connected.wait(), peer.connected.wait()), 5)
        await bus.publish(Event.make("EpochTransition", {"epoch_id": 1}))
        await wait_for(lambda: len(seen) == 1 and len(peer_seen) == 1)

        errors_before = REDIS_PUBSUB_ERRORS.labels("publish")._value.get()
        await proxy.down()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await bus.publish(Event.make("EpochTransition", {"epoch_id": 2}))  # never raises
        await bus.publish(Event.make("EpochTransition", {"epoch_id": 3}))  # marked down: no wait
        assert loop.time() - started < 1.5
        assert [e.data["epoch_id"] for e in seen] == [1, 2, 3]
        assert [e.id for e in seen[1:]] == [0, 0]  # delivered locally, unnumbered
        assert REDIS_PUBSUB_ERRORS.labels("publish")._value.get() > errors_before
        await peer.publish(Event.make("EpochTransition", {"epoch_id": 4}))  # while this bus is cut off

        await proxy.up()
        await asyncio.wait_for(bus.connected.wait(), 10)
        await wait_for(lambda: [e.data["epoch_id"] for e in seen][-1:] == [4])  # gap filled on reconnect
        await asyncio.sleep(0.3)  # past retry_after
        await bus.publish(Event.make("EpochTransition", {"epoch_id": 5}))
        await wait_for(lambda: [e.data["epoch_id"] for e in peer_seen][-1:] == [5])
        assert [e.data["epoch_id"] for e in seen] == [1, 2, 3, 4, 5]
        assert seen[-1].id == seen[-2].id + 1
    finally:
        await bus.stop()
        await peer.stop()
        await proxy.down()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_an_ingest_never_fails_because_redis_is_down(ctx: AppContext) -> None:
    ctx.bus = RedisEventBus("redis://127.0.0.1:1/0", prefix="unreachable", timeout=0.2)  # nothing there
    seen = recorder(ctx.bus)
    app = create_app(context=ctx)
    errors = REDIS_PUBSUB_ERRORS.labels("publish")._value.get()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            device = await make_device(client, ctx)
            response = await client.post(
                "/api/meters/readings", content=device.signed(aligned_now()), headers=bearer(device.owner)
            )
    assert response.status_code == 201, response.text
    assert REDIS_PUBSUB_ERRORS.labels("publish")._value.get() > errors
    assert [e.type for e in seen] == ["MeterReadingReceived", "MeterReadingVerified"]  # delivered locally
