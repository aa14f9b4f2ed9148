"""Certificate reads for their owners: the listing, one certificate with its history and
readings, and the hourly matching view of a consumer."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.accounts.models import Role, User
from gridtokenx.certificates import rules
from gridtokenx.certificates.mapping import certificate_out, period_of
from gridtokenx.certificates.models import Certificate, CertificateEvent
from gridtokenx.certificates.rules import Status
from gridtokenx.certificates.schemas import (
    CertificateDetail,
    CertificateOut,
    HistoryOut,
    HourMatchOut,
    MatchingOut,
)
from gridtokenx.core.errors import NotFound
from gridtokenx.core.types import utc_from_epoch
from gridtokenx.meters.service import list_meters
from gridtokenx.readings import queries as readings


async def page(
    session: AsyncSession,
    user: User,
    *,
    status: str | None,
    meter_id: uuid.UUID | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
) -> tuple[list[CertificateOut], int]:
    """Certificates the user holds or was issued, newest period first."""
    query = select(Certificate).where(or_(Certificate.holder_id == user.id, Certificate.owner_id == user.id))
    if status:
        query = query.where(Certificate.status == status)
    if meter_id:
        query = query.where(Certificate.meter_id == meter_id)
    if start:
        query = query.where(Certificate.period_end > start)
    if end:
        query = query.where(Certificate.period_start < end)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(
        query.order_by(Certificate.period_start.desc(), Certificate.id).limit(limit).offset(offset)
    )
    return [certificate_out(row) for row in rows], int(total)


async def detail(session: AsyncSession, certificate_id: uuid.UUID, user: User) -> CertificateDetail:
    """Visible to whoever it was issued to, its holder and admins; others get a 404, not a hint."""
    row = await session.get(Certificate, certificate_id)
    if row is None or (user.role != Role.ADMIN and user.id not in (row.owner_id, row.holder_id)):
        raise NotFound("no such certificate", code="CERTIFICATE_NOT_FOUND")
    events = await session.scalars(
        select(CertificateEvent)
        .where(CertificateEvent.certificate_id == row.id)
        .order_by(CertificateEvent.at, CertificateEvent.id)
    )
    history = [
        HistoryOut(
            action=e.action,
            at=e.at,
            actor_id=e.actor_id,
            from_wallet=e.from_wallet,
            to_wallet=e.to_wallet,
            signature=e.signature,
            details=e.details,
        )
        for e in events
    ]
    return CertificateDetail(
        **certificate_out(row).model_dump(), reading_ids=list(row.reading_ids), history=history
    )


async def matching(session: AsyncSession, user: User, start: datetime, end: datetime) -> MatchingOut:
    """Per hour: the consumer's consumption beside the certified energy retired for them in it."""
    meters = await list_meters(session, owner=user)
    consumed = await readings.consumption_by_hour(session, [m.id for m in meters], start, end)
    retired = [
        (period_of(row), row.energy_wh)
        for row in await session.scalars(
            select(Certificate).where(
                Certificate.retired_by == user.id,
                Certificate.status == Status.RETIRED,
                Certificate.period_start >= start,
                Certificate.period_start < end,
            )
        )
    ]
    hours = rules.hourly_matching(consumed, retired)
    return MatchingOut(
        hours=[
            HourMatchOut(
                hour=utc_from_epoch(h.hour),
                consumed_wh=h.consumed_wh,
                matched_wh=h.matched_wh,
                matched_share=f"{h.share_ppm // 1_000_000}.{h.share_ppm % 1_000_000:06d}",
            )
            for h in hours
        ],
        consumed_wh=sum(h.consumed_wh for h in hours),
        matched_wh=sum(h.matched_wh for h in hours),
    )
