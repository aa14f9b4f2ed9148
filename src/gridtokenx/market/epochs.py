"""Epochs: which one takes orders, and gate closure (freeze the book, clear it, store the outcome).

Each transition is one conditional UPDATE on the epoch row, so two processes (or a restarted one)
can never clear an epoch twice. The UPDATE comes first in its transaction: it takes the row lock
on PostgreSQL and the write lock on SQLite, so an order that opens at the same moment either
lands in the book before the freeze or sees the gate closed (see `orders.activate`).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.core.settings import Settings
from gridtokenx.events.bus import Outbox
from gridtokenx.market.clearing import Certificate, ClearingResult, Order, clear, verify
from gridtokenx.market.models import MarketEpoch, MarketOrder, MarketSettlement
from gridtokenx.market.rules import Booked, Side, epoch_window, settlement_groups

PENDING, ACTIVE, CLEARED, SETTLED = "pending", "active", "cleared", "settled"
K = Fraction(1, 2)
# Orders whose escrow is in the book when the gate closes.
BOOKED = ("cleared", "settled")


async def open_epoch(session: AsyncSession, seconds: int, now: datetime) -> MarketEpoch:
    """The epoch taking orders now; the current slot's, or the next slot's if this one closed early."""
    active = await session.scalar(
        select(MarketEpoch).where(MarketEpoch.status == ACTIVE).order_by(MarketEpoch.starts_at).limit(1)
    )
    if active is not None:
        return active
    start, end = epoch_window(now, seconds)
    while True:
        existing = await session.scalar(select(MarketEpoch).where(MarketEpoch.starts_at == start))
        if existing is None:
            epoch = MarketEpoch(starts_at=start, ends_at=end, status=ACTIVE, volume_wh=0)
            try:
                async with session.begin_nested():
                    session.add(epoch)
            except IntegrityError:  # another request opened it first
                continue
            return epoch
        if existing.status in (PENDING, ACTIVE):
            await session.execute(
                update(MarketEpoch)
                .where(MarketEpoch.id == existing.id, MarketEpoch.status == PENDING)
                # an epoch opened before its slot keeps its full length
                .values(status=ACTIVE, ends_at=max(existing.ends_at, now + timedelta(seconds=seconds)))
            )
            await session.refresh(existing)
            return existing
        start, end = end, end + timedelta(seconds=seconds)


async def ensure_next(session: AsyncSession, seconds: int, now: datetime) -> None:
    """The next slot's epoch exists, pending, so clients can see what comes."""
    _, end = epoch_window(now, seconds)
    if await session.scalar(select(MarketEpoch.id).where(MarketEpoch.starts_at >= end).limit(1)) is None:
        try:
            async with session.begin_nested():
                session.add(
                    MarketEpoch(
                        starts_at=end, ends_at=end + timedelta(seconds=seconds), status=PENDING, volume_wh=0
                    )
                )
        except IntegrityError:
            pass


async def clear_epoch(
    session: AsyncSession, settings: Settings, epoch_id: int, now: datetime, outbox: Outbox, *, early: bool
) -> bool:
    """Close the gate of an active epoch and clear it, all in the caller's transaction.

    False when the epoch was not active (already cleared by someone else: nothing to do)."""
    values: dict[str, Any] = {"status": CLEARED, "cleared_at": now}
    if early:
        values["ends_at"] = now
    frozen = await session.execute(
        update(MarketEpoch).where(MarketEpoch.id == epoch_id, MarketEpoch.status == ACTIVE).values(**values)
    )
    if frozen.rowcount == 0:  # type: ignore[attr-defined]
        return False
    orders = list(
        await session.scalars(
            select(MarketOrder).where(MarketOrder.epoch_id == epoch_id, MarketOrder.status == "open")
        )
    )
    bids, offers = book_of(orders)
    result = clear(
        bids, offers, price_cap=settings.market_price_cap, price_floor=settings.market_price_floor, k=K
    )
    for order in orders:
        order.status = "cleared"
        order.filled_wh = result.fills.get(order.id, 0)
        order.payment = result.payments.get(order.id, 0)
    epoch = await session.get(MarketEpoch, epoch_id, populate_existing=True)
    assert epoch is not None
    epoch.price = None if result.price is None else str(result.price)
    epoch.volume_wh = result.volume_wh
    epoch.certificate = json.dumps(certificate_json(result.certificate))
    booked = [Booked(o.id, Side(o.side), o.wallet, o.quantity_wh, o.escrow) for o in orders]
    groups = settlement_groups(
        booked, result.fills, result.payments, settings.market_settlement_orders_per_tx
    )
    for seq, legs in enumerate(groups):
        session.add(
            MarketSettlement(
                epoch_id=epoch_id,
                seq=seq,
                legs=json.dumps([[leg.order_id, leg.asset.value, leg.to, leg.amount] for leg in legs]),
                status="pending",
                attempts=0,
            )
        )
    if not groups:
        epoch.status, epoch.settled_at = SETTLED, now
    outbox.add(
        "EpochTransition", epoch_id=epoch_id, status=CLEARED, price=epoch.price, volume_wh=result.volume_wh
    )
    for order in orders:
        if order.filled_wh:
            outbox.add(
                "TradeExecuted",
                user_id=str(order.user_id),
                order_id=order.id,
                epoch_id=epoch_id,
                side=order.side,
                energy_wh=order.filled_wh,
                amount=order.payment,
                price=epoch.price,
            )
    if not groups:
        outbox.add("EpochTransition", epoch_id=epoch_id, status=SETTLED)
    return True


def book_of(orders: list[MarketOrder]) -> tuple[list[Order], list[Order]]:
    """The engine's view of the orders: the owner is the user, so self-trades are netted per person."""
    bids = [Order(o.id, o.quantity_wh, o.limit_price, str(o.user_id)) for o in orders if o.side == Side.BUY]
    offers = [
        Order(o.id, o.quantity_wh, o.limit_price, str(o.user_id)) for o in orders if o.side == Side.SELL
    ]
    return bids, offers


def certificate_json(cert: Certificate) -> dict[str, Any]:
    return {
        "lower": cert.lower,
        "upper": cert.upper,
        "price": None if cert.price is None else str(cert.price),
        "k": str(cert.k),
        "marginal_bids": list(cert.marginal_bids),
        "marginal_offers": list(cert.marginal_offers),
        "self_trade_cancelled": cert.self_trade_cancelled,
        "merkle_root": cert.merkle_root,
    }


def certificate_from_json(data: dict[str, Any]) -> Certificate:
    return Certificate(
        lower=data["lower"],
        upper=data["upper"],
        price=None if data["price"] is None else Fraction(data["price"]),
        k=Fraction(data["k"]),
        marginal_bids=tuple(data["marginal_bids"]),
        marginal_offers=tuple(data["marginal_offers"]),
        self_trade_cancelled={str(k): int(v) for k, v in data["self_trade_cancelled"].items()},
        merkle_root=data["merkle_root"],
    )


async def verify_epoch(session: AsyncSession, epoch: MarketEpoch) -> tuple[bool, str]:
    """Recompute the stored clearing from the stored book with `verify()`: (valid, why)."""
    if epoch.certificate is None:
        return False, f"epoch is {epoch.status}: not cleared yet"
    orders = list(
        await session.scalars(
            select(MarketOrder)
            .where(MarketOrder.epoch_id == epoch.id, MarketOrder.status.in_(BOOKED))
            .order_by(MarketOrder.id)
        )
    )
    bids, offers = book_of(orders)
    price = None if epoch.price is None else Fraction(epoch.price)
    result = ClearingResult(
        price=price,
        volume_wh=epoch.volume_wh,
        fills={o.id: o.filled_wh for o in orders if o.filled_wh},
        payments={o.id: o.payment for o in orders if o.filled_wh},
        certificate=certificate_from_json(json.loads(epoch.certificate)),
    )
    if verify(bids, offers, result, k=K):
        return True, "the stored fills, price, payments and certificate are exactly what the book clears to"
    return False, "the stored outcome is not what the stored book clears to"
