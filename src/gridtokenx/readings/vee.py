"""VEE (validation, estimation, editing): the metering rules a reading must pass before it is stored.

Pure: `evaluate(reading, ctx, cfg)` looks only at its arguments. The service gathers the facts in a
`VeeContext` (meter registry, ingest state, neighbouring stored values), applies the outcome, and
stores `outcome.next_replay` back. Each rule is named (`Rule`), can be switched off in `VeeConfig`,
and has its own code: a `Reject` code turns the reading away (the API answers 422), a `Flag` code is
stored on an accepted reading. Rules run cheapest first and the first rejection wins.

Order: lifecycle, alignment, future, age, negative, ceiling, capacity, duplicate (an identical
resend stops here as a no-op, so retries are never refused), validity window, replay, register, register
sum; then the flag rules: spike, frozen, night, balance, device quality. A reading older than the
minting age is flagged LATE whatever the configuration: late and estimated data are never minted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from functools import cached_property
from typing import Any

import msgspec

from gridtokenx.core.units import kwh_to_wh
from gridtokenx.readings.native import QualityBit
from gridtokenx.readings.reading import (
    EXPORT,
    GENERATION,
    IMPORT,
    REGISTER_OF,
    VALUE_FIELDS,
    Flag,
    Reading,
    Trust,
)
from gridtokenx.readings.replay import DEFAULT_WINDOW, ReplayWindow, SeqVerdict
from gridtokenx.readings.solar import solar_elevation_deg

DAY_S = 86_400
Values = dict[str, int]  # a reading's reported interval quantities (`Reading.quantity_values()`)


class Rule(StrEnum):
    LIFECYCLE = "lifecycle"  # meter active and commissioned
    ALIGNMENT = "alignment"  # interval_start on the meter's grid, duration = the meter's interval
    FUTURE = "future"  # not read after now + skew
    AGE = "age"  # not older than the backfill limit (LATE, the minting age, is always applied)
    NEGATIVE = "negative"  # no negative energy or register
    CEILING = "ceiling"  # no quantity above the per-reading maximum
    CAPACITY = "capacity"  # generation/export within nameplate x interval x margin
    DUPLICATE = "duplicate"  # identical resend = no-op, changed value = new version of no lower trust
    VALIDITY_WINDOW = "validity_window"  # a signed message's created/expires window
    REPLAY = "replay"  # seq inside the anti-replay window, never seen before
    REGISTER = "register"  # cumulative registers never decrease (rollover, replacement handled)
    REGISTER_SUM = "register_sum"  # interval values add up to the register difference
    SPIKE = "spike"  # far above the same slot's 7-day median
    FROZEN = "frozen"  # the same non-zero value again and again
    NIGHT = "night"  # PV generation/export with the sun below the horizon
    BALANCE = "balance"  # export not above generation + margin
    DEVICE_QUALITY = "device_quality"  # device-reported clock, outage and tamper bits


class Reject(StrEnum):
    METER_NOT_ACTIVE = "METER_NOT_ACTIVE"
    BEFORE_COMMISSIONING = "BEFORE_COMMISSIONING"
    INTERVAL_MISALIGNED = "INTERVAL_MISALIGNED"
    DURATION_MISMATCH = "DURATION_MISMATCH"
    FUTURE_READING = "FUTURE_READING"
    READING_TOO_OLD = "READING_TOO_OLD"
    NEGATIVE_VALUE = "NEGATIVE_VALUE"
    EXCEEDS_MAX_READING = "EXCEEDS_MAX_READING"
    EXCEEDS_CAPACITY = "EXCEEDS_CAPACITY"
    MESSAGE_NOT_YET_VALID = "MESSAGE_NOT_YET_VALID"
    MESSAGE_EXPIRED = "MESSAGE_EXPIRED"
    MESSAGE_WINDOW_INVALID = "MESSAGE_WINDOW_INVALID"
    SEQ_REPLAYED = "SEQ_REPLAYED"
    SEQ_TOO_OLD = "SEQ_TOO_OLD"
    REGISTER_DECREASED = "REGISTER_DECREASED"
    REGISTER_SUM_MISMATCH = "REGISTER_SUM_MISMATCH"
    TRUST_DOWNGRADE = "TRUST_DOWNGRADE"


class WriteAction(StrEnum):
    INSERT = "insert"  # nothing stored for this (meter, channel, interval) yet
    NOOP = "noop"  # identical to what is stored: acknowledge, write nothing
    NEW_VERSION = "new_version"  # differs from what is stored: keep the old row as a revision


# Flags that hold a reading back from minting by default (questionable data waits for review).
# LATE and ESTIMATED are never mintable, whatever the configuration says.
NEVER_MINTABLE = frozenset({Flag.LATE, Flag.ESTIMATED})
DEFAULT_HOLD_FLAGS = NEVER_MINTABLE | {
    Flag.TIMESTAMP_ASSIGNED,
    Flag.SPIKE,
    Flag.FROZEN_VALUE,
    Flag.PV_AT_NIGHT,
    Flag.EXPORT_EXCEEDS_GENERATION,
    Flag.CLOCK_QUESTIONABLE,
    Flag.TAMPER_REPORTED,
}


class RegisterSnapshot(msgspec.Struct, frozen=True):
    """Register values at the end of an earlier stored interval of the same meter and channel.
    (A Struct: the pipeline builds one per reading.)"""

    interval_start: int
    duration: int
    import_register_wh: int | None = None
    export_register_wh: int | None = None

    @property
    def interval_end(self) -> int:
        return self.interval_start + self.duration

    def values(self) -> dict[str, int]:
        found = {IMPORT: self.import_register_wh, EXPORT: self.export_register_wh}
        return {channel: value for channel, value in found.items() if value is not None}


class VeeContext(msgspec.Struct, frozen=True, kw_only=True):
    """Everything `evaluate` needs to know beyond the reading itself; the service looks these up.
    (A frozen msgspec Struct, as `Reading` is: one is built per reading; see
    docs/decisions/2026-11-23-reading-as-msgspec-struct.md.)

    Times are UTC epoch seconds, energy integer Wh. Mappings keyed by quantity use the names in
    `reading.QUANTITIES` (`import_wh`, `export_wh`, `generation_wh`, `consumption_wh`).
    """

    now: int
    interval_s: int  # the meter's interval length
    meter_active: bool = True  # registry status is "active"
    commissioned_at: int | None = None
    nameplate_w: int | None = None  # generation capacity; None skips the capacity ceiling
    attested_mintable: bool = False  # may gateway-attested readings of this meter be minted?
    replay: ReplayWindow | None = None  # the device's seq window; None before its first seq
    # what is stored for this (meter, channel, interval), in `Reading.stored_values()` shape; None if nothing
    stored: Mapping[str, int | None] | None = None
    stored_trust: Trust | None = None  # the trust of that stored version
    previous_registers: RegisterSnapshot | None = None  # the nearest earlier interval that has registers
    register_modulus_wh: int | None = None  # a register wraps to 0 at this value (None: never wraps)
    baseline_reset_at: int | None = None  # meter replaced / registers reset at this time
    same_slot_median: Mapping[str, int] = msgspec.field(default_factory=dict)  # same slot, last 7 days
    recent_values: Mapping[str, Sequence[int]] = msgspec.field(default_factory=dict)  # oldest first
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True)
class VeeConfig:
    """Thresholds of every rule, and which rules are switched off."""

    max_skew_s: int = 120
    max_backfill_s: int = 62 * DAY_S
    mint_max_age_s: int = 7 * DAY_S
    max_reading_wh: int = 100_000
    capacity_margin: Fraction = Fraction(11, 10)
    max_validity_s: int = 300
    register_tolerance_wh: int = 1  # an interval's value against its register rise
    spike_factor: int = 5
    frozen_repeats: int = 3
    # below this a value repeats naturally: at 15 s intervals a home's whole-Wh figures are a few
    # Wh, where the 1 Wh step is a quarter of the value; from 100 Wh it is 1% and an exact repeat
    # three times over says the register or the sensor is stuck
    frozen_min_wh: int = 100
    night_elevation_deg: float = -2.0
    night_tolerance_wh: int = 0
    export_margin: Fraction = Fraction(101, 100)
    replay_window: int = DEFAULT_WINDOW
    disabled: frozenset[Rule] = frozenset()
    hold_flags: frozenset[str] = DEFAULT_HOLD_FLAGS

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> VeeConfig:
        """Take the limits that have platform settings (`TOKENIZATION_MAX_READING_KWH`,
        `TOKENIZATION_READING_MAX_AGE_DAYS`, clock skew) from a `core.settings.Settings`."""
        values: dict[str, Any] = {
            "max_skew_s": settings.clock_skew_seconds,
            "mint_max_age_s": settings.tokenization_reading_max_age_days * DAY_S,
            "max_reading_wh": kwh_to_wh(settings.tokenization_max_reading_kwh),
        }
        return cls(**(values | overrides))

    def on(self, rule: Rule) -> bool:
        return rule not in self.disabled

    @cached_property
    def stateless_checks(self) -> tuple[Any, ...]:
        """The enabled rejecting rules that need no stored state, in order (read per reading)."""
        return tuple(check for rule, check in _STATELESS if self.on(rule))

    @cached_property
    def flaggers(self) -> tuple[Any, ...]:
        """The enabled flagging rules, in order."""
        return tuple(flagger for rule, flagger in _FLAGGERS if self.on(rule))

    @cached_property
    def unmintable_flags(self) -> frozenset[str]:
        return self.hold_flags | NEVER_MINTABLE

    @cached_property
    def switches(self) -> tuple[bool, bool, bool]:
        """Whether the duplicate, validity-window and replay rules are on (read once per reading)."""
        return self.on(Rule.DUPLICATE), self.on(Rule.VALIDITY_WINDOW), self.on(Rule.REPLAY)


@dataclass(frozen=True, slots=True)
class Rejection:
    rule: Rule
    code: Reject
    message: str


class VeeOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """The verdict. Rejected: `rejection` is set and nothing else matters. Accepted: store according
    to `write` with `flags`; mint `mintable_wh` (the export, 0 when nothing may be minted); persist
    `next_replay`. For a NEW_VERSION the service mints only the increase over what the old version
    minted."""

    rejection: Rejection | None = None
    flags: frozenset[str] = frozenset()
    write: WriteAction | None = None
    mintable_wh: int = 0
    next_replay: ReplayWindow | None = None

    @property
    def accepted(self) -> bool:
        return self.rejection is None

    @property
    def mintable(self) -> bool:
        return self.mintable_wh > 0


def evaluate(reading: Reading, ctx: VeeContext, cfg: VeeConfig | None = None) -> VeeOutcome:
    """Apply every enabled rule to `reading` and say whether and how to store and mint it.

    This runs once per reading on the ingest path, so the quantity values are gathered once and
    handed to every rule that reads them."""
    cfg = cfg or _DEFAULT_CONFIG
    values = reading.quantity_values()
    for check in cfg.stateless_checks:
        if (rejection := check(reading, values, ctx, cfg)) is not None:
            return VeeOutcome(rejection=rejection)

    duplicate_on, window_on, replay_on = cfg.switches
    write: WriteAction = WriteAction.INSERT
    if duplicate_on and ctx.stored is not None:
        write = classify_duplicate(reading, ctx.stored)
        if write is WriteAction.NOOP:
            return VeeOutcome(flags=reading.flags, write=write, next_replay=ctx.replay)
        if (rejection := _trust_downgrade(reading, ctx)) is not None:
            return VeeOutcome(rejection=rejection)

    if window_on and (rejection := _validity_window(reading, ctx, cfg)) is not None:
        return VeeOutcome(rejection=rejection)
    next_replay = ctx.replay
    if replay_on and reading.seq is not None:
        rejection, next_replay = _replay(reading.seq, ctx, cfg)
        if rejection is not None:
            return VeeOutcome(rejection=rejection)
    rejection, flags = _registers(reading, values, ctx, cfg)
    if rejection is not None:
        return VeeOutcome(rejection=rejection)

    if reading.flags:
        flags |= reading.flags
    if write is WriteAction.NEW_VERSION:
        flags.add(Flag.REVISED)
    if reading.interval_start + reading.duration < ctx.now - cfg.mint_max_age_s:
        flags.add(Flag.LATE)
    for flagger in cfg.flaggers:
        if found := flagger(reading, values, ctx, cfg):
            flags |= found
    eligible = _trust_mintable(reading.trust, ctx) and not (flags and flags & cfg.unmintable_flags)
    mintable_wh = reading.export_wh if eligible and reading.export_wh > 0 else 0
    return VeeOutcome(
        flags=frozenset(flags),
        write=write,
        mintable_wh=mintable_wh,
        next_replay=next_replay,
    )


def classify_duplicate(reading: Reading, stored: Mapping[str, int | None] | None) -> WriteAction:
    """Compare with what is stored for the same (meter, channel, interval): new, identical, or
    changed. Never a silent overwrite: a change is a new version."""
    if stored is None:
        return WriteAction.INSERT
    if any(stored.get(name) != value for name, value in reading.stored_values().items()):
        return WriteAction.NEW_VERSION
    return WriteAction.NOOP


TRUST_RANK = {Trust.ESTIMATED: 0, Trust.GATEWAY_ATTESTED: 1, Trust.DEVICE_SIGNED: 2}


def _trust_downgrade(reading: Reading, ctx: VeeContext) -> Rejection | None:
    """A reading never replaces one of higher trust: a gateway-attested (unsigned) submission
    cannot revise what a device signed; the signed values stay."""
    stored = ctx.stored_trust
    if stored is None or TRUST_RANK[reading.trust] >= TRUST_RANK[stored]:
        return None
    message = f"a {reading.trust} reading cannot replace the stored {stored} one"
    return Rejection(Rule.DUPLICATE, Reject.TRUST_DOWNGRADE, message)


def _trust_mintable(trust: Trust, ctx: VeeContext) -> bool:
    if trust is Trust.DEVICE_SIGNED:
        return True
    return trust is Trust.GATEWAY_ATTESTED and ctx.attested_mintable


# --- rules that reject ------------------------------------------------------------------------


def _lifecycle(reading: Reading, values: Values, ctx: VeeContext, cfg: VeeConfig) -> Rejection | None:
    if not ctx.meter_active:
        return Rejection(Rule.LIFECYCLE, Reject.METER_NOT_ACTIVE, "the meter is not active")
    if ctx.commissioned_at is not None and reading.interval_start < ctx.commissioned_at:
        message = "the interval starts before the meter was commissioned"
        return Rejection(Rule.LIFECYCLE, Reject.BEFORE_COMMISSIONING, message)
    return None


def _alignment(reading: Reading, values: Values, ctx: VeeContext, cfg: VeeConfig) -> Rejection | None:
    if reading.interval_start % ctx.interval_s:
        message = f"interval_start is not on the meter's {ctx.interval_s} s UTC grid"
        return Rejection(Rule.ALIGNMENT, Reject.INTERVAL_MISALIGNED, message)
    if reading.duration != ctx.interval_s:
        message = f"duration {reading.duration} s differs from the meter's interval of {ctx.interval_s} s"
        return Rejection(Rule.ALIGNMENT, Reject.DURATION_MISMATCH, message)
    return None


def _future(reading: Reading, values: Values, ctx: VeeContext, cfg: VeeConfig) -> Rejection | None:
    if reading.observed_at > ctx.now + cfg.max_skew_s:
        message = f"read {reading.observed_at - ctx.now} s in the future (skew limit {cfg.max_skew_s} s)"
        return Rejection(Rule.FUTURE, Reject.FUTURE_READING, message)
    return None


def _age(reading: Reading, values: Values, ctx: VeeContext, cfg: VeeConfig) -> Rejection | None:
    if reading.interval_end < ctx.now - cfg.max_backfill_s:
        message = f"older than the {cfg.max_backfill_s // DAY_S}-day backfill limit"
        return Rejection(Rule.AGE, Reject.READING_TOO_OLD, message)
    return None


def _negative(reading: Reading, values: Values, ctx: VeeContext, cfg: VeeConfig) -> Rejection | None:
    for name in VALUE_FIELDS:
        value = getattr(reading, name)
        if value is not None and value < 0:
            return Rejection(Rule.NEGATIVE, Reject.NEGATIVE_VALUE, f"{name} is negative ({value})")
    return None


def _ceiling(reading: Reading, values: Values, ctx: VeeContext, cfg: VeeConfig) -> Rejection | None:
    for name, value in values.items():
        if value > cfg.max_reading_wh:
            message = f"{name} of {value} Wh exceeds the {cfg.max_reading_wh} Wh per-reading maximum"
            return Rejection(Rule.CEILING, Reject.EXCEEDS_MAX_READING, message)
    return None


def _capacity(reading: Reading, values: Values, ctx: VeeContext, cfg: VeeConfig) -> Rejection | None:
    if ctx.nameplate_w is None:
        return None
    margin = cfg.capacity_margin
    # value > nameplate x duration / 3600 x margin, in integers (this runs for every reading)
    bound = ctx.nameplate_w * reading.duration * margin.numerator
    for name, value in ((GENERATION, reading.generation_wh), (EXPORT, reading.export_wh)):
        if value is not None and value * 3600 * margin.denominator > bound:
            limit = Fraction(bound, 3600 * margin.denominator)
            message = f"{name} of {value} Wh exceeds nameplate x interval x margin ({int(limit)} Wh)"
            return Rejection(Rule.CAPACITY, Reject.EXCEEDS_CAPACITY, message)
    return None


_STATELESS = (
    (Rule.LIFECYCLE, _lifecycle),
    (Rule.ALIGNMENT, _alignment),
    (Rule.FUTURE, _future),
    (Rule.AGE, _age),
    (Rule.NEGATIVE, _negative),
    (Rule.CEILING, _ceiling),
    (Rule.CAPACITY, _capacity),
)


def _validity_window(reading: Reading, ctx: VeeContext, cfg: VeeConfig) -> Rejection | None:
    created, expires = reading.created, reading.expires
    if created is None or expires is None:
        return None
    if expires <= created or expires - created > cfg.max_validity_s:
        message = f"expires must follow created by at most {cfg.max_validity_s} s"
        return Rejection(Rule.VALIDITY_WINDOW, Reject.MESSAGE_WINDOW_INVALID, message)
    if created > ctx.now + cfg.max_skew_s:
        return Rejection(Rule.VALIDITY_WINDOW, Reject.MESSAGE_NOT_YET_VALID, "created lies in the future")
    if ctx.now > expires + cfg.max_skew_s:
        return Rejection(Rule.VALIDITY_WINDOW, Reject.MESSAGE_EXPIRED, "the signed message has expired")
    return None


def _replay(seq: int, ctx: VeeContext, cfg: VeeConfig) -> tuple[Rejection | None, ReplayWindow | None]:
    if ctx.replay is None:
        return None, ReplayWindow.first(seq, cfg.replay_window)
    verdict = ctx.replay.check(seq)
    if verdict is SeqVerdict.REPLAYED:
        return Rejection(Rule.REPLAY, Reject.SEQ_REPLAYED, f"seq {seq} was already used"), ctx.replay
    if verdict is SeqVerdict.TOO_OLD:
        message = f"seq {seq} is more than {ctx.replay.size} below the highest seen ({ctx.replay.highest})"
        return Rejection(Rule.REPLAY, Reject.SEQ_TOO_OLD, message), ctx.replay
    return None, ctx.replay.record(seq)


def _registers(
    reading: Reading, values: Values, ctx: VeeContext, cfg: VeeConfig
) -> tuple[Rejection | None, set[str]]:
    """Registers against the nearest earlier snapshot: monotonic (rule 7), and, when the snapshot
    is the interval just before, this interval's value matching the register difference within
    1 Wh (rule 8; across a gap the intervals in between are not at hand, so nothing is summed)."""
    previous, current = ctx.previous_registers, reading.register_values()
    if previous is None or not current or previous.interval_start >= reading.interval_start:
        return None, set()
    reset = ctx.baseline_reset_at
    if reset is not None and previous.interval_end <= reset <= reading.interval_end:
        return None, {Flag.REGISTER_BASELINE_RESET}
    flags: set[str] = set()
    intervals = (reading.interval_end - previous.interval_end) // reading.duration
    adjacent = intervals == 1
    for quantity, before in previous.values().items():
        if quantity not in current:
            continue
        delta = current[quantity] - before
        if delta < 0:
            modulus = ctx.register_modulus_wh
            if modulus is not None and delta + modulus <= cfg.max_reading_wh * intervals:
                delta += modulus
                flags.add(Flag.REGISTER_ROLLOVER)
            elif cfg.on(Rule.REGISTER):
                register = REGISTER_OF[quantity]
                message = f"{register} fell from {before} to {current[quantity]} Wh"
                return Rejection(Rule.REGISTER, Reject.REGISTER_DECREASED, message), flags
            else:
                continue
        mismatch = abs(delta - values[quantity]) > cfg.register_tolerance_wh
        if adjacent and mismatch and cfg.on(Rule.REGISTER_SUM):
            message = f"{quantity} is {values[quantity]} Wh but {REGISTER_OF[quantity]} rose {delta} Wh"
            return Rejection(Rule.REGISTER_SUM, Reject.REGISTER_SUM_MISMATCH, message), flags
    return None, flags


# --- rules that flag --------------------------------------------------------------------------
# Each returns the flags it raises; the shared empty set when none (the usual case, made once).

_NONE: frozenset[str] = frozenset()
_SPIKE = frozenset({Flag.SPIKE})
_FROZEN = frozenset({Flag.FROZEN_VALUE})
_PV_AT_NIGHT = frozenset({Flag.PV_AT_NIGHT})
_EXPORT_EXCEEDS = frozenset({Flag.EXPORT_EXCEEDS_GENERATION})


def _spike(reading: Reading, values: Values, ctx: VeeContext, cfg: VeeConfig) -> frozenset[str]:
    medians = ctx.same_slot_median
    if not medians:
        return _NONE
    for name, value in values.items():
        median = medians.get(name)
        if median is not None and median > 0 and value > cfg.spike_factor * median:
            return _SPIKE
    return _NONE


def _frozen(reading: Reading, values: Values, ctx: VeeContext, cfg: VeeConfig) -> frozenset[str]:
    earlier = cfg.frozen_repeats - 1
    recent_values = ctx.recent_values
    for name, value in values.items():
        if value < cfg.frozen_min_wh:
            continue  # zero that stays zero, or figures too coarse for a repeat to mean anything
        if earlier <= 0:
            return _FROZEN
        recent = recent_values.get(name, ())
        if len(recent) >= earlier and recent[-1] == value and recent[-earlier:].count(value) == earlier:
            return _FROZEN
    return _NONE


def _night(reading: Reading, values: Values, ctx: VeeContext, cfg: VeeConfig) -> frozenset[str]:
    if ctx.latitude is None or ctx.longitude is None:
        return _NONE
    produced = reading.generation_wh if reading.generation_wh is not None else reading.export_wh
    if produced <= cfg.night_tolerance_wh:
        return _NONE
    instants = (reading.interval_start, reading.interval_start + reading.duration // 2, reading.interval_end)
    highest = max(solar_elevation_deg(ctx.latitude, ctx.longitude, t) for t in instants)
    return _PV_AT_NIGHT if highest < cfg.night_elevation_deg else _NONE


def _balance(reading: Reading, values: Values, ctx: VeeContext, cfg: VeeConfig) -> frozenset[str]:
    margin = cfg.export_margin
    if (
        reading.generation_wh is None
        or reading.export_wh * margin.denominator <= reading.generation_wh * margin.numerator
    ):
        return _NONE
    return _EXPORT_EXCEEDS


def _device_quality(reading: Reading, values: Values, ctx: VeeContext, cfg: VeeConfig) -> frozenset[str]:
    if not reading.quality:
        return _NONE
    bits = QualityBit(reading.quality & 0xF)
    flags: set[str] = set()
    if bits & (QualityBit.CLOCK_INVALID | QualityBit.CLOCK_ADJUSTED):
        flags.add(Flag.CLOCK_QUESTIONABLE)
    if bits & QualityBit.POWER_OUTAGE:
        flags.add(Flag.POWER_OUTAGE)
    if bits & QualityBit.TAMPER:
        flags.add(Flag.TAMPER_REPORTED)
    return frozenset(flags)


_FLAGGERS = (
    (Rule.SPIKE, _spike),
    (Rule.FROZEN, _frozen),
    (Rule.NIGHT, _night),
    (Rule.BALANCE, _balance),
    (Rule.DEVICE_QUALITY, _device_quality),
)


_DEFAULT_CONFIG = VeeConfig()
