"""Operational endpoints and the API over real HTTP: health, metrics, request ids, gzip, CORS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import base58
import httpx
import pytest
import structlog
from nacl.signing import SigningKey

from tests.conftest import make_settings
from tests.helpers import PASSWORD, token_from_link
from tests.live import live_server


@pytest.fixture
def server(backend: str, db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if backend == "postgres":
        import asyncio

        from gridtokenx.core.db import Database
        from tests.conftest import truncate_all

        async def clean() -> None:
            db = Database(db_url)
            await truncate_all(db)
            await db.dispose()

        asyncio.run(clean())
    settings = make_settings(tmp_path, db_url, cors_origins=["https://dash.example"])
    with live_server(settings) as base:
        yield base


def _logged_link(logs: list[dict[str, Any]], wait_s: float = 5.0) -> str:
    """The verification link the server logs: the mail goes out after the response is sent, from
    the server's thread, so the entry may land a moment after the reply does."""
    deadline = time.monotonic() + wait_s
    while True:
        links = [e["link"] for e in list(logs) if e.get("event") == "verification_link"]
        if links or time.monotonic() > deadline:
            assert links, "no verification link was logged"
            return str(links[0])
        time.sleep(0.01)


def test_journey_over_real_http(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as http, structlog.testing.capture_logs() as logs:
        created = http.post("/api/auth/register", json={"email": "net@example.com", "password": PASSWORD})
        assert created.status_code == 201
        link = _logged_link(logs)
        assert http.get("/api/auth/verify-email", params={"token": token_from_link(link)}).status_code == 200
        session = http.post("/api/auth/login", json={"email": "net@example.com", "password": PASSWORD}).json()
        auth = {"Authorization": f"Bearer {session['access_token']}"}
        key = SigningKey.generate()
        wallet = base58.b58encode(bytes(key.verify_key)).decode()
        nonce = http.post("/api/wallets/nonce", json={"wallet_address": wallet}, headers=auth).json()
        signature = base58.b58encode(key.sign(nonce["message"].encode()).signature).decode()
        linked = http.post(
            "/api/wallets/link",
            json={"wallet_address": wallet, "nonce": nonce["nonce"], "signature": signature},
            headers=auth,
        )
        assert linked.status_code == 200 and linked.json()["wallet_address"] == wallet


def test_health_metrics_request_id_gzip_cors(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as http:
        health = http.get("/health")
        assert health.status_code == 200 and health.json()["database"] == "ok"
        tagged = http.get("/health", headers={"X-Request-ID": "abc123"})
        assert tagged.headers["x-request-id"] == "abc123"
        assert len(http.get("/health").headers["x-request-id"]) == 32
        metrics = http.get("/metrics")
        assert metrics.status_code == 200 and "gridtokenx_http_requests_total" in metrics.text
        docs = http.get("/api/docs/openapi.json", headers={"Accept-Encoding": "gzip"})
        assert docs.headers.get("content-encoding") == "gzip" and "/api/auth/login" in docs.json()["paths"]
        assert http.get("/api/docs").status_code == 200
        preflight = http.options(
            "/api/auth/login",
            headers={"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.headers.get("access-control-allow-origin") == "https://dash.example"
