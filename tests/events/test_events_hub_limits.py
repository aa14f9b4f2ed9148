"""The hub's limits through a real server: a slow client dropped without stalling the others,
heartbeats, resume from the replay buffer (small queue, fast pings and a small buffer here)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gridtokenx.core.context import AppContext
from gridtokenx.events.hub import CLOSE_HEARTBEAT, CLOSE_SLOW_CONSUMER, Hub
from gridtokenx.events.model import Event
from tests.events.conftest import Live
from tests.events.test_events_hub import next_event, receive
from tests.helpers import user_token


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "ws_send_queue": 20,
        "ws_ping_interval_seconds": 0.3,
        "events_replay_size": 10,
        "run_duties": False,
    }


async def test_a_slow_client_is_dropped_and_never_stalls_the_others(live: Live, ctx: AppContext) -> None:
    ctx.services.get(Hub).ping_interval = 60  # this test is about the send queue, not heartbeats
    token = await user_token(live.http, ctx, "reader@example.com")
    url = live.ws(f"token={token}&channels=orderbook")
    frames = 300
    async with (
        connect(url, compression=None, max_queue=1, ping_interval=None) as slow,
        connect(url, compression=None, max_size=None) as fast,
    ):
        await receive(fast)
        got: list[int] = []

        async def read_fast() -> None:
            while len(got) < frames:
                frame = await next_event(fast, 20)
                got.append(frame["data"]["n"])

        reader = asyncio.create_task(read_fast())
        padding = os.urandom(32 * 1024).hex()  # 64 KiB a frame: the slow client's TCP buffers fill
        for n in range(frames):
            await ctx.bus.publish(Event.make("OrderBookChanged", {"n": n, "padding": padding}))
            await asyncio.sleep(0.002)
        await asyncio.wait_for(reader, 30)
        assert got == list(range(frames))  # the fast client got everything, in order

        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(slow.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_SLOW_CONSUMER


async def test_heartbeat_keeps_a_live_client_and_drops_a_silent_one(live: Live, ctx: AppContext) -> None:
    token = await user_token(live.http, ctx, "beat@example.com")
    async with connect(live.ws(f"token={token}")) as ws:
        await receive(ws)
        for _ in range(4):  # 1.2 s of answered pings: still connected
            assert (await receive(ws, 2))["type"] == "ping"
            await ws.send('{"type": "pong"}')
        await ws.send('{"type": "ping"}')
        frames = [await receive(ws, 2) for _ in range(2)]
        assert {"type": "pong"} in frames
        with pytest.raises(ConnectionClosed) as closed:
            while True:  # now silent: dropped after two intervals
                await receive(ws, 3)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_HEARTBEAT


async def test_resume_since_the_last_id_and_too_old(live: Live, ctx: AppContext) -> None:
    token = await user_token(live.http, ctx, "resume@example.com")
    async with connect(live.ws(f"token={token}&channels=epochs")) as ws:
        await receive(ws)
        await ctx.bus.publish_all([Event.make("EpochTransition", {"epoch_id": i}) for i in range(3)])
        seen = [await next_event(ws) for _ in range(3)]
    last = seen[-1]["id"]
    await ctx.bus.publish_all([Event.make("EpochTransition", {"epoch_id": i}) for i in range(3, 6)])
    async with connect(live.ws(f"token={token}&channels=epochs&since={last}")) as ws:
        await receive(ws)
        missed = [await next_event(ws) for _ in range(3)]
        assert [m["data"]["epoch_id"] for m in missed] == [3, 4, 5]
        assert [m["id"] for m in missed] == [last + 1, last + 2, last + 3]
        await ctx.bus.publish(Event.make("EpochTransition", {"epoch_id": 6}))
        assert (await next_event(ws))["id"] == last + 4  # then live, without a gap or a repeat

    await ctx.bus.publish_all([Event.make("EpochTransition", {"epoch_id": i}) for i in range(20)])
    async with connect(live.ws(f"token={token}&channels=epochs&since={last}")) as ws:
        await receive(ws)
        frame = await receive(ws)
        assert frame["type"] == "too_old" and frame["since"] == last
