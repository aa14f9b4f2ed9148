"""The events domain as the app composes it: the bus's listener and the WebSocket hub.

This is the one place the hub meets other domains, through their services: accounts
authenticates a credential, meters says who owns a meter. The bus, the model and the hub
themselves import no domain above them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from fastapi import APIRouter, WebSocket

from gridtokenx.accounts.models import Role, User
from gridtokenx.accounts.service import authenticate_api_key
from gridtokenx.core.cache import Cache
from gridtokenx.core.context import AppContext
from gridtokenx.core.domain import BackgroundService, Domain
from gridtokenx.core.errors import ApiError
from gridtokenx.core.security import TokenError
from gridtokenx.events.hub import Hub
from gridtokenx.events.invalidation import stale_entries
from gridtokenx.events.model import Event
from gridtokenx.events.rules import Viewer
from gridtokenx.meters.service import owned_meter

router = APIRouter()


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    ctx: AppContext = websocket.app.state.ctx
    await ctx.services.get(Hub).serve(websocket)


class AccountsAuthority:
    """Credentials as the HTTP API accepts them (a JWT or an API key); meters by ownership."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def authenticate(self, credential: str) -> Viewer | None:
        async with self.ctx.db.session() as session:
            if credential.count(".") == 2:
                try:
                    claims = self.ctx.jwt.decode(credential)
                except TokenError:
                    return None
                user = await session.get(User, claims.user_id)
                if user is None or not user.is_active:
                    return None
            else:
                try:
                    user, _key = await authenticate_api_key(session, credential)
                except ApiError:
                    return None
            return Viewer(str(user.id), user.role == Role.ADMIN)

    async def may_watch_meter(self, viewer: Viewer, meter_id: str) -> bool:
        try:
            wanted = uuid.UUID(meter_id)
        except ValueError:
            return False
        async with self.ctx.db.session() as session:
            user = await session.get(User, uuid.UUID(viewer.user_id))
            if user is None:
                return False
            try:
                await owned_meter(session, user, wanted)
            except ApiError:
                return False
        return True


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
            AccountsAuthority(ctx),
            queue_size=settings.ws_send_queue,
            ping_interval=settings.ws_ping_interval_seconds,
        )
    )


def _background(ctx: AppContext) -> Sequence[BackgroundService]:
    return (ctx.bus, ctx.services.get(Hub), ctx.services.get(Cache))


domain = Domain(name="events", routers=(router,), wire=_wire, background=_background)
