"""The original platform's wire shapes, with bodies exactly as its clients sent them."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import base58
import pytest

from gridtokenx.readings.errors import ErrorCode, ReadingError
from gridtokenx.readings.intervals import assign_interval
from gridtokenx.readings.legacy import (
    device_kwh_message,
    parse_energy_reading,
    parse_simulator_batch,
    parse_simulator_reading,
    parse_submit_reading,
    submit_reading_message,
    verify_legacy_signature,
)
from gridtokenx.readings.reading import Flag, Reading, Source, Trust
from gridtokenx.readings.signing import DeviceSigner

METER_KEY = DeviceSigner.from_seed(hashlib.sha256(b"gridtokenx-sim:SIM-METER-001").digest())
NOW = int(datetime(2026, 1, 15, 9, 20, tzinfo=UTC).timestamp())
WALLET = "Fa3FHRjYRKXw5hvWXqnE8hFdPdkRxVHRYU6xSw6Py7Xv"


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def body(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


# Simulator A1 `to_grid_monitoring_payload` (default): signed net kwh, timestamp without fraction.
A1_CONSUMER = {
    "meter_serial": "SIM-METER-001",
    "meter_id": "SIM-METER-001",
    "kwh": -0.8123,
    "timestamp": "2026-01-15T09:07:00Z",
    "energy_generated": 0.0,
    "energy_consumed": 0.8123,
    "voltage": 239.87,
    "frequency": 50.01,
    "power_factor": 0.95,
    "thd_voltage": 0.0,
    "thd_current": 0.0,
    "zone_id": 2,
    "latitude": 13.7563,
    "longitude": 100.5018,
    "battery_level": 7.5,
}
A1_PROSUMER = A1_CONSUMER | {
    "meter_serial": "METER-SELLER-1766729825",
    "meter_id": "METER-SELLER-1766729825",
    "kwh": 2.1235,
    "energy_generated": 3.0,
    "energy_consumed": 0.8765,
    "zone_id": None,
    "latitude": None,
    "longitude": None,
    "battery_level": 140.25,  # kWh, above 100: the original validator choked on this
}

# Simulator A2 / e2e script body for POST /api/meters/submit-reading.
A2_TIMESTAMP = "2026-02-07T10:00:01.123456+00:00"
A2 = {
    "wallet_address": WALLET,
    "kwh_amount": 2.123456,
    "reading_timestamp": A2_TIMESTAMP,
    "meter_signature": "",  # filled in by the tests that sign
    "meter_serial": "SIM-METER-001",
    "energy_generated": 3.5,
    "energy_consumed": 1.376544,
    "surplus_energy": 2.123456,
    "deficit_energy": 0.0,
    "power_generated": 14.0,
    "power_consumed": 5.506176,
    "voltage": 230.12,
    "current": 10.5,
    "power_factor": 0.96,
    "frequency": 50.0,
    "temperature": 31.2,
    "battery_level": 50.0,
}

# POST /api/v1/meters/readings as the earlier simulator published it.
ENERGY = {
    "meter_id": "METER-A-301-001",
    "timestamp": "2025-09-30T09:00:00Z",
    "energy_generated": 5.5,
    "energy_consumed": 3.2,
    "solar_irradiance": None,
    "temperature": 25.0,
    "engineering_authority_signature": "simulated-signature",
    "metadata": {"location": "Building A", "device_type": "smart_meter", "weather_conditions": None},
}


def a2_signed_body(key: DeviceSigner = METER_KEY) -> bytes:
    surplus = 2.123456  # what the simulator held as a float and formatted for signing
    message = "\n".join(
        [
            "GRIDTOKENX_METER_READING",
            "meter_serial: SIM-METER-001",
            f"timestamp: {A2_TIMESTAMP}",
            f"kwh_amount: {surplus:.6f}",
            f"wallet: {WALLET}",
        ]
    ).encode()
    signature = base58.b58encode(key.sign(message)).decode()
    return body(A2 | {"meter_signature": signature})


# --- simulator A1 -----------------------------------------------------------------------------


def test_a1_single_reading_negative_net_is_import() -> None:
    reading = parse_simulator_reading(body(A1_CONSUMER), serial="SIM-METER-001", received_at=NOW)
    assert (reading.meter_serial, reading.import_wh, reading.export_wh) == ("SIM-METER-001", 812, 0)
    assert (reading.generation_wh, reading.consumption_wh) == (0, 812)
    assert reading.interval_start == epoch("2026-01-15T09:00:00+00:00") and reading.duration == 900
    assert reading.observed_at == epoch("2026-01-15T09:07:00+00:00")
    assert reading.source is Source.SIMULATOR and reading.trust is Trust.GATEWAY_ATTESTED
    assert reading.extras == {
        "voltage": Decimal("239.87"),
        "frequency": Decimal("50.01"),
        "power_factor": Decimal("0.95"),
        "thd_voltage": Decimal("0.0"),
        "thd_current": Decimal("0.0"),
        "zone_id": 2,
        "latitude": Decimal("13.7563"),
        "longitude": Decimal("100.5018"),
        "battery_level": Decimal("7.5"),
    }
    assert reading.signature is None and reading.flags == frozenset()


def test_a1_kwh_is_converted_exactly_half_to_even() -> None:
    reading = parse_simulator_reading(body(A1_PROSUMER), serial="METER-SELLER-1766729825", received_at=NOW)
    assert (reading.export_wh, reading.import_wh) == (2124, 0)  # 2123.5 Wh -> even 2124
    assert (reading.generation_wh, reading.consumption_wh) == (3000, 876)  # 876.5 -> even 876
    tie_down = parse_simulator_reading(
        body(A1_PROSUMER | {"kwh": "0.0025"}), serial="METER-SELLER-1766729825", received_at=NOW
    )
    assert tie_down.export_wh == 2  # kWh as a string, 2.5 Wh -> 2


def test_a1_batch_as_the_simulator_posts_it() -> None:
    payload = body({"readings": [A1_CONSUMER, A1_PROSUMER]})
    results = parse_simulator_batch(payload, received_at=NOW)
    assert [r.meter_serial for r in results if isinstance(r, Reading)] == [
        "SIM-METER-001",
        "METER-SELLER-1766729825",
    ]
    assert results[1].extras["battery_level"] == Decimal("140.25")  # type: ignore[union-attr]


def test_a1_mixed_batch_isolates_bad_items() -> None:
    raw = (
        b'{"readings": ['
        + body(A1_CONSUMER)
        + b', {"meter_serial": "SIM-METER-001", "kwh": 1, "kwh": 2}'
        + b', {"meter_serial": "SIM-METER-001", "kwh": NaN}'
        + b', {"meter_id": "SIM-METER-002", "kwh": "1.5"}'
        + b', {"kwh": 1.0}'
        + b', {"meter_serial": "SIM-METER-001", "kwh": "abc"}'
        + b', {"meter_serial": "SIM-METER-001", "kwh": 1.0, "timestamp": "2026-01-15T09:07:00"}'
        + b"]}"
    )
    results = parse_simulator_batch(raw, received_at=NOW)
    summary = [(r.code, r.path) if isinstance(r, ReadingError) else "ok" for r in results]
    assert summary == [
        "ok",
        (ErrorCode.DUPLICATE_KEY, "$.readings[1]"),
        (ErrorCode.MALFORMED_JSON, "$.readings[2]"),
        "ok",
        (ErrorCode.SCHEMA_INVALID, "$.readings[4].meter_serial"),
        (ErrorCode.SCHEMA_INVALID, "$.readings[5].kwh"),
        (ErrorCode.SCHEMA_INVALID, "$.readings[6].timestamp"),
    ]
    assigned = results[3]
    assert isinstance(assigned, Reading)
    assert assigned.meter_serial == "SIM-METER-002" and assigned.export_wh == 1500
    assert assigned.observed_at == NOW and Flag.TIMESTAMP_ASSIGNED in assigned.flags


def test_batch_whole_request_errors() -> None:
    for raw, code in [
        (b'{"readings": [', ErrorCode.MALFORMED_JSON),
        (b'{"items": []}', ErrorCode.SCHEMA_INVALID),
        (b"[]", ErrorCode.SCHEMA_INVALID),
        (b'{"readings": [], "readings": []}', ErrorCode.DUPLICATE_KEY),
    ]:
        with pytest.raises(ReadingError) as caught:
            parse_simulator_batch(raw, received_at=NOW)
        assert caught.value.code is code
    with pytest.raises(ReadingError) as caught:
        parse_simulator_batch(body({"readings": [A1_CONSUMER] * 3}), received_at=NOW, max_items=2)
    assert caught.value.code is ErrorCode.BATCH_TOO_LARGE


def test_url_serial_must_match_the_body() -> None:
    with pytest.raises(ReadingError) as caught:
        parse_simulator_reading(body(A1_CONSUMER), serial="SIM-METER-999", received_at=NOW)
    assert caught.value.code is ErrorCode.SERIAL_MISMATCH


def test_resend_maps_to_the_same_interval_and_interval_length_is_an_input() -> None:
    first = parse_simulator_reading(body(A1_CONSUMER), serial="SIM-METER-001", received_at=NOW)
    again = parse_simulator_reading(body(A1_CONSUMER), serial="SIM-METER-001", received_at=NOW + 3600)
    assert first == again
    late_in_slot = A1_CONSUMER | {"timestamp": "2026-01-15T09:14:59Z"}
    same_slot = parse_simulator_reading(body(late_in_slot), serial="SIM-METER-001", received_at=NOW)
    assert same_slot.interval_start == first.interval_start
    minute = parse_simulator_reading(
        body(A1_CONSUMER), serial="SIM-METER-001", received_at=NOW, interval_s=60
    )
    assert minute.interval_start == epoch("2026-01-15T09:07:00+00:00") and minute.duration == 60
    assert assign_interval(first, 60) == minute
    by_meter = parse_simulator_batch(
        body({"readings": [A1_CONSUMER, A1_PROSUMER]}),
        received_at=NOW,
        interval_s=lambda serial: 300 if serial == "SIM-METER-001" else 3600,
    )
    assert [(r.interval_start, r.duration) for r in by_meter if isinstance(r, Reading)] == [
        (epoch("2026-01-15T09:05:00+00:00"), 300),
        (epoch("2026-01-15T09:00:00+00:00"), 3600),
    ]


def test_a1_full_telemetry_keeps_unknown_fields_and_its_signature_candidates() -> None:
    timestamp = "2026-01-15T09:07:00+00:00"
    surplus = 0.0
    message_a = (
        f"GRIDTOKENX_METER_READING\nmeter_serial: SIM-METER-001\ntimestamp: {timestamp}\n"
        f"kwh_amount: {surplus:.6f}\nwallet: {WALLET}"
    ).encode()
    full = A1_CONSUMER | {
        "meter_type": "Solar_Prosumer",
        "wallet_address": WALLET,
        "meter_signature": base58.b58encode(METER_KEY.sign(message_a)).decode(),
        "reading_timestamp": timestamp,
        "surplus_energy": surplus,
        "deficit_energy": 0.8123,
        "weather_condition": "Sunny",
        "rec_eligible": True,
        "firmware_build": "x-17",
    }
    reading = parse_simulator_reading(body(full), serial="SIM-METER-001", received_at=NOW)
    assert reading.extras["weather_condition"] == "Sunny" and reading.extras["firmware_build"] == "x-17"
    assert reading.extras["rec_eligible"] is True
    assert verify_legacy_signature(reading, METER_KEY.public_key)
    assert not verify_legacy_signature(reading, DeviceSigner.generate().public_key)


def test_newest_simulator_signature_over_device_kwh_and_milliseconds() -> None:
    timestamp = "2026-01-15T09:07:00.250Z"
    millis = epoch("2026-01-15T09:07:00+00:00") * 1000 + 250
    message = f"SIM-METER-001:-0.8123:{millis}".encode()  # Rust prints the f64 -0.8123 as "-0.8123"
    signed = A1_CONSUMER | {
        "timestamp": timestamp,
        "meter_signature": base58.b58encode(METER_KEY.sign(message)).decode(),
    }
    reading = parse_simulator_reading(body(signed), serial="SIM-METER-001", received_at=NOW)
    assert message in reading.signed_messages
    assert verify_legacy_signature(reading, METER_KEY.public_key)
    tampered = parse_simulator_reading(
        body(signed | {"kwh": -0.9123}), serial="SIM-METER-001", received_at=NOW
    )
    assert not verify_legacy_signature(tampered, METER_KEY.public_key)


@pytest.mark.parametrize(
    ("kwh", "text"),
    [("2.0", "2"), ("100", "100"), ("0.10", "0.1"), ("-0.8123", "-0.8123"), ("1e-5", "0.00001")],
)
def test_device_kwh_message_prints_kwh_like_a_rust_f64(kwh: str, text: str) -> None:
    assert device_kwh_message("M", Decimal(kwh), 5) == f"M:{text}:5".encode()


# --- A2 submit-reading ------------------------------------------------------------------------


def test_a2_submit_reading_with_a_verifiable_signature() -> None:
    reading = parse_submit_reading(a2_signed_body())
    assert (reading.meter_serial, reading.export_wh, reading.import_wh) == ("SIM-METER-001", 2123, 0)
    assert (reading.generation_wh, reading.consumption_wh) == (3500, 1377)
    assert reading.interval_start == epoch("2026-02-07T10:00:00+00:00")
    assert reading.observed_at == epoch("2026-02-07T10:00:01+00:00")
    assert reading.source is Source.SUBMIT_READING and reading.trust is Trust.GATEWAY_ATTESTED
    assert reading.signature is not None and len(reading.signature) == 64
    assert reading.signed_messages == (
        submit_reading_message("SIM-METER-001", A2_TIMESTAMP, Decimal("2.123456"), WALLET),
    )
    assert verify_legacy_signature(reading, METER_KEY.public_key)
    assert not verify_legacy_signature(reading, DeviceSigner.generate().public_key)
    assert reading.extras["wallet_address"] == WALLET
    assert reading.extras["power_consumed"] == Decimal("5.506176")
    assert "kwh_amount" not in reading.extras and "meter_signature" not in reading.extras


def test_a2_placeholder_signature_is_kept_but_cannot_verify() -> None:
    reading = parse_submit_reading(body(A2 | {"meter_signature": "not-a-signature"}))
    assert reading.signature is None and reading.signature_text == "not-a-signature"
    assert not verify_legacy_signature(reading, METER_KEY.public_key)


def test_a2_amount_as_string_and_negative_amount_means_import() -> None:
    reading = parse_submit_reading(body(A2 | {"kwh_amount": "-1.0005", "meter_signature": None}))
    assert (reading.import_wh, reading.export_wh) == (1000, 0)  # 1000.5 -> even 1000
    assert reading.signed_messages == ()


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"wallet_address": None}, "$.wallet_address"),
        ({"meter_serial": ""}, "$.meter_serial"),
        ({"kwh_amount": None}, "$.kwh_amount"),
        ({"kwh_amount": True}, "$.kwh_amount"),
        ({"reading_timestamp": "2026-02-07"}, "$.reading_timestamp"),
        ({"reading_timestamp": 1770458401}, "$.reading_timestamp"),
        ({"energy_generated": "lots"}, "$.energy_generated"),
    ],
)
def test_a2_invalid_fields_name_their_path(change: dict[str, Any], path: str) -> None:
    with pytest.raises(ReadingError) as caught:
        parse_submit_reading(body(A2 | change))
    assert (caught.value.code, caught.value.path) == (ErrorCode.SCHEMA_INVALID, path)


def test_a2_malformed_and_duplicate_bodies() -> None:
    with pytest.raises(ReadingError) as caught:
        parse_submit_reading(b'{"kwh_amount": 1, "kwh_amount": 2}')
    assert caught.value.code is ErrorCode.DUPLICATE_KEY
    with pytest.raises(ReadingError) as caught:
        parse_submit_reading(b"not json")
    assert caught.value.code is ErrorCode.MALFORMED_JSON


# --- /api/v1/meters/readings ------------------------------------------------------------------


def test_energy_reading_net_of_generated_and_consumed() -> None:
    reading = parse_energy_reading(body(ENERGY))
    assert (reading.meter_serial, reading.export_wh, reading.import_wh) == ("METER-A-301-001", 2300, 0)
    assert (reading.generation_wh, reading.consumption_wh) == (5500, 3200)
    assert reading.interval_start == reading.observed_at == epoch("2025-09-30T09:00:00+00:00")
    assert reading.source is Source.ENERGY_READING and reading.signature is None
    assert reading.extras == {
        "solar_irradiance": None,
        "temperature": Decimal("25.0"),
        "engineering_authority_signature": "simulated-signature",
        "metadata": {"location": "Building A", "device_type": "smart_meter", "weather_conditions": None},
    }


def test_energy_reading_curl_example_and_import_case() -> None:
    curl = {
        "meter_id": "TEST-METER-001",
        "timestamp": "2025-09-30T09:00:00Z",
        "energy_generated": 1.2,
        "energy_consumed": 3.2,
        "engineering_authority_signature": "test-sig",
    }
    reading = parse_energy_reading(body(curl))
    assert (reading.import_wh, reading.export_wh) == (2000, 0)


@pytest.mark.parametrize(
    "missing",
    ["meter_id", "timestamp", "energy_generated", "energy_consumed", "engineering_authority_signature"],
)
def test_energy_reading_required_fields(missing: str) -> None:
    with pytest.raises(ReadingError) as caught:
        parse_energy_reading(body({k: v for k, v in ENERGY.items() if k != missing}))
    assert (caught.value.code, caught.value.path) == (ErrorCode.SCHEMA_INVALID, f"$.{missing}")


@pytest.mark.parametrize(
    "timestamp",
    ["2026-01-15T09:07:00Z", "2026-01-15t09:07:00z", "2026-01-15 16:07:00+07:00", "2026-01-15T09:07:00.999Z"],
)
def test_rfc3339_spellings_of_the_same_second_map_alike(timestamp: str) -> None:
    reading = parse_simulator_reading(
        body(A1_CONSUMER | {"timestamp": timestamp}), serial="SIM-METER-001", received_at=NOW
    )
    assert reading.observed_at == epoch("2026-01-15T09:07:00+00:00")
    assert reading.interval_start == epoch("2026-01-15T09:00:00+00:00")
