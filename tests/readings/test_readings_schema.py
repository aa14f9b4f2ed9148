"""The migrated readings schema on both backends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect

from gridtokenx.core.db import Database


async def _foreign_keys(database: Database, table: str) -> list[dict[str, Any]]:
    async with database.engine.connect() as connection:
        return await connection.run_sync(lambda sync: inspect(sync).get_foreign_keys(table))


async def test_readings_carry_no_per_row_foreign_key_but_rollups_do(database: Database) -> None:
    # migration 0003: no probe of `meters` per inserted reading
    assert await _foreign_keys(database, "meter_readings") == []
    for table in ("meter_rollups_hourly", "meter_rollups_daily"):
        [fk] = await _foreign_keys(database, table)
        assert fk["referred_table"] == "meters" and fk["constrained_columns"] == ["meter_id"]
