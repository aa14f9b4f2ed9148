"""HTTP routes of tokenization: the manual mint, the owner's minted readings and totals, the
admin's queue status and dead-letter retry."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from gridtokenx.accounts.deps import AdminUser, CurrentUser
from gridtokenx.core.cache import Cache, CacheName
from gridtokenx.core.deps import Ctx, DbSession
from gridtokenx.core.errors import ApiError
from gridtokenx.core.lease import holders
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.readings.service import totals
from gridtokenx.tokenization import service
from gridtokenx.tokenization.models import EntryState, MintEntry
from gridtokenx.tokenization.schemas import (
    MintedReadingsPage,
    MintEntryOut,
    MintFromReading,
    MintFromReadingOut,
    OwnerTotalsOut,
    TokenizationStatus,
)
from gridtokenx.tokenization.tokens import energy_mint
from gridtokenx.tokenization.worker import MintDuty, Minter

router = APIRouter()
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    403: {"description": "Forbidden"},
    404: {"description": "Not found"},
    409: {"description": "Not mintable / not retriable"},
}
_NOT_MINTABLE = {
    "READING_TOO_LARGE": "the reading exceeds TOKENIZATION_MAX_READING_KWH",
    "READING_TOO_OLD": "the reading was older than TOKENIZATION_READING_MAX_AGE_DAYS when stored",
    "METER_HAS_NO_OWNER": "the meter had no owner to receive the tokens",
}


def _tokens(units: int | None, decimals: int) -> str | None:
    return None if units is None else str(Decimal(units).scaleb(-decimals))


def _entry_out(entry: MintEntry, signature: str | None, decimals: int) -> MintEntryOut:
    units = entry.ledger_units if entry.state == EntryState.CONFIRMED.value else entry.amount_units
    return MintEntryOut(
        id=entry.id,
        reading_id=entry.reading_id,
        meter_id=entry.meter_id,
        channel=entry.channel,
        interval_start=entry.interval_start,
        revision=entry.revision,
        kind=entry.kind,
        amount_wh=entry.amount_wh,
        amount=None if units is None else str(units),
        amount_tokens=_tokens(units, decimals),
        state=entry.state,
        minted=entry.state == EntryState.CONFIRMED.value,
        signature=signature,
        attempts=entry.attempts,
        error=entry.last_error,
    )


@router.post("/api/admin/meters/mint-from-reading", tags=["admin"], responses=ERRORS)
async def mint_from_reading(body: MintFromReading, _admin: AdminUser, ctx: Ctx) -> JSONResponse:
    """Mint one reading now. Idempotent: a minted reading answers 200 with the same signature."""
    reading_id = str(body.reading_id)
    decimals = ctx.settings.tokenization_decimals
    async with ctx.db.session() as session:
        rows = await service.entries_of_reading(session, reading_id)
    if not rows:
        raise ApiError(
            "no mintable energy was recorded for this reading (unknown, estimated, flagged, "
            "attested where not allowed, or nothing exported)",
            code="READING_NOT_MINTABLE",
            status_code=409,
        )
    pending = [entry.id for entry, _ in rows if entry.state == EntryState.PENDING.value]
    if pending:
        minter = ctx.services.get(Minter)
        ledger = await ctx.services.get(LedgerHandle).get()
        await minter.mint_due(ledger, await energy_mint(ledger, ctx.settings), only=pending)
        async with ctx.db.session() as session:
            rows = await service.entries_of_reading(session, reading_id)
    first, signature = rows[0]
    if first.state == EntryState.SKIPPED.value:
        code = first.last_error or "READING_NOT_MINTABLE"
        raise ApiError(_NOT_MINTABLE.get(code, "the reading is not mintable"), code=code, status_code=409)
    if first.state == EntryState.DEAD_LETTER.value:
        raise ApiError(
            f"minting failed for good: {first.last_error}; retry it from the dead letters",
            code="MINT_DEAD_LETTER",
            status_code=409,
            details={"entry_id": str(first.id)},
        )
    out = MintFromReadingOut(
        reading_id=reading_id,
        state=first.state,
        signature=signature,
        entries=[_entry_out(entry, sig, decimals) for entry, sig in rows],
    )
    status = 200 if first.state == EntryState.CONFIRMED.value else 202
    return JSONResponse(out.model_dump(mode="json"), status_code=status)


@router.get("/api/meters/readings", tags=["readings"], responses=ERRORS)
async def my_minted_readings(
    user: CurrentUser,
    ctx: Ctx,
    session: DbSession,
    minted: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> MintedReadingsPage:
    """The caller's readings with energy to mint, with each one's mint status and signature."""
    total, rows = await service.owner_entries(session, user.id, minted, limit, offset)
    decimals = ctx.settings.tokenization_decimals
    return MintedReadingsPage(
        items=[_entry_out(entry, signature, decimals) for entry, signature in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/api/meters/stats", tags=["readings"], responses=ERRORS, response_model=OwnerTotalsOut)
async def my_totals(user: CurrentUser, ctx: Ctx, session: DbSession) -> Response:
    """The readings domain's totals of the caller's meters, plus minted and unminted energy;
    cached until a reading or mint event of the caller makes it stale."""

    async def load() -> bytes:
        base = await totals(session, user)
        mint = await service.owner_totals(session, user.id)
        return (
            OwnerTotalsOut(
                **base.model_dump(),
                minted_wh=mint.minted_wh,
                unminted_wh=mint.unminted_wh,
                burned_wh=mint.burned_wh,
                minted_amount=str(mint.minted_units),
                minted_tokens=_tokens(mint.minted_units, ctx.settings.tokenization_decimals) or "0",
            )
            .model_dump_json()
            .encode()
        )

    body = await ctx.services.get(Cache).get_or_load(CacheName.USER_STATS, str(user.id), load)
    return Response(body, media_type="application/json")


@router.get("/api/admin/tokenization/status", tags=["admin"], responses=ERRORS)
async def tokenization_status(_admin: AdminUser, ctx: Ctx, session: DbSession) -> TokenizationStatus:
    queue = await service.queue_status(session)
    lease = next((h for h in await holders(ctx.db) if h.name == "mint"), None)
    return TokenizationStatus(
        auto_mint_enabled=ctx.settings.tokenization_auto_mint_enabled,
        queue_depth=queue.pending,
        oldest_pending_age_s=queue.oldest_pending_age_s,
        in_flight=queue.in_flight,
        dead_letters=queue.dead_letters,
        debts=queue.debts,
        last_error=queue.last_error,
        lease_holder=None if lease is None else lease.holder,
        lease_expires_at=None if lease is None else lease.expires_at,
    )


@router.post("/api/admin/tokenization/retry/{entry_id}", tags=["admin"], responses=ERRORS)
async def retry(entry_id: uuid.UUID, _admin: AdminUser, ctx: Ctx, session: DbSession) -> MintEntryOut:
    """Put a dead letter back in the queue with its attempts reset."""
    entry = await service.retry_dead_letter(session, entry_id)
    await session.commit()
    duty = ctx.services.find(MintDuty)
    if duty is not None:
        duty.wake()
    return _entry_out(entry, None, ctx.settings.tokenization_decimals)
