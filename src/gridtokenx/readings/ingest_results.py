"""What the ingest pipeline answers for each item of a batch, whatever the transport.

Every transport turns these into its own reply (an HTTP body, a job's status, an MQTT result),
so they live apart from the pipeline that decides them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

import msgspec


class ItemStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class ItemResult(msgspec.Struct):
    """One item's verdict (a msgspec Struct: a batch makes a thousand of them)."""

    index: int
    status: ItemStatus
    code: str | None = None
    message: str | None = None
    path: str | None = None
    meter_serial: str | None = None
    interval_start: datetime | None = None
    reading_id: str | None = None
    version: int | None = None
    trust: str | None = None
    flags: list[str] = []
    mintable_wh: int = 0
    http_status: int = 200

    def as_dict(self) -> dict[str, Any]:
        if self.status is ItemStatus.REJECTED:
            return {
                "index": self.index,
                "status": "rejected",
                "code": self.code,
                "message": self.message,
                "path": self.path,
            }
        start = self.interval_start
        return {
            "index": self.index,
            "status": self.status.value,
            "reading_id": self.reading_id,
            "meter_serial": self.meter_serial,
            "interval_start": None if start is None else iso(start),
            "version": self.version,
            "trust": self.trust,
            "flags": self.flags,
            "mintable_wh": self.mintable_wh,
        }


def reject(index: int, code: str, message: str, status: int = 422, path: str | None = None) -> ItemResult:
    return ItemResult(index, ItemStatus.REJECTED, code=code, message=message, path=path, http_status=status)


@lru_cache(maxsize=65_536)
def iso(moment: datetime) -> str:
    """An interval start's ISO text in results and events (starts repeat across a batch)."""
    return moment.isoformat()
