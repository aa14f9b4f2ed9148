"""Same-slot history for the spike rule: for each reading of a batch, the median of each of its
energy quantities over the same interval on each of the seven days before it (stored, measured readings).
A spike is a value above a multiple of a positive median, which a zero value never is, so only a
reading's quantities with energy are asked for.

With a week of history this is seven stored rows per reading, the largest lookup of the ingest
path: handing them to Python cost more than verifying the reading's signature. So on PostgreSQL
one statement works out the medians (index scans: one per run of a meter's consecutive targets and
day, or one per target and day when targets come one per meter). SQLite gathers each reading's
week in one statement too, and Python works the medians out. The figures behind these choices:
docs/decisions/2026-12-02-same-slot-medians-in-the-database.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.core.db import asyncpg_connection, is_postgres, json_document
from gridtokenx.core.types import utc_from_epoch
from gridtokenx.readings.reading import QUANTITIES, Reading, Trust
from gridtokenx.readings.store import READINGS

DAY_S = 86_400
SLOT_DAYS = 7
SlotKey = tuple[uuid.UUID, int, int]  # (meter, channel, interval start in epoch seconds)
Wanted = list[tuple[int, str]]  # (position among QUANTITIES, name) of quantities with energy


def quantities_with_energy(reading: Reading) -> Wanted:
    values = reading.quantity_values()
    return [(position, name) for position, name in enumerate(QUANTITIES) if values.get(name, 0) > 0]


async def same_slot_medians(
    session: AsyncSession, targets: Mapping[SlotKey, Wanted], first_start: Mapping[uuid.UUID, int | None]
) -> dict[SlotKey, dict[str, int]]:
    """Medians per target and wanted quantity; a target without stored history is left out.
    `first_start` is each meter's oldest stored interval (None: nothing stored yet)."""
    targets = {t: wanted for t, wanted in targets.items() if first_start.get(t[0]) is not None}
    if not targets:
        return {}
    gather = _medians_pg if is_postgres(session) else _medians_sqlite
    return {
        target: {name: value for position, name in targets[target] if (value := found[position]) is not None}
        for target, found in (await gather(session, targets, first_start)).items()
    }


Medians = list[int | None]  # a target's median of each of QUANTITIES (None: nothing reported)


def _sql_median(name: str) -> str:
    """`median()` of the sorted array `name` in integers: the middle value, or the two middle
    ones summed and halved (rounded down: energy is never negative); NULL for no values."""
    return f"({name}[(cardinality({name}) + 1) / 2] + {name}[cardinality({name}) / 2 + 1]) / 2"


RUN_GAP_S = 3_600  # a meter's targets further apart than this are looked up as separate runs


# PostgreSQL, for targets in runs: a row per run and target start with stored history: (run
# position from 1, target start, the median of each quantity). A run is a meter's nearby targets
# on one channel, looked up as one index range per day back (clipped at the meter's oldest stored
# interval; a day that ends before it is skipped). Each row counts for the target that many days
# later, so the rows grouped by (run, target start) are each target's week; a group for a start
# between two targets of a run was not asked for and is dropped. Runs of one meter and channel are
# disjoint, so a row counts at most once per target. The range is a lateral subquery (`OFFSET 0`)
# so the planner keeps one index scan per run and day: as a plain join it hashed the whole table
# once its statistics knew the table's size. Runs of several targets are cheaper as ranges, runs of
# one as probes (below): a range scan reads on past its last row.
_PG_RANGES = (
    "WITH span AS MATERIALIZED (SELECT w.run, w.meter_id, w.channel, d.days, "
    f"to_timestamp(greatest(w.lo - d.days * {DAY_S}, w.first_s)) AS lo, "
    f"to_timestamp(w.hi - d.days * {DAY_S}) AS hi "
    "FROM unnest($1::uuid[], $2::smallint[], $3::bigint[], $4::bigint[], $5::bigint[]) WITH ORDINALITY "
    "AS w(meter_id, channel, lo, hi, first_s, run) "
    f"CROSS JOIN generate_series(1, {SLOT_DAYS}) AS d(days) WHERE w.hi - d.days * {DAY_S} >= w.first_s) "
    "SELECT run, start_s, "
    + ", ".join(_sql_median(name) for name in QUANTITIES)
    + f" FROM (SELECT s.run, extract(epoch FROM r.interval_start)::bigint + s.days * {DAY_S} AS start_s, "
    + ", ".join(
        f"array_agg(r.{name} ORDER BY r.{name}) FILTER (WHERE r.{name} IS NOT NULL) AS {name}"
        for name in QUANTITIES
    )
    + " FROM span AS s CROSS JOIN LATERAL (SELECT interval_start, "
    + ", ".join(QUANTITIES)
    + " FROM meter_readings WHERE meter_id = s.meter_id AND channel = s.channel "
    f"AND interval_start BETWEEN s.lo AND s.hi AND trust <> '{Trust.ESTIMATED.value}' OFFSET 0) AS r "
    "GROUP BY 1, 2) AS week"
)

# PostgreSQL, for targets mostly one per meter: a row per target with stored history: its
# position in the arrays (from 1), then the median of each quantity. The week's probes are made
# first (materialised), so the readings are joined on plain key columns (an index lookup each); a
# probe before the meter's oldest stored interval is skipped: nothing is there.
_PG_PROBES = (
    "WITH probe AS MATERIALIZED ("
    f"SELECT w.t, w.meter_id, w.channel, to_timestamp(w.start_s - d.days * {DAY_S}) AS interval_start "
    "FROM unnest($1::uuid[], $2::smallint[], $3::bigint[], $4::bigint[]) WITH ORDINALITY "
    "AS w(meter_id, channel, start_s, first_s, t) "
    f"CROSS JOIN generate_series(1, {SLOT_DAYS}) AS d(days) WHERE w.start_s - d.days * {DAY_S} >= w.first_s) "
    "SELECT t, "
    + ", ".join(_sql_median(name) for name in QUANTITIES)
    + " FROM (SELECT probe.t, "
    + ", ".join(
        f"array_agg(r.{name} ORDER BY r.{name}) FILTER (WHERE r.{name} IS NOT NULL) AS {name}"
        for name in QUANTITIES
    )
    + " FROM probe JOIN meter_readings AS r USING (meter_id, channel, interval_start) "
    f"WHERE r.trust <> '{Trust.ESTIMATED.value}' GROUP BY probe.t) AS week"
)


def _runs(targets: list[SlotKey]) -> list[tuple[uuid.UUID, int, int, int]]:
    """(meter, channel, first start, last start) of each run of targets: a run ends where the
    next target of its meter and channel is more than RUN_GAP_S after the one before."""
    starts: dict[tuple[uuid.UUID, int], list[int]] = {}
    for meter_id, channel, start in targets:
        starts.setdefault((meter_id, channel), []).append(start)
    runs = []
    for (meter_id, channel), moments in starts.items():
        moments.sort()
        lo = previous = moments[0]
        for start in moments[1:]:
            if start - previous > RUN_GAP_S:
                runs.append((meter_id, channel, lo, previous))
                lo = start
            previous = start
        runs.append((meter_id, channel, lo, previous))
    return runs


async def _medians_pg(
    session: AsyncSession, targets: Mapping[SlotKey, Wanted], first_start: Mapping[uuid.UUID, int | None]
) -> dict[SlotKey, Medians]:
    """Ranges when the batch's targets come in runs (a device's or head-end's consecutive
    intervals), probes when they are mostly one per meter."""
    connection = await asyncpg_connection(session)
    runs = _runs(list(targets))
    if len(runs) * 2 > len(targets):
        listed = list(targets)
        found = await connection.fetch(
            _PG_PROBES,
            [t[0] for t in listed],
            [t[1] for t in listed],
            [t[2] for t in listed],
            [first_start[t[0]] for t in listed],
        )
        return {listed[row[0] - 1]: list(row)[1:] for row in found}
    rows = await connection.fetch(
        _PG_RANGES,
        [run[0] for run in runs],
        [run[1] for run in runs],
        [run[2] for run in runs],
        [run[3] for run in runs],
        [first_start[run[0]] for run in runs],
    )
    medians: dict[SlotKey, Medians] = {}
    for row in rows:
        meter_id, channel = runs[row[0] - 1][:2]
        target = (meter_id, channel, row[1])
        if target in targets:
            medians[target] = list(row)[2:]
    return medians


# SQLite: a row per target with stored history: its position in the probe list's targets, then
# each quantity's values (comma-separated, unordered). The probes come as one JSON document of
# [target, meter id, channel, interval start] in the stored forms, each an index lookup.
_SQLITE_HISTORY = text(
    "SELECT json_extract(p.value, '$[0]'), "
    + ", ".join(f"group_concat(r.{name})" for name in QUANTITIES)
    + " FROM json_each(:probes) AS p JOIN meter_readings AS r "
    "ON r.meter_id = json_extract(p.value, '$[1]') AND r.channel = json_extract(p.value, '$[2]') "
    "AND r.interval_start = json_extract(p.value, '$[3]') "
    f"WHERE r.trust <> '{Trust.ESTIMATED.value}' GROUP BY 1"
)


async def _medians_sqlite(
    session: AsyncSession, targets: Mapping[SlotKey, Wanted], first_start: Mapping[uuid.UUID, int | None]
) -> dict[SlotKey, Medians]:
    """SQLite: the week's values per target in one statement, the medians of the wanted quantities
    worked out here, the rows read without SQLAlchemy's row processing (which cost several times
    more). A stored interval may be history for several targets (a backfill holding the same slot
    on several days)."""
    dialect = session.get_bind().dialect
    stored_id = _stored_form(READINGS.c.meter_id, dialect)
    stored_start = _stored_form(READINGS.c.interval_start, dialect)
    listed = list(targets)
    ids: dict[uuid.UUID, Any] = {}
    starts: dict[int, Any] = {}  # a batch's probes share a few dozen distinct times
    probes = []
    for position, (meter_id, channel, start) in enumerate(listed):
        first = first_start[meter_id]
        if (stored := ids.get(meter_id)) is None:
            stored = ids[meter_id] = stored_id(meter_id)
        for days in range(1, SLOT_DAYS + 1):
            probe = start - days * DAY_S
            if first is None or probe < first:
                break  # nothing was ever stored this far back
            if (moment := starts.get(probe)) is None:
                moment = starts[probe] = stored_start(utc_from_epoch(probe))
            probes.append((position, stored, channel, moment))
    found = await session.execute(_SQLITE_HISTORY, {"probes": json_document(probes)})
    medians: dict[SlotKey, Medians] = {}
    for position, *values in found:
        target = listed[position]
        wanted = {channel_position for channel_position, _ in targets[target]}
        medians[target] = [
            median([int(v) for v in text_values.split(",")]) if i in wanted and text_values else None
            for i, text_values in enumerate(values)
        ]
    return medians


def _stored_form(column: Any, dialect: Dialect) -> Callable[[Any], Any]:
    """How `column` stores a value on `dialect` (what its bind parameter would send)."""
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return process or (lambda value: value)


def median(values: list[int]) -> int:
    """The middle value; for an even count the mean of the two middle ones, rounded down."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2
