"""Pure certificate rules: periods, overlap, settling, the readings hash, the lifecycle.

No I/O here: the service applies these to rows and the ledger, and the tests run them alone.
Times are integer seconds since the Unix epoch (UTC); energy is integer Wh.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

MIN_PERIOD = 60
MAX_PERIOD = 3600
DEFAULT_PERIOD = 900
HASH_TAG = b"gridtokenx/erc-readings/v1\x00"

NAME = "GridTokenX Renewable Energy Certificate"
SYMBOL = "GTXERC"
# Custom metadata keys on the ledger, in the order they are written.
FIELD_KEYS = ("facility_id", "energy_wh", "period", "technology", "country", "zone", "readings_hash")


class RuleError(ValueError):
    """A request a rule refuses; `code` is the stable error code the API answers with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Period:
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def overlaps(self, other: Period) -> bool:
        """Half-open intervals: a period ending at 10:15 does not overlap one starting at 10:15."""
        return self.start < other.end and other.start < self.end

    def label(self) -> str:
        return f"{_iso(self.start)}/{_iso(self.end)}"

    @property
    def hour(self) -> int:
        """The UTC hour the period lies in (an aligned period never crosses an hour)."""
        return self.start - self.start % 3600


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_period(start: int, end: int, meter_interval: int) -> Period:
    """A certifiable period: 1 minute to 1 hour, a divisor of the hour, aligned to its own length
    (so periods tile each hour and never straddle one), and whole meter intervals long."""
    length = end - start
    if not MIN_PERIOD <= length <= MAX_PERIOD:
        raise RuleError("PERIOD_LENGTH_INVALID", "a certificate period lasts from 1 minute to 1 hour")
    if MAX_PERIOD % length:
        raise RuleError("PERIOD_LENGTH_INVALID", "a certificate period must divide the hour evenly")
    if start % length:
        raise RuleError("PERIOD_NOT_ALIGNED", f"a {length} s period must start on a multiple of {length} s")
    if meter_interval <= 0 or length % meter_interval:
        raise RuleError(
            "PERIOD_NOT_WHOLE_INTERVALS",
            f"the meter reads every {meter_interval} s; the period must span whole intervals",
        )
    return Period(start, end)


def first_overlap(period: Period, existing: Iterable[Period]) -> Period | None:
    return next((other for other in existing if period.overlaps(other)), None)


def settled(period: Period, now: int, delay_seconds: int) -> bool:
    """Late readings may still arrive until `delay_seconds` after the period ends."""
    return now >= period.end + delay_seconds


def aligned_periods(start: int, end: int, length: int) -> list[Period]:
    """Every aligned period of `length` that lies wholly inside [start, end)."""
    first = start + (-start) % length
    return [Period(s, s + length) for s in range(first, end - length + 1, length)]


def readings_hash(canonical: Iterable[bytes]) -> str:
    """SHA-256 over the readings behind a certificate, independent of their order.

    Definition (hex of): SHA-256(b"gridtokenx/erc-readings/v1\\x00" || h_1 || ... || h_n), where
    h_i = SHA-256(canonical bytes of reading i) and the h_i are sorted in ascending byte order.
    Anyone holding the readings can recompute it whatever order they list them in; a duplicate
    reading counts twice, so the set is bound exactly.
    """
    leaves = sorted(hashlib.sha256(item).digest() for item in canonical)
    return hashlib.sha256(HASH_TAG + b"".join(leaves)).hexdigest()


def metadata_fields(
    *,
    facility_id: str,
    energy_wh: int,
    period: Period,
    technology: str,
    country: str,
    zone: str,
    readings_hash: str,
) -> tuple[tuple[str, str], ...]:
    """The custom key/value pairs written on the certificate's mint (FIELD_KEYS order)."""
    values = {
        "facility_id": facility_id,
        "energy_wh": str(energy_wh),
        "period": period.label(),
        "technology": technology,
        "country": country,
        "zone": zone,
        "readings_hash": readings_hash,
    }
    return tuple((key, values[key]) for key in FIELD_KEYS)


def field_differences(expected: Mapping[str, str], on_ledger: Mapping[str, str]) -> list[str]:
    """Keys whose ledger value differs from what the database row says (missing counts)."""
    return [key for key in FIELD_KEYS if expected.get(key) != on_ledger.get(key)]


# ---- lifecycle (EnergyTag's vocabulary) -------------------------------------------------------


class Status(StrEnum):
    PENDING = "pending"  # recorded, its NFT not yet confirmed on the ledger
    ACTIVE = "active"  # held, transferable (a transfer is history, not a status)
    RETIRED = "retired"  # claimed for a beneficiary: burned, irreversible
    WITHDRAWN = "withdrawn"  # revoked by the issuer
    EXPIRED = "expired"  # older than the configured age, no longer usable


class Action(StrEnum):
    ISSUED = "issued"
    TRANSFERRED = "transferred"
    RETIRED = "retired"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


_AFTER: dict[tuple[Status, Action], Status] = {
    (Status.PENDING, Action.ISSUED): Status.ACTIVE,
    (Status.ACTIVE, Action.TRANSFERRED): Status.ACTIVE,
    (Status.ACTIVE, Action.RETIRED): Status.RETIRED,
    (Status.ACTIVE, Action.WITHDRAWN): Status.WITHDRAWN,
    (Status.ACTIVE, Action.EXPIRED): Status.EXPIRED,
}
_REFUSAL = {
    Status.PENDING: ("CERTIFICATE_PENDING", "the certificate is not on the ledger yet"),
    Status.ACTIVE: ("CERTIFICATE_ACTIVE", "the certificate is already active"),
    Status.RETIRED: ("CERTIFICATE_RETIRED", "the certificate is retired; retirement is irreversible"),
    Status.WITHDRAWN: ("CERTIFICATE_WITHDRAWN", "the certificate was withdrawn by the issuer"),
    Status.EXPIRED: ("CERTIFICATE_EXPIRED", "the certificate has expired"),
}


def transition(status: Status, action: Action) -> Status:
    """The status after `action`, or a RuleError naming why the current status forbids it."""
    after = _AFTER.get((status, action))
    if after is None:
        code, message = _REFUSAL[status]
        raise RuleError(code, message)
    return after


def expired(period_end: int, now: int, max_age_seconds: int) -> bool:
    """Expiry counts from the end of the period the energy was generated in (as Project Origin)."""
    return max_age_seconds > 0 and now >= period_end + max_age_seconds


@dataclass(frozen=True, slots=True)
class HourMatch:
    hour: int
    consumed_wh: int
    matched_wh: int

    @property
    def share_ppm(self) -> int:
        """Matched share of consumption in parts per million, capped at 100 %, rounded down."""
        if self.consumed_wh <= 0:
            return 0
        return min(self.matched_wh, self.consumed_wh) * 1_000_000 // self.consumed_wh


def hourly_matching(consumed: Mapping[int, int], retired: Iterable[tuple[Period, int]]) -> list[HourMatch]:
    """Per hour: energy consumed and certified energy retired for the consumer in that same hour."""
    matched: dict[int, int] = {}
    for period, energy_wh in retired:
        matched[period.hour] = matched.get(period.hour, 0) + energy_wh
    hours = sorted(set(consumed) | set(matched))
    return [HourMatch(hour, consumed.get(hour, 0), matched.get(hour, 0)) for hour in hours]
