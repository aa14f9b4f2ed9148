"""Signed readings over the real Mosquitto broker, through the same pipeline as HTTP."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import func, select

from gridtokenx.core.context import AppContext
from gridtokenx.readings.models import MeterReading
from gridtokenx.readings.mqtt import MqttIngest, readings_topic, results_topic
from tests.conftest import MQTT_HOST, MQTT_PORT
from tests.readings.ingest_helpers import INTERVAL, aligned_now, make_device

PREFIX = f"gtxtest/{uuid.uuid4().hex[:8]}"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "mqtt_broker_host": MQTT_HOST,
        "mqtt_broker_port": MQTT_PORT,
        "mqtt_topic_prefix": f"{PREFIX}/{uuid.uuid4().hex[:6]}",
        "mqtt_shared_group": f"g{uuid.uuid4().hex[:8]}",
    }


class Device:
    """A device's MQTT connection: publishes readings, collects the gateway's verdicts."""

    def __init__(self, prefix: str, serial: str) -> None:
        self.prefix, self.serial = prefix, serial
        self.results: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex[:8]}")
        self.subscribed = threading.Event()
        self.client.on_message = self._collect
        self.client.on_subscribe = lambda *_args: self.subscribed.set()
        self.client.connect(MQTT_HOST, MQTT_PORT)
        self.client.loop_start()
        self.client.subscribe(results_topic(prefix, serial), qos=1)
        assert self.subscribed.wait(timeout=10), "no SUBACK from the broker"

    def _collect(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.results.append(orjson.loads(message.payload))

    def publish(self, payload: bytes, serial: str | None = None) -> None:
        info = self.client.publish(readings_topic(self.prefix, serial or self.serial), payload, qos=1)
        info.wait_for_publish(timeout=10)

    async def wait_results(self, count: int) -> list[dict[str, Any]]:
        for _ in range(300):
            with self.lock:
                if len(self.results) >= count:
                    return list(self.results)
            await asyncio.sleep(0.05)
        raise AssertionError(f"expected {count} result messages, got {self.results}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def _stored(ctx: AppContext) -> int:
    async with ctx.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(MeterReading)) or 0)


async def test_signed_batch_over_mqtt_is_stored_once(client: httpx.AsyncClient, ctx: AppContext) -> None:
    ingest = ctx.services.get(MqttIngest)
    await asyncio.wait_for(ingest.connected.wait(), timeout=10)
    await asyncio.sleep(0.3)  # let the SUBACK land before devices publish
    meter = await make_device(client, ctx)
    device = Device(ctx.settings.mqtt_topic_prefix, meter.serial)
    try:
        start = aligned_now(12)
        batch = meter.signed_batch([start + i * INTERVAL for i in range(5)])
        device.publish(batch)
        first = (await device.wait_results(1))[0]["results"]
        assert [r["status"] for r in first] == ["accepted"] * 5
        assert {r["trust"] for r in first} == {"device-signed"}
        assert await _stored(ctx) == 5

        device.publish(batch)  # a redelivery or device retry
        second = (await device.wait_results(2))[1]["results"]
        assert [r["status"] for r in second] == ["duplicate"] * 5

        tampered = meter.signed(start + 5 * INTERVAL).replace(b'"export_wh":500', b'"export_wh":999')
        device.publish(tampered)
        third = (await device.wait_results(3))[2]["results"]
        assert third[0]["status"] == "rejected" and third[0]["code"] == "SIGNATURE_INVALID"

        device.publish(meter.signed(start + 6 * INTERVAL), serial="SOMEONE-ELSE")
        await asyncio.sleep(0.5)
        assert await _stored(ctx) == 5  # nothing stored under another meter's topic
    finally:
        device.close()


class _FailsFirst:
    """The real pipeline behind a fault: the first batch fails as a lost database would."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline, self.failures = pipeline, 0

    async def ingest(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures == 0:
            self.failures += 1
            raise ConnectionError("database went away")
        return await self.pipeline.ingest(*args, **kwargs)


async def test_failed_ingest_is_retried_on_the_same_connection(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    ingest = ctx.services.get(MqttIngest)
    await asyncio.wait_for(ingest.connected.wait(), timeout=10)
    await asyncio.sleep(0.3)
    flaky = _FailsFirst(ingest.pipeline)
    ingest.pipeline = flaky  # type: ignore[assignment]
    meter = await make_device(client, ctx)
    device = Device(ctx.settings.mqtt_topic_prefix, meter.serial)
    try:
        device.publish(meter.signed(aligned_now(3)))
        results = (await device.wait_results(1))[0]["results"]
    finally:
        device.close()
    assert flaky.failures == 1 and [r["status"] for r in results] == ["accepted"]
    assert await _stored(ctx) == 1
    assert ingest.connection == 1  # retried in place, not left for a reconnect's redelivery


def test_gateway_client_id_is_kept_in_the_data_dir(tmp_path: Any) -> None:
    from gridtokenx.readings.mqtt import gateway_client_id

    first = gateway_client_id(tmp_path / "a")
    assert first == gateway_client_id(tmp_path / "a")  # the same identity on every start
    assert first.startswith("gridtokenx-") and len(first) <= 64
    assert gateway_client_id(tmp_path / "b") != first
