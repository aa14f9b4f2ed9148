"""Public verification and the audit: a certificate read from the ledger and checked against
the platform's record and the readings behind it. Anything that disagrees is a reason."""

from __future__ import annotations

import uuid

from solders.pubkey import Pubkey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.certificates import rules
from gridtokenx.certificates.mapping import expected_fields
from gridtokenx.certificates.models import Certificate
from gridtokenx.certificates.rules import Status
from gridtokenx.certificates.schemas import VerifyOut
from gridtokenx.core.db import Database
from gridtokenx.core.errors import NotFound, Unprocessable
from gridtokenx.ledger.accounts import NotATokenAccount
from gridtokenx.ledger.interface import Ledger
from gridtokenx.ledger.records import CertificateInfo
from gridtokenx.readings import queries as readings


async def verify(
    session: AsyncSession, ledger: Ledger, *, certificate_id: uuid.UUID | None = None, mint: str | None = None
) -> VerifyOut:
    """By id or by mint; a mint the platform never issued is still read and reported."""
    if certificate_id is not None:
        row = await session.get(Certificate, certificate_id)
        if row is None:
            raise NotFound("no such certificate", code="CERTIFICATE_NOT_FOUND")
        mint = row.mint
    else:
        assert mint is not None
        row = await session.scalar(select(Certificate).where(Certificate.mint == mint))
    try:
        address = Pubkey.from_string(mint)
    except ValueError:
        raise Unprocessable(f"{mint!r} is not a base58 address", code="MINT_INVALID") from None
    current = None if row is None else await readings.canonical_by_ids(session, row.meter_id, row.reading_ids)
    if row is not None:
        session.expunge(row)
    await session.rollback()  # no transaction held open across the ledger reads
    try:
        info = await ledger.get_certificate(address)
    except NotATokenAccount:
        raise NotFound("that address is not a certificate", code="CERTIFICATE_NOT_FOUND") from None
    if info is None and row is None:
        raise NotFound("no such certificate", code="CERTIFICATE_NOT_FOUND")
    return await _verdict(ledger, address, row, info, current)


async def _verdict(
    ledger: Ledger,
    mint: Pubkey,
    row: Certificate | None,
    info: CertificateInfo | None,
    current: dict[str, bytes] | None,
) -> VerifyOut:
    reasons: list[str] = []
    on_ledger = {} if info is None else dict(info.metadata.fields)
    owner: str | None = None
    recomputed: str | None = None
    if row is None:
        reasons.append("the platform has no record of this certificate")
    elif info is None:
        reasons.append(
            "pending: not on the ledger yet" if row.status == Status.PENDING else "not found on the ledger"
        )
    else:
        reasons += _record_differences(row, on_ledger)
        reasons += await _ledger_state(ledger, row, info.supply, mint)
        if info.supply == 1 and not reasons:
            owner = row.holder_wallet
    if info is not None:
        if info.mint_authority is not None:
            reasons.append("the mint authority was never removed: supply is not fixed")
        if info.update_authority is not None:
            reasons.append("the metadata can still be changed")
    if row is not None and current is not None:
        missing = [i for i in row.reading_ids if i not in current]
        if missing:
            reasons.append(f"{len(missing)} reading(s) behind the certificate no longer exist")
        recomputed = rules.readings_hash(current[i] for i in row.reading_ids if i in current)
        if on_ledger and recomputed != on_ledger.get("readings_hash"):
            reasons.append("readings changed after issuance: their hash no longer matches the ledger")
        if row.status == Status.WITHDRAWN:
            reasons.append(f"withdrawn by the issuer: {row.withdraw_reason}")
        elif row.status == Status.EXPIRED:
            reasons.append("expired")
    metadata = {}
    if info is not None:
        metadata = {"name": info.metadata.name, "symbol": info.metadata.symbol, "uri": info.metadata.uri}
    return VerifyOut(
        valid=not reasons,
        reasons=reasons,
        certificate_id=None if row is None else row.id,
        mint=str(mint),
        status=None if row is None else row.status,
        owner=owner,
        supply=None if info is None else info.supply,
        metadata={**metadata, **on_ledger},
        readings_hash_on_ledger=on_ledger.get("readings_hash"),
        readings_hash_recomputed=recomputed,
    )


def _record_differences(row: Certificate, on_ledger: dict[str, str]) -> list[str]:
    differences = rules.field_differences(expected_fields(row), on_ledger)
    if not differences:
        return []
    return ["database record disagrees with the ledger on: " + ", ".join(differences)]


async def audit(db: Database, ledger: Ledger) -> list[str]:
    """Every issued certificate compared with the ledger (fields, supply, holder)."""
    async with db.sessionmaker() as session:
        rows = list(await session.scalars(select(Certificate).where(Certificate.status != Status.PENDING)))
    problems: list[str] = []
    for row in rows:
        mint = Pubkey.from_string(row.mint)
        try:
            info = await ledger.get_certificate(mint)
        except NotATokenAccount:
            info = None
        if info is None:
            problems.append(f"certificate {row.id}: mint {row.mint} is not a certificate on the ledger")
            continue
        lines = _record_differences(row, dict(info.metadata.fields))
        lines += await _ledger_state(ledger, row, info.supply, mint)
        problems += [f"certificate {row.id}: {line}" for line in lines]
    return problems


async def _ledger_state(ledger: Ledger, row: Certificate, supply: int, mint: Pubkey) -> list[str]:
    """Supply and holder on the ledger against the row's status and holder."""
    retired = row.status == Status.RETIRED
    if retired and supply != 0:
        return [f"recorded as retired but its supply on the ledger is {supply}"]
    if not retired and supply != 1:
        return [f"recorded as {row.status} but its supply on the ledger is {supply} (burned?)"]
    if retired:
        return []
    holder = Pubkey.from_string(row.holder_wallet)
    balance = await ledger.get_token_account_balance(await ledger.associated_address(holder, mint))
    if balance != 1:
        return [f"the ledger does not show it in the recorded holder's wallet {row.holder_wallet}"]
    return []
