"""Each bad input gets its exact status and machine-readable code."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from gridtokenx.core.context import AppContext
from tests.helpers import PASSWORD, bearer, error_code, user_token


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/login",
        content=b'{"email": "a@b.c", "password": ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400 and error_code(response) == "MALFORMED_JSON"


async def test_validation_failure_names_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/register", json={"email": "not-an-email", "password": "short"})
    assert response.status_code == 422 and error_code(response) == "VALIDATION_ERROR"
    fields = {item["field"] for item in response.json()["error"]["details"]}
    assert {"body.email", "body.password"} <= fields


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "max_body_bytes": 2048,
        "login_rate_limit_account": "3/15minutes",
        "login_rate_limit_ip": "5/15minutes",
    }


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/auth/register", content=b"x" * 5000, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and error_code(response) == "PAYLOAD_TOO_LARGE"


async def test_oversized_streamed_body_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        for _ in range(10):
            yield b"y" * 1000

    response = await client.post(
        "/api/auth/register", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and error_code(response) == "PAYLOAD_TOO_LARGE"


async def test_missing_forged_and_expired_tokens(client: httpx.AsyncClient, ctx: AppContext) -> None:
    missing = await client.get("/api/users/me")
    assert missing.status_code == 401 and error_code(missing) == "AUTH_REQUIRED"

    token = await user_token(client, ctx, "jwt@example.com")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(claims, "another-secret-" + "z" * 40, algorithm="HS256")
    response = await client.get("/api/users/me", headers=bearer(forged))
    assert response.status_code == 401 and error_code(response) == "TOKEN_INVALID"

    past = datetime.now(UTC) - timedelta(days=2)
    expired = ctx.jwt.issue(uuid.UUID(claims["sub"]), claims["role"], claims["email"], now=past)
    response = await client.get("/api/users/me", headers=bearer(expired))
    assert response.status_code == 401 and error_code(response) == "TOKEN_EXPIRED"

    none_alg = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    response = await client.get("/api/users/me", headers=bearer(none_alg))
    assert response.status_code == 401 and error_code(response) == "TOKEN_INVALID"


async def test_failed_logins_are_rate_limited_per_account(client: httpx.AsyncClient, ctx: AppContext) -> None:
    await user_token(client, ctx, "kim@example.com")
    for _ in range(3):
        wrong = await client.post(
            "/api/auth/login", json={"email": "kim@example.com", "password": "wrong-pass-1"}
        )
        assert wrong.status_code == 401
    blocked = await client.post("/api/auth/login", json={"email": "kim@example.com", "password": PASSWORD})
    assert blocked.status_code == 429 and error_code(blocked) == "LOGIN_RATE_LIMITED"
    assert int(blocked.headers["retry-after"]) >= 1


async def test_failed_logins_are_rate_limited_per_ip(client: httpx.AsyncClient) -> None:
    for i in range(5):
        wrong = await client.post(
            "/api/auth/login", json={"email": f"u{i}@example.com", "password": "wrong-pass-1"}
        )
        assert wrong.status_code == 401
    blocked = await client.post(
        "/api/auth/login", json={"email": "new@example.com", "password": "wrong-pass-1"}
    )
    assert blocked.status_code == 429 and error_code(blocked) == "LOGIN_RATE_LIMITED"


async def test_unknown_route_uses_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nope")
    assert response.status_code == 404 and error_code(response) == "NOT_FOUND"
    wrong_method = await client.delete("/api/auth/login")
    assert wrong_method.status_code == 405 and error_code(wrong_method) == "METHOD_NOT_ALLOWED"
