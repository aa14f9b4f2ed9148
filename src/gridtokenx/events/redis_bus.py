"""The Redis event bus: every process that listens hears every event, numbered once for the cluster.

One Lua script numbers a batch of events (INCRBY), publishes each on one pub/sub channel and keeps
it in a sorted set by id (the replay buffer, trimmed to its size), atomically, so ids follow the
order subscribers receive them in. Publishes from concurrent requests are coalesced into one
script call (one round trip): `await publish` one at a time caps near 8k/s here, a pipeline of
100 near 60k/s (reference/physical-limits.md).

Redis is never allowed to fail a request: when it is unreachable the events are delivered to this
process's own handlers (unnumbered, id 0), the error is counted, and Redis is tried again after
`retry_after` seconds. The listener reconnects by itself and fills the gap from the replay buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gridtokenx.core.metrics import REDIS_PUBSUB_ERRORS, REDIS_PUBSUB_MESSAGES
from gridtokenx.events.bus import EventBus, count_published
from gridtokenx.events.model import Event

log = structlog.get_logger(__name__)

_PUBLISH = """
local n = #ARGV - 2
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n + 1
for i = 1, n do
  local id = first + i - 1
  local message = id .. ' ' .. ARGV[i + 2]
  redis.call('PUBLISH', ARGV[1], message)
  redis.call('ZADD', KEYS[2], id, message)
end
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
return first
"""

MAX_PER_CALL = 500  # events per script call: bounds the time Redis spends in one script
_FAILURES = (RedisError, OSError, asyncio.TimeoutError)


def _encode(event: Event) -> bytes:
    return orjson.dumps({"type": event.type, "v": event.v, "at": event.at, "data": event.data})


def _decode(message: bytes | str) -> Event:
    raw = message.encode() if isinstance(message, str) else message
    head, _, body = raw.partition(b" ")
    return Event.from_wire({**orjson.loads(body), "id": int(head)})


class RedisEventBus(EventBus):
    def __init__(
        self,
        url: str,
        *,
        prefix: str = "gridtokenx:events",
        replay_size: int = 10_000,
        retry_after: float = 1.0,
        timeout: float = 0.5,
    ) -> None:
        super().__init__(replay_size)
        self.redis: Redis = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.channel = prefix
        self.seq_key = f"{prefix}:seq"
        self.replay_key = f"{prefix}:replay"
        self.replay_size = replay_size
        self.retry_after = retry_after
        self._script = self.redis.register_script(_PUBLISH)
        self._down_until = 0.0
        self._pending: list[tuple[list[Event], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self.last_seen = 0
        self.connected = asyncio.Event()

    def has_subscribers(self) -> bool:
        return True  # other processes listen; this one cannot know who

    async def publish_all(self, events: list[Event]) -> None:
        if not events:
            return
        count_published(events)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((events, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        """Send everything queued meanwhile in one call; whoever queued next is sent next."""
        while self._pending:
            batch, self._pending = self._pending[:MAX_PER_CALL], self._pending[MAX_PER_CALL:]
            events = [event for group, _ in batch for event in group]
            try:
                await self._send(events)
            except Exception:
                for event in events:
                    await self.deliver(event)
            finally:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _send(self, events: list[Event]) -> None:
        if time.monotonic() < self._down_until:
            raise ConnectionError("redis marked down")
        try:
            await self._script(
                keys=[self.seq_key, self.replay_key],
                args=[self.channel, self.replay_size, *(_encode(e) for e in events)],
            )
        except _FAILURES:
            REDIS_PUBSUB_ERRORS.labels("publish").inc()
            self._down_until = time.monotonic() + self.retry_after
            log.warning("redis_publish_failed_local_delivery", events=len(events))
            raise
        REDIS_PUBSUB_MESSAGES.inc(len(events))

    async def replay(self, after: int) -> list[Event] | None:
        try:
            oldest = await self.redis.zrange(self.replay_key, 0, 0, withscores=True)
            if not oldest:
                return []
            if after < int(oldest[0][1]) - 1:
                return None
            messages = await self.redis.zrangebyscore(self.replay_key, f"({after}", "+inf")
        except _FAILURES:
            REDIS_PUBSUB_ERRORS.labels("replay").inc()
            return await super().replay(after)
        return [_decode(m) for m in messages if isinstance(m, bytes | str)]

    async def start(self) -> None:
        """Listen for the cluster's events (idempotent: a process may list the bus twice)."""
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="events:redis-listener")

    async def stop(self) -> None:
        for task in (self._listener, self._flusher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._listener = self._flusher = None
        await self.redis.aclose()

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if self.last_seen:
                    await self._fill_gap()
                self.connected.set()
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        await self._receive(_decode(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                self.connected.clear()
                REDIS_PUBSUB_ERRORS.labels("listen").inc()
                log.warning("redis_listener_reconnecting", backoff=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _fill_gap(self) -> None:
        missed = await self.replay(self.last_seen)
        if missed is None:
            log.warning("redis_listener_gap_too_old", last_seen=self.last_seen)
            return
        for event in missed:
            await self._receive(event)

    async def _receive(self, event: Event) -> None:
        if event.id <= self.last_seen:
            return  # already delivered (the gap fill and the live channel overlap)
        self.last_seen = event.id
        self.replay_buffer.add(event)
        await self.deliver(event)

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except _FAILURES:
            return False


def build_bus(redis_url: str | None, *, prefix: str, replay_size: int) -> EventBus:
    """The bus from settings: Redis when configured, else in-process."""
    if redis_url:
        return RedisEventBus(redis_url, prefix=prefix, replay_size=replay_size)
    return EventBus(replay_size)
