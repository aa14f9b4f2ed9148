"""Interval arithmetic: mapping instants to intervals, finding gaps, and estimating short gaps.

Intervals are aligned to the Unix epoch in UTC: with a 900 s interval they start on the quarter
hours. Estimation splits energy into whole Wh with the largest-remainder method, so the estimated
intervals add up exactly to the total they were given.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import msgspec

from gridtokenx.readings.reading import (
    CONSUMPTION,
    EXPORT,
    GENERATION,
    IMPORT,
    QUANTITIES,
    Flag,
    Reading,
    Source,
    Trust,
)

MAX_ESTIMATED_GAP_S = 3600


def floor_to_interval(timestamp: int, interval_s: int) -> int:
    """Start of the interval containing `timestamp`; an identical resend always maps to the same one."""
    if interval_s <= 0:
        raise ValueError("interval must be positive")
    return timestamp - timestamp % interval_s


@dataclass(frozen=True, slots=True)
class Gap:
    """Missing interval starts `start, start + interval_s, ...` up to (not including) `end`."""

    start: int
    end: int
    interval_s: int

    @property
    def seconds(self) -> int:
        return self.end - self.start

    @property
    def starts(self) -> range:
        return range(self.start, self.end, self.interval_s)


def find_gaps(
    interval_starts: Iterable[int], interval_s: int, *, since: int | None = None, until: int | None = None
) -> list[Gap]:
    """Runs of missing intervals between the given starts, oldest first.

    With `since`/`until` (aligned, `until` exclusive) missing intervals before the first and after
    the last present one count too, e.g. `until=floor_to_interval(now, interval_s)`. Duplicates and
    order in the input do not matter; an unaligned start is a ValueError.
    """
    present = sorted(set(interval_starts))
    bounds = [b for b in (since, until) if b is not None]
    for start in (*present, *bounds):
        if start % interval_s:
            raise ValueError(f"{start} is not aligned to {interval_s} s")
    if since is not None:
        present = [since - interval_s, *(s for s in present if s >= since)]
    if until is not None:
        present = [*(s for s in present if s < until), until]
    gaps = []
    for before, after in itertools.pairwise(present):
        if after - before > interval_s:
            gaps.append(Gap(before + interval_s, after, interval_s))
    return gaps


def split_largest_remainder(total: int, weights: Sequence[Fraction | int]) -> list[int]:
    """Split integer `total` into len(weights) integers proportional to `weights`, summing exactly to it.

    Each part is its exact quota rounded down, and the leftover units go one each to the largest
    fractional remainders (earlier parts first on ties). All-zero weights split evenly.
    """
    if not weights:
        raise ValueError("nothing to split into")
    if any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative")
    weight_sum = sum(weights, Fraction(0))
    shares = [Fraction(w) for w in weights] if weight_sum else [Fraction(1)] * len(weights)
    weight_sum = weight_sum or Fraction(len(weights))
    quotas = [total * w / weight_sum for w in shares]
    parts = [q.numerator // q.denominator for q in quotas]
    leftover = total - sum(parts)
    by_remainder = sorted(range(len(parts)), key=lambda i: (-(quotas[i] - parts[i]), i))
    for i in by_remainder[:leftover]:
        parts[i] += 1
    return parts


def estimate_gap(
    before: Reading, after: Reading, interval_s: int, *, max_gap_s: int = MAX_ESTIMATED_GAP_S
) -> list[Reading]:
    """Estimated readings for the intervals strictly between `before` and `after` (same meter and channel).

    Per quantity the shape is a straight line from `before`'s value to `after`'s. The total is the
    register difference when both readings carry that register (import/export), which makes the
    estimates agree with the meter's counters exactly; otherwise it is the line's own sum, rounded
    half to even. Estimates are `Trust.ESTIMATED`, flagged `ESTIMATED`, and never minted.
    A gap longer than `max_gap_s` (default 1 h) is a ValueError: fill it from like days instead.
    """
    if (before.meter_serial, before.channel) != (after.meter_serial, after.channel):
        raise ValueError("before and after belong to different meters or channels")
    gap = Gap(before.interval_start + interval_s, after.interval_start, interval_s)
    missing = len(gap.starts)
    if missing <= 0 or gap.seconds % interval_s:
        raise ValueError("no whole missing intervals between the two readings")
    if gap.seconds > max_gap_s:
        raise ValueError(f"gap of {gap.seconds} s exceeds {max_gap_s} s")

    first, last = before.quantity_values(), after.quantity_values()
    registers_before, registers_after = before.register_values(), after.register_values()
    estimates: dict[str, list[int]] = {}
    for quantity in QUANTITIES:
        if quantity not in first or quantity not in last:
            continue
        a, b = first[quantity], last[quantity]
        line = [a + Fraction((b - a) * i, missing + 1) for i in range(1, missing + 1)]
        if quantity in registers_before and quantity in registers_after:
            total = registers_after[quantity] - last[quantity] - registers_before[quantity]
            if total < 0:
                raise ValueError(f"{quantity} registers imply negative energy in the gap")
        else:
            total = round(sum(line, Fraction(0)))
        estimates[quantity] = split_largest_remainder(total, [max(v, Fraction(0)) for v in line])

    readings = []
    running = dict(registers_before)
    for index, start in enumerate(gap.starts):
        values = {channel: parts[index] for channel, parts in estimates.items()}
        for channel in running:
            running[channel] += values.get(channel, 0)
        readings.append(
            Reading(
                meter_serial=before.meter_serial,
                channel=before.channel,
                interval_start=start,
                duration=interval_s,
                observed_at=start + interval_s,
                import_wh=values.get(IMPORT, 0),
                export_wh=values.get(EXPORT, 0),
                generation_wh=values.get(GENERATION),
                consumption_wh=values.get(CONSUMPTION),
                import_register_wh=running.get(IMPORT),
                export_register_wh=running.get(EXPORT),
                source=Source.ESTIMATE,
                trust=Trust.ESTIMATED,
                flags=frozenset({Flag.ESTIMATED}),
            )
        )
    return readings


def assign_interval(reading: Reading, interval_s: int) -> Reading:
    """Re-map a reading that carries an instant (`observed_at`, the compatibility shapes) onto the
    meter's own interval length, once the meter is known."""
    return msgspec.structs.replace(
        reading, interval_start=floor_to_interval(reading.observed_at, interval_s), duration=interval_s
    )
