"""A unit of work that publishes its events only once its transaction has committed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.core.db import Database
from gridtokenx.events.bus import EventBus, Outbox


@asynccontextmanager
async def unit_of_work(db: Database, bus: EventBus) -> AsyncIterator[tuple[AsyncSession, Outbox]]:
    """`async with unit_of_work(db, bus) as (session, outbox)`: the session commits on exit and
    the outbox is flushed after that; an exception in the block or a failed commit rolls back
    and publishes nothing."""
    outbox = Outbox()
    async with db.session() as session:
        yield session, outbox
    await outbox.flush(bus)
