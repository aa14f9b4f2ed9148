"""Same-slot history for the spike rule: for each reading of a batch, the median of each of its
channels over the same interval on each of the seven days before it (stored, measured readings).

A spike is a value above a multiple of a positive median, which a zero value never is, so only a
reading's channels with energy are asked for. With a week of history this is seven stored rows
per reading, the largest lookup of the ingest path. (Folding them per time of day in PostgreSQL,
one row per reading back, was measured here and saved nothing: the query and its arrays cost
what the rows did.)
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.core.types import utc_from_epoch
from gridtokenx.readings.reading import CHANNELS, Reading, Trust
from gridtokenx.readings.store import READINGS, rows_by_keys

DAY_S = 86_400
SLOT_DAYS = 7
SlotKey = tuple[uuid.UUID, int, int]  # (meter, channel, interval start in epoch seconds)
Wanted = list[tuple[int, str]]  # (position among CHANNELS, channel name) of channels with energy


def channels_with_energy(reading: Reading) -> Wanted:
    values = reading.channel_values()
    return [(position, name) for position, name in enumerate(CHANNELS) if values.get(name, 0) > 0]


async def same_slot_medians(
    session: AsyncSession, targets: Mapping[SlotKey, Wanted], first_start: Mapping[uuid.UUID, int | None]
) -> dict[SlotKey, dict[str, int]]:
    """Medians per target and wanted channel; a target without stored history is left out.
    `first_start` is each meter's oldest stored interval (None: nothing stored yet)."""
    targets = {t: wanted for t, wanted in targets.items() if first_start.get(t[0]) is not None}
    if not targets:
        return {}
    medians = {}
    for target, found in (await _probed(session, targets, first_start)).items():
        channels = {}
        for position, name in targets[target]:
            column = 3 + position  # after the three key columns
            present = [row[column] for row in found if row[column] is not None]
            if present:
                channels[name] = median(present)
        medians[target] = channels
    return medians


async def _probed(
    session: AsyncSession, targets: Mapping[SlotKey, Wanted], first_start: Mapping[uuid.UUID, int | None]
) -> dict[SlotKey, list[Any]]:
    """Each target's stored rows (key columns, then CHANNELS): the exact keys seven days back,
    read in one short index range per day (`rows_by_keys`). A stored interval may be history for
    several targets (a backfill holding the same slot on several days)."""
    wanted: dict[tuple[uuid.UUID, int, datetime], list[SlotKey]] = {}
    for target in targets:
        meter_id, channel, start = target
        first = first_start[meter_id]
        for days in range(1, SLOT_DAYS + 1):
            probe = start - days * DAY_S
            if first is None or probe < first:
                break  # nothing was ever stored this far back
            wanted.setdefault((meter_id, channel, utc_from_epoch(probe)), []).append(target)
    table = READINGS.c
    columns = [table[name] for name in CHANNELS]
    history: dict[SlotKey, list[Any]] = defaultdict(list)
    for found_key, row in await rows_by_keys(session, wanted, *columns, where=table.trust != Trust.ESTIMATED):
        for target in wanted[found_key]:
            history[target].append(row)
    return history


def median(values: list[int]) -> int:
    """The middle value; for an even count the mean of the two middle ones, rounded down."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2
