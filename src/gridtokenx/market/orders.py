"""Order use cases: place (escrow first), approve a self-custody deposit, cancel with a full refund.

An order row is written before its escrow moves, in state `escrowing` (custodial) or `approval`
(self-custody), so the ledger transfer has a key that makes a retry land at most once. It becomes
`open` only if its epoch is still taking orders at that moment; otherwise the escrow goes straight
back and the caller hears the gate closed.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import timedelta

from solders.pubkey import Pubkey
from solders.signature import Signature
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.core.context import AppContext
from gridtokenx.core.errors import Conflict, NotFound, TooManyRequests, Unprocessable
from gridtokenx.core.ids import uuid7
from gridtokenx.core.types import utcnow
from gridtokenx.events.bus import Outbox
from gridtokenx.ledger.errors import BlockhashExpired, TransactionFailed
from gridtokenx.market.epochs import ACTIVE, open_epoch
from gridtokenx.market.models import MarketEpoch, MarketOrder
from gridtokenx.market.rules import (
    Asset,
    OrderPolicy,
    RuleError,
    Side,
    check_order,
    energy_wh,
    escrow_of,
    parse_units,
    price_per_kwh,
)
from gridtokenx.market.vault import Vault, Vaults
from gridtokenx.wallets.sealing import Sealer
from gridtokenx.wallets.service import custodial_signer, wallet_of

ESCROWING, APPROVAL, OPEN, CANCELLING, CANCELLED, REJECTED = (
    "escrowing",
    "approval",
    "open",
    "cancelling",
    "cancelled",
    "rejected",
)


@dataclass(frozen=True, slots=True)
class Caller:
    """The trader behind a request, detached from the request's database session."""

    id: uuid.UUID
    role: str


def unprocessable(error: RuleError) -> Unprocessable:
    return Unprocessable(error.message, code=error.code, details={"field": error.field})


def asset_of(side: Side) -> Asset:
    return Asset.ENERGY if side is Side.SELL else Asset.PAYMENT


def policy_of(ctx: AppContext) -> OrderPolicy:
    s = ctx.settings
    return OrderPolicy(s.market_min_order_wh, s.market_price_tick, s.market_price_floor, s.market_price_cap)


async def place(
    ctx: AppContext, user: Caller, side: str, energy_amount: object, price: object
) -> MarketOrder:
    """Validate, check the balance, record, escrow, open. Insufficient funds move nothing."""
    verdict = await ctx.limiter.hit(ctx.settings.market_order_rate_limit, f"market-order:{user.id}")
    if not verdict.allowed:
        raise TooManyRequests(
            "too many orders; slow down", code="ORDER_RATE_LIMITED", retry_after=verdict.retry_after
        )
    try:
        order_side = Side(side)
    except ValueError:
        raise Unprocessable(
            "order_type must be buy or sell", code="ORDER_SIDE_INVALID", details={"field": "order_type"}
        ) from None
    vault = await ctx.services.get(Vaults).get()
    try:
        quantity = energy_wh(energy_amount)
        limit = price_per_kwh(price, vault.tokens[Asset.PAYMENT].decimals)
        check_order(order_side, user.role, quantity, limit, policy_of(ctx))
    except RuleError as error:
        raise unprocessable(error) from None
    asset, escrow = asset_of(order_side), escrow_of(order_side, quantity, limit)
    sealer = ctx.services.get(Sealer)
    async with ctx.db.session() as session:
        wallet = await wallet_of(session, sealer, user.id)
        signer = await custodial_signer(session, sealer, user.id)
    await vault.open_accounts(wallet.pubkey)
    held = await vault.balance(asset, wallet.pubkey)
    if held < escrow:
        raise Conflict(
            f"this order escrows {escrow} base units of {asset.value}; the wallet holds {held}",
            code="INSUFFICIENT_BALANCE",
            details={"asset": asset.value, "required": str(escrow), "available": str(held)},
        )
    order_id = uuid7()
    async with ctx.db.session() as session:
        epoch = await open_epoch(session, ctx.settings.market_epoch_seconds, utcnow())
        order = MarketOrder(
            id=order_id,
            epoch_id=epoch.id,
            user_id=user.id,
            wallet=wallet.address,
            side=order_side.value,
            quantity_wh=quantity,
            limit_price=limit,
            escrow=escrow,
            status=ESCROWING if signer is not None else APPROVAL,
            filled_wh=0,
            payment=0,
        )
        if signer is None:
            order.approval_message = await vault.approval_message(order_id, asset, wallet.pubkey, escrow)
        session.add(order)
    if signer is None:
        return order
    try:
        signature = await vault.deposit(order_id, asset, signer, escrow)
    except TransactionFailed:
        await _set_status(ctx, order_id, REJECTED)
        raise Conflict(
            "the escrow transfer was refused: insufficient balance", code="INSUFFICIENT_BALANCE"
        ) from None
    return await activate(ctx, vault, order_id, str(signature))


async def approve(ctx: AppContext, user: Caller, order_id: str, signature: str) -> MarketOrder:
    """Send a self-custody deposit once its owner signed the approval message, then open the order."""
    order = await _mine(ctx, user, order_id)
    if order.status != APPROVAL or order.approval_message is None:
        raise Conflict(f"order is {order.status}, not awaiting approval", code="ORDER_NOT_AWAITING_APPROVAL")
    try:
        user_signature = Signature.from_string(signature)
    except ValueError:
        raise Unprocessable(
            "signature must be a base58 Ed25519 signature", code="SIGNATURE_INVALID"
        ) from None
    if not user_signature.verify(Pubkey.from_string(order.wallet), order.approval_message):
        raise Unprocessable("the signature does not match the approval message", code="SIGNATURE_INVALID")
    vault = await ctx.services.get(Vaults).get()
    try:
        landed = await vault.ledger.send_transaction(vault.approved(order.approval_message, user_signature))
    except BlockhashExpired:
        await _set_status(ctx, order_id, REJECTED)
        raise Conflict(
            "the approval message expired; place the order again", code="APPROVAL_EXPIRED"
        ) from None
    except TransactionFailed:
        await _set_status(ctx, order_id, REJECTED)
        raise Conflict(
            "the escrow transfer was refused: insufficient balance", code="INSUFFICIENT_BALANCE"
        ) from None
    return await activate(ctx, vault, order_id, str(landed))


async def activate(ctx: AppContext, vault: Vault, order_id: str, signature: str) -> MarketOrder:
    """Open an escrowed order if its epoch still takes orders; otherwise refund it and say so.

    The order's UPDATE comes first (write lock), then the epoch is read FOR SHARE: gate closure
    holds that row while it freezes the book, so the two serialize on both backends."""
    outbox = Outbox()
    async with ctx.db.session() as session:
        await session.execute(
            update(MarketOrder)
            .where(MarketOrder.id == order_id, MarketOrder.status.in_((ESCROWING, APPROVAL)))
            .values(status=OPEN, escrow_signature=signature, approval_message=None)
        )
        order = await session.get(MarketOrder, order_id, populate_existing=True)
        assert order is not None
        status = await session.scalar(
            select(MarketEpoch.status).where(MarketEpoch.id == order.epoch_id).with_for_update(read=True)
        )
        if status != ACTIVE:
            await session.rollback()
        else:
            outbox.add(
                "OrderPlaced",
                user_id=str(order.user_id),
                order_id=order.id,
                epoch_id=order.epoch_id,
                side=order.side,
                energy_wh=order.quantity_wh,
                price=order.limit_price,
            )
            outbox.add("OrderBookChanged", epoch_id=order.epoch_id)
    if status != ACTIVE:
        await _refund(ctx, vault, order_id, REJECTED)
        raise Conflict(
            "the epoch's gate closed before the order could open; escrow refunded", code="GATE_CLOSED"
        )
    await outbox.flush(ctx.bus)
    return order


async def cancel(ctx: AppContext, user: Caller, order_id: str) -> MarketOrder:
    """Withdraw an open order before its gate closes and return its escrow in full."""
    order = await _mine(ctx, user, order_id)
    if order.status == APPROVAL:
        await _set_status(ctx, order_id, CANCELLED)
        order.status = CANCELLED
        return order
    if order.status in ("cleared", "settled"):
        raise Conflict("the epoch's gate has closed; the order stays in the auction", code="GATE_CLOSED")
    if order.status not in (OPEN, CANCELLING):
        raise Conflict(
            f"order is {order.status}; it can no longer be cancelled", code="ORDER_NOT_CANCELLABLE"
        )
    async with ctx.db.session() as session:
        await session.execute(
            update(MarketOrder)
            .where(MarketOrder.id == order_id, MarketOrder.status == OPEN)
            .values(status=CANCELLING)
        )
        status = await session.scalar(
            select(MarketEpoch.status).where(MarketEpoch.id == order.epoch_id).with_for_update(read=True)
        )
        current = await session.scalar(select(MarketOrder.status).where(MarketOrder.id == order_id))
        if status != ACTIVE or current != CANCELLING:
            await session.rollback()
            raise Conflict("the epoch's gate has closed; the order stays in the auction", code="GATE_CLOSED")
    vault = await ctx.services.get(Vaults).get()
    refunded = await _refund(ctx, vault, order_id, CANCELLED)
    outbox = Outbox()
    outbox.add("OrderCancelled", user_id=str(refunded.user_id), order_id=order_id, epoch_id=refunded.epoch_id)
    outbox.add("OrderBookChanged", epoch_id=refunded.epoch_id)
    await outbox.flush(ctx.bus)
    return refunded


async def recover(ctx: AppContext, older_than: timedelta) -> int:
    """Finish custodial orders whose request died between recording and opening them.

    The deposit is repeated under the order's idempotency key, so one that landed is not moved
    twice; the order then opens, or is refunded if its gate has closed. Returns how many it found."""
    async with ctx.db.session() as session:
        stuck = list(
            await session.scalars(
                select(MarketOrder).where(
                    MarketOrder.status == ESCROWING, MarketOrder.created_at < utcnow() - older_than
                )
            )
        )
    if not stuck:  # the usual round: no need to open the ledger
        return 0
    vault = await ctx.services.get(Vaults).get()
    for order in stuck:
        async with ctx.db.session() as session:
            signer = await custodial_signer(session, ctx.services.get(Sealer), order.user_id)
        if signer is None:
            await _set_status(ctx, order.id, REJECTED)
            continue
        try:
            signature = await vault.deposit(order.id, asset_of(Side(order.side)), signer, order.escrow)
        except TransactionFailed:
            await _set_status(ctx, order.id, REJECTED)
            continue
        with contextlib.suppress(Conflict):  # gate closed: refunded, as the caller would have heard
            await activate(ctx, vault, order.id, str(signature))
    return len(stuck)


async def _refund(ctx: AppContext, vault: Vault, order_id: str, final: str) -> MarketOrder:
    async with ctx.db.session() as session:
        order = await session.get(MarketOrder, order_id)
        assert order is not None
        side = Side(order.side)
        await vault.refund(order_id, asset_of(side), Pubkey.from_string(order.wallet), order.escrow)
        order.status = final
    return order


async def _set_status(ctx: AppContext, order_id: str, status: str) -> None:
    async with ctx.db.session() as session:
        await session.execute(update(MarketOrder).where(MarketOrder.id == order_id).values(status=status))


async def _mine(ctx: AppContext, user: Caller, order_id: str) -> MarketOrder:
    async with ctx.db.session() as session:
        order = await session.get(MarketOrder, order_id)
    if order is None or order.user_id != user.id:
        raise NotFound("no such order", code="ORDER_NOT_FOUND")
    return order


async def faucet(
    ctx: AppContext, session: AsyncSession, user_id: uuid.UUID, amount: object
) -> tuple[str, int]:
    """Mint demo currency to a user's wallet: (address, base units)."""
    vault = await ctx.services.get(Vaults).get()
    token = vault.tokens[Asset.PAYMENT]
    try:
        units = parse_units(amount, scale=token.decimals, field="amount")
        limit = parse_units(str(ctx.settings.market_faucet_max), scale=token.decimals, field="max")
    except RuleError as error:
        raise unprocessable(error) from None
    if not 0 < units <= limit:
        raise Unprocessable(
            f"amount must be above zero and at most {ctx.settings.market_faucet_max}",
            code="FAUCET_AMOUNT_INVALID",
        )
    wallet = await wallet_of(session, ctx.services.get(Sealer), user_id)
    await session.commit()
    await vault.ledger.mint_to(token.mint, [(wallet.pubkey, units)], memo="gtx-faucet")
    return wallet.address, units
