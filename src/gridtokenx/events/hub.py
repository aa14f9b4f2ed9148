"""The WebSocket hub: one per gateway process, fed by the bus (which, with Redis, carries every
process's events), fanning each event out to the clients allowed to see it.

Each client has a bounded send queue drained by its own task: the fan-out only enqueues, so a
slow client never stalls the others; a client whose queue is full is closed with
CLOSE_SLOW_CONSUMER and can resume with `since=<last id>`.

Protocol (JSON text frames):
- connect: `GET /ws?token=<jwt>` (or `api_key=`, or an `Authorization: Bearer` / `X-API-Key`
  header), optional `channels=market,user,meters:<id>` (default `user`) and `since=<event id>`;
  no valid credential: the upgrade is refused (HTTP 403).
- server: `{"type": "welcome", "channels": [...]}`, events `{"id", "type", "v", "at", "data"}`,
  `{"type": "ping"}` every `ws_ping_interval_seconds`, `{"type": "too_old", ...}` when `since`
  is older than the replay buffer (refetch over HTTP), `{"type": "error", "code", "message"}`.
- client: `{"type": "subscribe" | "unsubscribe", "channels": [...]}`, `{"type": "pong"}`,
  `{"type": "ping"}` (answered with a pong).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from gridtokenx.core.metrics import WS_BROADCAST_DURATION, WS_CLIENTS, WS_DROPPED, WS_MESSAGES_SENT
from gridtokenx.events.bus import EventBus
from gridtokenx.events.model import Event
from gridtokenx.events.rules import ChannelError, Copy, Viewer, check_channel, meter_of, public_copy, visible

log = structlog.get_logger(__name__)

CLOSE_POLICY = 1008  # refused before the upgrade (Starlette answers HTTP 403)
CLOSE_GOING_AWAY = 1001
CLOSE_SLOW_CONSUMER = 4008
CLOSE_HEARTBEAT = 4009


class Authority:
    """What the hub asks the domains above it: who a credential is, who may watch a meter.
    The meters domain registers the implementation (`meters/watch.py`); events imports nothing
    above it."""

    async def authenticate(self, credential: str) -> Viewer | None:
        raise NotImplementedError

    async def may_watch_meter(self, viewer: Viewer, meter_id: str) -> bool:
        raise NotImplementedError


def credential_of(websocket: WebSocket) -> str | None:
    query = websocket.query_params
    for value in (query.get("token"), query.get("api_key")):
        if value:
            return value
    scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return websocket.headers.get("x-api-key", "").strip() or None


class _Encoded:
    """An event's frames, each encoded once however many clients receive it."""

    def __init__(self, event: Event) -> None:
        self.event = event
        self._frames: dict[Copy, str] = {}

    def frame(self, copy: Copy) -> str:
        frame = self._frames.get(copy)
        if frame is None:
            body = self.event.wire() if copy is Copy.FULL else public_copy(self.event)
            frame = self._frames[copy] = orjson.dumps(body).decode()
        return frame


class Client:
    def __init__(self, websocket: WebSocket, viewer: Viewer, queue_size: int) -> None:
        self.websocket = websocket
        self.viewer = viewer
        self.channels: set[str] = set()
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=queue_size)
        self.held: list[Event] | None = None  # live events kept back while a resume replays
        self.last_heard = time.monotonic()
        self.closing: int | None = None

    def offer(self, frame: str) -> bool:
        """Queue a frame; False when the queue is full (the client is too slow)."""
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            return False
        return True


class Hub:
    def __init__(
        self, bus: EventBus, authority: Authority, *, queue_size: int = 1_000, ping_interval: float = 20.0
    ) -> None:
        self.bus = bus
        self.authority = authority
        self.queue_size = queue_size
        self.ping_interval = ping_interval
        self.clients: set[Client] = set()
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.bus.subscribe("*", self._on_event)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for client in list(self.clients):
            self._drop(client, CLOSE_GOING_AWAY, None)

    async def _on_event(self, event: Event) -> None:
        if not self.clients:
            return
        started = time.perf_counter()
        encoded = _Encoded(event)
        for client in list(self.clients):
            if client.held is not None:
                client.held.append(event)
            else:
                self._send_event(client, encoded)
        WS_BROADCAST_DURATION.observe(time.perf_counter() - started)

    def _send_event(self, client: Client, encoded: _Encoded) -> None:
        copy = visible(client.viewer, client.channels, encoded.event)
        if copy is None:
            return
        if client.offer(encoded.frame(copy)):
            WS_MESSAGES_SENT.labels(encoded.event.type).inc()
        else:
            self._drop(client, CLOSE_SLOW_CONSUMER, "slow_consumer")

    def _drop(self, client: Client, code: int, reason: str | None) -> None:
        if client.closing is not None:
            return
        client.closing = code
        self.clients.discard(client)
        if reason:
            WS_DROPPED.labels(reason).inc()
            log.info("websocket_client_dropped", reason=reason, user_id=client.viewer.user_id)
        with contextlib.suppress(asyncio.QueueEmpty):
            while True:  # make room for the stop mark: a dropped client gets nothing more
                client.queue.get_nowait()
        client.queue.put_nowait(None)

    # --- one connection ---------------------------------------------------------------------------

    async def serve(self, websocket: WebSocket) -> None:
        credential = credential_of(websocket)
        viewer = await self.authority.authenticate(credential) if credential else None
        if viewer is None:
            await websocket.close(code=CLOSE_POLICY)
            return
        await websocket.accept()
        client = Client(websocket, viewer, self.queue_size)
        since = _int_or_none(websocket.query_params.get("since"))
        client.held = [] if since is not None else None
        requested = (websocket.query_params.get("channels") or "user").split(",")
        refused = await self._subscribe(client, requested)
        self.clients.add(client)
        WS_CLIENTS.inc()
        sender = asyncio.create_task(self._sender(client))
        heartbeat = asyncio.create_task(self._heartbeat(client))
        try:
            client.offer(_frame({"type": "welcome", "channels": sorted(client.channels)}))
            for message in refused:
                client.offer(_frame(message))
            if since is not None:
                await self._resume(client, since)
            await self._receive(client)
        except (WebSocketDisconnect, RuntimeError):  # RuntimeError: receive after a close we sent
            pass
        finally:
            self.clients.discard(client)
            WS_CLIENTS.dec()
            heartbeat.cancel()
            if client.closing is None:
                sender.cancel()
            await asyncio.gather(sender, heartbeat, return_exceptions=True)

    async def _subscribe(self, client: Client, channels: Iterable[str]) -> list[dict[str, Any]]:
        refused = []
        for channel in (c.strip() for c in channels if c.strip()):
            try:
                check_channel(channel)
            except ChannelError as exc:
                refused.append(_error("CHANNEL_UNKNOWN", str(exc), channel))
                continue
            meter = meter_of(channel)
            if (
                meter is not None
                and not client.viewer.is_admin
                and not await self.authority.may_watch_meter(client.viewer, meter)
            ):
                refused.append(_error("CHANNEL_FORBIDDEN", "not your meter", channel))
                continue
            client.channels.add(channel)
        return refused

    async def _resume(self, client: Client, since: int) -> None:
        missed = await self.bus.replay(since)
        last = since
        if missed is None:
            client.offer(_frame({"type": "too_old", "since": since, "message": "events were lost; refetch"}))
        else:
            for event in missed:
                self._send_event(client, _Encoded(event))
                last = max(last, event.id)
        held, client.held = client.held or [], None
        for event in held:
            if event.id == 0 or event.id > last:
                self._send_event(client, _Encoded(event))

    async def _receive(self, client: Client) -> None:
        while client.closing is None:
            text = await client.websocket.receive_text()
            client.last_heard = time.monotonic()
            try:
                message = orjson.loads(text)
                kind = message.get("type")
                channels = message.get("channels", [])
                if not isinstance(channels, list):
                    raise ValueError
            except (orjson.JSONDecodeError, AttributeError, ValueError):
                client.offer(_frame(_error("MESSAGE_INVALID", "expected a JSON object with a type")))
                continue
            if kind == "ping":
                client.offer(_frame({"type": "pong"}))
            elif kind == "subscribe":
                for refusal in await self._subscribe(client, [str(c) for c in channels]):
                    client.offer(_frame(refusal))
                client.offer(_frame({"type": "subscribed", "channels": sorted(client.channels)}))
            elif kind == "unsubscribe":
                client.channels.difference_update(str(c) for c in channels)
                client.offer(_frame({"type": "subscribed", "channels": sorted(client.channels)}))
            elif kind != "pong":
                client.offer(_frame(_error("MESSAGE_INVALID", f"unknown message type {kind!r}")))

    async def _sender(self, client: Client) -> None:
        websocket = client.websocket
        try:
            while (frame := await client.queue.get()) is not None:
                await websocket.send_text(frame)
        except Exception:  # the peer went away mid-send; the receive side ends the connection
            return
        if client.closing is not None and websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close(code=client.closing)

    async def _heartbeat(self, client: Client) -> None:
        while client.closing is None:
            await asyncio.sleep(self.ping_interval)
            if time.monotonic() - client.last_heard > 2 * self.ping_interval:
                self._drop(client, CLOSE_HEARTBEAT, "heartbeat")
            elif not client.offer(_frame({"type": "ping"})):
                self._drop(client, CLOSE_SLOW_CONSUMER, "slow_consumer")


def _frame(body: dict[str, Any]) -> str:
    return orjson.dumps(body).decode()


def _error(code: str, message: str, channel: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if channel is not None:
        body["channel"] = channel
    return body


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
