"""The epoch scheduler: a leased duty that opens epochs, closes gates on time, clears and settles.

It keeps no state of its own: every round reads where each epoch stands and takes the next step,
so a restarted (or newly elected) holder resumes exactly where the last one stopped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from gridtokenx.core.context import AppContext
from gridtokenx.core.lease import LeasedDuty
from gridtokenx.core.types import utcnow
from gridtokenx.events.bus import Outbox
from gridtokenx.market.epochs import ACTIVE, CLEARED, clear_epoch, ensure_next, open_epoch
from gridtokenx.market.models import MarketEpoch
from gridtokenx.market.orders import recover
from gridtokenx.market.rules import epoch_window
from gridtokenx.market.settlement import settle_epoch

# An order still escrowing this long after it was recorded lost its request (a crash).
STUCK_AFTER = timedelta(seconds=30)
# A round that left settlements unconfirmed comes back this soon.
RETRY_SECONDS = 2.0


async def close(ctx: AppContext, epoch_id: int, now: datetime, *, early: bool) -> bool:
    """Clear one epoch in one database transaction; events after the commit."""
    outbox = Outbox()
    async with ctx.db.session() as session:
        cleared = await clear_epoch(session, ctx.settings, epoch_id, now, outbox, early=early)
    await outbox.flush(ctx.bus)
    return cleared


async def close_current(ctx: AppContext) -> int | None:
    """The admin's gate closure: the epoch taking orders now is cleared at once (idempotent)."""
    async with ctx.db.session() as session:
        epoch_id = await session.scalar(
            select(MarketEpoch.id)
            .where(MarketEpoch.status == ACTIVE)
            .order_by(MarketEpoch.starts_at)
            .limit(1)
        )
    if epoch_id is not None:
        await close(ctx, epoch_id, utcnow(), early=True)
    return epoch_id


async def settle_cleared(ctx: AppContext) -> tuple[list[int], list[int]]:
    """Settle every cleared epoch: (settled ids, ids still waiting on a settlement)."""
    async with ctx.db.session() as session:
        ids = list(
            await session.scalars(
                select(MarketEpoch.id).where(MarketEpoch.status == CLEARED).order_by(MarketEpoch.starts_at)
            )
        )
    settled: list[int] = []
    waiting: list[int] = []
    for epoch_id in ids:
        (settled if await settle_epoch(ctx, epoch_id) else waiting).append(epoch_id)
    return settled, waiting


class EpochScheduler:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def round(self, _token: int) -> float:
        seconds = self.ctx.settings.market_epoch_seconds
        now = utcnow()
        async with self.ctx.db.session() as session:
            due = list(
                await session.scalars(
                    select(MarketEpoch.id)
                    .where(MarketEpoch.status == ACTIVE, MarketEpoch.ends_at <= now)
                    .order_by(MarketEpoch.starts_at)
                )
            )
        await recover(self.ctx, STUCK_AFTER)
        for epoch_id in due:
            await close(self.ctx, epoch_id, now, early=False)
        _, waiting = await settle_cleared(self.ctx)
        async with self.ctx.db.session() as session:
            await open_epoch(session, seconds, now)
            await ensure_next(session, seconds, now)
        _, boundary = epoch_window(now, seconds)
        pause = (boundary - utcnow()) / timedelta(seconds=1)
        return min(max(pause, 0.05), RETRY_SECONDS) if waiting else max(pause, 0.05)


def duty(ctx: AppContext) -> LeasedDuty:
    return LeasedDuty(ctx.db, "epochs", EpochScheduler(ctx).round)
