"""The migrated readings schema on both backends."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from sqlalchemy import inspect, text

from gridtokenx.core.db import Database
from gridtokenx.core.migrate import alembic_config, current_revision, head_revision, upgrade
from gridtokenx.readings.store import NewReading, store_readings
from tests.readings.ingest_helpers import added_meter


async def _foreign_keys(database: Database, table: str) -> list[dict[str, Any]]:
    async with database.engine.connect() as connection:
        return await connection.run_sync(lambda sync: inspect(sync).get_foreign_keys(table))


async def test_readings_carry_no_per_row_foreign_key_but_rollups_do(database: Database) -> None:
    # migration 0003: no probe of `meters` per inserted reading
    assert await _foreign_keys(database, "meter_readings") == []
    for table in ("meter_rollups_hourly", "meter_rollups_daily"):
        [fk] = await _foreign_keys(database, table)
        assert fk["referred_table"] == "meters" and fk["constrained_columns"] == ["meter_id"]


def _downgrade(connection: Any, url: str, revision: str) -> None:
    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def test_content_hash_is_restored_as_the_old_code_wrote_it_on_downgrade(database: Database) -> None:
    # migration 0005 dropped the column; its downgrade recomputes it on PostgreSQL
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    async with database.session() as session:
        meter = await added_meter(session, "HASH-1", at - timedelta(days=1))
        reading = NewReading(
            meter.id, 0, at, 900, "device-signed", "native", at, import_wh=0, export_wh=7, generation_wh=9
        )
        await store_readings(session, [reading])
    old_text = "0|7|9|None|None|None|900|device-signed"
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(_downgrade, database.url, "0004")
        async with database.engine.connect() as connection:
            stored = await connection.scalar(text("SELECT content_hash FROM meter_readings"))
    finally:
        await upgrade(database)
    expected = "" if database.is_sqlite else hashlib.sha256(old_text.encode()).hexdigest()
    assert stored == expected
    assert await current_revision(database) == head_revision()
