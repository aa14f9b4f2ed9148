"""What the ingest pipeline reports to Prometheus and to the event stream, kept beside it so the
pipeline itself gains a line per fact, not a block."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from gridtokenx.core.metrics import (
    READINGS_DURATION,
    READINGS_SUBMITTED,
    READINGS_VALIDATION_ERRORS,
    SIGNATURE_VERIFICATIONS,
)

if TYPE_CHECKING:
    from gridtokenx.meters.facts import MeterFacts
    from gridtokenx.readings.ingest_results import ItemResult
    from gridtokenx.readings.pipeline import Submitter


def observe_batch(results: Iterable[ItemResult], seconds: float) -> None:
    """Readings submitted, rejections by code, and the batch's duration."""
    submitted = 0
    errors: Counter[str] = Counter()
    for result in results:
        submitted += 1
        if result.status == "rejected":
            errors[result.code or "UNKNOWN"] += 1
    READINGS_SUBMITTED.inc(submitted)
    for code, count in errors.items():
        READINGS_VALIDATION_ERRORS.labels(code).inc(count)
    READINGS_DURATION.observe(seconds)


def count_verdicts(verdicts: Iterable[tuple[str, Any]]) -> None:
    for verdict, count in Counter(v for v, _ in verdicts).items():
        SIGNATURE_VERIFICATIONS.labels("valid" if verdict == "signed" else verdict).inc(count)


def rejection_owners(
    result: ItemResult, submitter: Submitter, meters: Mapping[str, MeterFacts]
) -> dict[str, str | None]:
    """Who may see a rejection: the submitter (or, over device-only transports, the meter's
    owner), and the meter's channel only when the submitter may report for that meter."""
    meter = meters.get(result.meter_serial or "")
    allowed = meter is not None and submitter.may_submit_for(meter)
    owner = meter.owner_id if allowed and meter is not None else None
    user = submitter.user.id if submitter.user is not None else owner
    return {
        "user_id": None if user is None else str(user),
        "meter_id": str(meter.id) if allowed and meter is not None else None,
        "meter_serial": result.meter_serial,
    }
