"""A real uvicorn server on a free port for the WebSocket tests (httpx's ASGI transport has no
WebSockets), wired to the test's context."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from gridtokenx.app import create_app
from gridtokenx.core.context import AppContext


@dataclass
class Live:
    http: httpx.AsyncClient
    base: str

    def ws(self, query: str = "") -> str:
        return self.base.replace("http://", "ws://") + "/ws" + (f"?{query}" if query else "")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """No background duties: these tests count the events they cause, and a mint or an epoch
    duty would add its own."""
    return {"run_duties": False}


@pytest.fixture
async def live(ctx: AppContext) -> AsyncIterator[Live]:
    app = create_app(context=ctx)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", ws="websockets-sansio"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the test server did not start"
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        yield Live(http, base)
    server.should_exit = True
    await asyncio.wait_for(task, 30)
