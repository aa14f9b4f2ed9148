"""Certificate use cases: issue, transfer, retire, withdraw, expire, verify, list, match.

Every ledger action follows one path: record it on the row as `pending` (with its idempotency
key) and commit, send it through the ledger (which signs once and stores the signed bytes before
sending, keyed by that key), then apply its outcome under the row's lock and publish the events
after that commit. A crash anywhere leaves a pending row that `resume_pending` finishes with the
same key, so nothing is signed twice and nothing is lost.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from solders.pubkey import Pubkey
from sqlalchemy import func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.accounts.models import Role, User
from gridtokenx.certificates import rules
from gridtokenx.certificates.models import Certificate, CertificateEvent, CertificateMeterLock
from gridtokenx.certificates.rules import Action, Period, RuleError, Status
from gridtokenx.certificates.schemas import (
    CertificateDetail,
    CertificateOut,
    ExcludedReading,
    HistoryOut,
    HourMatchOut,
    MatchingOut,
    VerifyOut,
)
from gridtokenx.core.db import Database
from gridtokenx.core.errors import ApiError, Conflict, NotFound, Unprocessable
from gridtokenx.core.settings import Settings
from gridtokenx.core.types import utc_from_epoch, utcnow
from gridtokenx.events.bus import EventBus, Outbox
from gridtokenx.ledger import instructions as ix
from gridtokenx.ledger.accounts import NotATokenAccount
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.ledger.errors import LedgerError, LedgerUnavailable
from gridtokenx.ledger.interface import Ledger
from gridtokenx.ledger.records import CertificateMetadata
from gridtokenx.meters.models import Meter
from gridtokenx.meters.service import get_meter, list_meters
from gridtokenx.readings import queries as readings
from gridtokenx.wallets.sealing import Sealer
from gridtokenx.wallets.service import custodial_signer, user_of_wallet, wallet_of

EVENT_OF = {
    Action.ISSUED: "CertificateIssued",
    Action.TRANSFERRED: "CertificateTransferred",
    Action.RETIRED: "CertificateRetired",
    Action.WITHDRAWN: "CertificateWithdrawn",
}


def natural_key(meter_id: uuid.UUID, period: Period) -> str:
    return f"erc:{meter_id}:{period.start}:{period.end}"


def _epoch(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.microsecond:
        raise Unprocessable("certificate periods start and end on whole seconds", code="PERIOD_NOT_ALIGNED")
    return int(moment.timestamp())


def _refused(error: RuleError, status_code: int = 409) -> ApiError:
    return ApiError(error.message, code=error.code, status_code=status_code)


def period_of(row: Certificate) -> Period:
    return Period(int(row.period_start.timestamp()), int(row.period_end.timestamp()))


def expected_fields(row: Certificate) -> dict[str, str]:
    """The metadata the ledger must carry for this row."""
    return dict(
        rules.metadata_fields(
            facility_id=row.facility_id,
            energy_wh=row.energy_wh,
            period=period_of(row),
            technology=row.technology,
            country=row.country,
            zone=row.zone,
            readings_hash=row.readings_hash,
        )
    )


def certificate_out(row: Certificate) -> CertificateOut:
    return CertificateOut(
        id=row.id,
        meter_id=row.meter_id,
        facility_id=row.facility_id,
        period_start=row.period_start,
        period_end=row.period_end,
        energy_wh=row.energy_wh,
        technology=row.technology,
        country=row.country,
        zone=row.zone,
        readings_hash=row.readings_hash,
        mint=row.mint,
        status=row.status,
        owner_id=row.owner_id,
        holder_wallet=row.holder_wallet,
        transfers=row.transfers,
        issued_at=row.issued_at,
        excluded=[ExcludedReading(**item) for item in row.excluded],
        beneficiary=row.beneficiary,
        purpose=row.purpose,
        location=row.location,
        withdraw_reason=row.withdraw_reason,
    )


@dataclass(frozen=True)
class IssueConfig:
    settle_seconds: int
    expiry_seconds: int
    period_seconds: int
    technology: str
    country: str
    base_url: str

    @classmethod
    def from_settings(cls, settings: Settings) -> IssueConfig:
        return cls(
            settle_seconds=settings.erc_settle_seconds,
            expiry_seconds=settings.erc_expiry_seconds,
            period_seconds=settings.erc_period_seconds,
            technology=settings.erc_technology,
            country=settings.erc_country,
            base_url=settings.public_base_url.rstrip("/"),
        )


class Certificates:
    """The certificates service of one process (wired on the app context)."""

    def __init__(
        self, db: Database, bus: EventBus, ledger: LedgerHandle, sealer: Sealer, config: IssueConfig
    ):
        self.db = db
        self.bus = bus
        self.ledger_handle = ledger
        self.sealer = sealer
        self.config = config

    async def ledger(self) -> Ledger:
        return await self.ledger_handle.get()

    # ---- issuance ------------------------------------------------------------------------------
    async def issue(
        self, meter_id: uuid.UUID, start: datetime, end: datetime, *, actor: User | None
    ) -> CertificateOut:
        """Certify a settled period of a meter's measured generation, at most once ever.

        `actor` None is the auto-issuance duty; an admin may issue for any meter, an owner only
        for their own."""
        ledger = await self.ledger()
        async with self.db.sessionmaker() as session:
            meter = await get_meter(session, meter_id)
            if actor is not None and actor.role != Role.ADMIN and meter.owner_id != actor.id:
                raise NotFound("no such meter", code="METER_NOT_FOUND")
            if meter.owner_id is None:
                raise Conflict("the meter has no owner to issue to", code="METER_UNCLAIMED")
            try:
                period = rules.check_period(_epoch(start), _epoch(end), meter.interval_seconds)
            except RuleError as error:
                raise _refused(error, 422) from None
            if not rules.settled(period, int(utcnow().timestamp()), self.config.settle_seconds):
                raise Conflict(
                    f"readings may still arrive until {self.config.settle_seconds} s after the period ends",
                    code="PERIOD_NOT_SETTLED",
                )
            await _lock_meter(session, meter.id)
            await _refuse_overlap(session, meter.id, period)
            found = await readings.generation_for_period(
                session, meter.id, utc_from_epoch(period.start), utc_from_epoch(period.end)
            )
            counted = [r for r in found if r.counted]
            excluded = [
                {
                    "reading_id": r.id,
                    "interval_start": utc_from_epoch(r.interval_start).isoformat(),
                    "reason": r.excluded,
                }
                for r in found
                if not r.counted
            ]
            energy_wh = sum(r.generation_wh for r in counted)
            if energy_wh <= 0:
                raise Unprocessable(
                    "no measured, device-signed, unflagged generation in this period",
                    code="NO_CERTIFIABLE_GENERATION",
                    details={"excluded": excluded},
                )
            wallet = await wallet_of(session, self.sealer, meter.owner_id)
            key = natural_key(meter.id, period)
            row = Certificate(
                id=uuid.uuid4(),
                meter_id=meter.id,
                owner_id=meter.owner_id,
                period_start=utc_from_epoch(period.start),
                period_end=utc_from_epoch(period.end),
                energy_wh=energy_wh,
                readings_hash=rules.readings_hash(r.canonical for r in counted),
                reading_ids=[r.id for r in counted],
                excluded=excluded,
                facility_id=meter.serial,
                technology=self.config.technology,
                country=self.config.country,
                zone="" if meter.zone_id is None else str(meter.zone_id),
                mint=str(ledger.derive_keypair("certificate", key).pubkey()),
                status=Status.PENDING,
                holder_id=meter.owner_id,
                holder_wallet=wallet.address,
                transfers=0,
                issued_by=None if actor is None else actor.id,
                pending={"action": Action.ISSUED, "key": key},
            )
            session.add(row)
            await session.commit()
        return certificate_out(await self._finish(row.id))

    async def issue_settled(self, lookback: timedelta) -> int:
        """Auto issuance: every settled, uncertified period of every owned meter in the window."""
        now = int(utcnow().timestamp())
        length = self.config.period_seconds
        window_end = now - self.config.settle_seconds
        window_start = window_end - int(lookback.total_seconds())
        issued = 0
        async with self.db.sessionmaker() as session:
            meters = [m for m in await list_meters(session) if m.owner_id is not None]
        for meter in meters:
            for period in await self._candidates(meter, window_start, window_end, length):
                try:
                    await self.issue(
                        meter.id, utc_from_epoch(period.start), utc_from_epoch(period.end), actor=None
                    )
                except ApiError:  # raced by a manual issuance, or nothing certifiable after all
                    continue
                issued += 1
        return issued

    async def _candidates(self, meter: Meter, start: int, end: int, length: int) -> list[Period]:
        if length % meter.interval_seconds:
            return []
        periods = rules.aligned_periods(start, end, length)
        if not periods:
            return []
        async with self.db.sessionmaker() as session:
            taken = [
                period_of(row)
                for row in await session.scalars(
                    select(Certificate).where(
                        Certificate.meter_id == meter.id,
                        Certificate.period_end > utc_from_epoch(periods[0].start),
                        Certificate.period_start < utc_from_epoch(periods[-1].end),
                    )
                )
            ]
            found = await readings.generation_for_period(
                session, meter.id, utc_from_epoch(periods[0].start), utc_from_epoch(periods[-1].end)
            )
        with_energy = {
            r.interval_start - r.interval_start % length for r in found if r.counted and r.generation_wh
        }
        return [p for p in periods if p.start in with_energy and rules.first_overlap(p, taken) is None]

    # ---- lifecycle -----------------------------------------------------------------------------
    async def transfer(self, certificate_id: uuid.UUID, actor: User, to_wallet: str) -> CertificateOut:
        try:
            Pubkey.from_string(to_wallet)
        except ValueError:
            raise Unprocessable(
                f"{to_wallet!r} is not a base58 Solana address", code="WALLET_ADDRESS_INVALID"
            ) from None

        async def prepare(session: AsyncSession, row: Certificate) -> dict[str, Any]:
            if to_wallet == row.holder_wallet:
                raise Unprocessable("the certificate is already in that wallet", code="SAME_WALLET")
            recipient = await user_of_wallet(session, to_wallet)
            return {
                "to_wallet": to_wallet,
                "to_user": None if recipient is None else str(recipient),
                "key": f"erc:{row.id}:transfer:{row.transfers + 1}",
            }

        return await self._act(certificate_id, actor, Action.TRANSFERRED, prepare)

    async def retire(
        self, certificate_id: uuid.UUID, actor: User, beneficiary: str, purpose: str, location: str | None
    ) -> CertificateOut:
        async def prepare(session: AsyncSession, row: Certificate) -> dict[str, Any]:
            return {
                "beneficiary": beneficiary,
                "purpose": purpose,
                "location": location,
                "key": f"erc:{row.id}:retire",
            }

        return await self._act(certificate_id, actor, Action.RETIRED, prepare)

    async def withdraw(self, certificate_id: uuid.UUID, actor: User, reason: str) -> CertificateOut:
        async def prepare(session: AsyncSession, row: Certificate) -> dict[str, Any]:
            return {"reason": reason, "key": f"erc:{row.id}:withdraw"}

        return await self._act(certificate_id, actor, Action.WITHDRAWN, prepare)

    async def _act(
        self, certificate_id: uuid.UUID, actor: User, action: Action, prepare: Any
    ) -> CertificateOut:
        await self._finish(certificate_id)  # an earlier action left half-done goes first
        async with self.db.sessionmaker() as session:
            row = await _locked(session, certificate_id)
            if action is Action.WITHDRAWN:
                if actor.role != Role.ADMIN:
                    raise NotFound("no such certificate", code="CERTIFICATE_NOT_FOUND")
            elif row.holder_id != actor.id:
                raise NotFound("no such certificate", code="CERTIFICATE_NOT_FOUND")
            try:
                rules.transition(Status(row.status), action)
            except RuleError as error:
                raise _refused(error) from None
            if (
                action is not Action.WITHDRAWN
                and await custodial_signer(session, self.sealer, actor.id) is None
            ):
                raise Conflict(
                    "the certificate is in a wallet you hold the keys of; sign the transfer yourself",
                    code="WALLET_NOT_CUSTODIAL",
                )
            row.pending = {"action": action, "actor": str(actor.id), **await prepare(session, row)}
            await session.commit()
        return certificate_out(await self._finish(certificate_id))

    async def _finish(self, certificate_id: uuid.UUID) -> Certificate:
        """Send the row's pending ledger action (idempotent by its key), then apply its outcome."""
        async with self.db.sessionmaker() as session:
            row = await session.get(Certificate, certificate_id)
            if row is None:
                raise NotFound("no such certificate", code="CERTIFICATE_NOT_FOUND")
            pending = row.pending
            if pending is None:
                return row
            try:
                signature = await self._send(session, row, pending)
            except LedgerUnavailable:
                raise ApiError(
                    "the ledger is unavailable; the action is kept and will be completed",
                    code="LEDGER_UNAVAILABLE",
                    status_code=503,
                ) from None
            except LedgerError as error:
                await self._drop(certificate_id, pending)
                raise ApiError(
                    f"the ledger refused the {pending['action']} action",
                    code="LEDGER_REJECTED",
                    status_code=502,
                    details={"error": str(error)},
                ) from None
        outbox = Outbox()
        async with self.db.sessionmaker() as session:
            row = await _locked(session, certificate_id)
            if row.pending == pending:  # else a concurrent finisher applied it already
                self._apply(session, row, pending, signature, outbox)
                await session.commit()
        await outbox.flush(self.bus)
        return row

    async def _drop(self, certificate_id: uuid.UUID, pending: dict[str, Any]) -> None:
        """Forget an action the ledger refused for good (a refused issuance frees its period)."""
        async with self.db.sessionmaker() as session:
            row = await _locked(session, certificate_id)
            if row.pending == pending:
                if row.status == Status.PENDING:
                    await session.delete(row)
                else:
                    row.pending = None
                await session.commit()

    async def _send(self, session: AsyncSession, row: Certificate, pending: dict[str, Any]) -> str:
        ledger = await self.ledger()
        action, key = Action(pending["action"]), pending["key"]
        mint = Pubkey.from_string(row.mint)
        if action is Action.ISSUED:
            metadata = CertificateMetadata(
                name=rules.NAME,
                symbol=rules.SYMBOL,
                uri=f"{self.config.base_url}/api/erc/{row.id}/verify",
                fields=tuple(expected_fields(row).items()),
            )
            issued = await ledger.issue_certificate(
                metadata, Pubkey.from_string(row.holder_wallet), idempotency_key=key
            )
            return str(issued.signatures[-1])
        if action is Action.WITHDRAWN:
            memo = ix.memo(ledger.fee_payer.pubkey(), f"gridtokenx erc withdrawn {row.mint}")
            return str(await ledger.submit([memo], idempotency_key=key))
        assert row.holder_id is not None
        owner = await custodial_signer(session, self.sealer, row.holder_id)
        if owner is None:
            raise Conflict("the holder signs for this wallet", code="WALLET_NOT_CUSTODIAL")
        if action is Action.TRANSFERRED:
            to = Pubkey.from_string(pending["to_wallet"])
            return str(await ledger.transfer_certificate(mint, owner, to, idempotency_key=key))
        return str(await ledger.retire_certificate(mint, owner, idempotency_key=key))

    def _apply(
        self, session: AsyncSession, row: Certificate, pending: dict[str, Any], signature: str, outbox: Outbox
    ) -> None:
        action = Action(pending["action"])
        actor = pending.get("actor")
        from_wallet: str | None = row.holder_wallet
        to_wallet: str | None = None
        previous_holder = row.holder_id
        row.status = rules.transition(Status(row.status), action)
        row.pending = None
        details: dict[str, Any] = {}
        if action is Action.ISSUED:
            row.issued_at = utcnow()
            from_wallet, to_wallet = None, row.holder_wallet
            details = {"energy_wh": row.energy_wh, "excluded": len(row.excluded)}
        elif action is Action.TRANSFERRED:
            to_wallet = pending["to_wallet"]
            row.holder_wallet = to_wallet
            row.holder_id = None if pending["to_user"] is None else uuid.UUID(pending["to_user"])
            row.transfers += 1
        elif action is Action.RETIRED:
            row.retired_by = uuid.UUID(actor)
            row.beneficiary, row.purpose, row.location = (
                pending["beneficiary"],
                pending["purpose"],
                pending["location"],
            )
            row.closed_at = utcnow()
            details = {"beneficiary": row.beneficiary, "purpose": row.purpose, "location": row.location}
        elif action is Action.WITHDRAWN:
            row.withdraw_reason = pending["reason"]
            row.closed_at = utcnow()
            details = {"reason": row.withdraw_reason}
        session.add(
            CertificateEvent(
                certificate_id=row.id,
                action=action,
                actor_id=None if actor is None else uuid.UUID(actor),
                from_wallet=from_wallet,
                to_wallet=to_wallet,
                signature=signature,
                details=details,
            )
        )
        data: dict[str, Any] = {
            "certificate_id": str(row.id),
            "user_id": str(previous_holder or row.owner_id),
            "meter_id": str(row.meter_id),
            "mint": row.mint,
            "energy_wh": row.energy_wh,
            "period_start": row.period_start.isoformat(),
            "period_end": row.period_end.isoformat(),
            "signature": signature,
        }
        if action is Action.TRANSFERRED:
            data.update(to_wallet=to_wallet, to_user_id=pending["to_user"])
        outbox.add(EVENT_OF[action], **data)

    async def resume_pending(self) -> int:
        """Finish every action a crash or a ledger outage left half-done."""
        async with self.db.sessionmaker() as session:
            ids = list(await session.scalars(select(Certificate.id).where(Certificate.pending.is_not(None))))
        for certificate_id in ids:
            await self._finish(certificate_id)
        return len(ids)

    async def expire_due(self) -> int:
        """Mark active certificates older than the configured age as expired (history rows too)."""
        if self.config.expiry_seconds <= 0:
            return 0
        cutoff = utcnow() - timedelta(seconds=self.config.expiry_seconds)
        async with self.db.sessionmaker() as session:
            rows = list(
                await session.scalars(
                    select(Certificate)
                    .where(
                        Certificate.status == Status.ACTIVE,
                        Certificate.pending.is_(None),
                        Certificate.period_end <= cutoff,
                    )
                    .with_for_update(skip_locked=True)
                )
            )
            for row in rows:
                row.status = rules.transition(Status.ACTIVE, Action.EXPIRED)
                row.closed_at = utcnow()
                session.add(CertificateEvent(certificate_id=row.id, action=Action.EXPIRED, details={}))
            await session.commit()
        return len(rows)

    # ---- reads ---------------------------------------------------------------------------------
    async def page(
        self,
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
        query = select(Certificate).where(
            or_(Certificate.holder_id == user.id, Certificate.owner_id == user.id)
        )
        if status:
            query = query.where(Certificate.status == status)
        if meter_id:
            query = query.where(Certificate.meter_id == meter_id)
        if start:
            query = query.where(Certificate.period_end > start)
        if end:
            query = query.where(Certificate.period_start < end)
        async with self.db.sessionmaker() as session:
            total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = await session.scalars(
                query.order_by(Certificate.period_start.desc(), Certificate.id).limit(limit).offset(offset)
            )
            return [certificate_out(row) for row in rows], int(total)

    async def detail(self, certificate_id: uuid.UUID, user: User) -> CertificateDetail:
        async with self.db.sessionmaker() as session:
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

    async def matching(self, user: User, start: datetime, end: datetime) -> MatchingOut:
        """Hourly matching for a consumer: their consumption beside the certified energy retired
        for them in the same hour."""
        async with self.db.sessionmaker() as session:
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

    # ---- verification --------------------------------------------------------------------------
    async def verify(self, *, certificate_id: uuid.UUID | None = None, mint: str | None = None) -> VerifyOut:
        """Read the certificate from the ledger and check it against the platform's records and
        the readings behind it; every disagreement is a reason it is invalid."""
        async with self.db.sessionmaker() as session:
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
            current = None
            if row is not None:
                current = await readings.canonical_by_ids(session, row.meter_id, row.reading_ids)
        return await self._check(address, row, current)

    async def _check(
        self, mint: Pubkey, row: Certificate | None, current: dict[str, bytes] | None
    ) -> VerifyOut:
        ledger = await self.ledger()
        reasons: list[str] = []
        try:
            info = await ledger.get_certificate(mint)
        except NotATokenAccount:
            raise NotFound("that address is not a certificate", code="CERTIFICATE_NOT_FOUND") from None
        if info is None and row is None:
            raise NotFound("no such certificate", code="CERTIFICATE_NOT_FOUND")
        on_ledger = {} if info is None else dict(info.metadata.fields)
        owner: str | None = None
        recomputed: str | None = None
        if row is None:
            reasons.append("the platform has no record of this certificate")
        elif info is None:
            reasons.append(
                "pending: not on the ledger yet"
                if row.status == Status.PENDING
                else "not found on the ledger"
            )
        else:
            differences = rules.field_differences(expected_fields(row), on_ledger)
            if differences:
                reasons.append("database record disagrees with the ledger on: " + ", ".join(differences))
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
        return VerifyOut(
            valid=not reasons,
            reasons=reasons,
            certificate_id=None if row is None else row.id,
            mint=str(mint),
            status=None if row is None else row.status,
            owner=owner,
            supply=None if info is None else info.supply,
            metadata={
                "name": info.metadata.name,
                "symbol": info.metadata.symbol,
                "uri": info.metadata.uri,
                **on_ledger,
            }
            if info is not None
            else {},
            readings_hash_on_ledger=on_ledger.get("readings_hash"),
            readings_hash_recomputed=recomputed,
        )

    async def audit(self) -> list[str]:
        """Every issued certificate compared with the ledger (fields, supply, holder)."""
        ledger = await self.ledger()
        problems: list[str] = []
        async with self.db.sessionmaker() as session:
            rows = list(
                await session.scalars(select(Certificate).where(Certificate.status != Status.PENDING))
            )
        for row in rows:
            mint = Pubkey.from_string(row.mint)
            try:
                info = await ledger.get_certificate(mint)
            except NotATokenAccount:
                info = None
            if info is None:
                problems.append(f"certificate {row.id}: mint {row.mint} not on the ledger")
                continue
            differences = rules.field_differences(expected_fields(row), dict(info.metadata.fields))
            if differences:
                problems.append(f"certificate {row.id}: ledger disagrees on {', '.join(differences)}")
            problems += [
                f"certificate {row.id}: {line}"
                for line in await _ledger_state(ledger, row, info.supply, mint)
            ]
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


async def _lock_meter(session: AsyncSession, meter_id: uuid.UUID) -> None:
    """Serialise issuance per meter (see `CertificateMeterLock`): one upsert, held until commit."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(CertificateMeterLock)
        .values(meter_id=meter_id, issued=1)
        .on_conflict_do_update(index_elements=["meter_id"], set_={"issued": CertificateMeterLock.issued + 1})
    )
    await session.execute(statement)


async def _refuse_overlap(session: AsyncSession, meter_id: uuid.UUID, period: Period) -> None:
    clash = await session.scalar(
        select(Certificate).where(
            Certificate.meter_id == meter_id,
            Certificate.period_start < utc_from_epoch(period.end),
            Certificate.period_end > utc_from_epoch(period.start),
        )
    )
    if clash is None:
        return
    if period_of(clash) == period:
        raise Conflict("this period of the meter is already certified", code="CERTIFICATE_EXISTS")
    raise Conflict(
        f"the period overlaps certificate {clash.id} ({period_of(clash).label()})",
        code="PERIOD_OVERLAPS",
        details={"certificate_id": str(clash.id)},
    )


async def _locked(session: AsyncSession, certificate_id: uuid.UUID) -> Certificate:
    row = await session.scalar(select(Certificate).where(Certificate.id == certificate_id).with_for_update())
    if row is None:
        raise NotFound("no such certificate", code="CERTIFICATE_NOT_FOUND")
    return row
