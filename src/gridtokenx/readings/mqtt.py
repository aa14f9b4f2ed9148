"""MQTT transport for signed native readings, ending in the same ingest pipeline as HTTP.

Devices publish a native reading or a JSON array of them (QoS 1) to
`<prefix>/meters/<serial>/readings`; the per-item verdicts go to `<prefix>/meters/<serial>/results`.
Gateways subscribe through a shared subscription, so each message is handled by one of them.

Nothing the broker acknowledged to a device is lost:

- The gateway keeps one MQTT identity (`GRIDTOKENX_MQTT_CLIENT_ID`, by default derived from the
  host name and an id kept in the data directory) and an MQTT 5 session that outlives the
  connection (`clean_start=False`, session expiry `GRIDTOKENX_MQTT_SESSION_EXPIRY_SECONDS`). While
  the gateway is down the broker queues its messages, and unacknowledged ones are sent again on
  the next connection.
- A message is acknowledged (manual PUBACK) only after the transaction holding its readings
  committed. A crash before that makes the broker redeliver, and the resend is a duplicate no-op.
- A batch whose ingest failed (database unreachable, say) is retried here with backoff, never
  left unacknowledged until some reconnect; several messages that failed together are retried
  one by one, so one bad message cannot hold the others back.
- A message delivered on an earlier connection is not acknowledged on a later one (its packet id
  may name another message by then); the broker has already redelivered it.

To catch up after an outage faster than devices publish, paho's network thread only parses a
message and queues it. Consumer tasks (`CONSUMERS` on PostgreSQL, one on SQLite) each take up to
`GRIDTOKENX_MQTT_BATCH_READINGS` readings from several messages into one transaction, with at most
`GRIDTOKENX_MQTT_MAX_INFLIGHT` messages held unacknowledged (the network thread waits beyond
that). The broker settings a deployment needs (queue limits for an outage, inflight window) are in the README.

Over MQTT the signature is the credential: only device-signed native readings are accepted (the
broker's own authentication guards the connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import ssl
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridtokenx.core.metrics import MQTT_CONNECTION_ERRORS, MQTT_MESSAGES
from gridtokenx.core.settings import Settings
from gridtokenx.readings.errors import ErrorCode, ReadingError
from gridtokenx.readings.ingest_results import ItemResult
from gridtokenx.readings.native import decode_batch, decode_reading, to_reading
from gridtokenx.readings.pipeline import IngestPipeline, Submitter
from gridtokenx.readings.reading import Reading

log = structlog.get_logger(__name__)
CONSUMERS = 2  # concurrent transactions on PostgreSQL; SQLite has one writer, so one consumer
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 30.0
CLIENT_ID_FILE = "mqtt_client_id"
DEVICE_ONLY = Submitter(None, device_only=True)


def readings_topic(prefix: str, serial: str = "+") -> str:
    return f"{prefix}/meters/{serial}/readings"


def results_topic(prefix: str, serial: str) -> str:
    return f"{prefix}/meters/{serial}/results"


def gateway_client_id(data_dir: Path) -> str:
    """This gateway's MQTT client id, the same on every start: `gridtokenx-<host>-<8 hex>`, the
    suffix kept in the data directory (two gateways sharing a data directory must set
    `GRIDTOKENX_MQTT_CLIENT_ID` apiece, or the broker would hand one session back and forth)."""
    path = data_dir / CLIENT_ID_FILE
    if not path.exists():
        host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:24] or "host"
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w") as handle:
                handle.write(f"gridtokenx-{host}-{uuid.uuid4().hex[:8]}\n")
                handle.flush()
                os.fsync(handle.fileno())
    return path.read_text().strip()


def parse_payload(payload: bytes, network_id: str, max_items: int) -> list[Reading | ReadingError]:
    """One native reading or an array of them; a malformed payload is one rejected item."""
    try:
        if payload.lstrip()[:1] == b"[":
            decoded = decode_batch(payload, max_items=max_items)
        else:
            decoded = [decode_reading(payload)]
    except ReadingError as error:
        return [error]
    return [item if isinstance(item, ReadingError) else to_reading(item, network_id) for item in decoded]


def summary(results: Sequence[ItemResult]) -> bytes:
    return orjson.dumps({"results": [result.as_dict() for result in results]})


@dataclass(frozen=True)
class _Message:
    mid: int
    qos: int
    serial: str
    items: list[Reading | ReadingError]
    connection: int  # which connection delivered it (its `mid` means nothing on another)


class MqttIngest:
    """Subscribes for the life of the app (a `BackgroundService`), bound to the event loop that
    starts it."""

    def __init__(self, settings: Settings, pipeline: IngestPipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.loop: asyncio.AbstractEventLoop | None = None
        self.prefix = settings.mqtt_topic_prefix
        self.client_id = settings.mqtt_client_id or gateway_client_id(settings.data_dir)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if settings.mqtt_username:
            self.client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
        if settings.mqtt_use_tls:
            self.client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_connect_fail = lambda *_: MQTT_CONNECTION_ERRORS.inc()
        self.client.on_disconnect = self._on_disconnect
        self.connected = asyncio.Event()
        self.connection = 0
        self.stopping = False
        self.slots = threading.BoundedSemaphore(settings.mqtt_max_inflight)
        self.queue: asyncio.Queue[_Message] = asyncio.Queue()
        self._consumers: list[asyncio.Task[None]] = []

    @property
    def subscription(self) -> str:
        topic = readings_topic(self.prefix)
        group = self.settings.mqtt_shared_group
        return f"$share/{group}/{topic}" if group else topic

    async def start(self) -> None:
        assert self.settings.mqtt_broker_host
        self.loop = asyncio.get_running_loop()
        # on SQLite a second consumer would only wait for the writer with a smaller batch in hand
        consumers = 1 if self.pipeline.db.is_sqlite else CONSUMERS
        self._consumers = [
            asyncio.create_task(self._consume(), name=f"mqtt-consumer-{n}") for n in range(consumers)
        ]
        session = Properties(PacketTypes.CONNECT)
        session.SessionExpiryInterval = self.settings.mqtt_session_expiry_seconds
        self.client.connect_async(
            self.settings.mqtt_broker_host,
            self.settings.mqtt_broker_port,
            keepalive=30,
            clean_start=False,
            properties=session,
        )
        self.client.loop_start()

    async def stop(self) -> None:
        """Unacknowledged messages stay with the broker's session, for the next start."""
        self.stopping = True
        self.client.disconnect()
        self.client.loop_stop()
        for task in self._consumers:
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)
        self._consumers = []

    # --- paho's network thread ----------------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _userdata: object, flags: object, reason: object, _props: object
    ) -> None:
        self.connection += 1
        client.subscribe(self.subscription, qos=1)
        resumed = bool(getattr(flags, "session_present", False))
        log.info("mqtt_subscribed", topic=self.subscription, reason=str(reason), session_resumed=resumed)
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.connected.set)

    def _on_disconnect(self, *args: Any) -> None:
        if getattr(args[3], "is_failure", False):  # (client, userdata, flags, reason, properties)
            MQTT_CONNECTION_ERRORS.inc()

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        MQTT_MESSAGES.inc()
        parts = message.topic.split("/")
        serial = parts[-2] if len(parts) >= 2 else ""
        items = [
            _topic_checked(item, serial)
            for item in parse_payload(
                bytes(message.payload), self.settings.network_id, self.settings.batch_max_size
            )
        ]
        while not self.slots.acquire(timeout=0.5):  # at most mqtt_max_inflight unacknowledged
            if self.stopping:
                return  # left unacknowledged: the broker keeps it for the next session
        assert self.loop is not None
        queued = _Message(message.mid, message.qos, serial, items, self.connection)
        self.loop.call_soon_threadsafe(self.queue.put_nowait, queued)

    # --- the event loop -----------------------------------------------------------------------

    async def _consume(self) -> None:
        limit = self.settings.mqtt_batch_readings
        while True:
            batch = [await self.queue.get()]
            size = len(batch[0].items)
            while size < limit and not self.queue.empty():
                batch.append(self.queue.get_nowait())
                size += len(batch[-1].items)
            await self._ingest(batch)

    async def _ingest(self, batch: list[_Message]) -> None:
        """Store a batch of messages in one transaction, retried until it commits; then
        acknowledge each message and publish its verdicts."""
        delay = RETRY_FIRST_S
        while True:
            try:
                results = await self.pipeline.ingest(DEVICE_ONLY, [i for m in batch for i in m.items])
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database, not the message: try again
                log.error("mqtt_ingest_failed", messages=len(batch), error=f"{type(exc).__name__}: {exc}")
                if len(batch) > 1:
                    for message in batch:  # one at a time, so one bad message holds up only itself
                        await self._ingest([message])
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
        assert len(results) == sum(len(m.items) for m in batch)  # one verdict per item, in order
        offset = 0
        for message in batch:
            mine = results[offset : offset + len(message.items)]
            offset += len(message.items)
            self._done(message, mine)

    def _done(self, message: _Message, results: list[ItemResult]) -> None:
        try:
            if message.connection == self.connection:
                self.client.ack(message.mid, message.qos)  # only now, after the commit
            self.client.publish(results_topic(self.prefix, message.serial), summary(results), qos=1)
        finally:
            self.slots.release()


def _topic_checked(item: Reading | ReadingError, serial: str) -> Reading | ReadingError:
    """A device may publish only under its own serial (the broker's ACLs bind devices to topics)."""
    if isinstance(item, Reading) and item.meter_serial != serial:
        message = f"reading of meter {item.meter_serial!r} published under {serial!r}"
        return ReadingError(ErrorCode.SERIAL_MISMATCH, message, "$.device_id")
    return item
