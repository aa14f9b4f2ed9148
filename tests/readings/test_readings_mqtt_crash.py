"""Every reading the broker acknowledged (PUBACK) is stored exactly once, while the gateway process
is SIGKILLed and restarted several times under a steady QoS 1 publisher."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import select

from gridtokenx.core.context import AppContext
from gridtokenx.readings.models import MeterReading
from gridtokenx.readings.mqtt import CLIENT_ID_FILE, readings_topic
from gridtokenx.readings.reading import Trust
from tests.conftest import MQTT_HOST, MQTT_PORT
from tests.readings.gateway_process import GatewayProcess
from tests.readings.ingest_helpers import INTERVAL, Device, aligned_now, make_device

KILLS = 3
MAX_MESSAGES = 900  # under mosquitto's default max_queued_messages (1000) for the downtime


class Publisher:
    """A device at QoS 1 in its own thread: one signed reading per message, every PUBACK counted."""

    def __init__(self, prefix: str, device: Device, first: int) -> None:
        self.topic = readings_topic(prefix, device.serial)
        self.device, self.first = device, first
        self.acked_mids: set[int] = set()  # written by paho's thread (a set add is atomic)
        self.sent: dict[int, int] = {}  # mid -> interval start
        self.stop = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:10]}")
        self.client.on_publish = lambda _c, _u, mid, _r, _p: self.acked_mids.add(mid)
        self.client.connect(MQTT_HOST, MQTT_PORT)
        self.client.loop_start()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for n in range(MAX_MESSAGES):  # mids stay below 65535: never reused in this test
            if self.stop.is_set():
                return
            start = self.first + n * INTERVAL
            info = self.client.publish(self.topic, self.device.signed(start), qos=1)
            self.sent[info.mid] = start
            time.sleep(0.01)

    def finish(self) -> set[int]:
        """Stop publishing, wait for the outstanding PUBACKs; the readings the broker acknowledged."""
        self.stop.set()
        self.thread.join(timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not set(self.sent) <= self.acked_mids:
            time.sleep(0.05)
        self.client.loop_stop()
        self.client.disconnect()
        return {self.sent[mid] for mid in self.acked_mids if mid in self.sent}


async def _stored(ctx: AppContext) -> list[int]:
    async with ctx.db.session() as session:
        rows = await session.scalars(
            select(MeterReading.interval_start).where(MeterReading.trust != Trust.ESTIMATED)
        )
        return [int(moment.timestamp()) for moment in rows]


async def test_every_acknowledged_message_is_stored_once_across_sigkills(
    client: httpx.AsyncClient, ctx: AppContext, tmp_path: Path
) -> None:
    device = await make_device(client, ctx)
    prefix = f"gtxcrash/{uuid.uuid4().hex[:8]}"
    gateway = GatewayProcess(
        ctx.settings,
        tmp_path / "gateway",
        mqtt_broker_host=MQTT_HOST,
        mqtt_broker_port=MQTT_PORT,
        mqtt_topic_prefix=prefix,
        mqtt_shared_group=f"g{uuid.uuid4().hex[:8]}",
    )
    first = aligned_now(MAX_MESSAGES + 2)
    publisher = Publisher(prefix, device, first)
    try:
        await gateway.start()
        # the broker holds messages for the gateway only once its session exists
        for _ in range(300):
            if "mqtt_subscribed" in gateway.tail():
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the SUBACK
        publisher.thread.start()
        for _ in range(300):
            if await _stored(ctx):
                break
            await asyncio.sleep(0.1)
        client_id = (tmp_path / "gateway" / CLIENT_ID_FILE).read_text()
        for _ in range(KILLS):
            await asyncio.sleep(1.5)
            gateway.kill()
            await asyncio.sleep(0.5)  # the broker queues for the dead session meanwhile
            await gateway.start()
        acked = await asyncio.to_thread(publisher.finish)
        assert (tmp_path / "gateway" / CLIENT_ID_FILE).read_text() == client_id  # one identity
        for _ in range(600):
            stored = await _stored(ctx)
            if len(stored) >= len(acked):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # a late redelivery would show up as a second row now
        stored = await _stored(ctx)
    finally:
        gateway.stop()
    assert len(acked) > 100, "the publisher should have been acknowledged throughout"
    assert len(stored) == len(set(stored)), "a reading stored twice"
    missing = acked - set(stored)
    assert not missing, f"{len(missing)} acknowledged readings lost of {len(acked)}\n{gateway.tail()}"
    assert gateway.starts == KILLS + 1


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"run_duties": False}
