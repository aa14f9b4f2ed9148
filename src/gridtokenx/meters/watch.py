"""Who may watch what live: the WebSocket hub's `Authority`, answered by the accounts and meters
services (a credential as the HTTP API accepts it: a JWT or an API key; a meter by ownership)."""

from __future__ import annotations

import uuid

from gridtokenx.accounts.models import Role, User
from gridtokenx.accounts.service import authenticate_api_key
from gridtokenx.core.context import AppContext
from gridtokenx.core.errors import ApiError
from gridtokenx.core.security import TokenError
from gridtokenx.events.hub import Authority
from gridtokenx.events.rules import Viewer
from gridtokenx.meters.service import owned_meter


class WatchAuthority(Authority):
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
