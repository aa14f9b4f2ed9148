"""The one ingest pipeline every transport ends in: authenticate → VEE → idempotent store → events.

HTTP single, HTTP batch, the compatibility routes (and MQTT) hand over parsed `Reading`s (or the
`ReadingError` an item failed to parse with). One call handles a whole batch in one
transaction: meters, device keys, ingest state and neighbouring values are loaded with a handful
of queries, every item gets its own verdict (`ingest_results`), and events are published only
after the commit.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from msgspec.structs import replace
from nacl.signing import VerifyKey
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.accounts.models import User
from gridtokenx.accounts.rules import may_act_for
from gridtokenx.core.db import Database
from gridtokenx.core.types import last_use_due, utc_from_epoch, utcnow
from gridtokenx.events.bus import EventBus, Outbox
from gridtokenx.meters.facts import KeyFacts, MeterFacts, keys_by_meter, mark_keys_used, meters_by_serial
from gridtokenx.meters.models import Meter, MeterStatus
from gridtokenx.meters.rules import attested_mintable
from gridtokenx.readings import vee
from gridtokenx.readings.errors import ReadingError, http_status
from gridtokenx.readings.ingest_metrics import count_verdicts, observe_batch, rejection_owners
from gridtokenx.readings.ingest_results import ItemResult, ItemStatus, iso, reject
from gridtokenx.readings.ingest_state import (
    LastReading,
    MeterState,
    epoch_or_none,
    last_reading,
    lock_states,
    save_states,
)
from gridtokenx.readings.intervals import MAX_ESTIMATED_GAP_S, assign_interval, estimate_gap
from gridtokenx.readings.partitions import PartitionManager
from gridtokenx.readings.reading import Flag, Reading, Source, Trust
from gridtokenx.readings.signature_verdicts import FAILURES as SIGNATURE_FAILURES
from gridtokenx.readings.signature_verdicts import SignatureVerdict, verdict
from gridtokenx.readings.slot_history import SlotKey, quantities_with_energy, same_slot_medians
from gridtokenx.readings.store import (
    Existing,
    Key,
    NewReading,
    StoreStatus,
    load_existing,
    store_readings,
)
from gridtokenx.readings.ticks import insert_ticks, is_tick, load_ticks

VERIFY_SLICE = 64  # signatures verified between two yields to the event loop


@dataclass(frozen=True)
class Submitter:
    """Who hands the readings over: a user (JWT) or an API key's owner. Admins (the utility's
    head-end) may report for any meter, everyone else for the meters they own."""

    user: User | None
    device_only: bool = False  # a transport where the device signature is the only credential (MQTT)

    def may_submit_for(self, meter: Meter | MeterFacts) -> bool:
        if self.device_only:
            return True  # native readings must carry a valid device signature anyway
        if self.user is None:
            return False
        return may_act_for(self.user, meter.owner_id)


BeforeCommit = Callable[[AsyncSession, list[ItemResult]], Awaitable[None]]
"""Extra writes in a batch's transaction, given its results (raise to roll the batch back)."""


class IngestPipeline:
    """Shared by every transport of one process; keeps verify keys and partitions cached."""

    def __init__(self, db: Database, bus: EventBus, vee_config: vee.VeeConfig, network_id: str) -> None:
        self.db = db
        self.bus = bus
        self.vee_config = vee_config
        self.network_id = network_id
        self.partitions = PartitionManager(db)
        self._verify_keys: dict[str, VerifyKey] = {}

    async def ingest(
        self,
        submitter: Submitter,
        items: Sequence[Reading | ReadingError],
        before_commit: BeforeCommit | None = None,
        received_at: int | None = None,
    ) -> list[ItemResult]:
        """Native readings must carry a valid device signature; the compatibility shapes may, and
        are gateway-attested when they do not. `before_commit` writes in the batch's own
        transaction (a job's status commits with its readings, or neither does); `received_at`
        (epoch seconds) judges the readings as of when they were accepted, for a queued job run
        later (their `expires` window was checked against that moment).

        On SQLite the batches queue on the database's writer lock (one writer; it also keeps the
        per-meter state consistent) before they take a connection."""
        async with self.db.writing():
            return await self._ingest(submitter, items, before_commit, received_at)

    async def _ingest(
        self,
        submitter: Submitter,
        items: Sequence[Reading | ReadingError],
        before_commit: BeforeCommit | None,
        received_at: int | None,
    ) -> list[ItemResult]:
        # Partitions are created before the batch's transaction opens: creating one while that
        # transaction holds locks on the readings table would wait on ourselves.
        readings = [item for item in items if isinstance(item, Reading)]
        hours = {r.interval_start // 3600 for r in readings} | {r.observed_at // 3600 for r in readings}
        moments = {
            utc_from_epoch(hour * 3600 - delta) for hour in hours for delta in (0, MAX_ESTIMATED_GAP_S)
        }
        await self.partitions.ensure_for(sorted(moments))
        outbox = Outbox()
        started = time.perf_counter()
        async with self.db.session() as session:
            results = await _Batch(self, session, submitter, items, outbox, before_commit, received_at).run()
        observe_batch(results, time.perf_counter() - started)
        await outbox.flush(self.bus)
        return results

    def verify_key(self, public_hex: str) -> VerifyKey:
        key = self._verify_keys.get(public_hex)
        if key is None:
            key = self._verify_keys[public_hex] = VerifyKey(bytes.fromhex(public_hex))
        return key


class _Batch:
    """One batch's unit of work (one transaction)."""

    def __init__(
        self,
        pipeline: IngestPipeline,
        session: AsyncSession,
        submitter: Submitter,
        items: Sequence[Reading | ReadingError],
        outbox: Outbox,
        before_commit: BeforeCommit | None = None,
        received_at: int | None = None,
    ) -> None:
        self.p = pipeline
        self.before_commit = before_commit
        self.session = session
        self.submitter = submitter
        self.items = items
        self.outbox = outbox
        self.results: list[ItemResult | None] = [None] * len(items)
        self.existing: dict[Key, Existing] = {}
        self.meter_ids: dict[str, uuid.UUID] = {}
        self.latest: dict[uuid.UUID, datetime | None] = {}  # each meter's latest stored interval, at start
        self.stored_trust: dict[tuple[uuid.UUID, int, int], Trust] = {}  # of the measured versions known
        self.pending_duplicates: dict[int, Reading] = {}  # resent ticks, as their stored interval
        self.now = int(utcnow().timestamp()) if received_at is None else received_at

    async def run(self) -> list[ItemResult]:
        readings = self._parsed()
        meters = await meters_by_serial(self.session, {r.meter_serial for _, r in readings})
        self.meter_ids = meter_ids = {serial: meter.id for serial, meter in meters.items()}
        readings = self._authorised(readings, meters)
        keys = await keys_by_meter(self.session, [m.id for m in meters.values()])
        readings = await self._authenticated(readings, keys)
        meters_read = sorted({meter_ids[r.meter_serial] for _, r in readings})
        states = await lock_states(self.session, meters_read, self.p.vee_config.replay_window)
        stored = await self._stored(readings, states)
        medians = await self._medians(readings, states)
        attested_ok = self._attested_policy(meters, keys)
        contexts = self._meter_contexts(meters, attested_ok)

        ticks = await load_ticks(
            self.session, {(meter_ids[r.meter_serial], r.interval_start) for _, r in readings if is_tick(r)}
        )
        new_ticks: list[tuple[uuid.UUID, Reading]] = []

        to_store: list[tuple[int, Reading, vee.VeeOutcome]] = []
        no_medians: dict[str, int] = {}
        for index, reading in sorted(
            readings, key=lambda ir: (ir[1].meter_serial, ir[1].interval_start, ir[0])
        ):
            meter_id = meter_ids[reading.meter_serial]
            state = states[meter_id]
            key = (meter_id, reading.channel, reading.interval_start)
            tick, interval = None, None
            if is_tick(reading):
                # a compatibility reading is one instant's delta: judge its interval's new sum
                tick, interval = reading, ticks[(meter_id, reading.interval_start)]
                verdict = interval.verdict(tick)
                if verdict == "conflict":
                    message = "another reading of this meter at this instant is already stored"
                    self.results[index] = reject(index, "TICK_CONFLICT", message, 409)
                    continue
                if verdict == "duplicate" and (known := stored.get(key)) is not None:
                    # an identical resend: acknowledged as the stored interval, nothing written
                    trust = self.stored_trust.get(key, tick.trust)
                    self.pending_duplicates[index] = replace(tick, trust=trust, **known)
                    continue
                reading = interval.total(tick, including=verdict == "new")
            base = contexts[reading.meter_serial]
            ctx = replace(
                base,
                replay=state.replay,
                stored=stored.get(key),
                stored_trust=self.stored_trust.get(key),
                previous_registers=state.registers(base.interval_s),
                same_slot_median=medians.get(key, no_medians),
                recent_values=state.recent,
            )
            outcome = vee.evaluate(reading, ctx, self.p.vee_config)
            if outcome.rejection is not None:
                rejection = outcome.rejection
                status = _VEE_STATUS.get(rejection.code, 422)
                self.results[index] = reject(index, rejection.code.value, rejection.message, status)
                continue
            state.replay = outcome.next_replay
            if tick is not None and interval is not None:
                interval.accept(tick)
                new_ticks.append((meter_id, tick))
                outcome = replace(outcome, flags=outcome.flags - {Flag.REVISED})  # a sum, not an edit
            if outcome.write is vee.WriteAction.NOOP:
                continue  # decided by the store below, which also yields the stored id
            stored[key] = reading.stored_values()
            self.stored_trust[key] = reading.trust
            to_store.append((index, reading, outcome))
            state.remember(reading)
        storing = {index for index, _, _ in to_store}
        duplicates = [
            (i, self.pending_duplicates.get(i, r))
            for i, r in readings
            if self.results[i] is None and i not in storing
        ]
        await insert_ticks(self.session, new_ticks)
        estimates = self._estimates(to_store, meters, states)
        await self._store(to_store, duplicates, estimates, meters)
        await save_states(self.session, states)
        results = [r for r in self.results if r is not None]
        if self.before_commit is not None:
            await self.before_commit(self.session, results)
        await self.session.commit()
        self._events(meters)
        return results

    # --- steps ---------------------------------------------------------------------------------

    def _parsed(self) -> list[tuple[int, Reading]]:
        readings = []
        for index, item in enumerate(self.items):
            if isinstance(item, ReadingError):
                self.results[index] = reject(
                    index, item.code.value, item.message, http_status(item.code), item.path
                )
            else:
                readings.append((index, item))
        return readings

    def _authorised(
        self, readings: list[tuple[int, Reading]], meters: dict[str, MeterFacts]
    ) -> list[tuple[int, Reading]]:
        kept = []
        allowed = {serial: self.submitter.may_submit_for(meter) for serial, meter in meters.items()}
        for index, reading in readings:
            meter = meters.get(reading.meter_serial)
            if meter is None:
                self.results[index] = reject(
                    index, "METER_NOT_FOUND", f"unknown meter {reading.meter_serial!r}", 404
                )
            elif not allowed[reading.meter_serial]:
                self.results[index] = reject(
                    index, "METER_NOT_OWNED", "this meter is not yours to report for", 403
                )
            else:
                if reading.source is not Source.NATIVE and reading.duration != meter.interval_seconds:
                    reading = assign_interval(reading, meter.interval_seconds)
                kept.append((index, reading))
        return kept

    async def _authenticated(
        self,
        readings: list[tuple[int, Reading]],
        keys: dict[uuid.UUID, list[KeyFacts]],
    ) -> list[tuple[int, Reading]]:
        """Verify signatures and set trust.

        Ed25519 is the costliest step, yet it runs on the event loop, in slices of VERIFY_SLICE
        readings with a yield in between, not in a worker thread: PyNaCl drops the GIL for every
        signature, and a thread taking it back from the busy loop a thousand times a batch costs
        more than it saves (figures: docs/decisions/2026-12-04-ingest-hot-path-figures.md)."""
        # each key's facts gathered once per batch, not once per reading
        known = {
            meter_id: [(k.key_id, k, self.p.verify_key(k.public_key)) for k in meter_keys]
            for meter_id, meter_keys in keys.items()
        }
        jobs = []
        meter_ids = self.meter_ids
        # the keys that may have signed: one list per (meter, key_id), shared by its readings
        candidates_of: dict[tuple[uuid.UUID, str | None], list[tuple[KeyFacts, VerifyKey]]] = {}
        for index, reading in readings:
            signed_at = reading.created if reading.created is not None else reading.observed_at
            wanted = (meter_ids[reading.meter_serial], reading.key_id)
            candidates = candidates_of.get(wanted)
            if candidates is None:
                candidates = candidates_of[wanted] = [
                    candidate[1:]
                    for candidate in known.get(wanted[0], ())
                    if wanted[1] is None or candidate[0] == wanted[1]
                ]
            jobs.append((index, reading, utc_from_epoch(signed_at), candidates))
        verdicts: list[tuple[SignatureVerdict, KeyFacts | None]] = []
        for start in range(0, len(jobs), VERIFY_SLICE):
            if start:
                await asyncio.sleep(0)  # let other requests run between slices
            received = utcnow()
            verdicts.extend(verdict(*job[1:], received) for job in jobs[start : start + VERIFY_SLICE])
        count_verdicts(verdicts)
        kept = []
        used: set[uuid.UUID] = set()
        for (index, reading, _moment, _candidates), (found, key) in zip(jobs, verdicts, strict=True):
            if found is SignatureVerdict.SIGNED:
                assert key is not None
                used.add(key.id)
                kept.append((index, replace(reading, trust=Trust.DEVICE_SIGNED, key_id=key.key_id)))
            elif reading.source is Source.NATIVE:
                code, message = SIGNATURE_FAILURES[found]
                self.results[index] = reject(index, code, message, 401)
            else:
                kept.append((index, replace(reading, trust=Trust.GATEWAY_ATTESTED)))
        now = utcnow()
        # to the minute: an UPDATE per key and batch would cost more than the verify
        due = [
            key.id
            for meter_keys in keys.values()
            for key in meter_keys
            if key.id in used and last_use_due(key.last_used_at, now)
        ]
        await mark_keys_used(self.session, due, now)
        return kept

    async def _stored(
        self,
        readings: list[tuple[int, Reading]],
        states: dict[uuid.UUID, MeterState],
    ) -> dict[tuple[uuid.UUID, int, int], dict[str, int | None]]:
        """What is stored for the batch's keys; the store reuses this lookup. An estimate never
        blocks or equals a real reading, so VEE does not see estimates.

        Nothing can be stored after a meter's latest interval (its ingest state, locked by this
        transaction, records it; estimates only fill gaps before it), so streaming readings, the
        usual case, are not looked up at all; a meter without that record is looked up in full."""
        latest = {meter_id: state.latest() for meter_id, state in states.items()}
        self.latest = {
            meter_id: None if start is None else utc_from_epoch(start) for meter_id, start in latest.items()
        }
        meter_ids = self.meter_ids
        keys = {
            (meter_id, r.channel, utc_from_epoch(r.interval_start))
            for _, r in readings
            for meter_id in (meter_ids[r.meter_serial],)
            if (last := latest[meter_id]) is None or r.interval_start <= last
        }
        self.existing = await load_existing(self.session, list(keys))
        measured = {
            (key[0], key[1], int(key[2].timestamp())): found
            for key, found in self.existing.items()
            if found.trust != Trust.ESTIMATED
        }
        self.stored_trust = {key: Trust(found.trust) for key, found in measured.items()}
        return {key: found.values for key, found in measured.items()}

    async def _medians(
        self, readings: list[tuple[int, Reading]], states: dict[uuid.UUID, MeterState]
    ) -> dict[SlotKey, dict[str, int]]:
        """Same-slot medians of the previous 7 days for the spike rule (see `slot_history`)."""
        meter_ids = self.meter_ids
        targets = {
            (meter_ids[reading.meter_serial], reading.channel, reading.interval_start): wanted
            for _, reading in readings
            if (wanted := quantities_with_energy(reading))
        }
        first_start = {meter_id: state.first_start for meter_id, state in states.items()}
        return await same_slot_medians(self.session, targets, first_start)

    def _attested_policy(
        self, meters: dict[str, MeterFacts], keys: dict[uuid.UUID, list[KeyFacts]]
    ) -> dict[uuid.UUID, bool]:
        return {m.id: attested_mintable(m.attested_mintable, bool(keys.get(m.id))) for m in meters.values()}

    def _meter_contexts(
        self, meters: dict[str, MeterFacts], attested_ok: dict[uuid.UUID, bool]
    ) -> dict[str, vee.VeeContext]:
        """The per-meter part of every reading's VEE context, built once per batch; each reading's
        context is a copy with its own state filled in."""
        return {
            serial: vee.VeeContext(
                now=self.now,
                interval_s=meter.interval_seconds,
                meter_active=meter.status == MeterStatus.ACTIVE,
                commissioned_at=epoch_or_none(meter.commissioned_at),
                nameplate_w=meter.capacity_w,
                attested_mintable=attested_ok[meter.id],
                register_modulus_wh=meter.register_modulus_wh,
                baseline_reset_at=epoch_or_none(meter.register_reset_at),
                latitude=meter.latitude,
                longitude=meter.longitude,
            )
            for serial, meter in meters.items()
        }

    def _estimates(
        self,
        to_store: list[tuple[int, Reading, vee.VeeOutcome]],
        meters: dict[str, MeterFacts],
        states: dict[uuid.UUID, MeterState],
    ) -> list[Reading]:
        """Fill short gaps (≤ 1 h) before each new latest reading by interpolation; never minted."""
        estimates: list[Reading] = []
        # each meter's reading before the current one: one of this batch, or the stored form of
        # the latest one before it (turned into a Reading only when a gap needs filling)
        previous: dict[str, Reading | LastReading | None] = {
            serial: states[m.id].loaded_last for serial, m in meters.items() if m.id in states
        }
        for _, reading, _ in to_store:
            last = previous.get(reading.meter_serial)
            previous[reading.meter_serial] = reading
            if last is None or reading.channel != 0:
                continue
            if isinstance(last, Reading):
                last_start, last_duration = last.interval_start, last.duration
            else:
                last_start, last_duration = int(last[0]), int(last[1])
            gap = reading.interval_start - last_start - reading.duration
            if 0 < gap <= MAX_ESTIMATED_GAP_S and last_duration == reading.duration:
                before = last if isinstance(last, Reading) else last_reading(reading.meter_serial, last)
                try:
                    estimates.extend(estimate_gap(before, reading, reading.duration))
                except ValueError:
                    continue  # registers disagree: leave the gap open rather than invent energy
        return estimates

    def _after_latest(self, key: Key) -> bool:
        """Nothing is stored after a meter's latest interval (see `_stored`)."""
        latest = self.latest.get(key[0])
        return latest is not None and key[2] > latest

    async def _store(
        self,
        to_store: list[tuple[int, Reading, vee.VeeOutcome]],
        duplicates: list[tuple[int, Reading]],
        estimates: list[Reading],
        meters: dict[str, MeterFacts],
    ) -> None:
        meter_ids = self.meter_ids
        flag_lists = [sorted(outcome.flags) for _, _, outcome in to_store]
        rows = [
            _new_row(reading, meter_ids[reading.meter_serial], flags, outcome.mintable_wh)
            for (_, reading, outcome), flags in zip(to_store, flag_lists, strict=True)
        ]
        for _, reading in duplicates:
            rows.append(_new_row(reading, meter_ids[reading.meter_serial], sorted(reading.flags), 0))
        for reading in estimates:
            rows.append(_new_row(reading, meter_ids[reading.meter_serial], sorted(reading.flags), 0))
        stored = await store_readings(self.session, rows, self.existing, known_new=self._after_latest)
        outcomes: list[tuple[int, Reading, list[str], int]] = [
            (index, reading, flags, outcome.mintable_wh)
            for (index, reading, outcome), flags in zip(to_store, flag_lists, strict=True)
        ]
        outcomes += [(i, r, [], 0) for i, r in duplicates]
        accepted, duplicate = ItemStatus.ACCEPTED, ItemStatus.DUPLICATE
        for (index, reading, flags, mintable_wh), result in zip(outcomes, stored, strict=False):
            status = duplicate if result.status is StoreStatus.DUPLICATE else accepted
            self.results[index] = ItemResult(
                index,
                status,
                meter_serial=reading.meter_serial,
                interval_start=utc_from_epoch(reading.interval_start),
                reading_id=result.reading_id,
                version=result.version,
                trust=reading.trust,
                flags=flags,
                mintable_wh=mintable_wh if status is accepted else 0,
            )

    def _events(self, meters: dict[str, MeterFacts]) -> None:
        if not self.p.bus.has_subscribers():
            return  # nobody listens: building two events per reading would be wasted work
        for result in self.results:
            if result is None:
                continue
            if result.status is ItemStatus.REJECTED:
                self.outbox.add(
                    "MeterReadingRejected",
                    index=result.index,
                    code=result.code,
                    message=result.message,
                    **rejection_owners(result, self.submitter, meters),
                )
                continue
            meter = meters[result.meter_serial or ""]
            data = {
                "reading_id": result.reading_id,
                "meter_id": str(meter.id),
                "meter_serial": meter.serial,
                "owner_id": str(meter.owner_id) if meter.owner_id else None,
                "interval_start": None if result.interval_start is None else iso(result.interval_start),
                "trust": result.trust,
                "flags": result.flags,
                "duplicate": result.status is ItemStatus.DUPLICATE,
            }
            self.outbox.add("MeterReadingReceived", **data)
            if result.status is ItemStatus.ACCEPTED:
                self.outbox.add("MeterReadingVerified", **data, mintable_wh=result.mintable_wh)


_VEE_STATUS = {vee.Reject.TRUST_DOWNGRADE: 409}  # VEE rejections other than 422


def _new_row(reading: Reading, meter_id: uuid.UUID, flags: list[str], mintable_wh: int) -> NewReading:
    return NewReading(
        meter_id=meter_id,
        channel=reading.channel,
        interval_start=utc_from_epoch(reading.interval_start),
        duration_s=reading.duration,
        trust=reading.trust,
        source=reading.source,
        observed_at=utc_from_epoch(reading.observed_at),
        import_wh=reading.import_wh,
        export_wh=reading.export_wh,
        generation_wh=reading.generation_wh,
        consumption_wh=reading.consumption_wh,
        import_register_wh=reading.import_register_wh,
        export_register_wh=reading.export_register_wh,
        flags=flags,
        seq=reading.seq,
        key_id=reading.key_id,
        signature=reading.signature,
        mintable_wh=mintable_wh,
        extras=_jsonable(dict(reading.extras)) if reading.extras else {},
    )


def _jsonable(value: Any) -> Any:
    """Extras keep every field the client sent; Decimals are stored as their exact text."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value
