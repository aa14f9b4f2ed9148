"""MQTT transport for signed native readings, ending in the same ingest pipeline as HTTP.

Devices publish a native reading or a JSON array of them (QoS 1) to
`<prefix>/meters/<serial>/readings`. Gateways subscribe through a shared subscription, so each
message is handled by one of them. paho's network thread hands each message to the event loop and
waits for the pipeline's commit before returning, so the PUBACK goes out only after the readings are
stored: a crash before that makes the broker redeliver, and the resend is a duplicate no-op. The
per-item verdicts are published to `<prefix>/meters/<serial>/results`.

Over MQTT the signature is the credential: only device-signed native readings are accepted (the
broker's own authentication guards the connection).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import structlog

from gridtokenx.core.metrics import MQTT_CONNECTION_ERRORS, MQTT_MESSAGES
from gridtokenx.core.settings import Settings
from gridtokenx.readings.envelope import decode_batch, decode_reading, to_reading
from gridtokenx.readings.errors import ErrorCode, ReadingError
from gridtokenx.readings.pipeline import IngestPipeline, ItemResult, Submitter
from gridtokenx.readings.reading import Reading

log = structlog.get_logger(__name__)
PROCESS_TIMEOUT_S = 120


def readings_topic(prefix: str, serial: str = "+") -> str:
    return f"{prefix}/meters/{serial}/readings"


def results_topic(prefix: str, serial: str) -> str:
    return f"{prefix}/meters/{serial}/results"


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


class MqttIngest:
    """Subscribes for the life of the app (a `BackgroundService`), bound to the event loop that
    starts it."""

    def __init__(self, settings: Settings, pipeline: IngestPipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.loop: asyncio.AbstractEventLoop | None = None
        self.prefix = settings.mqtt_topic_prefix
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"gridtokenx-gateway-{id(self):x}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
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

    @property
    def subscription(self) -> str:
        topic = readings_topic(self.prefix)
        group = self.settings.mqtt_shared_group
        return f"$share/{group}/{topic}" if group else topic

    async def start(self) -> None:
        assert self.settings.mqtt_broker_host
        self.loop = asyncio.get_running_loop()
        self.client.connect_async(
            self.settings.mqtt_broker_host, self.settings.mqtt_broker_port, keepalive=30
        )
        self.client.loop_start()

    async def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, _userdata: object, _flags: object, reason: object, _props: object
    ) -> None:
        client.subscribe(self.subscription, qos=1)
        log.info("mqtt_subscribed", topic=self.subscription, reason=str(reason))
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.connected.set)

    def _on_disconnect(self, *args: Any) -> None:
        if getattr(args[3], "is_failure", False):  # (client, userdata, flags, reason, properties)
            MQTT_CONNECTION_ERRORS.inc()

    def _on_message(self, client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        MQTT_MESSAGES.inc()
        parts = message.topic.split("/")
        serial = parts[-2] if len(parts) >= 2 else ""
        items = [
            _topic_checked(item, serial)
            for item in parse_payload(
                bytes(message.payload), self.settings.network_id, self.settings.batch_max_size
            )
        ]
        submitter = Submitter(None, device_only=True)
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(self.pipeline.ingest(submitter, items), self.loop)
        try:
            results = future.result(timeout=PROCESS_TIMEOUT_S)
        except Exception as exc:  # left unacknowledged: the broker redelivers; a resend is idempotent
            log.error("mqtt_ingest_failed", topic=message.topic, error=f"{type(exc).__name__}: {exc}")
            return
        client.ack(message.mid, message.qos)  # only now, after the commit
        client.publish(results_topic(self.prefix, serial), summary(results), qos=1)


def _topic_checked(item: Reading | ReadingError, serial: str) -> Reading | ReadingError:
    """A device may publish only under its own serial (the broker's ACLs bind devices to topics)."""
    if isinstance(item, Reading) and item.meter_serial != serial:
        message = f"reading of meter {item.meter_serial!r} published under {serial!r}"
        return ReadingError(ErrorCode.SERIAL_MISMATCH, message, "$.device_id")
    return item
