"""The WebSocket hub through a real server and real WebSocket clients: credentials, per-channel
authorization, a reading reaching its owner, slow clients, heartbeats, resume."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from gridtokenx.core.context import AppContext
from gridtokenx.core.metrics import REGISTRY
from gridtokenx.events.model import Event
from tests.events.conftest import Live
from tests.helpers import bearer, user_token
from tests.readings.ingest_helpers import aligned_now, make_device


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the hub does not touch the database beyond authentication


def metric_values() -> dict[str, float]:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    return {
        "submitted": value("meter_readings_submitted_total"),
        "valid_signatures": value("device_signature_verifications_total", result="valid"),
        "negative": value("meter_readings_validation_errors_total", error_type="NEGATIVE_VALUE"),
        "sent_received": value("websocket_messages_sent_total", event_type="MeterReadingReceived"),
        "published_received": value("gridtokenx_events_published_total", event_type="MeterReadingReceived"),
    }


async def receive(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return dict(orjson.loads(await asyncio.wait_for(ws.recv(), timeout)))


async def next_event(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next event frame, skipping control frames (pings, acknowledgements)."""
    while True:
        frame = await receive(ws, timeout)
        if frame["type"][0].isupper():
            return frame


async def nothing_more(ws: ClientConnection, wait: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        await next_event(ws, wait)


async def test_upgrade_refused_without_a_valid_credential(live: Live) -> None:
    for query in ("", "token=not.a.jwt", "api_key=gtx_nope"):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(live.ws(query)):
                pass
        assert refused.value.response.status_code == 403


async def test_jwt_api_key_and_bearer_are_accepted(live: Live, ctx: AppContext) -> None:
    token = await user_token(live.http, ctx, "ws-user@example.com")
    created = await live.http.post(
        "/api/users/me/api-keys", json={"name": "ws", "scopes": ["readings:write"]}, headers=bearer(token)
    )
    assert created.status_code == 201, created.text
    api_key = created.json()["key"]
    for url, headers in (
        (live.ws(f"token={token}&channels=market,user"), None),
        (live.ws(f"api_key={api_key}&channels=market,user"), None),
        (live.ws("channels=market,user"), bearer(token)),
        (live.ws("channels=market,user"), {"X-API-Key": api_key}),
    ):
        async with connect(url, additional_headers=headers) as ws:
            assert await receive(ws) == {"type": "welcome", "channels": ["market", "user"]}


async def test_a_reading_reaches_its_owner_and_admins_only(live: Live, ctx: AppContext) -> None:
    device = await make_device(live.http, ctx)
    stranger = await user_token(live.http, ctx, "stranger@example.com")
    meter = f"meters:{device.meter_id}"
    async with (
        connect(live.ws(f"token={device.owner}&channels=user,{meter}")) as owner,
        connect(live.ws(f"token={stranger}&channels=user,market,{meter}")) as other,
        connect(live.ws(f"token={device.admin}&channels=user")) as admin,
    ):
        assert (await receive(owner))["channels"] == sorted(["user", meter])
        assert (await receive(other))["channels"] == ["market", "user"]
        refusal = await receive(other)
        assert refusal["code"] == "CHANNEL_FORBIDDEN" and refusal["channel"] == meter
        await receive(admin)

        before = metric_values()
        response = await live.http.post(
            "/api/meters/readings", content=device.signed(aligned_now()), headers=bearer(device.owner)
        )
        assert response.status_code == 201, response.text
        received = await next_event(owner)
        assert received["type"] == "MeterReadingReceived" and received["v"] == 1
        assert received["data"]["meter_id"] == device.meter_id
        assert received["data"]["reading_id"] == response.json()["reading_id"]
        assert received["id"] > 0
        assert (await next_event(owner))["type"] == "MeterReadingVerified"
        assert (await next_event(admin))["type"] == "MeterReadingReceived"

        bad = await live.http.post(
            "/api/meters/readings",
            content=device.signed(aligned_now(), export_wh=-1),
            headers=bearer(device.owner),
        )
        assert bad.status_code == 422
        rejected = await next_event(owner)
        after = metric_values()
        assert after["submitted"] == before["submitted"] + 2
        assert after["valid_signatures"] == before["valid_signatures"] + 2
        assert after["negative"] == before["negative"] + 1
        assert after["sent_received"] >= before["sent_received"] + 2  # owner and admin
        assert after["published_received"] == before["published_received"] + 1
        exposed = (await live.http.get("/metrics")).text
        assert "meter_readings_submitted_total" in exposed and "websocket_clients_connected 3.0" in exposed
        assert rejected["type"] == "MeterReadingRejected"
        assert rejected["data"]["user_id"] == str(ctx.jwt.decode(device.owner).user_id)
        await nothing_more(other)

        await owner.send(orjson.dumps({"type": "subscribe", "channels": ["epochs", "bogus"]}).decode())
        assert (await receive(owner))["code"] == "CHANNEL_UNKNOWN"
        assert (await receive(owner))["channels"] == sorted(["epochs", "user", meter])


async def test_public_trade_hides_the_parties(live: Live, ctx: AppContext) -> None:
    buyer = await user_token(live.http, ctx, "buyer@example.com")
    async with (
        connect(live.ws(f"token={buyer}&channels=market")) as public,
        connect(live.ws(f"token={buyer}&channels=user")) as mine,
    ):
        await receive(public)
        await receive(mine)
        me = ctx.jwt.decode(buyer).user_id
        await ctx.bus.publish(
            Event.make("TradeExecuted", {"user_id": me, "order_id": "o-1", "energy_wh": 5000, "amount": 3})
        )
        assert (await next_event(public))["data"] == {"energy_wh": 5000, "amount": 3}
        assert (await next_event(mine))["data"]["user_id"] == str(me)
