"""Read models of the market: orders, epochs, book, trades and stats as the API returns them."""

from __future__ import annotations

import base64
import json
import uuid
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.core.errors import NotFound
from gridtokenx.core.types import utcnow
from gridtokenx.market.epochs import ACTIVE, BOOKED, CLEARED, SETTLED
from gridtokenx.market.models import MarketEpoch, MarketOrder, MarketSettlement
from gridtokenx.market.rules import ENERGY_DECIMALS, PAYMENT_DECIMALS, Side, format_units
from gridtokenx.market.schemas import (
    EpochDetail,
    EpochOut,
    EpochStatusOut,
    FillOut,
    Level,
    OrderBookOut,
    OrderOut,
    SettlementOut,
    StatsOut,
    TradeOut,
)

PRICE_PLACES = 12


def price_text(price: Fraction | int, decimals: int = PAYMENT_DECIMALS) -> str:
    """Currency per kWh to 12 places (the exact fraction of base units is published beside it)."""
    value = Fraction(price) / 10**decimals
    rounded = (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        Decimal(1).scaleb(-PRICE_PLACES)
    )
    return f"{rounded.normalize():f}"


def order_out(order: MarketOrder) -> OrderOut:
    escrow_scale = ENERGY_DECIMALS if order.side == Side.SELL else PAYMENT_DECIMALS
    return OrderOut(
        id=order.id,
        epoch_id=order.epoch_id,
        order_type=order.side,
        status=order.status,
        energy_amount=format_units(order.quantity_wh, 3),
        price_per_kwh=format_units(order.limit_price, PAYMENT_DECIMALS),
        escrow_amount=format_units(order.escrow, escrow_scale),
        filled_amount=format_units(order.filled_wh, 3),
        settlement_amount=format_units(order.payment, PAYMENT_DECIMALS),
        escrow_signature=order.escrow_signature,
        approval_message=base64.b64encode(order.approval_message).decode()
        if order.approval_message
        else None,
        created_at=order.created_at.isoformat(),
    )


def epoch_out(epoch: MarketEpoch) -> EpochOut:
    return EpochOut(
        id=epoch.id,
        status=epoch.status,
        starts_at=epoch.starts_at.isoformat(),
        ends_at=epoch.ends_at.isoformat(),
        clearing_price=None if epoch.price is None else price_text(Fraction(epoch.price)),
        clearing_price_exact=epoch.price,
        volume=format_units(epoch.volume_wh, 3),
        cleared_at=epoch.cleared_at.isoformat() if epoch.cleared_at else None,
        settled_at=epoch.settled_at.isoformat() if epoch.settled_at else None,
    )


async def my_orders(
    session: AsyncSession, user_id: uuid.UUID, status: str | None, side: str | None, limit: int, offset: int
) -> list[OrderOut]:
    query = select(MarketOrder).where(MarketOrder.user_id == user_id)
    if status:
        query = query.where(MarketOrder.status == status)
    if side:
        query = query.where(MarketOrder.side == side)
    rows = await session.scalars(query.order_by(MarketOrder.id.desc()).limit(limit).offset(offset))
    return [order_out(row) for row in rows]


async def epochs(session: AsyncSession, limit: int, offset: int) -> list[EpochOut]:
    rows = await session.scalars(
        select(MarketEpoch).order_by(MarketEpoch.starts_at.desc()).limit(limit).offset(offset)
    )
    return [epoch_out(row) for row in rows]


async def get_epoch(session: AsyncSession, epoch_id: int) -> MarketEpoch:
    epoch = await session.get(MarketEpoch, epoch_id)
    if epoch is None:
        raise NotFound("no such epoch", code="EPOCH_NOT_FOUND")
    return epoch


async def epoch_detail(session: AsyncSession, epoch_id: int) -> EpochDetail:
    epoch = await get_epoch(session, epoch_id)
    fills = await session.scalars(
        select(MarketOrder)
        .where(MarketOrder.epoch_id == epoch_id, MarketOrder.status.in_(BOOKED), MarketOrder.filled_wh > 0)
        .order_by(MarketOrder.id)
    )
    settlements = await session.scalars(
        select(MarketSettlement).where(MarketSettlement.epoch_id == epoch_id).order_by(MarketSettlement.seq)
    )
    return EpochDetail(
        **epoch_out(epoch).model_dump(),
        fills=[
            FillOut(
                order_id=o.id,
                order_type=o.side,
                energy_amount=format_units(o.filled_wh, 3),
                amount=format_units(o.payment, PAYMENT_DECIMALS),
            )
            for o in fills
        ],
        settlements=[
            SettlementOut(
                id=s.id, seq=s.seq, status=s.status, signature=s.signature, attempts=s.attempts, error=s.error
            )
            for s in settlements
        ],
        certificate=None if epoch.certificate is None else json.loads(epoch.certificate),
    )


async def current_epoch(session: AsyncSession) -> MarketEpoch | None:
    return await session.scalar(
        select(MarketEpoch).where(MarketEpoch.status == ACTIVE).order_by(MarketEpoch.starts_at).limit(1)
    )


async def epoch_status(session: AsyncSession, seconds: int) -> EpochStatusOut:
    epoch = await current_epoch(session)
    to_gate = None if epoch is None else max((epoch.ends_at - utcnow()).total_seconds(), 0.0)
    return EpochStatusOut(
        current=None if epoch is None else epoch_out(epoch), epoch_seconds=seconds, seconds_to_gate=to_gate
    )


async def orderbook(session: AsyncSession) -> OrderBookOut:
    """Aggregated price levels of the epoch taking orders (no owners, no ids)."""
    epoch = await current_epoch(session)
    if epoch is None:
        return OrderBookOut(epoch_id=None, bids=[], asks=[])
    rows = await session.execute(
        select(MarketOrder.side, MarketOrder.limit_price, func.sum(MarketOrder.quantity_wh), func.count())
        .where(MarketOrder.epoch_id == epoch.id, MarketOrder.status == "open")
        .group_by(MarketOrder.side, MarketOrder.limit_price)
    )
    levels: dict[str, list[Level]] = {Side.BUY: [], Side.SELL: []}
    for side, price, wh, count in sorted(rows, key=lambda r: (r[0], r[1])):
        levels[side].append(
            Level(
                price_per_kwh=format_units(price, PAYMENT_DECIMALS),
                energy_amount=format_units(int(wh), 3),
                orders=count,
            )
        )
    return OrderBookOut(epoch_id=epoch.id, bids=levels[Side.BUY][::-1], asks=levels[Side.SELL])


async def trades(session: AsyncSession, limit: int) -> list[TradeOut]:
    """Filled sell orders of cleared epochs: one trade per seller fill, at the uniform price."""
    rows = await session.execute(
        select(MarketOrder, MarketEpoch)
        .join(MarketEpoch, MarketEpoch.id == MarketOrder.epoch_id)
        .where(MarketOrder.side == Side.SELL, MarketOrder.filled_wh > 0, MarketOrder.status.in_(BOOKED))
        .order_by(MarketEpoch.starts_at.desc(), MarketOrder.id)
        .limit(limit)
    )
    return [
        TradeOut(
            epoch_id=epoch.id,
            order_type=order.side,
            energy_amount=format_units(order.filled_wh, 3),
            price_per_kwh=price_text(Fraction(epoch.price or 0)),
            total=format_units(order.payment, PAYMENT_DECIMALS),
            executed_at=epoch.cleared_at.isoformat() if epoch.cleared_at else None,
        )
        for order, epoch in rows
    ]


async def stats(session: AsyncSession) -> StatsOut:
    cleared = (CLEARED, SETTLED)
    count, volume = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(MarketEpoch.volume_wh), 0)).where(
                MarketEpoch.status.in_(cleared)
            )
        )
    ).one()
    value = await session.scalar(
        select(func.coalesce(func.sum(MarketOrder.payment), 0)).where(
            MarketOrder.side == Side.SELL, MarketOrder.status.in_(BOOKED)
        )
    )
    last = await session.scalar(
        select(MarketEpoch.price)
        .where(MarketEpoch.status.in_(cleared), MarketEpoch.price.is_not(None))
        .order_by(MarketEpoch.starts_at.desc())
        .limit(1)
    )
    open_orders = await session.scalar(
        select(func.count()).select_from(MarketOrder).where(MarketOrder.status == "open")
    )
    return StatsOut(
        epochs_cleared=int(count),
        total_volume=format_units(int(volume), 3),
        total_value=format_units(int(value or 0), PAYMENT_DECIMALS),
        last_price=None if last is None else price_text(Fraction(last)),
        open_orders=int(open_orders or 0),
    )


async def traded_wallets(session: AsyncSession) -> set[str]:
    """Every wallet that ever escrowed an order: its energy balance moved through the market."""
    return set((await session.scalars(select(MarketOrder.wallet).distinct())).all())
