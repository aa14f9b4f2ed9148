"""The Redis read cache (the original plan's): user stats, recent readings, the order-book
snapshot. A miss or a Redis failure loads from the database, so reads stay correct with the
cache off or down; entries are dropped by the writes that change them (see
`events/invalidation.py`) and expire after their TTL in any case."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from enum import StrEnum

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gridtokenx.core.metrics import CACHE_HITS, CACHE_MISSES

log = structlog.get_logger(__name__)
_FAILURES = (RedisError, OSError, asyncio.TimeoutError)


class CacheName(StrEnum):
    USER_STATS = "user_stats"
    RECENT_READINGS = "recent_readings"
    ORDER_BOOK = "orderbook"


TTL_SECONDS = {CacheName.USER_STATS: 300, CacheName.RECENT_READINGS: 60, CacheName.ORDER_BOOK: 10}


class Cache:
    def __init__(
        self, redis_url: str | None, *, prefix: str = "gridtokenx:cache", enabled: bool = True
    ) -> None:
        self.redis = (
            Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
            if redis_url and enabled
            else None
        )
        self.prefix = prefix
        self._stale: set[tuple[CacheName, str]] = set()
        self._flush: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self.redis is not None

    def _key(self, name: CacheName, key: str) -> str:
        return f"{self.prefix}:{name}:{key}"

    async def get_or_load(self, name: CacheName, key: str, load: Callable[[], Awaitable[bytes]]) -> bytes:
        """The cached bytes, or `load()`'s (then cached for the name's TTL)."""
        if self.redis is None:
            return await load()
        redis_key = self._key(name, key)
        try:
            cached = await self.redis.get(redis_key)
        except _FAILURES:
            log.warning("cache_read_failed", cache=name)
            cached = None
        if cached is not None:
            CACHE_HITS.labels(name).inc()
            return cached if isinstance(cached, bytes) else str(cached).encode()
        CACHE_MISSES.labels(name).inc()
        value = await load()
        try:
            await self.redis.set(redis_key, value, ex=TTL_SECONDS[name])
        except _FAILURES:
            log.warning("cache_write_failed", cache=name)
        return value

    async def invalidate(self, entries: list[tuple[CacheName, str]]) -> None:
        if self.redis is None or not entries:
            return
        try:
            await self.redis.delete(*(self._key(name, key) for name, key in entries))
        except _FAILURES:
            log.warning("cache_invalidate_failed", entries=len(entries))

    def invalidate_soon(self, entries: list[tuple[CacheName, str]]) -> None:
        """Coalesce invalidations: a 1,000-reading batch makes two events per reading, yet its
        meters' entries are deleted once, in one command, a moment later."""
        if self.redis is None or not entries:
            return
        self._stale.update(entries)
        if self._flush is None or self._flush.done():
            self._flush = asyncio.create_task(self._flush_stale())

    async def _flush_stale(self) -> None:
        await asyncio.sleep(0.01)
        stale, self._stale = list(self._stale), set()
        await self.invalidate(stale)

    async def start(self) -> None:
        """Connections open on first use."""

    async def stop(self) -> None:
        if self._flush is not None:
            await asyncio.gather(self._flush, return_exceptions=True)
        if self.redis is not None:
            await self.redis.aclose()
