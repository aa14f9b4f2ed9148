"""Every VEE rule, one passing and one failing case each, with exact codes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import msgspec
import pytest

from gridtokenx.core.settings import Settings
from gridtokenx.readings.native import QualityBit
from gridtokenx.readings.reading import Flag, Reading, Source, Trust
from gridtokenx.readings.replay import ReplayWindow
from gridtokenx.readings.vee import (
    DAY_S,
    RegisterSnapshot,
    Reject,
    Rule,
    VeeConfig,
    VeeContext,
    VeeOutcome,
    WriteAction,
    classify_duplicate,
    evaluate,
)

Q = 900
START = int(datetime(2026, 1, 15, 9, 0, tzinfo=UTC).timestamp())  # 16:00 in Bangkok: the sun is up
NIGHT_START = int(datetime(2026, 1, 15, 20, 0, tzinfo=UTC).timestamp())  # 03:00 in Bangkok
NOW = START + Q + 30


def make_reading(**changes: Any) -> Reading:
    base = Reading(
        meter_serial="SIM-METER-001",
        interval_start=START,
        duration=Q,
        observed_at=START + Q,
        import_wh=0,
        export_wh=1000,
        generation_wh=1300,
        consumption_wh=300,
        import_register_wh=812_000,
        export_register_wh=5_001_000,
        source=Source.NATIVE,
        trust=Trust.DEVICE_SIGNED,
        seq=42,
        created=START + Q,
        expires=START + Q + 300,
    )
    if "interval_start" in changes:  # keep the envelope signed right after the interval ends
        end = changes["interval_start"] + changes.get("duration", Q)
        changes = {"observed_at": end, "created": end, "expires": end + 300} | changes
    return msgspec.structs.replace(base, **changes)


def sent_at(moment: int) -> dict[str, int]:
    """A backlog reading signed when it is finally sent."""
    return {"created": moment, "expires": moment + 300}


def make_context(**changes: Any) -> VeeContext:
    base = VeeContext(
        now=NOW,
        interval_s=Q,
        commissioned_at=START - 30 * DAY_S,
        nameplate_w=5000,  # 5 kW x 0.25 h x 1.1 = 1,375 Wh per interval
        replay=ReplayWindow.first(41),
        previous_registers=RegisterSnapshot(START - Q, Q, 812_000, 5_000_000),
        same_slot_median={"export_wh": 900, "generation_wh": 1200},
        recent_values={"export_wh": [800, 950]},
        latitude=13.7563,
        longitude=100.5018,
    )
    return msgspec.structs.replace(base, **changes)


def run(reading: Reading | None = None, cfg: VeeConfig | None = None, **ctx: Any) -> VeeOutcome:
    return evaluate(reading or make_reading(), make_context(**ctx), cfg)


def rejected(outcome: VeeOutcome) -> Reject | None:
    return outcome.rejection.code if outcome.rejection else None


def test_a_clean_signed_reading_is_accepted_and_mintable() -> None:
    outcome = run()
    assert outcome.accepted and outcome.rejection is None
    assert outcome.flags == frozenset()
    assert outcome.write is WriteAction.INSERT
    assert (outcome.mintable, outcome.mintable_wh) == (True, 1000)
    assert outcome.next_replay == ReplayWindow.first(41).record(42)


# 1. alignment
def test_alignment() -> None:
    assert rejected(run(make_reading(interval_start=START + 60))) is Reject.INTERVAL_MISALIGNED
    assert rejected(run(make_reading(duration=600))) is Reject.DURATION_MISMATCH
    assert run(make_reading(), interval_s=300).rejection.rule is Rule.ALIGNMENT  # type: ignore[union-attr]
    next_one = make_reading(interval_start=START + Q, export_register_wh=5_002_000)
    assert run(next_one, now=NOW + Q).accepted


# 2. future
def test_future_with_skew_limit() -> None:
    assert rejected(run(make_reading(observed_at=NOW + 121))) is Reject.FUTURE_READING
    assert run(make_reading(observed_at=NOW + 120)).accepted


# 3. age: late data stored but not minted; beyond the backfill limit refused
def test_late_readings_are_flagged_and_never_minted() -> None:
    later = NOW + 8 * DAY_S
    late = run(make_reading(**sent_at(later)), now=later)
    assert late.accepted and Flag.LATE in late.flags and not late.mintable and late.mintable_wh == 0
    sooner = NOW + 6 * DAY_S
    fresh = run(make_reading(**sent_at(sooner)), now=sooner)
    assert Flag.LATE not in fresh.flags and fresh.mintable
    permissive = VeeConfig(hold_flags=frozenset(), disabled=frozenset(Rule))
    anyway = run(make_reading(**sent_at(later)), permissive, now=later)
    assert Flag.LATE in anyway.flags and not anyway.mintable  # LATE can never be configured mintable


def test_too_old_for_backfill_is_refused() -> None:
    much_later, later = NOW + 63 * DAY_S, NOW + 61 * DAY_S
    assert rejected(run(make_reading(**sent_at(much_later)), now=much_later)) is Reject.READING_TOO_OLD
    assert run(make_reading(**sent_at(later)), now=later).accepted


# 4. lifecycle
def test_meter_must_be_active_and_commissioned() -> None:
    assert rejected(run(meter_active=False)) is Reject.METER_NOT_ACTIVE
    assert rejected(run(commissioned_at=START + 1)) is Reject.BEFORE_COMMISSIONING
    assert run(commissioned_at=START).accepted


# 5. ceilings
def test_per_reading_ceiling() -> None:
    huge = make_reading(consumption_wh=100_001)
    assert rejected(run(huge)) is Reject.EXCEEDS_MAX_READING
    assert run(make_reading(consumption_wh=100_000)).accepted
    cfg = VeeConfig(max_reading_wh=50_000)
    assert rejected(run(make_reading(consumption_wh=50_001), cfg)) is Reject.EXCEEDS_MAX_READING


def test_capacity_ceiling_is_nameplate_times_interval_times_margin() -> None:
    over = make_reading(generation_wh=1376, export_wh=0, export_register_wh=5_000_000)
    assert rejected(run(over)) is Reject.EXCEEDS_CAPACITY
    at_limit = make_reading(generation_wh=1375, export_wh=0, export_register_wh=5_000_000)
    assert run(at_limit).accepted
    assert run(over, nameplate_w=None).accepted  # unknown capacity: rule skipped
    assert (
        rejected(run(make_reading(export_wh=1376, export_register_wh=5_001_376))) is Reject.EXCEEDS_CAPACITY
    )


# 6. sign
def test_negative_values_are_refused() -> None:
    outcome = run(make_reading(import_wh=-1))
    assert rejected(outcome) is Reject.NEGATIVE_VALUE and "import_wh" in outcome.rejection.message  # type: ignore[union-attr]
    assert rejected(run(make_reading(generation_wh=-5))) is Reject.NEGATIVE_VALUE
    assert run(make_reading(import_wh=0)).accepted


# 7. registers never decrease; rollover and replacement handled
def test_register_must_not_decrease() -> None:
    fell = make_reading(export_register_wh=4_999_999)
    assert rejected(run(fell)) is Reject.REGISTER_DECREASED


def test_register_rollover_is_accepted_and_flagged() -> None:
    modulus = 10**9
    previous = RegisterSnapshot(START - Q, Q, 812_000, modulus - 400)
    wrapped = make_reading(export_register_wh=600)
    outcome = run(wrapped, previous_registers=previous, register_modulus_wh=modulus)
    assert outcome.accepted and Flag.REGISTER_ROLLOVER in outcome.flags
    implausible = run(make_reading(export_register_wh=600), register_modulus_wh=modulus)
    assert rejected(implausible) is Reject.REGISTER_DECREASED  # a 10^9 Wh jump is no rollover


def test_meter_replacement_starts_a_new_baseline() -> None:
    fresh_meter = make_reading(export_register_wh=1000, import_register_wh=0)
    outcome = run(fresh_meter, baseline_reset_at=START + 10)
    assert outcome.accepted and Flag.REGISTER_BASELINE_RESET in outcome.flags
    assert rejected(run(fresh_meter, baseline_reset_at=START - 2 * Q)) is Reject.REGISTER_DECREASED


# 8. the interval's value matches the register difference within 1 Wh (after the interval before)
def test_register_sum_check() -> None:
    assert rejected(run(make_reading(export_register_wh=5_001_002))) is Reject.REGISTER_SUM_MISMATCH
    assert run(make_reading(export_register_wh=5_001_001)).accepted
    two_back = RegisterSnapshot(START - 2 * Q, Q, 812_000, 4_999_000)
    with_gap = run(previous_registers=two_back)
    assert with_gap.accepted  # the interval in between is not at hand: nothing to compare


# 9. seq replay window
def test_replayed_and_too_old_seq() -> None:
    window = ReplayWindow.first(41).record(42)
    assert rejected(run(replay=window)) is Reject.SEQ_REPLAYED
    assert rejected(run(make_reading(seq=5), replay=ReplayWindow.first(2000))) is Reject.SEQ_TOO_OLD
    out_of_order = run(make_reading(seq=40), replay=window)
    assert out_of_order.accepted and out_of_order.next_replay == window.record(40)
    first = run(replay=None)
    assert first.next_replay == ReplayWindow.first(42)


# 10. duplicates: identical = no-op, changed = new version, never a silent overwrite
def test_identical_resend_is_a_noop_even_with_a_used_seq() -> None:
    stored = make_reading().stored_values()
    used = ReplayWindow.first(41).record(42)
    outcome = run(stored=stored, replay=used)
    assert outcome.accepted and outcome.write is WriteAction.NOOP
    assert not outcome.mintable and outcome.next_replay == used


def test_changed_value_is_a_new_version() -> None:
    stored = make_reading(export_wh=900, export_register_wh=5_000_900).stored_values()
    outcome = run(stored=stored)
    assert outcome.write is WriteAction.NEW_VERSION
    assert Flag.REVISED in outcome.flags
    assert rejected(run(stored=stored, replay=ReplayWindow.first(42))) is Reject.SEQ_REPLAYED


def test_classify_duplicate() -> None:
    reading = make_reading()
    assert classify_duplicate(reading, None) is WriteAction.INSERT
    assert classify_duplicate(reading, reading.stored_values()) is WriteAction.NOOP
    changed = reading.stored_values() | {"generation_wh": None}
    assert classify_duplicate(reading, changed) is WriteAction.NEW_VERSION


# 11. spike
def test_spike_above_five_times_the_same_slot_median() -> None:
    spiky = run(same_slot_median={"export_wh": 199})  # 1000 > 5 x 199
    assert spiky.accepted and Flag.SPIKE in spiky.flags and not spiky.mintable
    assert Flag.SPIKE not in run(same_slot_median={"export_wh": 200}).flags
    assert Flag.SPIKE not in run(same_slot_median={"export_wh": 0}).flags


# 12. frozen
def test_frozen_value_repeated_three_times() -> None:
    frozen = run(recent_values={"export_wh": [700, 1000, 1000]})
    assert Flag.FROZEN_VALUE in frozen.flags and not frozen.mintable
    assert Flag.FROZEN_VALUE not in run(recent_values={"export_wh": [1000, 999]}).flags
    assert Flag.FROZEN_VALUE not in run(recent_values={"export_wh": [1000]}).flags
    zeros = run(make_reading(import_wh=0), recent_values={"import_wh": [0, 0, 0]})
    assert Flag.FROZEN_VALUE not in zeros.flags  # a zero that stays zero is normal


def test_frozen_ignores_small_values_that_repeat_at_short_intervals() -> None:
    """15 s readings of a home are a few whole Wh each: repeats are normal and must not hold them
    back from minting; from `frozen_min_wh` on, a threefold repeat is still flagged."""
    no_registers: dict[str, Any] = {"import_register_wh": None, "export_register_wh": None}
    short = make_reading(
        duration=15, observed_at=START + 15, export_wh=4, generation_wh=5, consumption_wh=1, **no_registers
    )
    small = run(short, recent_values={"export_wh": [4, 4, 4], "generation_wh": [5, 5, 5]}, interval_s=15)
    assert small.accepted and Flag.FROZEN_VALUE not in small.flags and small.mintable
    lower = VeeConfig(frozen_min_wh=1)
    assert Flag.FROZEN_VALUE in run(short, lower, recent_values={"export_wh": [4, 4]}, interval_s=15).flags
    at_minimum = make_reading(export_wh=100, generation_wh=130, consumption_wh=30, **no_registers)
    assert Flag.FROZEN_VALUE in run(at_minimum, recent_values={"export_wh": [100, 100]}).flags
    below = make_reading(export_wh=99, generation_wh=130, consumption_wh=31, **no_registers)
    assert Flag.FROZEN_VALUE not in run(below, recent_values={"export_wh": [99, 99]}).flags


# 13. PV at night
def test_pv_export_at_night_is_flagged() -> None:
    night = make_reading(interval_start=NIGHT_START, import_register_wh=None, export_register_wh=None)
    outcome = run(night, now=NIGHT_START + Q + 30)
    assert outcome.accepted and Flag.PV_AT_NIGHT in outcome.flags and not outcome.mintable
    assert Flag.PV_AT_NIGHT not in run().flags
    dark_and_idle = make_reading(
        interval_start=NIGHT_START,
        export_wh=0,
        generation_wh=0,
        import_register_wh=None,
        export_register_wh=None,
    )
    assert Flag.PV_AT_NIGHT not in run(dark_and_idle, now=NIGHT_START + Q + 30).flags
    assert Flag.PV_AT_NIGHT not in run(night, now=NIGHT_START + Q + 30, latitude=None).flags


def test_pv_at_the_equator_noon_versus_midnight() -> None:
    noon = int(datetime(2025, 3, 20, 12, 0, tzinfo=UTC).timestamp())
    midnight = int(datetime(2025, 3, 20, 0, 0, tzinfo=UTC).timestamp())
    for start, expected in ((noon, False), (midnight, True)):
        reading = make_reading(interval_start=start, import_register_wh=None, export_register_wh=None)
        outcome = run(reading, now=start + Q, latitude=0.0, longitude=0.0, commissioned_at=None)
        assert (Flag.PV_AT_NIGHT in outcome.flags) is expected


# 14. export <= generation + 1 %
def test_export_above_generation_plus_one_percent_is_flagged() -> None:
    over = make_reading(export_wh=1011, generation_wh=1000, export_register_wh=5_001_011)
    assert Flag.EXPORT_EXCEEDS_GENERATION in run(over).flags
    within = make_reading(export_wh=1010, generation_wh=1000, export_register_wh=5_001_010)
    assert Flag.EXPORT_EXCEEDS_GENERATION not in run(within).flags
    unknown_generation = make_reading(generation_wh=None)
    assert Flag.EXPORT_EXCEEDS_GENERATION not in run(unknown_generation).flags


# the created/expires validity window of a signed message
def test_validity_window() -> None:
    assert rejected(run(now=START + Q + 300 + 121)) is Reject.MESSAGE_EXPIRED
    assert run(now=START + Q + 300 + 120).accepted
    assert rejected(run(make_reading(created=NOW + 121, expires=NOW + 200))) is Reject.MESSAGE_NOT_YET_VALID
    too_long = make_reading(expires=START + Q + 301)
    assert rejected(run(too_long)) is Reject.MESSAGE_WINDOW_INVALID
    backwards = make_reading(expires=START + Q)
    assert rejected(run(backwards)) is Reject.MESSAGE_WINDOW_INVALID
    assert run(make_reading(created=None, expires=None)).accepted  # compatibility shapes carry none


# device-reported quality bits
def test_device_quality_bits_become_flags() -> None:
    bits = QualityBit.CLOCK_ADJUSTED | QualityBit.POWER_OUTAGE | QualityBit.TAMPER
    outcome = run(make_reading(quality=int(bits)))
    assert {Flag.CLOCK_QUESTIONABLE, Flag.POWER_OUTAGE, Flag.TAMPER_REPORTED} <= outcome.flags
    assert not outcome.mintable
    assert run(make_reading(quality=int(QualityBit.POWER_OUTAGE))).mintable  # an outage alone is fine


# trust levels and minting
def test_trust_decides_mintability() -> None:
    attested = make_reading(trust=Trust.GATEWAY_ATTESTED, seq=None, created=None, expires=None)
    assert run(attested).accepted and not run(attested).mintable
    assert run(attested, attested_mintable=True).mintable_wh == 1000
    estimated = make_reading(trust=Trust.ESTIMATED, flags=frozenset({Flag.ESTIMATED}), seq=None)
    outcome = run(estimated, cfg=VeeConfig(hold_flags=frozenset()), attested_mintable=True)
    assert outcome.accepted and Flag.ESTIMATED in outcome.flags and not outcome.mintable
    assert not run(make_reading(export_wh=0, export_register_wh=5_000_000)).mintable  # nothing to mint


def test_parser_flags_are_kept_and_hold_minting() -> None:
    assigned = make_reading(
        trust=Trust.GATEWAY_ATTESTED, seq=None, flags=frozenset({Flag.TIMESTAMP_ASSIGNED})
    )
    outcome = run(assigned, attested_mintable=True)
    assert Flag.TIMESTAMP_ASSIGNED in outcome.flags and not outcome.mintable


# configuration
@pytest.mark.parametrize(
    ("rule", "reading_changes", "context_changes"),
    [
        (Rule.FUTURE, {"observed_at": NOW + 500}, {}),
        (Rule.LIFECYCLE, {}, {"meter_active": False}),
        (Rule.REPLAY, {}, {"replay": ReplayWindow.first(42)}),
        (Rule.REGISTER, {"export_register_wh": 4_000_000}, {}),
        (Rule.CAPACITY, {"generation_wh": 2000}, {}),
    ],
)
def test_each_rule_can_be_switched_off(
    rule: Rule, reading_changes: dict[str, Any], context_changes: dict[str, Any]
) -> None:
    reading = make_reading(**reading_changes)
    assert run(reading, **context_changes).rejection.rule is rule  # type: ignore[union-attr]
    assert run(reading, VeeConfig(disabled=frozenset({rule})), **context_changes).accepted


def test_config_from_settings() -> None:
    settings = Settings(
        tokenization_max_reading_kwh=Decimal("50.5"),
        tokenization_reading_max_age_days=3,
        clock_skew_seconds=30,
    )
    cfg = VeeConfig.from_settings(settings, spike_factor=4)
    assert (cfg.max_reading_wh, cfg.mint_max_age_s, cfg.max_skew_s) == (50_500, 3 * DAY_S, 30)
    assert cfg.spike_factor == 4 and cfg.capacity_margin == Fraction(11, 10)
