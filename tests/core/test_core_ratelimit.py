"""The rate limiter in memory and in the real Redis (shared across processes)."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from gridtokenx.core.ratelimit import RateLimiter
from tests.conftest import REDIS_URL


async def test_memory_limiter_counts_and_reports_retry_after() -> None:
    limiter = RateLimiter()
    assert (await limiter.hit("2/minute", "k")).allowed
    assert (await limiter.hit("2/minute", "k")).allowed
    verdict = await limiter.hit("2/minute", "k")
    assert not verdict.allowed and 1 <= verdict.retry_after <= 61
    assert (await limiter.hit("2/minute", "other")).allowed


@pytest.mark.redis
async def test_redis_limiter_is_shared_between_instances() -> None:
    key = f"test-{uuid.uuid4().hex}"
    first, second = RateLimiter(REDIS_URL), RateLimiter(REDIS_URL)
    assert (await first.hit("3/minute", key)).allowed
    assert (await second.hit("3/minute", key)).allowed
    assert (await first.hit("3/minute", key)).allowed
    assert not (await second.check("3/minute", key)).allowed
    assert not (await second.hit("3/minute", key)).allowed
    await first.clear("3/minute", key)
    assert (await second.hit("3/minute", key)).allowed
    client = aioredis.from_url(REDIS_URL)
    try:
        assert await client.keys(f"*{key}*")
    finally:
        await client.aclose()
