"""HTTP routes of the certificates domain (`/api/erc/...`); verification needs no account."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from gridtokenx.accounts.deps import AdminUser, CurrentUser
from gridtokenx.certificates import queries, verification
from gridtokenx.certificates.rules import Status
from gridtokenx.certificates.schemas import (
    CertificateDetail,
    CertificateOut,
    CertificatePage,
    IssueIn,
    MatchingOut,
    RetireIn,
    TransferIn,
    VerifyOut,
    WithdrawIn,
)
from gridtokenx.certificates.service import Certificates
from gridtokenx.core.deps import Ctx, DbSession
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.ledger.interface import Ledger
from gridtokenx.readings.service import time_range

router = APIRouter(tags=["certificates"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    404: {"description": "No such certificate or meter"},
    409: {"description": "Refused by the certificate's status, an existing or overlapping period"},
    422: {"description": "Invalid period, address or no certifiable generation"},
}


async def certificates_of(ctx: Ctx) -> Certificates:
    return ctx.services.get(Certificates)


async def ledger_of(ctx: Ctx) -> Ledger:
    return await ctx.services.get(LedgerHandle).get()


Service = Annotated[Certificates, Depends(certificates_of)]
LedgerDep = Annotated[Ledger, Depends(ledger_of)]


@router.post("/api/erc/issue", status_code=201, responses=ERRORS)
async def issue(body: IssueIn, user: CurrentUser, certificates: Service) -> CertificateOut:
    """Certify a settled period of the caller's meter."""
    return await certificates.issue(body.meter_id, body.period_start, body.period_end, actor=user)


@router.post("/api/admin/erc/issue", status_code=201, responses=ERRORS)
async def admin_issue(body: IssueIn, admin: AdminUser, certificates: Service) -> CertificateOut:
    return await certificates.issue(body.meter_id, body.period_start, body.period_end, actor=admin)


@router.get("/api/erc", responses=ERRORS)
async def my_certificates(
    user: CurrentUser,
    session: DbSession,
    status: Status | None = None,
    meter_id: uuid.UUID | None = None,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CertificatePage:
    items, total = await queries.page(
        session, user, status=status, meter_id=meter_id, start=start, end=end, limit=limit, offset=offset
    )
    return CertificatePage(items=items, total=total)


@router.get("/api/erc/matching", responses=ERRORS)
async def matching(
    user: CurrentUser,
    session: DbSession,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
) -> MatchingOut:
    """Per hour: the caller's consumption and the certified energy retired for them in it."""
    start, end = time_range(start, end, timedelta(days=1))
    return await queries.matching(session, user, start, end)


@router.get("/api/erc/verify", responses=ERRORS)
async def verify_mint(
    mint: Annotated[str, Query(min_length=32, max_length=44)], session: DbSession, ledger: LedgerDep
) -> VerifyOut:
    """Public: the certificate at this mint, read from the ledger and checked."""
    return await verification.verify(session, ledger, mint=mint)


@router.get("/api/erc/{certificate_id}", responses=ERRORS)
async def detail(certificate_id: uuid.UUID, user: CurrentUser, session: DbSession) -> CertificateDetail:
    return await queries.detail(session, certificate_id, user)


@router.get("/api/erc/{certificate_id}/verify", responses=ERRORS)
async def verify(certificate_id: uuid.UUID, session: DbSession, ledger: LedgerDep) -> VerifyOut:
    """Public: read from the ledger, checked against the record and the readings behind it."""
    return await verification.verify(session, ledger, certificate_id=certificate_id)


@router.post("/api/erc/{certificate_id}/transfer", responses=ERRORS)
async def transfer(
    certificate_id: uuid.UUID, body: TransferIn, user: CurrentUser, certificates: Service
) -> CertificateOut:
    return await certificates.transfer(certificate_id, user, body.to_wallet)


@router.post("/api/erc/{certificate_id}/retire", responses=ERRORS)
async def retire(
    certificate_id: uuid.UUID, body: RetireIn, user: CurrentUser, certificates: Service
) -> CertificateOut:
    """Claim the certificate for a beneficiary: burned on the ledger, irreversible."""
    return await certificates.retire(certificate_id, user, body.beneficiary, body.purpose, body.location)


@router.post("/api/admin/erc/{certificate_id}/withdraw", responses=ERRORS)
async def withdraw(
    certificate_id: uuid.UUID, body: WithdrawIn, admin: AdminUser, certificates: Service
) -> CertificateOut:
    return await certificates.withdraw(certificate_id, admin, body.reason)
