"""Authentication dependencies: a JWT (people) or an API key (machines), then role and scope checks."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.accounts import service
from gridtokenx.accounts.models import ApiKey, Role, User
from gridtokenx.core.deps import Ctx, DbSession
from gridtokenx.core.errors import Forbidden, Unauthorized
from gridtokenx.core.security import TokenError


@dataclass(frozen=True)
class Principal:
    user: User
    api_key: ApiKey | None = None

    def has_scope(self, scope: str) -> bool:
        if self.api_key is None:
            return True
        area = scope.split(":", 1)[0]
        return scope in self.api_key.scopes or f"{area}:*" in self.api_key.scopes


# Declared as security schemes so the OpenAPI document says how to authenticate; either one works
# (`Authorization: Bearer <JWT or API key>` or `X-API-Key: <API key>`).
Bearer = Annotated[
    HTTPAuthorizationCredentials | None,
    Depends(HTTPBearer(auto_error=False, description="A JWT from /api/auth/login, or an API key")),
]
ApiKeyHeader = Annotated[
    str | None, Depends(APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key"))
]


def _credential(bearer: HTTPAuthorizationCredentials | None, api_key: str | None) -> str | None:
    if bearer is not None and bearer.credentials.strip():
        return bearer.credentials.strip()
    return (api_key or "").strip() or None


async def _user_from_jwt(ctx: Ctx, session: AsyncSession, token: str) -> User:
    try:
        claims = ctx.jwt.decode(token)
    except TokenError as exc:
        raise Unauthorized(str(exc), code=exc.code) from None
    user = await session.get(User, claims.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("account no longer active", code="TOKEN_INVALID")
    return user


async def get_principal(bearer: Bearer, api_key: ApiKeyHeader, ctx: Ctx, session: DbSession) -> Principal:
    token = _credential(bearer, api_key)
    if token is None:
        raise Unauthorized("authentication required", code="AUTH_REQUIRED")
    if token.count(".") == 2:
        principal = Principal(await _user_from_jwt(ctx, session, token))
    else:
        user, key = await service.authenticate_api_key(session, token)
        principal = Principal(user, key)
    # Ends the read (and persists an API key's last_used_at even if the request later fails). The
    # connection goes back to the pool: a request holds at most one at a time, and the ingest
    # pipeline's own session must not wait for a second one while this one idles (on SQLite,
    # twenty concurrent posts exhausted the pool).
    await session.commit()
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_current_user(principal: CurrentPrincipal) -> User:
    return principal.user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: Role) -> Callable[[Principal], Coroutine[Any, Any, User]]:
    allowed = {r.value for r in roles}

    async def check(principal: CurrentPrincipal) -> User:
        if principal.user.role not in allowed:
            raise Forbidden("your role may not do this", code="ROLE_FORBIDDEN")
        return principal.user

    return check


def require_scope(scope: str) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.has_scope(scope):
            raise Forbidden(f"API key lacks the '{scope}' scope", code="SCOPE_MISSING")
        return principal

    return check


AdminUser = Annotated[User, Depends(require_roles(Role.ADMIN))]
