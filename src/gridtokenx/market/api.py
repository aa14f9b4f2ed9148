"""HTTP routes of the market: trading, public market data, faucets and the admin's levers."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from gridtokenx.accounts.deps import AdminUser, CurrentUser
from gridtokenx.accounts.models import User
from gridtokenx.core.deps import Ctx, DbSession
from gridtokenx.core.errors import NotFound, Unprocessable
from gridtokenx.market import orders, queries, scheduler, settlement
from gridtokenx.market.epochs import verify_epoch
from gridtokenx.market.orders import Caller
from gridtokenx.market.rules import format_units
from gridtokenx.market.schemas import (
    AdminEpochOut,
    AdminFaucetIn,
    ApprovalIn,
    EpochDetail,
    EpochOut,
    EpochStatusOut,
    FaucetIn,
    FaucetOut,
    OrderBookOut,
    OrderIn,
    OrderOut,
    RetryOut,
    StatsOut,
    TradeOut,
    VerifyOut,
)
from gridtokenx.market.tokens import demo_currency

router = APIRouter(tags=["market"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    409: {"description": "Insufficient balance, gate closed, or not cancellable"},
    422: {"description": "Inexact, negative or malformed amount; order outside the rules"},
    429: {"description": "Too many orders"},
}
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0)]


async def release(session: DbSession, user: User) -> Caller:
    """Who is asking, then the request's connection goes back to the pool: the order's own units of
    work run around ledger calls, and holding a second connection per request starves the pool."""
    caller = Caller(user.id, user.role)
    await session.rollback()
    return caller


@router.post("/api/trading/orders", status_code=201, responses=ERRORS)
async def place_order(ctx: Ctx, user: CurrentUser, session: DbSession, body: OrderIn) -> OrderOut:
    """Escrow and open a limit order in the current epoch; a self-custody wallet gets a message to sign."""
    caller = await release(session, user)
    order = await orders.place(ctx, caller, body.direction, body.energy_amount, body.price_per_kwh)
    return queries.order_out(order)


@router.post("/api/trading/orders/{order_id}/approve", responses=ERRORS)
async def approve_order(
    ctx: Ctx, user: CurrentUser, session: DbSession, order_id: str, body: ApprovalIn
) -> OrderOut:
    caller = await release(session, user)
    return queries.order_out(await orders.approve(ctx, caller, order_id, body.signature))


@router.delete("/api/trading/orders/{order_id}", responses=ERRORS)
async def cancel_order(ctx: Ctx, user: CurrentUser, session: DbSession, order_id: str) -> OrderOut:
    caller = await release(session, user)
    return queries.order_out(await orders.cancel(ctx, caller, order_id))


@router.get("/api/trading/orders")
async def list_my_orders(
    user: CurrentUser,
    session: DbSession,
    status: str | None = None,
    side: str | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[OrderOut]:
    return await queries.my_orders(session, user.id, status, side, limit, offset)


@router.get("/api/market/orderbook")
async def orderbook(session: DbSession) -> OrderBookOut:
    return await queries.orderbook(session)


@router.get("/api/market/trades")
async def trades(session: DbSession, limit: Limit = 100) -> list[TradeOut]:
    return await queries.trades(session, limit)


@router.get("/api/market/stats")
async def stats(session: DbSession) -> StatsOut:
    return await queries.stats(session)


@router.get("/api/market/epoch/status")
async def epoch_status(ctx: Ctx, session: DbSession) -> EpochStatusOut:
    return await queries.epoch_status(session, ctx.settings.market_epoch_seconds)


@router.get("/api/market/epochs")
async def list_epochs(session: DbSession, limit: Limit = 50, offset: Offset = 0) -> list[EpochOut]:
    return await queries.epochs(session, limit, offset)


@router.get("/api/market/epochs/{epoch_id}", responses={404: {"description": "No such epoch"}})
async def get_epoch(session: DbSession, epoch_id: int) -> EpochDetail:
    return await queries.epoch_detail(session, epoch_id)


@router.get("/api/market/epochs/{epoch_id}/verify", responses={404: {"description": "No such epoch"}})
async def verify(session: DbSession, epoch_id: int) -> VerifyOut:
    """Anyone may re-check a clearing: the stored book is cleared again by `verify()`."""
    valid, reason = await verify_epoch(session, await queries.get_epoch(session, epoch_id))
    return VerifyOut(epoch_id=epoch_id, valid=valid, reason=reason)


@router.post("/api/faucet", responses={404: {"description": "Not in demo mode"}, **ERRORS})
async def faucet(ctx: Ctx, user: CurrentUser, session: DbSession, body: FaucetIn) -> FaucetOut:
    """Demo currency for the caller, where the platform issues the currency itself."""
    enabled = ctx.settings.market_faucet_enabled
    if not demo_currency(ctx.settings) or enabled is False:
        raise NotFound("no faucet here", code="NOT_FOUND")
    return await _faucet(ctx, session, user.id, body.amount)


@router.post("/api/admin/faucet", responses={404: {"description": "Not a demo currency"}, **ERRORS})
async def admin_faucet(ctx: Ctx, _admin: AdminUser, session: DbSession, body: AdminFaucetIn) -> FaucetOut:
    if not demo_currency(ctx.settings):
        raise NotFound("the payment token is not issued by this platform", code="NOT_FOUND")
    try:
        user_id = uuid.UUID(body.user_id)
    except ValueError:
        raise Unprocessable("user_id must be a UUID", code="USER_ID_INVALID") from None
    return await _faucet(ctx, session, user_id, body.amount)


async def _faucet(ctx: Ctx, session: DbSession, user_id: uuid.UUID, amount: object) -> FaucetOut:
    address, units = await orders.faucet(ctx, session, user_id, amount)
    return FaucetOut(wallet_address=address, amount=format_units(units, 6), amount_base_units=str(units))


@router.post("/api/admin/epochs/clear")
async def admin_clear(ctx: Ctx, _admin: AdminUser) -> AdminEpochOut:
    """Close the current epoch's gate now and clear it (a second call finds none open: no-op)."""
    epoch_id = await scheduler.close_current(ctx)
    return AdminEpochOut(cleared_epoch_id=epoch_id, settled=[], waiting=[])


@router.post("/api/admin/epochs/settle")
async def admin_settle(ctx: Ctx, _admin: AdminUser) -> AdminEpochOut:
    settled, waiting = await scheduler.settle_cleared(ctx)
    return AdminEpochOut(cleared_epoch_id=None, settled=settled, waiting=waiting)


@router.post("/api/admin/settlements/{settlement_id}/retry", responses=ERRORS)
async def admin_retry(ctx: Ctx, _admin: AdminUser, settlement_id: int) -> RetryOut:
    return RetryOut(id=settlement_id, status=await settlement.retry(ctx, settlement_id))
