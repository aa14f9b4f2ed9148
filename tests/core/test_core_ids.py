"""Time-ordered reading ids and the last-use throttle of credentials."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from gridtokenx.core.ids import uuid7
from gridtokenx.core.types import last_use_due


def test_uuid7_is_a_valid_version_7_uuid_in_canonical_form() -> None:
    text = uuid7()
    parsed = uuid.UUID(text)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert str(parsed) == text


def test_uuid7_ids_are_unique_across_refills_and_ordered_by_time() -> None:
    ids = [uuid7() for _ in range(10_000)]  # more than two blocks of random bits
    assert len(set(ids)) == len(ids)
    stamps = [uuid.UUID(i).int >> 80 for i in ids]
    assert stamps == sorted(stamps)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    assert abs(stamps[-1] - now_ms) < 60_000


def test_last_use_is_written_at_most_once_a_minute() -> None:
    now = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)
    assert last_use_due(None, now)
    assert not last_use_due(now - timedelta(seconds=59), now)
    assert last_use_due(now - timedelta(minutes=1), now)
    assert not last_use_due((now - timedelta(seconds=10)).replace(tzinfo=None), now)  # naive = UTC
