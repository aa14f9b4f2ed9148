"""What a simulated meter puts on the wire: the native signed reading (the platform's own
`readings.signing` recipe) or the original simulator's A1/A2 shapes, and the routes each goes to.

Compatibility shapes carry kWh as exact decimal JSON numbers (integer Wh / 1000, never a float
computation) and a base58 Ed25519 `meter_signature` over the bytes the original clients signed,
which the gateway verifies against the provisioned device key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import base58
import msgspec

from gridtokenx.readings.legacy import device_kwh_message, submit_reading_message
from gridtokenx.readings.native import NativeReading, decode_reading, encode_reading
from gridtokenx.readings.signing import DeviceSigner
from gridtokenx.simulator.physics import Interval

FIRMWARE = "gtx-sim-1.0"
MESSAGE_LIFETIME_S = 240  # the gateway accepts at most 300
_decimal_json = msgspec.json.Encoder(decimal_format="number")


class Shape(StrEnum):
    NATIVE = "native"
    A1 = "a1"  # January 2026: flat JSON, signed net `kwh`, /api/v1/... routes
    A2 = "a2"  # February 2026: `kwh_amount`, RFC 3339 `reading_timestamp`, /api/meters/submit-reading


@dataclass(frozen=True)
class Route:
    """Where a shape is posted, alone or as a batch, and how a batch body is framed."""

    shape: Shape

    def single(self, serial: str) -> str:
        if self.shape is Shape.A1:
            return f"/api/v1/meters/{serial}/readings"
        if self.shape is Shape.A2:
            return "/api/meters/submit-reading"
        return "/api/meters/readings"

    @property
    def batch(self) -> str:
        if self.shape is Shape.A1:
            return "/api/v1/public/meters/batch/readings"
        if self.shape is Shape.A2:
            return "/api/meters/submit-batch"
        return "/api/meters/readings/batch"

    def frame(self, bodies: list[bytes]) -> bytes:
        joined = b"[" + b",".join(bodies) + b"]"
        return joined if self.shape is Shape.NATIVE else b'{"readings":' + joined + b"}"


def native_fields(interval: Interval, key: DeviceSigner, seq: int, now: int) -> dict[str, Any]:
    return {
        "device_id": interval.serial,
        "interval_start": interval.interval_start,
        "duration": interval.duration,
        "import_wh": interval.import_wh,
        "export_wh": interval.export_wh,
        "generation_wh": interval.generation_wh,
        "consumption_wh": interval.consumption_wh,
        "import_register_wh": interval.import_register_wh,
        "export_register_wh": interval.export_register_wh,
        "quality": 0,
        "firmware": FIRMWARE,
        "key_id": key.key_id,
        "seq": seq,
        "created": now,
        "expires": now + MESSAGE_LIFETIME_S,
    }


def sign_native(fields: dict[str, Any], key: DeviceSigner, network_id: str) -> bytes:
    return encode_reading(key.sign_reading(fields, network_id))


def resign(body: bytes, key: DeviceSigner, network_id: str, seq: int, now: int) -> bytes:
    """The same reading (same interval, same values) signed afresh: new seq, created, expires.
    The gateway treats it as the reading it may already hold (an identical resend), never as new data."""
    old = decode_reading(body)
    fresh = msgspec.structs.replace(
        old, seq=seq, created=now, expires=now + MESSAGE_LIFETIME_S, sig=msgspec.UNSET
    )
    return encode_reading(key.sign_reading(fresh, network_id))


def native_reading(body: bytes) -> NativeReading:
    return decode_reading(body)


def _kwh(wh: int) -> Decimal:
    return Decimal(wh).scaleb(-3)


def a1_body(interval: Interval, key: DeviceSigner, battery_kwh: Decimal | None) -> bytes:
    """The A1 grid-monitoring payload: signed net `kwh` (export - import), second-precision time."""
    moment = datetime.fromtimestamp(interval.interval_start, UTC)
    timestamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    kwh = _kwh(interval.export_wh - interval.import_wh)
    signature = key.sign(device_kwh_message(interval.serial, kwh, interval.interval_start * 1000))
    body: dict[str, Any] = {
        "meter_serial": interval.serial,
        "meter_id": interval.serial,
        "kwh": kwh,
        "timestamp": timestamp,
        "energy_generated": _kwh(interval.generation_wh),
        "energy_consumed": _kwh(interval.consumption_wh),
        "voltage": Decimal(str(interval.voltage_v)),
        "frequency": Decimal(str(interval.frequency_hz)),
        "power_factor": Decimal(str(interval.power_factor)),
        "thd_voltage": 0,
        "thd_current": 0,
        "meter_signature": base58.b58encode(signature).decode("ascii"),
    }
    if battery_kwh is not None:
        body["battery_level"] = battery_kwh
    return _decimal_json.encode(body)


def a2_body(interval: Interval, key: DeviceSigner, battery_kwh: Decimal | None) -> bytes:
    """The A2 submit-reading body: net `kwh_amount`, RFC 3339 time, the wallet and its signature."""
    timestamp = datetime.fromtimestamp(interval.interval_start, UTC).isoformat()
    kwh = _kwh(interval.export_wh - interval.import_wh)
    wallet = key.public_key_base58
    signature = key.sign(submit_reading_message(interval.serial, timestamp, kwh, wallet))
    hours = Decimal(interval.duration) / 3600
    body: dict[str, Any] = {
        "wallet_address": wallet,
        "kwh_amount": kwh,
        "reading_timestamp": timestamp,
        "meter_signature": base58.b58encode(signature).decode("ascii"),
        "meter_serial": interval.serial,
        "energy_generated": _kwh(interval.generation_wh),
        "energy_consumed": _kwh(interval.consumption_wh),
        "surplus_energy": _kwh(interval.export_wh),
        "deficit_energy": _kwh(interval.import_wh),
        "power_generated": (_kwh(interval.generation_wh) / hours).quantize(Decimal("0.001")),
        "power_consumed": (_kwh(interval.consumption_wh) / hours).quantize(Decimal("0.001")),
        "voltage": Decimal(str(interval.voltage_v)),
        "current": Decimal(str(interval.current_a)),
        "power_factor": Decimal(str(interval.power_factor)),
        "frequency": Decimal(str(interval.frequency_hz)),
        "temperature": Decimal(str(interval.temperature_c)),
    }
    if battery_kwh is not None:
        body["battery_level"] = battery_kwh
    return _decimal_json.encode(body)


def body_for(
    shape: Shape, interval: Interval, key: DeviceSigner, seq: int, now: int, network_id: str
) -> bytes:
    battery = _kwh(interval.soc_wh) if interval.soc_wh else None
    if shape is Shape.A1:
        return a1_body(interval, key, battery)
    if shape is Shape.A2:
        return a2_body(interval, key, battery)
    return sign_native(native_fields(interval, key, seq, now), key, network_id)
