"""Same-slot medians agree with a median worked out by hand from a stored week: the eighth day
back, estimates, unreported channels and days before the meter's oldest known interval do not
count."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from gridtokenx.core.db import Database
from gridtokenx.meters.models import Meter
from gridtokenx.readings import slot_history
from gridtokenx.readings.reading import QUANTITIES
from gridtokenx.readings.store import NewReading, store_readings

DAY = 86_400
QUARTER = 900
TODAY = int(datetime(2026, 3, 10, 12, 0, tzinfo=UTC).timestamp())


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


async def test_medians_of_the_stored_week(database: Database) -> None:
    async with database.session() as session:
        meters = [
            Meter(serial=f"SLOT-{i}", commissioned_at=_at(TODAY) - timedelta(days=30)) for i in range(2)
        ]
        session.add_all(meters)
        await session.flush()
        rows = []
        expected: dict[tuple[int, int], dict[str, list[int]]] = {}
        for m, meter in enumerate(meters):
            for slot in range(3):  # three consecutive quarters today, the targets
                for days in range(1, 9):  # eight days back: the eighth must not count
                    start = TODAY + slot * QUARTER - days * DAY
                    export = 100 * (m + 1) + 7 * days + slot
                    generation = None if days == 3 else export + 50  # an unreported channel
                    trust = "estimated" if days == 5 else "device-signed"  # estimates never count
                    rows.append(
                        NewReading(
                            meter.id,
                            0,
                            _at(start),
                            QUARTER,
                            trust,
                            "native",
                            _at(start + QUARTER),
                            import_wh=0,
                            export_wh=export,
                            generation_wh=generation,
                        )
                    )
                    if days <= (7 if m == 0 else 4) and trust != "estimated":  # see `first`
                        values = expected.setdefault((m, slot), {name: [] for name in QUANTITIES})
                        values["export_wh"].append(export)
                        values["import_wh"].append(0)
                        if generation is not None:
                            values["generation_wh"].append(generation)
        await store_readings(session, rows)
        wanted = [(1, "export_wh"), (2, "generation_wh"), (3, "consumption_wh")]  # consumption: never sent
        targets = {(meter.id, 0, TODAY + slot * QUARTER): wanted for meter in meters for slot in range(3)}
        # the second meter's oldest known interval is four days back: nothing before is looked at
        first = {meters[0].id: TODAY - 8 * DAY, meters[1].id: TODAY - 4 * DAY}
        medians = await slot_history.same_slot_medians(session, targets, first)
    for m, meter in enumerate(meters):
        for slot in range(3):
            values = expected[(m, slot)]
            assert medians[(meter.id, 0, TODAY + slot * QUARTER)] == {
                "export_wh": slot_history.median(values["export_wh"]),
                "generation_wh": slot_history.median(values["generation_wh"]),
            }
    assert len(expected[(0, 0)]["export_wh"]) == 6 and len(expected[(0, 0)]["generation_wh"]) == 5
    assert len(expected[(1, 0)]["export_wh"]) == 4 and len(expected[(1, 0)]["generation_wh"]) == 3


def test_median_rounds_an_even_count_down() -> None:
    assert slot_history.median([5]) == 5
    assert slot_history.median([9, 1, 4]) == 4
    assert slot_history.median([1, 2]) == 1 and slot_history.median([4, 1, 3, 2]) == 2


async def test_medians_of_runs_with_holes_and_shared_history(database: Database) -> None:
    """Targets in runs (on PostgreSQL one index range per run and day): a run with a hole, two
    runs of one meter a few days apart that share stored days, and a lone target beside them.
    Each target's medians are its own week's, whichever way they are looked up."""
    async with database.session() as session:
        meter = Meter(serial="SLOT-RUNS", commissioned_at=_at(TODAY) - timedelta(days=30))
        session.add(meter)
        await session.flush()
        first = TODAY - 12 * DAY
        values: dict[int, int] = {}  # interval start -> export
        rows = []
        for quarter in range(12 * 96):  # twelve stored days, every quarter
            start = first + quarter * QUARTER
            values[start] = 10 + (quarter * 37) % 500
            rows.append(
                NewReading(
                    meter.id,
                    0,
                    _at(start),
                    QUARTER,
                    "device-signed",
                    "native",
                    _at(start + QUARTER),
                    import_wh=0,
                    export_wh=values[start],
                )
            )
        await store_readings(session, rows)
        today = [TODAY + q * QUARTER for q in (0, 1, 2, 4, 5)]  # a hole at quarter 3
        earlier = [TODAY - 3 * DAY + q * QUARTER for q in range(4)]  # shares days with today's week
        lone = [TODAY - 2 * DAY + 40 * QUARTER]
        wanted = [(1, "export_wh")]
        targets = {(meter.id, 0, start): wanted for start in today + earlier + lone}
        medians = await slot_history.same_slot_medians(session, targets, {meter.id: first})
    assert set(medians) == set(targets)  # the hole's start was not asked for and is not answered
    for _, _, start in targets:
        week = [values[start - days * DAY] for days in range(1, 8)]
        assert medians[(meter.id, 0, start)] == {"export_wh": slot_history.median(week)}


def test_runs_split_where_targets_are_far_apart() -> None:
    meter, other = uuid.uuid4(), uuid.uuid4()
    targets = [(meter, 0, 0), (meter, 0, 900), (meter, 0, 2700), (meter, 0, 2700 + 3601), (other, 0, 900)]
    assert sorted(slot_history._runs(targets)) == sorted(
        [(meter, 0, 0, 2700), (meter, 0, 2700 + 3601, 2700 + 3601), (other, 0, 900, 900)]
    )
