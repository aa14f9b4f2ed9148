"""Pure minting rules: unit conversion, the readings memo, eligibility and retry backoff (no I/O)."""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

WH_PER_KWH = 1000


class ConversionError(ValueError):
    """A token ratio that cannot be applied exactly in integer base units per Wh."""


def base_units_per_wh(kwh_to_token_ratio: Decimal, decimals: int) -> int:
    """Token base units one Wh is worth: ratio tokens per kWh, 10^decimals base units per token.

    Refused unless exact: a fraction of a base unit per Wh would round somebody's energy away.
    """
    if kwh_to_token_ratio <= 0:
        raise ConversionError(f"the kWh-to-token ratio must be positive, got {kwh_to_token_ratio}")
    units = Decimal(kwh_to_token_ratio) * (Decimal(10) ** decimals) / WH_PER_KWH
    if units != units.to_integral_value():
        raise ConversionError(
            f"ratio {kwh_to_token_ratio} with {decimals} decimals is {units} base units per Wh, "
            "not a whole number"
        )
    return int(units)


def wh_to_units(wh: int, units_per_wh: int) -> int:
    return wh * units_per_wh


@dataclass(frozen=True, slots=True)
class CoveredReading:
    """What a mint transaction's memo commits to for one reading (or one correction of it)."""

    meter_id: uuid.UUID
    channel: int
    interval_start: datetime
    revision: int
    amount_wh: int

    def canonical(self) -> bytes:
        """One line per reading: meter, channel, interval start (epoch s), revision, Wh."""
        start = int(self.interval_start.timestamp())
        return f"{self.meter_id}|{self.channel}|{start}|{self.revision}|{self.amount_wh}\n".encode()


def readings_sha256(readings: Iterable[CoveredReading]) -> str:
    """SHA-256 (hex) over the canonical lines of the readings, sorted, so anyone can recompute it."""
    digest = hashlib.sha256()
    for line in sorted(r.canonical() for r in readings):
        digest.update(line)
    return digest.hexdigest()


def refusal(
    amount_wh: int,
    interval_start: datetime,
    recorded_at: datetime,
    max_reading_kwh: Decimal,
    max_age_days: int,
) -> str | None:
    """Why a reading's energy is never minted (too large, too old when recorded), or None."""
    if amount_wh > max_reading_kwh * WH_PER_KWH:
        return "READING_TOO_LARGE"
    if interval_start < recorded_at - timedelta(days=max_age_days):
        return "READING_TOO_OLD"
    return None


def backoff_seconds(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: a random wait in [0, min(cap, base * 2^(attempt-1))]."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return (rng or random).uniform(0, ceiling)


def net_after_debt(amount: int, debt: int) -> tuple[int, int]:
    """(amount still to mint, debt still owed) once a debt is netted against a mint."""
    settled = min(amount, debt)
    return amount - settled, debt - settled
