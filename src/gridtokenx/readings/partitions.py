"""Monthly range partitions of `meter_readings` on PostgreSQL, and retention.

pg_partman manages them when that extension is installed; otherwise this module creates the month
partitions a batch needs (moving any rows that fell into the default partition) and drops
partitions wholly older than the retention period. SQLite has no partitions: retention deletes rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from gridtokenx.core.db import Database

PARENT = "meter_readings"


def month_start(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return datetime(start.year + (start.month == 12), start.month % 12 + 1, 1, tzinfo=UTC)


def partition_name(start: datetime) -> str:
    return f"{PARENT}_p{start:%Y%m}"


class PartitionManager:
    """Creates missing month partitions once per process and remembers which exist."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._known: set[str] = set()
        self._partman: bool | None = None

    @property
    def active(self) -> bool:
        return not self.database.is_sqlite

    async def _uses_partman(self, conn: AsyncConnection) -> bool:
        if self._partman is None:
            found = await conn.scalar(text("SELECT 1 FROM pg_extension WHERE extname = 'pg_partman'"))
            self._partman = bool(found)
        return self._partman

    async def ensure_for(self, moments: list[datetime]) -> None:
        """Make sure every month touched by `moments` has its partition (no-op on SQLite)."""
        if not self.active or not moments:
            return
        months = {month_start(m) for m in moments}
        missing = sorted(m for m in months if partition_name(m) not in self._known)
        if not missing:
            return
        async with self.database.engine.begin() as conn:
            if await self._uses_partman(conn):
                self._known.update(partition_name(m) for m in missing)
                return
            for start in missing:
                await self._create(conn, start)
        self._known.update(partition_name(m) for m in missing)

    async def _create(self, conn: AsyncConnection, start: datetime) -> None:
        name, end = partition_name(start), next_month(start)
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
        exists = await conn.scalar(text("SELECT to_regclass(:name)"), {"name": name})
        if exists:
            return
        bounds = {"lo": start, "hi": end}
        values = f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        stray = await conn.scalar(
            text(
                f"SELECT count(*) FROM {PARENT}_default WHERE interval_start >= :lo AND interval_start < :hi"
            ),
            bounds,
        )
        if not stray:
            await conn.execute(text(f"CREATE TABLE {name} PARTITION OF {PARENT} {values}"))
            return
        # Rows already in the default partition must move into the new one, atomically.
        await conn.execute(
            text(f"CREATE TABLE {name} (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        )
        await conn.execute(
            text(
                f"WITH moved AS (DELETE FROM {PARENT}_default WHERE interval_start >= :lo "
                f"AND interval_start < :hi RETURNING *) INSERT INTO {name} SELECT * FROM moved"
            ),
            bounds,
        )
        await conn.execute(text(f"ALTER TABLE {PARENT} ATTACH PARTITION {name} {values}"))

    async def apply_retention(self, retention_days: int, now: datetime) -> int:
        """Drop (PostgreSQL) or delete (SQLite) readings older than the retention period."""
        if retention_days <= 0:
            return 0
        cutoff = now - timedelta(days=retention_days)
        async with self.database.engine.begin() as conn:
            if not self.active:
                result = await conn.execute(
                    text(f"DELETE FROM {PARENT} WHERE interval_start < :cutoff"), {"cutoff": cutoff}
                )
                return int(result.rowcount or 0)
            rows = await conn.execute(
                text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :parent"
                ),
                {"parent": PARENT},
            )
            dropped = 0
            for (name,) in rows:
                if not name.startswith(f"{PARENT}_p"):
                    continue
                start = datetime.strptime(name.removeprefix(f"{PARENT}_p"), "%Y%m").replace(tzinfo=UTC)
                if next_month(start) <= cutoff:
                    await conn.execute(text(f"DROP TABLE {name}"))
                    self._known.discard(name)
                    dropped += 1
            return dropped
