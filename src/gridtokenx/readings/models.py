"""Reading storage: one row per (meter, channel, interval), its revision history, per-meter ingest
state for VEE, hourly/daily rollups, and async batch jobs.

`channel` is the meter's measurement channel (0 = the main meter; sub-meters and batteries get
their own), and each row carries every energy quantity of that channel for the interval as integer
Wh. On PostgreSQL `meter_readings` is range-partitioned by `interval_start` (see `partitions.py`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, LargeBinary, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from gridtokenx.core.db import Base
from gridtokenx.core.types import UtcDateTime, utcnow


class MeterReading(Base):
    __tablename__ = "meter_readings"
    __table_args__ = (
        Index("ix_meter_readings_id", "id"),
        Index("ix_meter_readings_mint_pending", "mint_pending", "interval_start"),
        {"postgresql_partition_by": "RANGE (interval_start)"},
    )

    # No foreign key to meters: see migration 0003 (a per-row probe of `meters` at ingest rates).
    meter_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    channel: Mapped[int] = mapped_column(SmallInteger, primary_key=True, default=0)
    interval_start: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(default=uuid.uuid4)
    duration_s: Mapped[int] = mapped_column()
    import_wh: Mapped[int] = mapped_column(BigInteger)
    export_wh: Mapped[int] = mapped_column(BigInteger)
    generation_wh: Mapped[int | None] = mapped_column(BigInteger)
    consumption_wh: Mapped[int | None] = mapped_column(BigInteger)
    import_register_wh: Mapped[int | None] = mapped_column(BigInteger)
    export_register_wh: Mapped[int | None] = mapped_column(BigInteger)
    trust: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(20))
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    seq: Mapped[int | None] = mapped_column(BigInteger)
    key_id: Mapped[str | None] = mapped_column(String(16))
    signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    version: Mapped[int] = mapped_column(default=1)
    mintable_wh: Mapped[int] = mapped_column(BigInteger, default=0)
    mint_pending: Mapped[bool] = mapped_column(default=False)
    extras: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ReadingRevision(Base):
    """The value a reading had before a changed resend replaced it (never a silent overwrite)."""

    __tablename__ = "reading_revisions"
    __table_args__ = (Index("ix_reading_revisions_key", "meter_id", "channel", "interval_start"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    meter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meters.id"))
    channel: Mapped[int] = mapped_column(SmallInteger)
    interval_start: Mapped[datetime] = mapped_column(UtcDateTime())
    version: Mapped[int] = mapped_column()
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    replaced_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    replaced_by_trust: Mapped[str] = mapped_column(String(20))


class MeterIngestState(Base):
    """What VEE must remember per meter: the seq replay window, last registers, recent values."""

    __tablename__ = "meter_ingest_state"

    meter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    seq_highest: Mapped[int | None] = mapped_column(BigInteger)
    seq_bitmap: Mapped[bytes | None] = mapped_column(LargeBinary)
    last_interval_start: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_import_register_wh: Mapped[int | None] = mapped_column(BigInteger)
    last_export_register_wh: Mapped[int | None] = mapped_column(BigInteger)
    register_interval_start: Mapped[datetime | None] = mapped_column(UtcDateTime())
    recent: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class _Rollup:
    meter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    channel: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    import_wh: Mapped[int] = mapped_column(BigInteger, default=0)
    export_wh: Mapped[int] = mapped_column(BigInteger, default=0)
    generation_wh: Mapped[int] = mapped_column(BigInteger, default=0)
    consumption_wh: Mapped[int] = mapped_column(BigInteger, default=0)
    readings: Mapped[int] = mapped_column(default=0)


class HourlyRollup(_Rollup, Base):
    __tablename__ = "meter_rollups_hourly"


class DailyRollup(_Rollup, Base):
    __tablename__ = "meter_rollups_daily"


class IngestJob(Base):
    """A batch accepted with 202: stored with its body before the answer, run by the `jobs` duty
    of whichever process holds it (see `jobs.py`); `done` commits with the job's readings."""

    __tablename__ = "ingest_jobs"
    __table_args__ = (Index("ix_ingest_jobs_status_created", "status", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    body: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)  # dropped once done
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    total: Mapped[int] = mapped_column(default=0)
    accepted: Mapped[int] = mapped_column(default=0)
    duplicates: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class ReadingTick(Base):
    """One instant's energy delta posted on a compatibility route (the original simulator posts
    every 15 s into 15-minute intervals): the interval's stored values are the sum of its ticks.
    The natural key (meter, instant) makes a resend a no-op and a changed resend a conflict."""

    __tablename__ = "reading_ticks"
    __table_args__ = (Index("ix_reading_ticks_interval", "meter_id", "interval_start"),)

    meter_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    interval_start: Mapped[datetime] = mapped_column(UtcDateTime())
    import_wh: Mapped[int] = mapped_column(BigInteger)
    export_wh: Mapped[int] = mapped_column(BigInteger)
    generation_wh: Mapped[int | None] = mapped_column(BigInteger)
    consumption_wh: Mapped[int | None] = mapped_column(BigInteger)
    trust: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
