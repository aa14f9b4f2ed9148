"""Register → verify → login → refresh → link wallet → logout, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from datetime import timedelta

import base58
import httpx
import structlog
from nacl.signing import SigningKey
from sqlalchemy import update

from gridtokenx.accounts.models import EmailVerification, WalletNonce
from gridtokenx.core.context import AppContext
from gridtokenx.core.types import utcnow
from tests.helpers import PASSWORD, bearer, error_code, login, register, token_from_link, user_token


async def _register_and_capture_link(client: httpx.AsyncClient, email: str) -> str:
    with structlog.testing.capture_logs() as logs:
        body = await register(client, email)
    assert body["email_verification_sent"] is True
    links = [entry["link"] for entry in logs if entry.get("event") == "verification_link"]
    assert len(links) == 1
    return token_from_link(links[0])


def _wallet() -> tuple[SigningKey, str]:
    key = SigningKey.generate()
    return key, base58.b58encode(bytes(key.verify_key)).decode()


async def _nonce(client: httpx.AsyncClient, token: str, wallet: str) -> dict[str, str]:
    response = await client.post("/api/wallets/nonce", json={"wallet_address": wallet}, headers=bearer(token))
    assert response.status_code == 201, response.text
    return dict(response.json())


def _sign(key: SigningKey, message: str) -> str:
    return base58.b58encode(key.sign(message.encode()).signature).decode()


async def test_full_account_journey(client: httpx.AsyncClient) -> None:
    token = await _register_and_capture_link(client, "Alice@Example.com")

    refused = await client.post("/api/auth/login", json={"email": "alice@example.com", "password": PASSWORD})
    assert refused.status_code == 403 and error_code(refused) == "EMAIL_NOT_VERIFIED"

    verified = await client.get("/api/auth/verify-email", params={"token": token})
    assert verified.status_code == 200 and verified.json()["email_verified"] is True
    again = await client.get("/api/auth/verify-email", params={"token": token})
    assert again.status_code == 400 and error_code(again) == "VERIFICATION_TOKEN_USED"

    session = await login(client, "alice@example.com")
    assert session["token_type"] == "bearer" and session["expires_in"] == 86_400
    me = await client.get("/api/users/me", headers=bearer(session["access_token"]))
    assert me.status_code == 200 and me.json()["email"] == "alice@example.com"
    assert me.json()["role"] == "prosumer"

    key, wallet = _wallet()
    challenge = await _nonce(client, session["access_token"], wallet)
    assert wallet in challenge["message"] and challenge["nonce"] in challenge["message"]
    linked = await client.post(
        "/api/wallets/link",
        json={
            "wallet_address": wallet,
            "nonce": challenge["nonce"],
            "signature": _sign(key, challenge["message"]),
        },
        headers=bearer(session["access_token"]),
    )
    assert linked.status_code == 200, linked.text
    assert linked.json()["wallet_address"] == wallet

    rotated = await client.post("/api/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert rotated.status_code == 200
    reused = await client.post("/api/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert reused.status_code == 401 and error_code(reused) == "REFRESH_TOKEN_INVALID"

    out = await client.post("/api/auth/logout", json={"refresh_token": rotated.json()["refresh_token"]})
    assert out.status_code == 200
    after = await client.post("/api/auth/refresh", json={"refresh_token": rotated.json()["refresh_token"]})
    assert after.status_code == 401 and error_code(after) == "REFRESH_TOKEN_INVALID"


async def test_expired_verification_token(client: httpx.AsyncClient, ctx: AppContext) -> None:
    token = await _register_and_capture_link(client, "late@example.com")
    async with ctx.db.session() as session:
        await session.execute(update(EmailVerification).values(expires_at=utcnow() - timedelta(seconds=1)))
    response = await client.get("/api/auth/verify-email", params={"token": token})
    assert response.status_code == 400 and error_code(response) == "VERIFICATION_TOKEN_EXPIRED"
    forged = await client.get("/api/auth/verify-email", params={"token": "not-a-token"})
    assert forged.status_code == 400 and error_code(forged) == "VERIFICATION_TOKEN_INVALID"


async def test_wrong_password_and_unknown_account(client: httpx.AsyncClient, ctx: AppContext) -> None:
    await user_token(client, ctx, "bob@example.com")
    wrong = await client.post("/api/auth/login", json={"email": "bob@example.com", "password": "nope-nope-1"})
    assert wrong.status_code == 401 and error_code(wrong) == "INVALID_CREDENTIALS"
    unknown = await client.post("/api/auth/login", json={"email": "who@example.com", "password": PASSWORD})
    assert unknown.status_code == 401 and error_code(unknown) == "INVALID_CREDENTIALS"


async def test_duplicate_registration_conflicts(client: httpx.AsyncClient) -> None:
    await register(client, "carol@example.com")
    again = await client.post(
        "/api/auth/register", json={"email": "CAROL@example.com", "password": PASSWORD, "role": "consumer"}
    )
    assert again.status_code == 409 and error_code(again) == "EMAIL_TAKEN"
    admin = await client.post(
        "/api/auth/register", json={"email": "eve@example.com", "password": PASSWORD, "role": "admin"}
    )
    assert admin.status_code == 403 and error_code(admin) == "ROLE_NOT_ALLOWED"


async def test_reused_nonce_is_refused(client: httpx.AsyncClient, ctx: AppContext) -> None:
    token = await user_token(client, ctx, "dan@example.com")
    key, wallet = _wallet()
    challenge = await _nonce(client, token, wallet)
    body = {
        "wallet_address": wallet,
        "nonce": challenge["nonce"],
        "signature": _sign(key, challenge["message"]),
    }
    first = await client.post("/api/wallets/link", json=body, headers=bearer(token))
    assert first.status_code == 200
    second = await client.post("/api/wallets/link", json=body, headers=bearer(token))
    assert second.status_code == 400 and error_code(second) == "NONCE_USED"


async def test_expired_nonce_is_refused(client: httpx.AsyncClient, ctx: AppContext) -> None:
    token = await user_token(client, ctx, "fay@example.com")
    key, wallet = _wallet()
    challenge = await _nonce(client, token, wallet)
    async with ctx.db.session() as session:
        await session.execute(update(WalletNonce).values(expires_at=utcnow() - timedelta(seconds=1)))
    body = {
        "wallet_address": wallet,
        "nonce": challenge["nonce"],
        "signature": _sign(key, challenge["message"]),
    }
    response = await client.post("/api/wallets/link", json=body, headers=bearer(token))
    assert response.status_code == 400 and error_code(response) == "NONCE_EXPIRED"


async def test_signature_by_another_key_is_refused(client: httpx.AsyncClient, ctx: AppContext) -> None:
    token = await user_token(client, ctx, "gil@example.com")
    _key, wallet = _wallet()
    impostor, _ = _wallet()
    challenge = await _nonce(client, token, wallet)
    body = {
        "wallet_address": wallet,
        "nonce": challenge["nonce"],
        "signature": _sign(impostor, challenge["message"]),
    }
    response = await client.post("/api/wallets/link", json=body, headers=bearer(token))
    assert response.status_code == 401 and error_code(response) == "SIGNATURE_INVALID"
    garbage = {**body, "signature": "abc"}
    malformed = await client.post("/api/wallets/link", json=garbage, headers=bearer(token))
    assert malformed.status_code == 422 and error_code(malformed) == "SIGNATURE_MALFORMED"


async def test_wallet_linked_to_at_most_one_user(client: httpx.AsyncClient, ctx: AppContext) -> None:
    first = await user_token(client, ctx, "hal@example.com")
    second = await user_token(client, ctx, "ivy@example.com")
    key, wallet = _wallet()
    for token, expected in ((first, 200), (second, 409)):
        challenge = await _nonce(client, token, wallet)
        signature = base64.b64encode(key.sign(challenge["message"].encode()).signature).decode()
        body = {"wallet_address": wallet, "nonce": challenge["nonce"], "signature": signature}
        response = await client.post("/api/wallets/link", json=body, headers=bearer(token))
        assert response.status_code == expected, response.text
    assert error_code(response) == "WALLET_ALREADY_LINKED"
