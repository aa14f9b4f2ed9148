"""Compatibility readings as energy deltas: the original simulator posts every 15 s while a meter's
interval is 15 minutes, so each post is the energy of one instant, not a new version of the whole
interval. A tick is idempotent per (meter, instant): an identical resend is a no-op, a different
one for the same instant is refused (`TICK_CONFLICT`). The interval's stored values are the sum of
its accepted ticks, so its versions, rollups and totals always add up to what the meter sent.

The sum's trust is the lowest of its ticks: one unsigned tick makes the interval gateway-attested
(and then the trust rule refuses it where the interval was device-signed).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from msgspec.structs import replace
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.core.types import utc_from_epoch, utcnow
from gridtokenx.readings.models import ReadingTick
from gridtokenx.readings.reading import Reading, Source, Trust
from gridtokenx.readings.store import as_utc, dialect_insert
from gridtokenx.readings.vee import TRUST_RANK

TICKS = cast(Table, ReadingTick.__table__)
TICK_SOURCES = frozenset({Source.SUBMIT_READING, Source.ENERGY_READING, Source.SIMULATOR})
IntervalKey = tuple[uuid.UUID, int]  # (meter, interval start)
Values = tuple[int, int, int | None, int | None]  # import, export, generation, consumption


def is_tick(reading: Reading) -> bool:
    return reading.source in TICK_SOURCES


def values_of(reading: Reading) -> Values:
    return (reading.import_wh, reading.export_wh, reading.generation_wh, reading.consumption_wh)


def _add(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else a + b


@dataclass
class IntervalTicks:
    """The accepted ticks of one interval: {instant: (values, trust)}."""

    ticks: dict[int, tuple[Values, Trust]] = field(default_factory=dict)

    def verdict(self, reading: Reading) -> str:
        """ "new", "duplicate" (same instant, same values) or "conflict" (same instant, other values)."""
        known = self.ticks.get(reading.observed_at)
        if known is None:
            return "new"
        return "duplicate" if known[0] == values_of(reading) else "conflict"

    def total(self, reading: Reading, *, including: bool) -> Reading:
        """`reading` carrying the sum of the accepted ticks (plus its own values if `including`):
        what its interval is stored as once it is accepted."""
        ticks = list(self.ticks.values())
        if including:
            ticks.append((values_of(reading), reading.trust))
        imported, exported, generated, consumed = 0, 0, None, None
        trust = reading.trust
        for (i, e, g, c), tick_trust in ticks:
            imported, exported = imported + i, exported + e
            generated, consumed = _add(generated, g), _add(consumed, c)
            if TRUST_RANK[tick_trust] < TRUST_RANK[trust]:
                trust = tick_trust
        return replace(
            reading,
            import_wh=imported,
            export_wh=exported,
            generation_wh=generated,
            consumption_wh=consumed,
            trust=trust,
        )

    def accept(self, reading: Reading) -> None:
        self.ticks[reading.observed_at] = (values_of(reading), reading.trust)


async def load_ticks(session: AsyncSession, keys: Iterable[IntervalKey]) -> dict[IntervalKey, IntervalTicks]:
    """The accepted ticks of each interval in `keys` (each key gets an entry, empty if none)."""
    wanted = set(keys)
    found = {key: IntervalTicks() for key in wanted}
    if not wanted:
        return found
    c = TICKS.c
    query = select(
        c.meter_id,
        c.interval_start,
        c.observed_at,
        c.import_wh,
        c.export_wh,
        c.generation_wh,
        c.consumption_wh,
        c.trust,
    ).where(
        c.meter_id.in_({k[0] for k in wanted}),
        c.interval_start.in_({utc_from_epoch(k[1]) for k in wanted}),
    )
    for row in (await session.execute(query)).all():
        key = (row[0], int(as_utc(row[1]).timestamp()))
        if key in found:
            instant = int(as_utc(row[2]).timestamp())
            found[key].ticks[instant] = ((row[3], row[4], row[5], row[6]), Trust(row[7]))
    return found


async def insert_ticks(session: AsyncSession, ticks: list[tuple[uuid.UUID, Reading]]) -> None:
    """Store accepted ticks in the batch's transaction (the meter's ingest-state lock already
    serialises its batches; the key would refuse a second copy anyway)."""
    if not ticks:
        return
    now = utcnow()
    rows = [
        {
            "meter_id": meter_id,
            "observed_at": utc_from_epoch(r.observed_at),
            "interval_start": utc_from_epoch(r.interval_start),
            "import_wh": r.import_wh,
            "export_wh": r.export_wh,
            "generation_wh": r.generation_wh,
            "consumption_wh": r.consumption_wh,
            "trust": r.trust.value,
            "received_at": now,
        }
        for meter_id, r in ticks
    ]
    insert = dialect_insert(session, TICKS).on_conflict_do_nothing(index_elements=["meter_id", "observed_at"])
    await session.execute(insert, rows)
