"""Pure minting rules: conversion, memo hash, refusals, backoff, debt netting (no services)."""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gridtokenx.tokenization.rules import (
    ConversionError,
    CoveredReading,
    backoff_seconds,
    base_units_per_wh,
    net_after_debt,
    readings_sha256,
    refusal,
    wh_to_units,
)


def test_default_ratio_is_a_million_base_units_per_wh() -> None:
    assert base_units_per_wh(Decimal(1), 9) == 10**6
    assert wh_to_units(1000, base_units_per_wh(Decimal(1), 9)) == 10**9  # 1 kWh = 1 token


@pytest.mark.parametrize(
    ("ratio", "decimals", "units"),
    [("2.5", 9, 2_500_000), ("1", 3, 1), ("0.001", 6, 1), ("1000", 0, 1)],
)
def test_exact_ratios(ratio: str, decimals: int, units: int) -> None:
    assert base_units_per_wh(Decimal(ratio), decimals) == units


@pytest.mark.parametrize(("ratio", "decimals"), [("1", 2), ("0.0001", 6), ("1.5", 0), ("0", 9), ("-1", 9)])
def test_unrepresentable_ratio_is_refused(ratio: str, decimals: int) -> None:
    with pytest.raises(ConversionError):
        base_units_per_wh(Decimal(ratio), decimals)


def _covered(wh: int, start: int = 0, revision: int = 0) -> CoveredReading:
    meter = uuid.UUID(int=7)
    return CoveredReading(meter, 0, datetime.fromtimestamp(1_700_000_000 + start, UTC), revision, wh)


def test_memo_hash_is_over_sorted_canonical_lines() -> None:
    a, b = _covered(500), _covered(700, start=900)
    expected = hashlib.sha256(b"".join(sorted([a.canonical(), b.canonical()]))).hexdigest()
    assert readings_sha256([a, b]) == readings_sha256([b, a]) == expected
    assert a.canonical() == f"{uuid.UUID(int=7)}|0|1700000000|0|500\n".encode()
    assert readings_sha256([a]) != readings_sha256([_covered(501)])
    assert readings_sha256([a]) != readings_sha256([_covered(500, revision=1)])


def test_refusals() -> None:
    now = datetime(2026, 12, 4, tzinfo=UTC)
    assert refusal(100_000, now, now, Decimal(100), 7) is None
    assert refusal(100_001, now, now, Decimal(100), 7) == "READING_TOO_LARGE"
    assert refusal(10, now - timedelta(days=7), now, Decimal(100), 7) is None
    assert refusal(10, now - timedelta(days=7, seconds=1), now, Decimal(100), 7) == "READING_TOO_OLD"


def test_backoff_grows_with_jitter_under_the_cap() -> None:
    rng = random.Random(1)
    waits = [backoff_seconds(n, 1.0, 60.0, rng) for n in range(1, 12) for _ in range(20)]
    assert all(0 <= w <= 60.0 for w in waits)
    assert max(backoff_seconds(1, 1.0, 60.0, rng) for _ in range(50)) <= 1.0
    assert max(backoff_seconds(6, 1.0, 60.0, rng) for _ in range(50)) > 16.0
    assert len(set(waits)) > 100  # jittered, not a fixed schedule


def test_debt_is_netted_against_a_mint() -> None:
    assert net_after_debt(500, 0) == (500, 0)
    assert net_after_debt(500, 200) == (300, 0)
    assert net_after_debt(500, 800) == (0, 300)
