"""The mint worker: drives outbox rows onto the ledger, exactly once.

One round (run by the leased "mint" duty, one holder across processes):
1. settle every transaction left `submitted` (a crash, a timeout): confirmed on the ledger ->
   confirm in the database; unknown -> resend the stored bytes; provably expired -> re-queue;
2. claim due pending rows, pack them into as few transactions as the ledger's limits allow (one
   mint per owner, the owner's token account created in the same transaction when missing, a memo
   with the SHA-256 of the readings covered), and for each transaction store its signed bytes and
   signature with the claim, in one commit, *before* sending;
3. send with a bounded number in flight, confirm, publish the events after the commit.
Claims and confirmations are conditional updates, so two workers (a lease handed over while its
old holder still runs) never mint a row twice: the loser's claim finds the rows taken.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.core.context import AppContext
from gridtokenx.core.lease import LeasedDuty
from gridtokenx.core.types import utcnow
from gridtokenx.events.bus import Event, Outbox
from gridtokenx.ledger import instructions as ix
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.ledger.errors import BlockhashExpired, TransactionFailed
from gridtokenx.ledger.interface import Ledger
from gridtokenx.ledger.packing import pack
from gridtokenx.ledger.records import PlannedTx
from gridtokenx.ledger.signing import TransactionSigner
from gridtokenx.tokenization.models import EntryState, Kind, MintDebt, MintEntry, MintTx, TxState
from gridtokenx.tokenization.rules import (
    CoveredReading,
    backoff_seconds,
    net_after_debt,
    readings_sha256,
    refusal,
    wh_to_units,
)
from gridtokenx.tokenization.tokens import energy_mint, units_per_wh
from gridtokenx.wallets.sealing import Sealer
from gridtokenx.wallets.service import custodial_signer, wallet_of

log = structlog.get_logger(__name__)

FAULT_ENV = "GRIDTOKENX_TOKENIZATION_FAULT"
"""Crash tests: `before_send`, `after_send` or `after_confirm` SIGKILLs the worker at that point."""

_MEMO_PLACEHOLDER = "0" * 64
WALLET_CACHE_S = 30.0


def memo_text(readings_sha256_hex: str, kind: Kind, tx_id: uuid.UUID) -> str:
    """The readings' hash, then the transaction row's id: a re-signed batch (after a failure the
    ledger remembers by signature) never repeats the bytes of the attempt before it."""
    return f"{ix.reading_hash_memo(readings_sha256_hex, kind.value)}:{tx_id.hex}"


class ClaimLost(Exception):
    """Another worker claimed (or settled) these rows first."""


@dataclass
class _Batch:
    """One transaction being prepared: its instructions, the rows it covers, its amounts."""

    kind: Kind
    instructions: list[Instruction] = field(default_factory=list)
    signers: list[Keypair] = field(default_factory=list)
    entries: list[MintEntry] = field(default_factory=list)
    ledger_units: dict[uuid.UUID, int] = field(default_factory=dict)
    netted: dict[uuid.UUID, int] = field(default_factory=dict)  # user -> debt settled instead of minted
    amount_units: int = 0


class Minter:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.units_per_wh = units_per_wh(ctx.settings)
        self._fault = os.environ.get(FAULT_ENV)
        self._signer: TransactionSigner | None = None
        self._program: Pubkey | None = None
        self._wallets: dict[uuid.UUID, tuple[Pubkey, float]] = {}
        self.woken = False

    # ---- one round ------------------------------------------------------------------------------
    async def round(self, token: int) -> float:
        """One round while holding the lease; returns the seconds until the next (0: more work)."""
        self.woken = False
        ledger = await self.ctx.services.get(LedgerHandle).get()
        mint = await energy_mint(ledger, self.settings)
        await self.settle_submitted(ledger)
        claimed = await self.mint_due(ledger, mint)
        if self.woken:  # a reading arrived during the round: its wake-up was spent on this one
            return 0.0
        return (
            0.0
            if claimed >= self.settings.tokenization_batch_size
            else self.settings.tokenization_polling_interval_secs
        )

    async def settle_submitted(self, ledger: Ledger) -> None:
        async with self.ctx.db.session() as session:
            rows = (
                await session.execute(
                    select(MintTx.id, MintTx.signature, MintTx.tx_bytes)
                    .where(MintTx.state == TxState.SUBMITTED.value)
                    .order_by(MintTx.created_at)
                )
            ).all()
        await self._in_flight(ledger, [(tx_id, Transaction.from_bytes(raw)) for tx_id, _, raw in rows])

    async def mint_due(self, ledger: Ledger, mint: Pubkey, only: Sequence[uuid.UUID] | None = None) -> int:
        """Claim due rows (or just `only`), sign, store, send; returns how many rows were claimed."""
        async with self.ctx.db.session() as session:
            query = select(MintEntry).where(MintEntry.state == EntryState.PENDING.value)
            if only is not None:
                query = query.where(MintEntry.id.in_(list(only)))
            else:
                query = query.where(MintEntry.next_attempt_at <= utcnow())
            due = list(
                (
                    await session.scalars(
                        query.order_by(MintEntry.created_at).limit(self.settings.tokenization_batch_size)
                    )
                ).all()
            )
            due = await self._refuse(session, due)
        if not due:
            return 0
        mints = [e for e in due if e.kind == Kind.MINT.value]
        burns = [e for e in due if e.kind == Kind.BURN.value]
        sent: list[tuple[uuid.UUID, Transaction]] = []
        if mints:
            sent += await self._prepare_mints(ledger, mint, mints)
        for burn in burns:
            prepared = await self._prepare_burn(ledger, mint, burn)
            if prepared is not None:
                sent.append(prepared)
        await self._in_flight(ledger, sent)
        return len(due)

    # ---- preparing ------------------------------------------------------------------------------
    async def _refuse(self, session: AsyncSession, due: list[MintEntry]) -> list[MintEntry]:
        """Rows a rule refuses (too large, too old, no owner) leave the queue here, for good."""
        kept: list[MintEntry] = []
        for entry in due:
            reason = refusal(
                entry.amount_wh,
                entry.interval_start,
                entry.created_at,
                self.settings.tokenization_max_reading_kwh,
                self.settings.tokenization_reading_max_age_days,
            )
            if entry.kind == Kind.MINT.value and reason is None and entry.user_id is None:
                reason = "METER_HAS_NO_OWNER"
            if reason is None or entry.kind == Kind.BURN.value:
                kept.append(entry)
                continue
            entry.state, entry.last_error = EntryState.SKIPPED.value, reason
        return kept

    async def _prepare_mints(
        self, ledger: Ledger, mint: Pubkey, entries: list[MintEntry]
    ) -> list[tuple[uuid.UUID, Transaction]]:
        sealer = self.ctx.services.get(Sealer)
        by_user: dict[uuid.UUID, list[MintEntry]] = defaultdict(list)
        for entry in entries:
            assert entry.user_id is not None
            by_user[entry.user_id].append(entry)
        async with self.ctx.db.session() as session:
            wallets = {user_id: await self._wallet(session, sealer, user_id) for user_id in by_user}
            debts = {
                d.user_id: d.units
                for d in await session.scalars(select(MintDebt).where(MintDebt.user_id.in_(list(by_user))))
            }
        program = (await ledger.get_mint(mint)).token_program if self._program is None else self._program
        self._program = program
        atas = {user: ix.associated_address(owner, mint, program) for user, owner in wallets.items()}
        existing = await ledger.get_multiple_accounts(list(atas.values()))
        missing = {ata for ata, account in zip(atas.values(), existing, strict=True) if account is None}
        authority = ledger.authority
        payer = ledger.fee_payer.pubkey()
        groups: list[PlannedTx] = []
        plans: list[tuple[uuid.UUID, int, int]] = []  # user, units to mint, debt netted
        settled_by_debt: list[tuple[uuid.UUID, list[MintEntry], int]] = []
        for user_id, rows in by_user.items():
            total = sum(wh_to_units(e.amount_wh, self.units_per_wh) for e in rows)
            to_mint, _ = net_after_debt(total, debts.get(user_id, 0))
            netted = total - to_mint
            if to_mint == 0:
                settled_by_debt.append((user_id, rows, netted))
                continue
            group: list[Instruction] = []
            if atas[user_id] in missing:
                group.append(ix.create_ata_idempotent(payer, wallets[user_id], mint, program))
            group.append(ix.mint_to(mint, atas[user_id], authority.pubkey(), total - netted, program))
            groups.append(PlannedTx(tuple(group), (authority,)))
            plans.append((user_id, total - netted, netted))
        for user_id, rows, netted in settled_by_debt:
            await self._settle_with_debt(user_id, rows, netted)
        if not groups:
            return []
        placeholder = ix.memo(payer, memo_text(_MEMO_PLACEHOLDER, Kind.MINT, uuid.UUID(int=0)))
        packed = pack(groups, payer, ledger.limits(), (placeholder,))
        batches: list[_Batch] = []
        cursor = 0
        for planned in packed:
            batch = _Batch(Kind.MINT)
            body = len(planned.instructions) - 1
            while body > 0:
                user_id, units, netted = plans[cursor]
                body -= len(groups[cursor].instructions)
                batch.instructions += groups[cursor].instructions
                batch.entries += by_user[user_id]
                batch.ledger_units.update(self._spread(by_user[user_id], netted))
                if netted:
                    batch.netted[user_id] = netted
                batch.amount_units += units
                cursor += 1
            batch.signers = [authority]
            batches.append(batch)
        return [
            prepared
            for batch in batches
            if (prepared := await self._store_signed(ledger, batch, wallets)) is not None
        ]

    async def _wallet(self, session: AsyncSession, sealer: Sealer, user_id: uuid.UUID) -> Pubkey:
        """The owner's wallet, remembered for WALLET_CACHE_S: two queries per owner per round were
        most of a round's time, and a newly linked wallet may wait that long for its first mint."""
        now = time.monotonic()
        cached = self._wallets.get(user_id)
        if cached is None or now - cached[1] > WALLET_CACHE_S:
            cached = self._wallets[user_id] = ((await wallet_of(session, sealer, user_id)).pubkey, now)
        return cached[0]

    def _spread(self, rows: list[MintEntry], netted: int) -> dict[uuid.UUID, int]:
        """What each row puts on chain once the owner's debt is netted, oldest row first."""
        out: dict[uuid.UUID, int] = {}
        for entry in rows:
            units = wh_to_units(entry.amount_wh, self.units_per_wh)
            taken = min(units, netted)
            netted -= taken
            out[entry.id] = units - taken
        return out

    async def _settle_with_debt(self, user_id: uuid.UUID, rows: list[MintEntry], netted: int) -> None:
        """The owner's debt swallows these mints whole: confirmed with nothing sent."""
        outbox = Outbox()
        async with self.ctx.db.session() as session:
            await _take_debt(session, user_id, netted)
            await self._claim(session, rows, EntryState.CONFIRMED, None, {e.id: 0 for e in rows}, None)
            for entry in rows:
                self._adjusted(outbox, entry, netted_wh=entry.amount_wh)
        await outbox.flush(self.ctx.bus)

    async def _prepare_burn(
        self, ledger: Ledger, mint: Pubkey, entry: MintEntry
    ) -> tuple[uuid.UUID, Transaction] | None:
        """Burn a correction down from a custodial owner who still holds it; otherwise it is a debt."""
        assert entry.user_id is not None
        units = wh_to_units(entry.amount_wh, self.units_per_wh)
        async with self.ctx.db.session() as session:
            owner = await custodial_signer(session, self.ctx.services.get(Sealer), entry.user_id)
            wallet = (await wallet_of(session, self.ctx.services.get(Sealer), entry.user_id)).pubkey
        balance = await ledger.get_token_balance(wallet, mint)
        if owner is None or balance < units:
            await self._record_debt(entry, units, str(wallet))
            return None
        info = await ledger.get_mint(mint)
        program, decimals = info.token_program, info.decimals
        batch = _Batch(Kind.BURN, entries=[entry], amount_units=units)
        batch.instructions = [
            ix.burn_checked(
                ix.associated_address(wallet, mint, program), mint, wallet, units, decimals, program
            )
        ]
        batch.signers = [owner]
        batch.ledger_units = {entry.id: units}
        return await self._store_signed(ledger, batch, {entry.user_id: wallet})

    async def _record_debt(self, entry: MintEntry, units: int, wallet: str) -> None:
        assert entry.user_id is not None
        outbox = Outbox()
        async with self.ctx.db.session() as session:
            claimed = await session.execute(
                update(MintEntry)
                .where(MintEntry.id == entry.id, MintEntry.state == EntryState.PENDING.value)
                .values(state=EntryState.DEBT.value, amount_units=units, ledger_units=0, wallet=wallet)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return
            debt = await session.get(MintDebt, entry.user_id)
            if debt is None:
                session.add(MintDebt(user_id=entry.user_id, units=units))
            else:
                debt.units += units
            self._adjusted(outbox, entry, debt_wh=entry.amount_wh)
        await outbox.flush(self.ctx.bus)

    async def _store_signed(
        self, ledger: Ledger, batch: _Batch, wallets: dict[uuid.UUID, Pubkey]
    ) -> tuple[uuid.UUID, Transaction] | None:
        """Sign once and store bytes + signature with the claim of the rows, before any send."""
        covered = [
            CoveredReading(e.meter_id, e.channel, e.interval_start, e.revision, e.amount_wh)
            for e in batch.entries
        ]
        digest = readings_sha256(covered)
        payer = ledger.fee_payer.pubkey()
        tx_id = uuid.uuid4()
        instructions = [
            *ledger.limits().prefix,
            *batch.instructions,
            ix.memo(payer, memo_text(digest, batch.kind, tx_id)),
        ]
        blockhash, last_valid = await ledger.latest_blockhash()
        tx = self._signer_for(ledger).sign(instructions, batch.signers, blockhash)
        try:
            async with self.ctx.db.session() as session:
                session.add(
                    MintTx(
                        id=tx_id,
                        kind=batch.kind.value,
                        signature=str(tx.signatures[0]),
                        tx_bytes=bytes(tx),
                        last_valid_height=last_valid,
                        memo_sha256=digest,
                        amount_units=batch.amount_units,
                        netted_units=sum(batch.netted.values()),
                    )
                )
                await session.flush()
                for user_id, netted in batch.netted.items():
                    await _take_debt(session, user_id, netted)
                await self._claim(
                    session, batch.entries, EntryState.SUBMITTED, tx_id, batch.ledger_units, wallets
                )
        except ClaimLost:
            log.info("mint_claim_lost", rows=len(batch.entries))
            return None
        log.info("mint_tx_stored", tx_id=str(tx_id), signature=str(tx.signatures[0]), rows=len(batch.entries))
        return tx_id, tx

    async def _claim(
        self,
        session: AsyncSession,
        rows: list[MintEntry],
        state: EntryState,
        tx_id: uuid.UUID | None,
        ledger_units: dict[uuid.UUID, int],
        wallets: dict[uuid.UUID, Pubkey] | None,
    ) -> None:
        """Move still-pending rows to `state`, or lose the claim whole: one UPDATE per owner for the
        rows that put their full amount on chain, one per row only where a debt was netted."""
        groups: dict[tuple[uuid.UUID | None, int | None], list[uuid.UUID]] = defaultdict(list)
        for entry in rows:
            full = ledger_units[entry.id] == wh_to_units(entry.amount_wh, self.units_per_wh)
            groups[(entry.user_id, None if full else ledger_units[entry.id])].append(entry.id)
        for (user_id, netted_units), ids in groups.items():
            units = MintEntry.amount_wh * self.units_per_wh
            values: dict[str, object] = {
                "state": state.value,
                "tx_id": tx_id,
                "attempts": MintEntry.attempts + 1,
                "amount_units": units,
                "ledger_units": units if netted_units is None else netted_units,
                "last_error": None,
            }
            if wallets is not None and user_id in wallets:
                values["wallet"] = str(wallets[user_id])
            for chunk in ([i] for i in ids) if netted_units is not None else [ids]:
                claimed = await session.execute(
                    update(MintEntry)
                    .where(MintEntry.id.in_(chunk), MintEntry.state == EntryState.PENDING.value)
                    .values(**values)
                )
                if claimed.rowcount != len(chunk):  # type: ignore[attr-defined]
                    raise ClaimLost("mint entries were claimed elsewhere")

    def _signer_for(self, ledger: Ledger) -> TransactionSigner:
        if self._signer is None or self._signer.fee_payer is not ledger.fee_payer:
            self._signer = TransactionSigner(ledger.fee_payer, ledger.authority)
        return self._signer

    # ---- sending and settling -------------------------------------------------------------------
    async def _in_flight(self, ledger: Ledger, txs: list[tuple[uuid.UUID, Transaction]]) -> None:
        gate = asyncio.Semaphore(self.settings.tokenization_max_in_flight)

        async def one(tx_id: uuid.UUID, tx: Transaction) -> None:
            async with gate:
                await self._drive(ledger, tx_id, tx)

        await asyncio.gather(*(one(tx_id, tx) for tx_id, tx in txs))

    async def _drive(self, ledger: Ledger, tx_id: uuid.UUID, tx: Transaction) -> None:
        """Send the stored bytes until the ledger confirms, fails or proves them expired."""
        signature = tx.signatures[0]
        status = await ledger.get_signature_status(signature)
        if status is None:
            self._crash_at("before_send")
            try:
                await ledger.send_transaction(tx)
            except BlockhashExpired:
                if await ledger.get_signature_status(signature) is None:
                    await self._expired(tx_id)
                    return
            except TransactionFailed as exc:
                await self._failed(tx_id, f"{exc.err}")
                return
            except Exception as exc:  # unreachable, timed out: the next round resends the same bytes
                log.warning("mint_send_unsettled", tx_id=str(tx_id), error=repr(exc))
                await self._note_error(tx_id, repr(exc))
                return
            self._crash_at("after_send")
            status = await ledger.get_signature_status(signature)
        if status is None:
            return
        if status.err is not None:
            await self._failed(tx_id, str(status.err))
            return
        self._crash_at("after_confirm")
        await self._confirmed(tx_id)

    def _crash_at(self, point: str) -> None:
        if self._fault == point:
            log.warning("mint_fault_injected", point=point)
            os.kill(os.getpid(), signal.SIGKILL)

    async def _confirmed(self, tx_id: uuid.UUID) -> None:
        outbox = Outbox()
        async with self.ctx.db.session() as session:
            done = await session.execute(
                update(MintTx)
                .where(MintTx.id == tx_id, MintTx.state == TxState.SUBMITTED.value)
                .values(state=TxState.CONFIRMED.value, confirmed_at=utcnow(), error=None)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return  # settled by another worker
            tx = await session.get(MintTx, tx_id)
            assert tx is not None
            rows = list(await session.scalars(select(MintEntry).where(MintEntry.tx_id == tx_id)))
            await session.execute(
                update(MintEntry).where(MintEntry.tx_id == tx_id).values(state=EntryState.CONFIRMED.value)
            )
            for entry in rows:
                if entry.kind == Kind.BURN.value:
                    self._adjusted(outbox, entry, burned_wh=entry.amount_wh, signature=tx.signature)
                    continue
                outbox.add(
                    "TokensMinted" if entry.revision == 0 else "MintAdjusted",
                    user_id=str(entry.user_id),
                    meter_id=str(entry.meter_id),
                    reading_id=entry.reading_id,
                    amount_wh=entry.amount_wh,
                    amount=str(entry.ledger_units or 0),
                    signature=tx.signature,
                )
        log.info("mint_tx_confirmed", tx_id=str(tx_id), rows=len(rows))
        await outbox.flush(self.ctx.bus)

    async def _expired(self, tx_id: uuid.UUID) -> None:
        """Provably never landed: its rows go back to the queue and are signed afresh."""
        await self._release(tx_id, TxState.EXPIRED, "blockhash expired before landing", backoff=False)

    async def _failed(self, tx_id: uuid.UUID, error: str) -> None:
        await self._release(tx_id, TxState.FAILED, error, backoff=True)

    async def _release(self, tx_id: uuid.UUID, state: TxState, error: str, *, backoff: bool) -> None:
        outbox = Outbox()
        async with self.ctx.db.session() as session:
            done = await session.execute(
                update(MintTx)
                .where(MintTx.id == tx_id, MintTx.state == TxState.SUBMITTED.value)
                .values(state=state.value, error=error[:500])
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return
            tx = await session.get(MintTx, tx_id)
            assert tx is not None
            rows = list(await session.scalars(select(MintEntry).where(MintEntry.tx_id == tx_id)))
            for user_id, netted in self._netted_by_user(rows).items():
                debt = await session.get(MintDebt, user_id)
                assert debt is not None
                debt.units += netted
            now = utcnow()
            limit = self.settings.tokenization_max_attempts
            for entry in rows:
                dead = backoff and entry.attempts >= limit
                wait = backoff_seconds(
                    entry.attempts,
                    self.settings.tokenization_backoff_base_secs,
                    self.settings.tokenization_backoff_max_secs,
                )
                entry.state = (EntryState.DEAD_LETTER if dead else EntryState.PENDING).value
                entry.tx_id = None
                entry.last_error = error[:500]
                entry.next_attempt_at = now + timedelta(seconds=wait if backoff else 0)
                if dead:
                    outbox.add(
                        "MintFailed",
                        user_id=str(entry.user_id),
                        meter_id=str(entry.meter_id),
                        reading_id=entry.reading_id,
                        amount_wh=entry.amount_wh,
                        error=error[:500],
                    )
        log.warning("mint_tx_released", tx_id=str(tx_id), state=state.value, error=error)
        await outbox.flush(self.ctx.bus)

    def _netted_by_user(self, rows: list[MintEntry]) -> dict[uuid.UUID, int]:
        netted: dict[uuid.UUID, int] = defaultdict(int)
        for entry in rows:
            if entry.kind == Kind.MINT.value and entry.user_id is not None:
                netted[entry.user_id] += (entry.amount_units or 0) - (entry.ledger_units or 0)
        return {user: units for user, units in netted.items() if units}

    async def _note_error(self, tx_id: uuid.UUID, error: str) -> None:
        async with self.ctx.db.session() as session:
            await session.execute(
                update(MintEntry).where(MintEntry.tx_id == tx_id).values(last_error=error[:500])
            )

    def _adjusted(self, outbox: Outbox, entry: MintEntry, **data: int | str) -> None:
        outbox.add(
            "MintAdjusted",
            user_id=str(entry.user_id),
            meter_id=str(entry.meter_id),
            reading_id=entry.reading_id,
            revision=entry.revision,
            **data,
        )


DUTY = "mint"


class MintDuty:
    """The leased mint worker plus its wake-up on every verified reading with energy to mint."""

    def __init__(self, ctx: AppContext, minter: Minter) -> None:
        self.ctx = ctx
        self.minter = minter
        self.lease = LeasedDuty(
            ctx.db, DUTY, minter.round, ttl=timedelta(seconds=ctx.settings.tokenization_lease_ttl_secs)
        )
        self._unsubscribe: Callable[[], None] | None = None

    async def _on_verified(self, event: Event) -> None:
        if event.data.get("mintable_wh"):
            self.minter.woken = True
            self.lease.wake()

    def wake(self) -> None:
        self.lease.wake()

    async def start(self) -> None:
        self._unsubscribe = self.ctx.bus.subscribe("MeterReadingVerified", self._on_verified)
        await self.lease.start()

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self.lease.stop()


async def _take_debt(session: AsyncSession, user_id: uuid.UUID, netted: int) -> None:
    """Net `netted` units off the owner's debt, or fail the claim if the debt changed meanwhile."""
    taken = await session.execute(
        update(MintDebt)
        .where(MintDebt.user_id == user_id, MintDebt.units >= netted)
        .values(units=MintDebt.units - netted)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise ClaimLost("debt changed under us")
