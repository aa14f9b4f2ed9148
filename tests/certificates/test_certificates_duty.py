"""Auto issuance behind GRIDTOKENX_ERC_AUTO_ISSUE: the duty the gateway runs in embedded mode."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from gridtokenx.certificates import worker
from gridtokenx.certificates.service import Certificates
from gridtokenx.core.context import AppContext
from tests.certificates.cert_helpers import device_with_generation, hour_start, post_readings
from tests.helpers import bearer
from tests.readings.ingest_helpers import INTERVAL


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "erc_settle_seconds": 0,
        "erc_auto_issue": True,
        "erc_lookback_hours": 4,
        "erc_period_seconds": 900,
    }


@pytest.fixture(autouse=True)
def quick_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "ROUND_SECONDS", 1.0)


async def _certificates(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    return list((await client.get("/api/erc", params={"limit": 100}, headers=bearer(token))).json()["items"])


async def test_auto_issuance_certifies_every_settled_period_once(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    start = hour_start()
    device = await device_with_generation(client, ctx, start, [100, 110, 120])
    await post_readings(client, device, start + 3 * INTERVAL, [130], quality=8)  # tampered: never certified
    for _ in range(300):  # the gateway runs the duty (embedded mode)
        found = await _certificates(client, device.owner)
        if len(found) == 3 and all(c["status"] == "active" for c in found):
            break
        await asyncio.sleep(0.1)
    assert sorted(c["energy_wh"] for c in found) == [100, 110, 120]
    assert await ctx.services.get(Certificates).issue_settled(timedelta(hours=4)) == 0
