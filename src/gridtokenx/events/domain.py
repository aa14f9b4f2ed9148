"""The events domain as the app composes it: the bus's listener, the WebSocket hub at `/ws` and
the read cache's invalidation. Who a credential is and who may watch a meter the hub asks the
`Authority` the meters domain registers (events imports nothing above it)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, WebSocket

from gridtokenx.core.cache import Cache
from gridtokenx.core.context import AppContext
from gridtokenx.core.domain import BackgroundService, Domain
from gridtokenx.events.hub import Authority, Hub
from gridtokenx.events.invalidation import stale_entries
from gridtokenx.events.model import Event

router = APIRouter()


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    ctx: AppContext = websocket.app.state.ctx
    await ctx.services.get(Hub).serve(websocket)


def _wire(ctx: AppContext) -> None:
    settings = ctx.settings
    cache = ctx.services.add(
        Cache(settings.redis_url, prefix=settings.cache_prefix, enabled=settings.cache_enabled)
    )
    if cache.active:  # no subscriber otherwise: the readings pipeline skips events nobody hears

        async def invalidate(event: Event) -> None:
            cache.invalidate_soon(stale_entries(event))

        ctx.bus.subscribe("*", invalidate)
    ctx.services.add(
        Hub(
            ctx.bus,
            ctx.services.get(Authority),  # registered by the meters domain, wired before this one
            queue_size=settings.ws_send_queue,
            ping_interval=settings.ws_ping_interval_seconds,
        )
    )


def _background(ctx: AppContext) -> Sequence[BackgroundService]:
    return (ctx.bus, ctx.services.get(Hub), ctx.services.get(Cache))


domain = Domain(name="events", routers=(router,), wire=_wire, background=_background)
