"""Tokenization use cases: record mint work with each stored reading, and the admin and owner views
of it (status, retry, the owner's minted readings and totals)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, case, func, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.core.db import asyncpg_connection, is_postgres, json_document, pg_insert_from_json
from gridtokenx.core.errors import ApiError, NotFound
from gridtokenx.core.ids import uuid7
from gridtokenx.core.types import utcnow
from gridtokenx.meters.facts import owners_of
from gridtokenx.readings.hooks import StoredReading
from gridtokenx.tokenization.models import EntryState, Kind, MintEntry, MintTx, TxState

Key = tuple[uuid.UUID, int, datetime]


async def record_stored(session: AsyncSession, stored: list[StoredReading]) -> None:
    """The mint outbox rows of a batch, in the batch's own transaction (the readings-store hook).

    A first store of mintable energy is revision 0. A revision books the difference between the
    reading's new mintable energy and what is already booked for it: a mint when up, a burn when
    down, nothing when unchanged; never a silent re-mint.
    """
    owners = await owners_of(session, {s.meter_id for s in stored})
    now = utcnow()  # one moment for the batch's rows
    rows = [
        _entry(s, owners.get(s.meter_id), 0, Kind.MINT, s.mintable_wh, now) for s in stored if not s.revised
    ]
    revised = [s for s in stored if s.revised]
    if revised:
        booked = await _booked(session, [(s.meter_id, s.channel, s.interval_start) for s in revised])
        for s in revised:
            key = (s.meter_id, s.channel, s.interval_start)
            net, last_revision = booked.get(key, (0, -1))
            delta = s.mintable_wh - net
            if delta:
                kind = Kind.MINT if delta > 0 else Kind.BURN
                rows.append(_entry(s, owners.get(s.meter_id), last_revision + 1, kind, abs(delta), now))
                booked[key] = (s.mintable_wh, last_revision + 1)
    if not rows:
        return
    if is_postgres(session):  # one JSON document: the outbox rides on every batch's transaction
        await (await asyncpg_connection(session)).execute(_PG_INSERT, json_document(rows))
        return
    await session.execute(
        sqlite.insert(MintEntry).on_conflict_do_nothing(index_elements=_ENTRY_KEY),
        rows,
    )


_ENTRY_KEY = ["meter_id", "channel", "interval_start", "revision"]
_ENTRY_COLUMNS = (
    "id",
    "meter_id",
    "channel",
    "interval_start",
    "revision",
    "reading_id",
    "user_id",
    "kind",
    "amount_wh",
    "state",
    "attempts",
    "next_attempt_at",
    "created_at",
    "updated_at",
)
_PG_INSERT = pg_insert_from_json(
    cast(Table, MintEntry.__table__), _ENTRY_COLUMNS, f"ON CONFLICT ({', '.join(_ENTRY_KEY)}) DO NOTHING"
)


def _entry(
    s: StoredReading, owner: uuid.UUID | None, revision: int, kind: Kind, amount_wh: int, now: datetime
) -> dict[str, object]:
    return {  # the keys are _ENTRY_COLUMNS
        "id": uuid.UUID(uuid7()),  # time-ordered: a batch's rows share index pages
        "meter_id": s.meter_id,
        "channel": s.channel,
        "interval_start": s.interval_start,
        "revision": revision,
        "reading_id": s.reading_id,
        "user_id": owner,
        "kind": kind.value,
        "amount_wh": amount_wh,
        "state": EntryState.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


async def _booked(session: AsyncSession, keys: list[Key]) -> dict[Key, tuple[int, int]]:
    """Per reading key: Wh booked so far (mints minus burns, whatever their state) and last revision."""
    signed = case((MintEntry.kind == Kind.BURN.value, -MintEntry.amount_wh), else_=MintEntry.amount_wh)
    found: dict[Key, tuple[int, int]] = {}
    for meter_id in {k[0] for k in keys}:
        wanted = {k for k in keys if k[0] == meter_id}
        result = await session.execute(
            select(
                MintEntry.channel, MintEntry.interval_start, func.sum(signed), func.max(MintEntry.revision)
            )
            .where(
                MintEntry.meter_id == meter_id,
                MintEntry.interval_start.in_({k[2] for k in wanted}),
            )
            .group_by(MintEntry.channel, MintEntry.interval_start)
        )
        for channel, start, net, last in result:
            key = (meter_id, int(channel), start)
            if key in wanted:
                found[key] = (int(net), int(last))
    return found


# ---- admin and owner views ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueStatus:
    pending: int
    oldest_pending_age_s: float | None
    in_flight: int
    dead_letters: int
    debts: int
    last_error: str | None


async def queue_status(session: AsyncSession) -> QueueStatus:
    counts = dict(
        (state, int(n))
        for state, n in await session.execute(select(MintEntry.state, func.count()).group_by(MintEntry.state))
    )
    oldest = await session.scalar(
        select(func.min(MintEntry.created_at)).where(MintEntry.state == EntryState.PENDING.value)
    )
    in_flight = await session.scalar(
        select(func.count()).select_from(MintTx).where(MintTx.state == TxState.SUBMITTED.value)
    )
    last_error = await session.scalar(
        select(MintEntry.last_error)
        .where(MintEntry.last_error.is_not(None))
        .order_by(MintEntry.updated_at.desc())
        .limit(1)
    )
    if oldest is not None and oldest.tzinfo is None:  # SQLite aggregates skip the column type
        oldest = datetime.fromisoformat(str(oldest)).replace(tzinfo=utcnow().tzinfo)
    return QueueStatus(
        pending=counts.get(EntryState.PENDING.value, 0),
        oldest_pending_age_s=None if oldest is None else (utcnow() - oldest).total_seconds(),
        in_flight=int(in_flight or 0),
        dead_letters=counts.get(EntryState.DEAD_LETTER.value, 0),
        debts=counts.get(EntryState.DEBT.value, 0),
        last_error=last_error,
    )


async def retry_dead_letter(session: AsyncSession, entry_id: uuid.UUID) -> MintEntry:
    entry = await session.get(MintEntry, entry_id)
    if entry is None:
        raise NotFound("no such mint entry", code="MINT_ENTRY_NOT_FOUND")
    if entry.state != EntryState.DEAD_LETTER.value:
        raise ApiError(
            f"mint entry is {entry.state}, only a dead letter can be retried",
            code="MINT_ENTRY_NOT_DEAD_LETTER",
            status_code=409,
        )
    await session.execute(
        update(MintEntry)
        .where(MintEntry.id == entry_id, MintEntry.state == EntryState.DEAD_LETTER.value)
        .values(state=EntryState.PENDING.value, attempts=0, next_attempt_at=utcnow(), tx_id=None)
    )
    await session.refresh(entry)
    return entry


async def entries_of_reading(session: AsyncSession, reading_id: str) -> list[tuple[MintEntry, str | None]]:
    """A reading's outbox rows (first store and corrections) with the signature each rode in."""
    result = await session.execute(
        select(MintEntry, MintTx.signature)
        .outerjoin(MintTx, MintTx.id == MintEntry.tx_id)
        .where(MintEntry.reading_id == reading_id)
        .order_by(MintEntry.revision)
    )
    return [(entry, signature) for entry, signature in result]


async def owner_entries(
    session: AsyncSession, user_id: uuid.UUID, minted: bool | None, limit: int, offset: int
) -> tuple[int, list[tuple[MintEntry, str | None]]]:
    """The owner's mint outbox rows, newest reading first; `minted` filters on confirmed."""
    where = [MintEntry.user_id == user_id]
    if minted is True:
        where.append(MintEntry.state == EntryState.CONFIRMED.value)
    elif minted is False:
        where.append(MintEntry.state != EntryState.CONFIRMED.value)
    total = await session.scalar(select(func.count()).select_from(MintEntry).where(*where))
    result = await session.execute(
        select(MintEntry, MintTx.signature)
        .outerjoin(MintTx, MintTx.id == MintEntry.tx_id)
        .where(*where)
        .order_by(MintEntry.interval_start.desc(), MintEntry.revision.desc())
        .limit(limit)
        .offset(offset)
    )
    return int(total or 0), [(entry, signature) for entry, signature in result]


@dataclass(frozen=True)
class MintTotals:
    minted_wh: int
    unminted_wh: int
    burned_wh: int
    minted_units: int


async def owner_totals(session: AsyncSession, user_id: uuid.UUID) -> MintTotals:
    sums: dict[tuple[str, bool], tuple[int, int]] = defaultdict(lambda: (0, 0))
    confirmed = MintEntry.state == EntryState.CONFIRMED.value
    for kind, done, wh, units in await session.execute(
        select(
            MintEntry.kind,
            confirmed,
            func.coalesce(func.sum(MintEntry.amount_wh), 0),
            func.coalesce(func.sum(MintEntry.amount_units), 0),
        )
        .where(MintEntry.user_id == user_id, MintEntry.state != EntryState.SKIPPED.value)
        .group_by(MintEntry.kind, confirmed)
    ):
        sums[(kind, bool(done))] = (int(wh or 0), int(units or 0))
    return MintTotals(
        minted_wh=sums[(Kind.MINT.value, True)][0],
        unminted_wh=sums[(Kind.MINT.value, False)][0],
        burned_wh=sums[(Kind.BURN.value, True)][0],
        minted_units=sums[(Kind.MINT.value, True)][1] - sums[(Kind.BURN.value, True)][1],
    )
