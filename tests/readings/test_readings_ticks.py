"""The original simulator's 15-second posts are energy deltas summed into their interval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from gridtokenx.core.context import AppContext
from gridtokenx.core.types import utcnow
from gridtokenx.readings.reading import Reading, Source, Trust
from gridtokenx.readings.ticks import IntervalTicks
from tests.helpers import bearer, error_code
from tests.readings.ingest_helpers import aligned_now, make_device


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tick(at: int, export_wh: int, trust: Trust = Trust.GATEWAY_ATTESTED) -> Reading:
    return Reading("M", 0, 900, at, 0, export_wh, None, 5, Source.SIMULATOR, trust)


def test_interval_sum_without_services() -> None:
    interval = IntervalTicks()
    for at, wh in ((7, 100), (22, 200)):
        assert interval.verdict(_tick(at, wh)) == "new"
        interval.accept(_tick(at, wh))
    total = interval.total(_tick(37, 300, Trust.DEVICE_SIGNED), including=True)
    assert (total.export_wh, total.consumption_wh, total.trust) == (600, 15, Trust.GATEWAY_ATTESTED)
    assert interval.verdict(_tick(22, 200)) == "duplicate"
    assert interval.verdict(_tick(22, 201)) == "conflict"


async def _readings(client: httpx.AsyncClient, device_meter: str, owner: str) -> list[dict[str, object]]:
    page = await client.get(f"/api/meters/{device_meter}/readings", headers=bearer(owner))
    return list(page.json()["items"])


async def test_ticks_sum_into_their_interval(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx, attested_mintable=True)
    start = aligned_now(2)
    owner = bearer(device.owner)
    route = f"/api/v1/meters/{device.serial}/readings"
    for offset, kwh in ((7, "0.1"), (22, "0.2"), (37, "0.3")):
        response = await client.post(
            route, json={"kwh": kwh, "timestamp": _iso(start + offset)}, headers=owner
        )
        assert response.status_code == 200 and response.json()["duplicate"] is False, response.text
    batch = {
        "readings": [
            {"meter_serial": device.serial, "kwh": "0.05", "timestamp": _iso(start + 52)},
            {"meter_serial": device.serial, "kwh": "-0.02", "timestamp": _iso(start + 67)},
            {"meter_serial": device.serial, "kwh": "0.2", "timestamp": _iso(start + 22)},  # resend
        ]
    }
    response = await client.post("/api/v1/meters/batch/readings", json=batch, headers=owner)
    assert [r["status"] for r in response.json()["results"]] == ["accepted", "accepted", "duplicate"]

    items = await _readings(client, device.meter_id, device.owner)
    assert len(items) == 1
    stored = items[0]
    assert (stored["export_wh"], stored["import_wh"], stored["version"]) == (650, 20, 5)
    assert "REVISED" not in stored["flags"]  # type: ignore[operator]

    again = await client.post(route, json={"kwh": "0.3", "timestamp": _iso(start + 37)}, headers=owner)
    assert again.status_code == 200 and again.json()["duplicate"] is True, again.text
    changed = await client.post(route, json={"kwh": "0.4", "timestamp": _iso(start + 37)}, headers=owner)
    assert changed.status_code == 409 and error_code(changed) == "TICK_CONFLICT", changed.text
    future = utcnow() + timedelta(minutes=10)
    ahead = await client.post(route, json={"kwh": "0.1", "timestamp": future.isoformat()}, headers=owner)
    assert ahead.status_code == 422 and error_code(ahead) == "FUTURE_READING", ahead.text

    assert (await _readings(client, device.meter_id, device.owner))[0]["version"] == 5
    hourly = await client.get(
        f"/api/meters/{device.meter_id}/stats/hourly",
        params={"from": _iso(start - 7200), "to": _iso(start + 7200)},
        headers=owner,
    )
    assert hourly.status_code == 200, hourly.text
    assert sum(b["export_wh"] for b in hourly.json()) == 650
    assert sum(b["import_wh"] for b in hourly.json()) == 20
    assert sum(b["readings"] for b in hourly.json()) == 1
    totals = (await client.get("/api/meters/stats", headers=owner)).json()
    assert (totals["export_wh"], totals["import_wh"], totals["readings"]) == (650, 20, 1)
