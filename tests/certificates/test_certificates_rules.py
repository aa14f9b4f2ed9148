"""Certificate rules without services: periods, overlap, settling, readings hash, lifecycle."""

from __future__ import annotations

import hashlib
import random

import pytest

from gridtokenx.certificates import rules
from gridtokenx.certificates.rules import Action, Period, RuleError, Status

HOUR = 1_767_225_600  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize("length", [60, 300, 900, 1800, 3600])
def test_aligned_periods_of_every_allowed_length_are_accepted(length: int) -> None:
    period = rules.check_period(HOUR + length, HOUR + 2 * length, meter_interval=60)
    assert period.length == length


@pytest.mark.parametrize(
    ("start", "end", "interval", "code"),
    [
        (HOUR, HOUR + 30, 30, "PERIOD_LENGTH_INVALID"),  # under a minute
        (HOUR, HOUR + 7200, 900, "PERIOD_LENGTH_INVALID"),  # over an hour
        (HOUR, HOUR + 420, 60, "PERIOD_LENGTH_INVALID"),  # 7 min does not divide the hour
        (HOUR, HOUR - 900, 900, "PERIOD_LENGTH_INVALID"),  # end before start
        (HOUR + 300, HOUR + 1200, 300, "PERIOD_NOT_ALIGNED"),
        (HOUR, HOUR + 300, 900, "PERIOD_NOT_WHOLE_INTERVALS"),
    ],
)
def test_bad_periods_are_refused_with_their_code(start: int, end: int, interval: int, code: str) -> None:
    with pytest.raises(RuleError) as refused:
        rules.check_period(start, end, meter_interval=interval)
    assert refused.value.code == code


def test_overlap_is_half_open() -> None:
    quarter = Period(HOUR, HOUR + 900)
    assert not quarter.overlaps(Period(HOUR + 900, HOUR + 1800))
    assert not Period(HOUR - 900, HOUR).overlaps(quarter)
    assert quarter.overlaps(Period(HOUR + 600, HOUR + 1200))
    assert quarter.overlaps(Period(HOUR, HOUR + 3600))
    assert rules.first_overlap(
        quarter, [Period(HOUR + 900, HOUR + 1800), Period(HOUR + 300, HOUR + 360)]
    ) == Period(HOUR + 300, HOUR + 360)
    assert rules.first_overlap(quarter, []) is None


def test_settling_delay() -> None:
    period = Period(HOUR, HOUR + 900)
    assert not rules.settled(period, HOUR + 900 + 599, 600)
    assert rules.settled(period, HOUR + 900 + 600, 600)
    assert rules.settled(period, HOUR + 900, 0)


def test_aligned_periods_inside_a_window() -> None:
    got = rules.aligned_periods(HOUR + 100, HOUR + 2800, 900)
    assert got == [Period(HOUR + 900, HOUR + 1800), Period(HOUR + 1800, HOUR + 2700)]
    assert rules.aligned_periods(HOUR, HOUR + 3600, 900)[-1] == Period(HOUR + 2700, HOUR + 3600)
    assert rules.aligned_periods(HOUR, HOUR + 899, 900) == []


def test_readings_hash_is_order_independent_and_follows_its_definition() -> None:
    items = [f'{{"n":{i}}}'.encode() for i in range(20)]
    shuffled = items[:]
    random.Random(7).shuffle(shuffled)
    assert rules.readings_hash(items) == rules.readings_hash(shuffled)

    leaves = sorted(hashlib.sha256(item).digest() for item in items)
    expected = hashlib.sha256(b"gridtokenx/erc-readings/v1\x00" + b"".join(leaves)).hexdigest()
    assert rules.readings_hash(items) == expected

    assert rules.readings_hash(items[:-1]) != rules.readings_hash(items)
    assert rules.readings_hash([*items, items[0]]) != rules.readings_hash(items)  # a duplicate counts
    revised = [b'{"n":0,"v":2}', *items[1:]]
    assert rules.readings_hash(revised) != rules.readings_hash(items)


def test_metadata_fields_and_their_differences() -> None:
    fields = rules.metadata_fields(
        facility_id="MTR-1",
        energy_wh=1234,
        period=Period(HOUR, HOUR + 900),
        technology="solar-pv",
        country="TH",
        zone="3",
        readings_hash="ab" * 32,
    )
    assert [key for key, _ in fields] == list(rules.FIELD_KEYS)
    as_dict = dict(fields)
    assert as_dict["energy_wh"] == "1234"
    assert as_dict["period"] == "2026-01-01T00:00:00Z/2026-01-01T00:15:00Z"
    assert rules.field_differences(as_dict, as_dict) == []
    assert rules.field_differences(as_dict, {**as_dict, "energy_wh": "9999"}) == ["energy_wh"]
    missing = {k: v for k, v in as_dict.items() if k != "readings_hash"}
    assert rules.field_differences(as_dict, missing) == ["readings_hash"]


def test_lifecycle_transitions() -> None:
    assert rules.transition(Status.PENDING, Action.ISSUED) is Status.ACTIVE
    assert rules.transition(Status.ACTIVE, Action.TRANSFERRED) is Status.ACTIVE
    assert rules.transition(Status.ACTIVE, Action.RETIRED) is Status.RETIRED
    assert rules.transition(Status.ACTIVE, Action.WITHDRAWN) is Status.WITHDRAWN
    assert rules.transition(Status.ACTIVE, Action.EXPIRED) is Status.EXPIRED


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (Status.RETIRED, "CERTIFICATE_RETIRED"),
        (Status.WITHDRAWN, "CERTIFICATE_WITHDRAWN"),
        (Status.EXPIRED, "CERTIFICATE_EXPIRED"),
        (Status.PENDING, "CERTIFICATE_PENDING"),
    ],
)
@pytest.mark.parametrize("action", [Action.TRANSFERRED, Action.RETIRED, Action.WITHDRAWN, Action.EXPIRED])
def test_only_an_active_certificate_moves(status: Status, code: str, action: Action) -> None:
    with pytest.raises(RuleError) as refused:
        rules.transition(status, action)
    assert refused.value.code == code


def test_issuing_twice_is_refused() -> None:
    with pytest.raises(RuleError) as refused:
        rules.transition(Status.ACTIVE, Action.ISSUED)
    assert refused.value.code == "CERTIFICATE_ACTIVE"


def test_expiry_counts_from_the_period_end() -> None:
    assert not rules.expired(HOUR, HOUR + 99, 100)
    assert rules.expired(HOUR, HOUR + 100, 100)
    assert not rules.expired(HOUR, HOUR + 10**9, 0)  # 0 turns expiry off


def test_hourly_matching() -> None:
    consumed = {HOUR: 1000, HOUR + 3600: 400}
    retired = [
        (Period(HOUR, HOUR + 900), 300),
        (Period(HOUR + 900, HOUR + 1800), 200),
        (Period(HOUR + 3600, HOUR + 4500), 900),
        (Period(HOUR + 7200, HOUR + 8100), 50),
    ]
    got = rules.hourly_matching(consumed, retired)
    assert [(m.hour, m.consumed_wh, m.matched_wh, m.share_ppm) for m in got] == [
        (HOUR, 1000, 500, 500_000),
        (HOUR + 3600, 400, 900, 1_000_000),  # capped at 100 %
        (HOUR + 7200, 0, 50, 0),
    ]
    assert rules.hourly_matching({}, []) == []
