"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps everywhere (SQLite would otherwise hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store UTC-aware timestamps only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.driver == "asyncpg":
            return None  # asyncpg hands `timestamptz` back as UTC-aware datetimes already
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


@lru_cache(maxsize=65_536)
def utc_from_epoch(epoch: int) -> datetime:
    """An epoch second as a UTC datetime; cached, since the interval starts of a batch repeat
    across its meters and readings."""
    return datetime.fromtimestamp(epoch, UTC)


LAST_USED_RESOLUTION = timedelta(minutes=1)


def last_use_due(last_used_at: datetime | None, now: datetime) -> bool:
    """Whether a credential's `last_used_at` should be written again: it is kept to the minute,
    since a row update on every request would serialise concurrent requests of one credential
    on its row lock and cost a commit each."""
    if last_used_at is None:
        return True
    if last_used_at.tzinfo is None:
        last_used_at = last_used_at.replace(tzinfo=UTC)
    return now - last_used_at >= LAST_USED_RESOLUTION
