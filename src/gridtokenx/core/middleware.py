"""ASGI middleware: request ids + access logs + metrics, body-size limit, per-client rate limit."""

from __future__ import annotations

import hashlib
import time
import uuid

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridtokenx.core.errors import envelope
from gridtokenx.core.metrics import HTTP_LATENCY, HTTP_REQUESTS
from gridtokenx.core.ratelimit import RateLimiter

log = structlog.get_logger("gridtokenx.http")
UNLIMITED_PATHS = ("/health", "/api/health", "/metrics")


async def _send_error(
    send: Send, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = orjson.dumps(envelope(code, message))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


class RequestContextMiddleware:
    """Gives every request an id (echoed as X-Request-ID), logs it once and counts it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming.decode("latin-1")[:64] if incoming else uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(scope["method"], template, str(status_holder["status"])).inc()
            HTTP_LATENCY.labels(scope["method"], template).observe(elapsed)
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status_holder["status"],
                ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")


class BodyLimitMiddleware:
    """Refuses bodies over the limit with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _send_error(send, 413, "PAYLOAD_TOO_LARGE", f"request body exceeds {self.max_bytes} bytes")
            return
        received = 0
        refused = False

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    await _send_error(
                        send, 413, "PAYLOAD_TOO_LARGE", f"request body exceeds {self.max_bytes} bytes"
                    )
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, counting_receive, guarded_send)


class RateLimitMiddleware:
    """A general budget per credential (or per IP for anonymous calls), shared via Redis if set."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter, limit: str) -> None:
        self.app = app
        self.limiter = limiter
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        credential = _header(scope, b"authorization") or _header(scope, b"x-api-key")
        if credential:
            key = "cred:" + hashlib.sha256(credential).hexdigest()[:32]
        else:
            client = scope.get("client")
            key = "ip:" + (client[0] if client else "unknown")
        verdict = await self.limiter.hit(self.limit, f"http:{key}")
        if not verdict.allowed:
            await _send_error(
                send,
                429,
                "RATE_LIMITED",
                "too many requests; slow down",
                [(b"retry-after", str(verdict.retry_after).encode())],
            )
            return
        await self.app(scope, receive, send)
