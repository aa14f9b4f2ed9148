"""API keys (hash only, shown once, scoped, revocable) and admin user management."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from typer.testing import CliRunner

from gridtokenx.accounts.models import ApiKey
from gridtokenx.core.context import AppContext
from gridtokenx.core.security import token_digest
from tests.helpers import bearer, error_code, login, user_token


async def test_api_key_lifecycle(client: httpx.AsyncClient, ctx: AppContext) -> None:
    token = await user_token(client, ctx, "ops@example.com")
    created = await client.post(
        "/api/users/me/api-keys",
        json={"name": "head-end", "scopes": ["readings:write"]},
        headers=bearer(token),
    )
    assert created.status_code == 201
    key = created.json()["key"]
    async with ctx.db.session() as session:
        stored = await session.scalar(select(ApiKey))
        assert stored is not None and stored.key_hash == token_digest(key) and key not in stored.key_hash

    listed = await client.get("/api/users/me/api-keys", headers=bearer(token))
    assert "key" not in listed.json()[0]

    via_bearer = await client.get("/api/users/me", headers=bearer(key))
    assert via_bearer.status_code == 200 and via_bearer.json()["email"] == "ops@example.com"
    via_header = await client.get("/api/users/me", headers={"X-API-Key": key})
    assert via_header.status_code == 200

    revoked = await client.delete(f"/api/users/me/api-keys/{created.json()['id']}", headers=bearer(token))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = await client.get("/api/users/me", headers=bearer(key))
    assert refused.status_code == 401 and error_code(refused) == "API_KEY_INVALID"


async def test_bad_scope_is_rejected(client: httpx.AsyncClient, ctx: AppContext) -> None:
    token = await user_token(client, ctx, "scope@example.com")
    response = await client.post(
        "/api/users/me/api-keys", json={"name": "x", "scopes": ["DROP TABLE"]}, headers=bearer(token)
    )
    assert response.status_code == 422 and error_code(response) == "VALIDATION_ERROR"


async def test_admin_routes_need_admin_role(client: httpx.AsyncClient, ctx: AppContext) -> None:
    token = await user_token(client, ctx, "plain@example.com")
    forbidden = await client.get("/api/admin/users", headers=bearer(token))
    assert forbidden.status_code == 403 and error_code(forbidden) == "ROLE_FORBIDDEN"

    from gridtokenx.accounts.service import create_admin

    async with ctx.db.session() as session:
        await create_admin(session, "root@example.com", "admin-pass-123")
    admin = (await login(client, "root@example.com", "admin-pass-123"))["access_token"]
    page = await client.get("/api/admin/users", headers=bearer(admin))
    assert page.status_code == 200 and page.json()["total"] == 2
    plain = next(u for u in page.json()["items"] if u["email"] == "plain@example.com")
    disabled = await client.patch(
        f"/api/admin/users/{plain['id']}", json={"is_active": False}, headers=bearer(admin)
    )
    assert disabled.status_code == 200 and disabled.json()["is_active"] is False
    gone = await client.get("/api/users/me", headers=bearer(token))
    assert gone.status_code == 401
    missing = await client.get("/api/admin/users/00000000-0000-0000-0000-000000000000", headers=bearer(admin))
    assert missing.status_code == 404 and error_code(missing) == "USER_NOT_FOUND"


def test_cli_admin_create(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from gridtokenx.cli import app
    from gridtokenx.core.settings import get_settings

    monkeypatch.setenv("GRIDTOKENX_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["admin", "create", "--email", "boss@example.com"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "boss@example.com" in result.output and "password:" in result.output
    assert (tmp_path / "gridtokenx.db").exists()


def test_cli_imports_a_legacy_head_end_key(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from gridtokenx.accounts.service import authenticate_api_key
    from gridtokenx.cli import app
    from gridtokenx.core.db import Database
    from gridtokenx.core.settings import get_settings

    monkeypatch.setenv("GRIDTOKENX_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    get_settings.cache_clear()
    legacy = "engineering-department-api-key-2025"
    try:
        runner = CliRunner()
        assert runner.invoke(app, ["admin", "create", "--email", "utility@example.com"]).exit_code == 0
        result = runner.invoke(app, ["admin", "api-key", "--email", "utility@example.com", "--key", legacy])
        assert result.exit_code == 0, result.output
        assert legacy not in result.output
        missing = runner.invoke(app, ["admin", "api-key", "--email", "nobody@example.com"])
        assert missing.exit_code != 0
    finally:
        get_settings.cache_clear()

    async def owner_of_key() -> str:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gridtokenx.db'}")
        try:
            async with db.session() as session:
                user, key = await authenticate_api_key(session, legacy)
                assert key.scopes == ["readings:write"]
                return user.email
        finally:
            await db.dispose()

    assert asyncio.run(owner_of_key()) == "utility@example.com"
