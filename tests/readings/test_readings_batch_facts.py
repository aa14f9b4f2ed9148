"""What an ingest batch reads about its meters, keys and state: the same facts on both backends,
for any number of wanted ids (PostgreSQL sends them as one array, SQLite as an `IN` list)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.core.db import Database
from gridtokenx.meters.facts import keys_by_meter, meters_by_serial
from gridtokenx.meters.models import DeviceKey, Meter
from gridtokenx.readings.batch_facts import states_by_meter
from gridtokenx.readings.models import MeterIngestState
from gridtokenx.readings.signing import DeviceSigner
from tests.readings.ingest_helpers import added_meter

COMMISSIONED = datetime(2026, 1, 1, tzinfo=UTC)


async def _fleet(session: AsyncSession, size: int) -> list[Meter]:
    meters = [await added_meter(session, f"FACTS-{i:03d}", COMMISSIONED) for i in range(size)]
    for i, meter in enumerate(meters):
        for k in range(i % 3):  # none, one or two keys
            pair = DeviceSigner.from_seed(bytes([i, k]) * 16)
            session.add(DeviceKey(meter_id=meter.id, key_id=pair.key_id, public_key=pair.public_key_hex))
        if i % 2:
            session.add(MeterIngestState(meter_id=meter.id, seq_highest=i, recent={"v": [[i]]}))
    await session.flush()
    return meters


async def test_facts_are_found_for_every_batch_size(database: Database) -> None:
    async with database.session() as session:
        meters = await _fleet(session, 12)
        for size in (1, 5, 12):
            wanted = meters[:size]
            found = await meters_by_serial(session, {m.serial for m in wanted} | {"NO-SUCH-METER"})
            assert sorted(found) == sorted(m.serial for m in wanted)
            facts = found[wanted[-1].serial]
            assert (facts.id, facts.interval_seconds, facts.commissioned_at) == (
                wanted[-1].id,
                wanted[-1].interval_seconds,
                COMMISSIONED,
            )

            keys = await keys_by_meter(session, [m.id for m in wanted])
            assert {m: len(k) for m, k in keys.items()} == {
                m.id: i % 3 for i, m in enumerate(wanted) if i % 3
            }
            assert all(k.meter_id == m for m, ks in keys.items() for k in ks)
            assert all(k.valid_from.tzinfo is not None for ks in keys.values() for k in ks)

            ids = sorted(m.id for m in wanted)
            for lock in (False, True):
                states = await states_by_meter(session, ids, lock=lock and not database.is_sqlite)
                assert {m: (s.seq_highest, s.recent) for m, s in states.items()} == {
                    m.id: (i, {"v": [[i]]}) for i, m in enumerate(wanted) if i % 2
                }


async def test_no_wanted_ids_reads_nothing(database: Database) -> None:
    async with database.session() as session:
        await _fleet(session, 3)
        assert await meters_by_serial(session, set()) == {}
        assert await keys_by_meter(session, []) == {}
        assert await states_by_meter(session, [], lock=False) == {}
