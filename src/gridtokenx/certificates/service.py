"""Certificate use cases that write: issue, transfer, retire, withdraw, expire (the reads are
in `queries.py`, public verification and the audit in `verification.py`).

Every ledger action follows one path: record it on the row as `pending` (with its idempotency
key) and commit, send it through the ledger (which signs once and stores the signed bytes before
sending, keyed by that key), then apply its outcome under the row's lock and publish the events
after that commit. A crash anywhere leaves a pending row that `resume_pending` finishes with the
same key, so nothing is signed twice and nothing is lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from solders.keypair import Keypair
from solders.pubkey import Pubkey
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.accounts.models import Role, User
from gridtokenx.accounts.rules import may_act_for
from gridtokenx.certificates import rules
from gridtokenx.certificates.mapping import certificate_out, expected_fields, period_of
from gridtokenx.certificates.models import Certificate, CertificateEvent, CertificateMeterLock
from gridtokenx.certificates.rules import Action, Period, RuleError, Status
from gridtokenx.certificates.schemas import CertificateOut
from gridtokenx.core.db import Database
from gridtokenx.core.errors import ApiError, Conflict, NotFound, Unprocessable
from gridtokenx.core.settings import Settings
from gridtokenx.core.types import utc_from_epoch, utcnow
from gridtokenx.events.bus import EventBus, Outbox
from gridtokenx.ledger import instructions as ix
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
            if actor is not None and not may_act_for(actor, meter.owner_id):
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
        self,
        certificate_id: uuid.UUID,
        actor: User,
        action: Action,
        prepare: Callable[[AsyncSession, Certificate], Awaitable[dict[str, Any]]],
    ) -> CertificateOut:
        """Check who may act and what the status allows, record the action, then send it."""
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
        """Send the row's pending ledger action (idempotent by its key), then apply its outcome.
        No transaction is held open while the ledger works."""
        async with self.db.sessionmaker() as session:
            row = await session.get(Certificate, certificate_id)
            if row is None:
                raise NotFound("no such certificate", code="CERTIFICATE_NOT_FOUND")
            pending = row.pending
            if pending is None:
                return row
            signer = None
            if Action(pending["action"]) in (Action.TRANSFERRED, Action.RETIRED):
                assert row.holder_id is not None
                signer = await custodial_signer(session, self.sealer, row.holder_id)
                if signer is None:
                    raise Conflict("the holder signs for this wallet", code="WALLET_NOT_CUSTODIAL")
            session.expunge(row)
        try:
            signature = await self._send(row, pending, signer)
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

    async def _send(self, row: Certificate, pending: dict[str, Any], signer: Keypair | None) -> str:
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
            holder = Pubkey.from_string(row.holder_wallet)
            issued = await ledger.issue_certificate(metadata, holder, idempotency_key=key)
            return str(issued.signatures[-1])
        if action is Action.WITHDRAWN:
            memo = ix.memo(ledger.fee_payer.pubkey(), f"gridtokenx erc withdrawn {row.mint}")
            return str(await ledger.submit([memo], idempotency_key=key))
        assert signer is not None
        if action is Action.TRANSFERRED:
            to = Pubkey.from_string(pending["to_wallet"])
            return str(await ledger.transfer_certificate(mint, signer, to, idempotency_key=key))
        return str(await ledger.retire_certificate(mint, signer, idempotency_key=key))

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
