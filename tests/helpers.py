"""Helpers for tests that drive the HTTP API like a client would."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
from sqlalchemy import select

from gridtokenx.accounts.models import EmailVerification, User
from gridtokenx.core.context import AppContext

PASSWORD = "correct-horse-42"


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return str(body["error"]["code"])


async def register(
    client: httpx.AsyncClient, email: str, role: str = "prosumer", **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "role": role, **extra}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def verify_directly(ctx: AppContext, email: str) -> None:
    """Mark an email verified in the database (for tests that are not about verification)."""
    from gridtokenx.core.types import utcnow

    async with ctx.db.session() as session:
        user = await session.scalar(select(User).where(User.email == email))
        assert user is not None
        user.email_verified_at = utcnow()


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def user_token(client: httpx.AsyncClient, ctx: AppContext, email: str, role: str = "prosumer") -> str:
    await register(client, email, role)
    await verify_directly(ctx, email)
    return str((await login(client, email))["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def pending_verification_count(ctx: AppContext) -> int:
    async with ctx.db.session() as session:
        return len(list(await session.scalars(select(EmailVerification))))


def token_from_link(link: str) -> str:
    return parse_qs(urlparse(link).query)["token"][0]


async def admin_token(client: httpx.AsyncClient, ctx: AppContext, email: str = "admin@example.com") -> str:
    from gridtokenx.accounts.service import create_admin

    async with ctx.db.session() as session:
        await create_admin(session, email, "admin-pass-123")
    return str((await login(client, email, "admin-pass-123"))["access_token"])


async def create_meter(client: httpx.AsyncClient, admin: str, serial: str, **fields: Any) -> dict[str, Any]:
    body = {"serial": serial, "meter_key": f"key-{serial}-secret", **fields}
    response = await client.post("/api/admin/meters", json=body, headers=bearer(admin))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def claim(client: httpx.AsyncClient, token: str, serial: str) -> dict[str, Any]:
    body = {"serial": serial, "meter_key": f"key-{serial}-secret"}
    response = await client.post("/api/meters/verify", json=body, headers=bearer(token))
    assert response.status_code == 200, response.text
    return dict(response.json())
