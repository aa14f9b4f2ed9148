"""Rate limits (the `limits` library): in memory by default, in Redis when `REDIS_URL` is set,
so that several gateway processes share one budget."""

from __future__ import annotations

import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int


class RateLimiter:
    """Moving-window limits keyed by arbitrary strings (user id, IP, account email)."""

    def __init__(self, redis_url: str | None = None, prefix: str = "gridtokenx:rl") -> None:
        self.storage: Storage
        if redis_url:
            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            self.storage = RedisStorage(uri, implementation="redispy", key_prefix=prefix)
        else:
            self.storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self.storage)

    @staticmethod
    def parse(limit: str) -> RateLimitItem:
        return parse(limit)

    async def _retry_after(self, item: RateLimitItem, key: str) -> int:
        stats = await self._limiter.get_window_stats(item, key)
        return max(1, int(stats.reset_time - time.time()) + 1)

    async def hit(self, limit: str, key: str) -> Verdict:
        """Count one event; refuse it when the window is full."""
        item = parse(limit)
        if await self._limiter.hit(item, key):
            return Verdict(True, 0)
        return Verdict(False, await self._retry_after(item, key))

    async def check(self, limit: str, key: str) -> Verdict:
        """Would one more event be allowed? Counts nothing (used before checking a password)."""
        item = parse(limit)
        if await self._limiter.test(item, key):
            return Verdict(True, 0)
        return Verdict(False, await self._retry_after(item, key))

    async def clear(self, limit: str, key: str) -> None:
        await self._limiter.clear(parse(limit), key)
