"""Interval mapping, gaps and their estimation, the seq replay window, and sun elevation."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridtokenx.readings.intervals import (
    Gap,
    estimate_gap,
    find_gaps,
    floor_to_interval,
    split_largest_remainder,
)
from gridtokenx.readings.reading import Flag, Reading, Source, Trust
from gridtokenx.readings.replay import ReplayWindow, SeqVerdict
from gridtokenx.readings.solar import solar_elevation_deg

FAST = settings(max_examples=150, deadline=None)
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
Q = 900


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def reading(start: int, **values: int | None) -> Reading:
    base: dict[str, int | None] = {
        "import_wh": 0,
        "export_wh": 0,
        "generation_wh": None,
        "consumption_wh": None,
    }
    base |= values
    return Reading(
        meter_serial="M1",
        interval_start=start,
        duration=Q,
        observed_at=start + Q,
        source=Source.NATIVE,
        trust=Trust.DEVICE_SIGNED,
        **base,  # type: ignore[arg-type]
    )


def test_floor_to_interval() -> None:
    assert floor_to_interval(T0 + 899, Q) == T0
    assert floor_to_interval(T0 + 900, Q) == T0 + Q
    with pytest.raises(ValueError):
        floor_to_interval(T0, 0)


def test_find_gaps_between_and_around_present_intervals() -> None:
    present = [T0 + 3 * Q, T0, T0 + Q, T0 + Q, T0 + 7 * Q]
    assert find_gaps(present, Q) == [Gap(T0 + 2 * Q, T0 + 3 * Q, Q), Gap(T0 + 4 * Q, T0 + 7 * Q, Q)]
    assert list(find_gaps(present, Q)[1].starts) == [T0 + 4 * Q, T0 + 5 * Q, T0 + 6 * Q]
    bounded = find_gaps(present, Q, since=T0 - 2 * Q, until=T0 + 10 * Q)
    assert bounded[0] == Gap(T0 - 2 * Q, T0, Q) and bounded[-1] == Gap(T0 + 8 * Q, T0 + 10 * Q, Q)
    assert find_gaps([T0, T0 + Q], Q) == []
    assert find_gaps([], Q, since=T0, until=T0 + 2 * Q) == [Gap(T0, T0 + 2 * Q, Q)]
    with pytest.raises(ValueError):
        find_gaps([T0 + 1], Q)


@FAST
@given(st.integers(-(10**9), 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=12))
def test_largest_remainder_preserves_the_total_exactly(total: int, weights: list[int]) -> None:
    parts = split_largest_remainder(total, weights)
    assert sum(parts) == total and len(parts) == len(weights)
    weight_sum = sum(weights) or len(weights)
    shares = weights if sum(weights) else [1] * len(weights)
    for part, weight in zip(parts, shares, strict=True):
        assert abs(part - Fraction(total * weight, weight_sum)) < 1


def test_largest_remainder_gives_leftover_to_the_largest_remainders() -> None:
    assert split_largest_remainder(10, [1, 1, 1]) == [4, 3, 3]
    assert split_largest_remainder(100, [Fraction(1, 3), Fraction(2, 3)]) == [33, 67]
    assert split_largest_remainder(5, [0, 0]) == [3, 2]


def test_estimate_gap_interpolates_and_matches_the_register_difference() -> None:
    before = reading(T0, export_wh=100, generation_wh=400, export_register_wh=10_000)
    # three intervals missing; the export register rose 1,003 Wh in them (after's own 700 excluded)
    after = reading(T0 + 4 * Q, export_wh=700, generation_wh=800, export_register_wh=11_703)
    estimates = estimate_gap(before, after, Q)
    assert [e.interval_start for e in estimates] == [T0 + Q, T0 + 2 * Q, T0 + 3 * Q]
    # line 250, 400, 550 (sum 1,200) scaled to 1,003: quotas 208.96, 334.33, 459.71
    assert [e.export_wh for e in estimates] == [209, 334, 460]
    assert [e.export_register_wh for e in estimates] == [10_209, 10_543, 11_003]
    assert [e.generation_wh for e in estimates] == [500, 600, 700]
    assert all(e.trust is Trust.ESTIMATED and e.flags == {Flag.ESTIMATED} for e in estimates)
    assert all(e.source is Source.ESTIMATE and e.consumption_wh is None for e in estimates)


def test_estimate_gap_without_registers_rounds_the_line_total_half_to_even() -> None:
    estimates = estimate_gap(reading(T0, import_wh=1), reading(T0 + 2 * Q, import_wh=2), Q)
    assert [e.import_wh for e in estimates] == [2]  # the line gives 1.5 Wh: ties to even


def test_estimate_gap_refuses_long_gaps_other_meters_and_nothing_to_fill() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        estimate_gap(reading(T0), reading(T0 + 6 * Q), Q)  # 5 missing = 75 min > 1 h
    assert len(estimate_gap(reading(T0), reading(T0 + 5 * Q), Q)) == 4  # exactly 1 h is fine
    with pytest.raises(ValueError):
        estimate_gap(reading(T0), reading(T0 + Q), Q)
    for other in (
        msgspec.structs.replace(reading(T0 + 2 * Q), meter_serial="M2"),
        msgspec.structs.replace(reading(T0 + 2 * Q), channel=1),
    ):
        with pytest.raises(ValueError, match="different meters"):
            estimate_gap(reading(T0), other, Q)


# --- replay window ----------------------------------------------------------------------------


def test_replay_window_accepts_each_seq_once_even_out_of_order() -> None:
    window = ReplayWindow.first(100)
    assert window.check(100) is SeqVerdict.REPLAYED
    for seq in (105, 101, 103):
        assert window.check(seq) is SeqVerdict.FRESH
        window = window.record(seq)
    assert window.highest == 105
    assert [window.check(s) for s in (101, 102, 103, 104, 106)] == [
        SeqVerdict.REPLAYED,
        SeqVerdict.FRESH,
        SeqVerdict.REPLAYED,
        SeqVerdict.FRESH,
        SeqVerdict.FRESH,
    ]
    far = window.record(105 + 2000)
    assert far.check(105) is SeqVerdict.TOO_OLD and far.check(105 + 2000 - 1023) is SeqVerdict.FRESH
    assert far.check(105 + 2000 - 1024) is SeqVerdict.TOO_OLD


@FAST
@given(st.lists(st.integers(0, 3000), min_size=1, max_size=60))
def test_replay_window_state_survives_storage(seqs: list[int]) -> None:
    window = ReplayWindow.first(seqs[0])
    seen = {seqs[0]}
    for seq in seqs[1:]:
        verdict = window.check(seq)
        if seq in seen and seq > window.highest - window.size:
            assert verdict is SeqVerdict.REPLAYED
        if verdict is SeqVerdict.FRESH:
            assert seq not in seen
            window = window.record(seq)
            seen.add(seq)
    stored = ReplayWindow.from_bitmap(window.highest, window.bitmap_bytes())
    assert stored == window and len(window.bitmap_bytes()) == 128


# --- sun elevation ----------------------------------------------------------------------------


def test_sun_overhead_at_the_equator_at_equinox_noon_and_below_at_midnight() -> None:
    # equation of time is about -7.5 min on 20 March: solar noon at longitude 0 is ~12:07 UTC
    assert solar_elevation_deg(0.0, 0.0, at("2025-03-20T12:07:00")) > 89.5
    assert solar_elevation_deg(0.0, 0.0, at("2025-03-21T00:07:00")) < -89.0
    assert abs(solar_elevation_deg(0.0, 0.0, at("2025-03-20T06:07:00"))) < 0.5  # sunrise
    assert abs(solar_elevation_deg(0.0, 0.0, at("2025-03-20T18:07:00"))) < 0.5  # sunset


def test_polar_day_and_night_at_the_june_solstice() -> None:
    for hour in (0, 6, 12, 18):
        moment = at(f"2025-06-21T{hour:02d}:00:00")
        assert abs(solar_elevation_deg(90.0, 0.0, moment) - 23.44) < 0.05
        assert abs(solar_elevation_deg(-90.0, 0.0, moment) + 23.44) < 0.05


def test_known_sunrise_times() -> None:
    # London sunrise on 21 June 2025 is 04:43 BST (03:43 UTC); the apparent horizon is -0.833 deg
    london = solar_elevation_deg(51.5074, -0.1278, at("2025-06-21T03:43:00"))
    assert -1.1 < london < -0.55
    # Bangkok (UTC+7): dark at 04:30 local, full sun at local noon
    assert solar_elevation_deg(13.7563, 100.5018, at("2025-06-20T21:30:00")) < -10
    assert solar_elevation_deg(13.7563, 100.5018, at("2025-06-21T05:30:00")) > 75
