"""An admin cannot lock themselves out or leave the platform without an admin; strict booleans."""

from __future__ import annotations

import httpx

from gridtokenx.core.context import AppContext
from tests.helpers import admin_token, bearer, error_code, user_token


async def _me(client: httpx.AsyncClient, token: str) -> str:
    return str((await client.get("/api/users/me", headers=bearer(token))).json()["id"])


async def test_no_self_deactivation_and_never_without_an_admin(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    admin = await admin_token(client, ctx)
    admin_id = await _me(client, admin)
    path = f"/api/admin/users/{admin_id}"
    for body, code in (
        ({"is_active": False}, "CANNOT_DEACTIVATE_SELF"),
        ({"role": "prosumer"}, "LAST_ADMIN"),
    ):
        response = await client.patch(path, json=body, headers=bearer(admin))
        assert (response.status_code, error_code(response)) == (409, code), response.text
    for body, code in (
        ({"is_active": 0}, "NOT_A_BOOLEAN"),
        ({"email_verified": 1}, "NOT_A_BOOLEAN"),
        ({"is_active": None}, "NULL_NOT_ALLOWED"),
        ({"role": None}, "NULL_NOT_ALLOWED"),
    ):
        response = await client.patch(path, json=body, headers=bearer(admin))
        assert (response.status_code, error_code(response)) == (422, code), response.text
    me = (await client.get("/api/users/me", headers=bearer(admin))).json()
    assert me["role"] == "admin" and me["is_active"] is True

    second = await admin_token(client, ctx, "second-admin@example.com")
    second_id = await _me(client, second)
    # with a second admin, one may step down; then the other is the last and stays
    demoted = await client.patch(path, json={"role": "prosumer"}, headers=bearer(admin))
    assert demoted.status_code == 200 and demoted.json()["role"] == "prosumer", demoted.text
    last = await client.patch(
        f"/api/admin/users/{second_id}", json={"role": "prosumer"}, headers=bearer(second)
    )
    assert (last.status_code, error_code(last)) == (409, "LAST_ADMIN")

    user = await user_token(client, ctx, "someone@example.com")
    user_id = await _me(client, user)
    off = await client.patch(f"/api/admin/users/{user_id}", json={"is_active": False}, headers=bearer(second))
    assert off.status_code == 200 and off.json()["is_active"] is False
