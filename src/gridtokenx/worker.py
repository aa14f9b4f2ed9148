"""`gridtokenx worker`: the leased background duties of every domain, without the HTTP gateway.

Several workers may run; each duty has one lease holder at a time (`core/lease.py`), so a
second worker waits and takes over within one lease TTL when the holder dies."""

from __future__ import annotations

import asyncio
import signal

import structlog
from prometheus_client import start_http_server

from gridtokenx.core.context import AppContext
from gridtokenx.core.domain import BackgroundService
from gridtokenx.core.logging import configure_logging
from gridtokenx.core.metrics import REGISTRY
from gridtokenx.core.migrate import upgrade
from gridtokenx.core.settings import Settings
from gridtokenx.domains import duty_services, wire
from gridtokenx.ledger.domain import LedgerHandle

log = structlog.get_logger(__name__)


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run every duty until `stop` is set (or SIGTERM/SIGINT arrives)."""
    configure_logging(settings.log_level, json=settings.log_json)
    ctx = AppContext.from_settings(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if settings.auto_migrate and settings.environment != "distributed":
        await upgrade(ctx.db)
    wire(ctx)
    if settings.metrics_port:  # one registry per process, scraped on its own port
        start_http_server(settings.metrics_port, addr=settings.host, registry=REGISTRY)
    started: list[BackgroundService] = []
    try:
        for service in [ctx.services.get(LedgerHandle), *duty_services(ctx)]:
            await service.start()
            started.append(service)
        log.info("worker_started", duties=len(started) - 1)
        await stop.wait()
    finally:
        for service in reversed(started):
            await service.stop()
        await ctx.close()
