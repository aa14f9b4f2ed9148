"""`gridtokenx bench cluster`: signed ingest through 1 and then 2 gateway processes on PostgreSQL,
in distributed mode with the Redis event bus (every accepted reading publishes its events to
Redis, as in a cluster), and the ratio 2:1, so scale-out is measured, not assumed.

The load, the fleet, the seeding and the row count are `gridtokenx bench ingest`'s
(bench/ingest.py); this adds the Redis bus to the gateways' environment (its legacy
name `REDIS_URL` passes through that bench's clean environment) and reports the ratio. On this
2-core machine the load generator, PostgreSQL, Redis and the gateways share the cores, so the
ratio says how much a second process gains here, not on two machines.
"""

from __future__ import annotations

import asyncio
import os

from redis.asyncio import Redis
from rich.console import Console

REDIS_URL = "redis://127.0.0.1:6379/13"
EVENT_KEYS = "gridtokenx:events*"


async def _drop_event_keys() -> None:
    redis = Redis.from_url(REDIS_URL)
    keys = [key async for key in redis.scan_iter(EVENT_KEYS)]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def run(
    *, readings: int, batch: int, meters: int, pg_url: str | None, console: Console | None = None
) -> float:
    """Returns readings/s with 2 gateways divided by readings/s with 1."""
    from gridtokenx.bench import ingest as bench_ingest

    console = console or Console()
    previous = os.environ.get("REDIS_URL")
    os.environ["REDIS_URL"] = REDIS_URL
    try:
        results = bench_ingest.run(
            readings=readings,
            batch=batch,
            backends=("postgres",),
            processes=(1, 2),
            pg_url=pg_url,
            meters=meters,
            meters_per_batch=min(100, meters),
            history_days=1,
            bare=False,
            console=console,
        )
    finally:
        if previous is None:
            os.environ.pop("REDIS_URL", None)
        else:
            os.environ["REDIS_URL"] = previous
        asyncio.run(_drop_event_keys())
    by_count = {r.processes: r for r in results}
    one, two = by_count[1], by_count[2]
    ratio = two.readings_per_s / one.readings_per_s if one.readings_per_s else 0.0
    console.print(
        "cluster scale-out on PostgreSQL with the Redis bus: "
        f"1 gateway {one.readings_per_s:,.0f} readings/s, "
        f"2 gateways {two.readings_per_s:,.0f} readings/s, ratio 2:1 = {ratio:.2f}"
        f" (complete: {one.complete and two.complete})"
    )
    return ratio
