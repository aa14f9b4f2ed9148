"""Settlement: each stored group of legs becomes one atomic transaction out of escrow, exactly once.

A settlement row is signed once and its bytes and signature are committed before the first send;
after that only those bytes are sent, however often the round is retried or the process restarted,
until the ledger confirms them. Only a ledger that proves the blockhash expired (BlockhashExpired,
nothing landed) lets it be signed again, and the new bytes replace the old ones under a condition on
the old signature, so two processes can never both sign a settlement.
"""

from __future__ import annotations

import json

import structlog
from solders.signature import Signature
from solders.transaction import Transaction
from sqlalchemy import func, select, update

from gridtokenx.core.context import AppContext
from gridtokenx.core.errors import Conflict, NotFound
from gridtokenx.core.types import utcnow
from gridtokenx.events.bus import Outbox
from gridtokenx.ledger.errors import BlockhashExpired, LedgerUnavailable, TransactionFailed
from gridtokenx.market.epochs import CLEARED, SETTLED
from gridtokenx.market.models import MarketEpoch, MarketOrder, MarketSettlement
from gridtokenx.market.rules import Asset, Leg, Side
from gridtokenx.market.vault import Vault, Vaults

log = structlog.get_logger(__name__)
PENDING, SENT, CONFIRMED, FAILED = "pending", "sent", "confirmed", "failed"
# Orders whose escrow is still held: open in a book, or on their way back to the trader.
HELD = ("open", "cancelling")


def parse_legs(stored: str) -> list[Leg]:
    return [Leg(order_id, Asset(asset), to, amount) for order_id, asset, to, amount in json.loads(stored)]


def legs_of(row: MarketSettlement) -> list[Leg]:
    return parse_legs(row.legs)


def memo_of(row: MarketSettlement) -> str:
    """Names the settlement on the ledger, and makes its bytes unlike any other transaction's."""
    return f"gtx-settlement:{row.epoch_id}:{row.seq}"


async def settle_epoch(ctx: AppContext, epoch_id: int) -> bool:
    """Send every unconfirmed settlement of a cleared epoch; True once the epoch is settled.

    The batch path: every unsigned settlement is signed and stored in one database transaction,
    the stored bytes are sent, and what landed is confirmed in one more. A settlement whose
    blockhash expired goes through `settle_one`, which signs it again."""
    vault = await ctx.services.get(Vaults).get()
    await _sign_unsigned(ctx, vault, epoch_id)
    async with ctx.db.session() as session:
        rows = list(
            await session.execute(
                select(MarketSettlement.id, MarketSettlement.tx_bytes)
                .where(MarketSettlement.epoch_id == epoch_id, MarketSettlement.status.in_((PENDING, SENT)))
                .order_by(MarketSettlement.seq)
            )
        )
    landed, expired = [], []
    for settlement_id, stored in rows:
        if stored is None:  # signed by nobody yet (a concurrent retry reset it): the slow path
            expired.append(settlement_id)
            continue
        try:
            await vault.ledger.send_transaction(Transaction.from_bytes(stored))
        except BlockhashExpired:
            expired.append(settlement_id)
        except TransactionFailed as error:
            await _fail(ctx, settlement_id, str(error.err))
        except LedgerUnavailable as error:
            await _count_attempt(ctx, settlement_id, str(error))
        else:
            landed.append(settlement_id)
    await _confirm(ctx, landed)
    for settlement_id in expired:
        await settle_one(ctx, vault, settlement_id)
    return await finish_epoch(ctx, epoch_id)


async def _sign_unsigned(ctx: AppContext, vault: Vault, epoch_id: int) -> None:
    async with ctx.db.session() as session:
        rows = list(
            await session.execute(
                select(MarketSettlement.id, MarketSettlement.seq, MarketSettlement.legs)
                .where(
                    MarketSettlement.epoch_id == epoch_id,
                    MarketSettlement.status == PENDING,
                    MarketSettlement.signature.is_(None),
                )
                .order_by(MarketSettlement.seq)
            )
        )
        if not rows:
            return
        blockhash, _ = await vault.ledger.latest_blockhash()
        signed = [
            (
                settlement_id,
                vault.settlement_tx(parse_legs(legs), f"gtx-settlement:{epoch_id}:{seq}", blockhash),
            )
            for settlement_id, seq, legs in rows
        ]
        for settlement_id, tx in signed:
            await session.execute(
                update(MarketSettlement)
                .where(MarketSettlement.id == settlement_id, MarketSettlement.signature.is_(None))
                .values(tx_bytes=bytes(tx), signature=str(tx.signatures[0]), status=SENT)
                .execution_options(synchronize_session=False)
            )


async def finish_epoch(ctx: AppContext, epoch_id: int) -> bool:
    outbox = Outbox()
    async with ctx.db.session() as session:
        open_rows = await session.scalar(
            select(func.count())
            .select_from(MarketSettlement)
            .where(MarketSettlement.epoch_id == epoch_id, MarketSettlement.status != CONFIRMED)
        )
        if open_rows:
            return False
        done = await session.execute(
            update(MarketEpoch)
            .where(MarketEpoch.id == epoch_id, MarketEpoch.status == CLEARED)
            .values(status=SETTLED, settled_at=utcnow())
        )
        if done.rowcount:  # type: ignore[attr-defined]
            outbox.add("EpochTransition", epoch_id=epoch_id, status=SETTLED)
    await outbox.flush(ctx.bus)
    return True


async def settle_one(ctx: AppContext, vault: Vault, settlement_id: int) -> str:
    """Drive one settlement as far as it goes now; returns its status."""
    async with ctx.db.session() as session:
        row = await session.get(MarketSettlement, settlement_id)
        if row is None:
            raise NotFound("no such settlement", code="SETTLEMENT_NOT_FOUND")
        if row.status in (CONFIRMED, FAILED):
            return row.status
        stored = row.tx_bytes
    if stored is None:
        stored = await _sign(ctx, vault, settlement_id, None)
    for _ in range(3):
        tx = Transaction.from_bytes(stored)
        signature = tx.signatures[0]
        status = await vault.ledger.get_signature_status(signature)
        if status is not None:
            if status.ok:
                await _confirm(ctx, [settlement_id])
                return CONFIRMED
            return await _fail(ctx, settlement_id, str(status.err))
        try:
            await vault.ledger.send_transaction(tx)
        except BlockhashExpired:
            stored = await _sign(ctx, vault, settlement_id, str(signature))
            continue
        except TransactionFailed as error:
            return await _fail(ctx, settlement_id, str(error.err))
        except LedgerUnavailable as error:  # in flight or unreachable: the same bytes go again next round
            log.warning("settlement_send_deferred", settlement_id=settlement_id, error=str(error))
            await _count_attempt(ctx, settlement_id, str(error))
            return SENT
        await _confirm(ctx, [settlement_id])
        return CONFIRMED
    return SENT


async def _sign(ctx: AppContext, vault: Vault, settlement_id: int, replaces: str | None) -> bytes:
    """Sign (or, after a proven expiry, re-sign) and store the bytes before anything is sent."""
    async with ctx.db.session() as session:
        row = await session.get(MarketSettlement, settlement_id)
        assert row is not None
        blockhash, _ = await vault.ledger.latest_blockhash()
        tx = vault.settlement_tx(legs_of(row), memo_of(row), blockhash)
        unchanged = (
            MarketSettlement.signature.is_(None)
            if replaces is None
            else MarketSettlement.signature == replaces
        )
        await session.execute(
            update(MarketSettlement)
            .where(MarketSettlement.id == settlement_id, unchanged)
            .values(tx_bytes=bytes(tx), signature=str(tx.signatures[0]), status=SENT)
        )
    async with ctx.db.session() as session:  # whoever won, these are now the bytes
        stored = await session.scalar(
            select(MarketSettlement.tx_bytes).where(MarketSettlement.id == settlement_id)
        )
    assert stored is not None
    return stored


async def _confirm(ctx: AppContext, settlement_ids: list[int]) -> None:
    """Mark landed settlements and their orders settled in one transaction; events after it."""
    if not settlement_ids:
        return
    outbox = Outbox()
    async with ctx.db.session() as session:
        done = list(
            await session.scalars(
                update(MarketSettlement)
                .where(MarketSettlement.id.in_(settlement_ids), MarketSettlement.status != CONFIRMED)
                .values(status=CONFIRMED, confirmed_at=utcnow(), error=None)
                .returning(MarketSettlement.id)
            )
        )
        if not done:
            return
        rows = {
            row.id: row
            for row in await session.scalars(select(MarketSettlement).where(MarketSettlement.id.in_(done)))
        }
        settled_by = {leg.order_id: rows[sid] for sid in done for leg in legs_of(rows[sid])}
        await session.execute(
            update(MarketOrder).where(MarketOrder.id.in_(list(settled_by))).values(status="settled")
        )
        for order in await session.scalars(select(MarketOrder).where(MarketOrder.id.in_(list(settled_by)))):
            row = settled_by[order.id]
            outbox.add(
                "SettlementConfirmed",
                user_id=str(order.user_id),
                order_id=order.id,
                epoch_id=row.epoch_id,
                settlement_id=row.id,
                signature=row.signature,
            )
    await outbox.flush(ctx.bus)


async def _fail(ctx: AppContext, settlement_id: int, error: str) -> str:
    log.error("settlement_failed", settlement_id=settlement_id, error=error)
    async with ctx.db.session() as session:
        await session.execute(
            update(MarketSettlement)
            .where(MarketSettlement.id == settlement_id)
            .values(status=FAILED, error=error, attempts=MarketSettlement.attempts + 1)
        )
    return FAILED


async def _count_attempt(ctx: AppContext, settlement_id: int, error: str) -> None:
    async with ctx.db.session() as session:
        await session.execute(
            update(MarketSettlement)
            .where(MarketSettlement.id == settlement_id)
            .values(error=error, attempts=MarketSettlement.attempts + 1)
        )


async def retry(ctx: AppContext, settlement_id: int) -> str:
    """An operator's retry of a failed settlement: a failed transaction changed nothing, so sign anew."""
    async with ctx.db.session() as session:
        row = await session.get(MarketSettlement, settlement_id)
        if row is None:
            raise NotFound("no such settlement", code="SETTLEMENT_NOT_FOUND")
        if row.status == CONFIRMED:
            return CONFIRMED
        if row.status == FAILED:
            await session.execute(
                update(MarketSettlement)
                .where(MarketSettlement.id == settlement_id, MarketSettlement.status == FAILED)
                .values(status=PENDING, tx_bytes=None, signature=None)
            )
        epoch_id = row.epoch_id
    vault = await ctx.services.get(Vaults).get()
    status = await settle_one(ctx, vault, settlement_id)
    if status == FAILED:
        raise Conflict("the settlement failed again; see its error", code="SETTLEMENT_FAILED")
    await finish_epoch(ctx, epoch_id)
    return status


async def audit(ctx: AppContext) -> list[str]:
    """Escrow holds exactly the open orders plus the unsettled legs; every settled transfer landed."""
    async with ctx.db.session() as session:
        if await session.scalar(select(MarketOrder.id).limit(1)) is None:
            return []  # no trading yet: nothing to reconcile, and no escrow to create by looking
    vault = await ctx.services.get(Vaults).get()
    expected = dict.fromkeys(Asset, 0)
    problems: list[str] = []
    async with ctx.db.session() as session:
        held = await session.execute(
            select(MarketOrder.side, func.sum(MarketOrder.escrow))
            .where(MarketOrder.status.in_(HELD))
            .group_by(MarketOrder.side)
        )
        for side, total in held:
            expected[Asset.ENERGY if side == Side.SELL else Asset.PAYMENT] += int(total)
        rows = list(await session.scalars(select(MarketSettlement)))
    for row in rows:
        if row.status != CONFIRMED:
            for leg in legs_of(row):
                expected[leg.asset] += leg.amount
        elif row.signature is None:
            problems.append(f"settlement {row.id} is confirmed without a signature")
        else:
            status = await vault.ledger.get_signature_status(Signature.from_string(row.signature))
            if status is None or not status.ok:
                problems.append(
                    f"settlement {row.id} ({row.signature}) is not a successful ledger transaction"
                )
    for asset, amount in expected.items():
        actual = await vault.escrow_balance(asset)
        if actual != amount:
            problems.append(
                f"escrow holds {actual} {asset.value} base units; orders and settlements account for {amount}"
            )
    return problems
