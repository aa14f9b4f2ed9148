"""In-transaction hooks on stored readings, so another domain can record work (the mint outbox) in
the very transaction that stores the reading, without readings importing that domain.

A hook is registered once per process at wire time and receives, for each batch, the readings
first stored with mintable energy and every revised one (whatever its new mintable energy)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from gridtokenx.readings.store import NewReading, Stored


class StoredReading(NamedTuple):
    reading_id: str
    meter_id: uuid.UUID
    channel: int
    interval_start: datetime
    mintable_wh: int
    revised: bool


AfterStore = Callable[[AsyncSession, list[StoredReading]], Awaitable[None]]
_hooks: list[AfterStore] = []


def on_stored(hook: AfterStore) -> None:
    """Register `hook` (idempotent: wiring a second app in the same process adds nothing)."""
    if hook not in _hooks:
        _hooks.append(hook)


async def run_after_store(
    session: AsyncSession, items: Sequence[NewReading], stored: Sequence[Stored]
) -> None:
    if not _hooks:
        return
    changed = [
        StoredReading(
            result.reading_id,
            item.meter_id,
            item.channel,
            item.interval_start,
            item.mintable_wh,
            result.status == "revised",
        )
        for item, result in zip(items, stored, strict=True)
        if result.status == "revised" or (result.status == "accepted" and item.mintable_wh > 0)
    ]
    if changed:
        for hook in _hooks:
            await hook(session, changed)
