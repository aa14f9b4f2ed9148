"""Read-only reading facts other domains ask for, in this domain's own types (certificates ask
for a period's generation, hourly matching for a consumer's hourly consumption).

A stored reading's *canonical bytes* bind what was certified: compact JSON with sorted keys of
its identity, every stored energy and register value, its trust, its version and the device's
signature (hex), integers only. A revised reading gets a new version and new values, so its
bytes, and any hash over them, change.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.readings.models import HourlyRollup, MeterReading
from gridtokenx.readings.reading import VALUE_FIELDS, Trust

MAIN_CHANNEL = 0


@dataclass(frozen=True, slots=True)
class GenerationReading:
    """One main-channel reading of a period; `excluded` says why it may not be certified."""

    id: str
    interval_start: int
    duration: int
    generation_wh: int
    canonical: bytes
    excluded: str | None

    @property
    def counted(self) -> bool:
        return self.excluded is None


def canonical_bytes(row: MeterReading) -> bytes:
    document: dict[str, object] = {
        "meter_id": str(row.meter_id),
        "channel": row.channel,
        "interval_start": int(row.interval_start.timestamp()),
        "duration": row.duration_s,
        "trust": row.trust,
        "version": row.version,
        "key_id": row.key_id,
        "seq": row.seq,
        "signature": row.signature.hex() if row.signature else None,
    }
    document.update({name: getattr(row, name) for name in VALUE_FIELDS})
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _exclusion(row: MeterReading) -> str | None:
    if row.trust != Trust.DEVICE_SIGNED:
        return f"trust is {row.trust}, not device-signed"
    if row.flags:
        return "flagged " + ",".join(sorted(row.flags))
    if row.generation_wh is None:
        return "generation not measured"
    if row.generation_wh < 0:
        return "negative generation"
    return None


async def generation_for_period(
    session: AsyncSession, meter_id: uuid.UUID, start: datetime, end: datetime
) -> list[GenerationReading]:
    """Main-channel readings lying wholly inside [start, end), each with its canonical bytes and
    the reason it cannot be certified, if any: only measured, device-signed, unflagged generation
    counts (estimates and flagged readings never do)."""
    rows = await session.scalars(
        select(MeterReading)
        .where(
            MeterReading.meter_id == meter_id,
            MeterReading.channel == MAIN_CHANNEL,
            MeterReading.interval_start >= start,
            MeterReading.interval_start < end,
        )
        .order_by(MeterReading.interval_start)
    )
    end_epoch = int(end.timestamp())
    found = []
    for row in rows:
        begin = int(row.interval_start.timestamp())
        excluded = _exclusion(row)
        if begin + row.duration_s > end_epoch:
            excluded = "interval extends past the period"
        found.append(
            GenerationReading(
                id=str(row.id),
                interval_start=begin,
                duration=row.duration_s,
                generation_wh=row.generation_wh or 0,
                canonical=canonical_bytes(row),
                excluded=excluded,
            )
        )
    return found


async def canonical_by_ids(
    session: AsyncSession, meter_id: uuid.UUID, ids: Sequence[str]
) -> dict[str, bytes]:
    """Today's canonical bytes of the given readings of one meter (a missing id is left out)."""
    wanted = [uuid.UUID(i) for i in ids]
    rows = await session.scalars(
        select(MeterReading).where(MeterReading.meter_id == meter_id, MeterReading.id.in_(wanted))
    )
    return {str(row.id): canonical_bytes(row) for row in rows}


async def consumption_by_hour(
    session: AsyncSession, meter_ids: Sequence[uuid.UUID], start: datetime, end: datetime
) -> dict[int, int]:
    """Wh consumed per UTC hour (epoch seconds of the hour) across the meters, from the rollups."""
    if not meter_ids:
        return {}
    rows = await session.execute(
        select(HourlyRollup.bucket_start, func.sum(HourlyRollup.consumption_wh))
        .where(
            HourlyRollup.meter_id.in_(list(meter_ids)),
            HourlyRollup.channel == MAIN_CHANNEL,
            HourlyRollup.bucket_start >= start,
            HourlyRollup.bucket_start < end,
        )
        .group_by(HourlyRollup.bucket_start)
    )
    return {int(hour.timestamp()): int(total or 0) for hour, total in rows}
