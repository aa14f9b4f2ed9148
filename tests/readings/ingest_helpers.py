"""Builders for the ingest tests: a claimed meter with a provisioned device key, signed readings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.core.context import AppContext
from gridtokenx.core.types import utcnow
from gridtokenx.meters.models import Meter
from gridtokenx.readings.native import encode_batch, encode_reading
from gridtokenx.readings.signing import DeviceSigner
from tests.helpers import admin_token, bearer, claim, create_meter, user_token

INTERVAL = 900


@dataclass
class Device:
    serial: str
    key: DeviceSigner
    network_id: str
    meter_id: str
    owner: str
    admin: str
    seq: int = 0
    fields: dict[str, Any] = field(default_factory=dict)

    def reading(self, interval_start: int, **values: Any) -> dict[str, Any]:
        self.seq += 1
        body = {
            "device_id": self.serial,
            "interval_start": interval_start,
            "duration": INTERVAL,
            "import_wh": 0,
            "export_wh": 500,
            "generation_wh": 800,
            "consumption_wh": 300,
            "quality": 0,
            "firmware": "1.0.0",
            "seq": self.seq,
            "created": int(utcnow().timestamp()),
            "expires": int(utcnow().timestamp()) + 240,
        }
        body.update(values)
        return body

    def signed(self, interval_start: int, **values: Any) -> bytes:
        return encode_reading(self.key.sign_reading(self.reading(interval_start, **values), self.network_id))

    def signed_batch(self, starts: list[int], **values: Any) -> bytes:
        return encode_batch(
            [self.key.sign_reading(self.reading(s, **values), self.network_id) for s in starts]
        )


def aligned_now(offset_intervals: int = 0) -> int:
    now = int(utcnow().timestamp())
    return now - now % INTERVAL - INTERVAL * (1 + offset_intervals)


async def make_device(
    client: httpx.AsyncClient,
    ctx: AppContext,
    serial: str = "MTR-100",
    email: str = "owner@example.com",
    **meter: Any,
) -> Device:
    admin = await admin_token(client, ctx, f"admin-{serial.lower()}@example.com")
    fields = {"capacity_kw": "10", "commissioned_at": "2020-01-01T00:00:00Z", **meter}
    created = await create_meter(client, admin, serial, **fields)
    owner = await user_token(client, ctx, email)
    await claim(client, owner, serial)
    key = DeviceSigner.generate()
    response = await client.post(
        "/api/admin/devices/register",
        json={"serial": serial, "public_key": key.public_key_hex},
        headers=bearer(admin),
    )
    assert response.status_code == 201, response.text
    return Device(serial, key, ctx.settings.network_id, created["id"], owner, admin)


async def added_meter(session: AsyncSession, serial: str, commissioned_at: datetime) -> Meter:
    """A meter row for store-level tests (no owner, no keys), flushed so it has its id."""
    meter = Meter(serial=serial, commissioned_at=commissioned_at)
    session.add(meter)
    await session.flush()
    return meter
