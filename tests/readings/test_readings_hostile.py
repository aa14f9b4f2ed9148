"""Hostile input on every ingest route and the admin/query surfaces: each case gets a 4xx with its
own code (never a 500), a bad batch item fails only that item, and nothing refused is stored."""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson

from gridtokenx.core.context import AppContext
from gridtokenx.readings.errors import ErrorCode, ReadingError
from gridtokenx.readings.legacy import EXTRAS_MAX_KEYS, parse_simulator_batch
from gridtokenx.readings.native import decode_batch, decode_reading
from tests.helpers import bearer, error_code
from tests.readings.ingest_helpers import Device, aligned_now, make_device

DEEP = b"[" * 100_000 + b"]" * 100_000
GOOD_TS = "2026-01-01T00:00:07Z"


def _at(body: bytes, field: str, value: int) -> bytes:
    return re.sub(rb'"' + field.encode() + rb'":\d+', f'"{field}":{value}'.encode(), body)


def _submit(**fields: Any) -> dict[str, Any]:
    base = {
        "meter_serial": "MTR-100",
        "wallet_address": "w" * 32,
        "kwh_amount": "1",
        "reading_timestamp": GOOD_TS,
    }
    return {**base, **fields}


def _cases(device: Device) -> list[tuple[str, bytes, int, str]]:
    """(route, raw body, status, code) for requests refused as a whole."""
    start = aligned_now()
    deep_value = b"[" * 40 + b"]" * 40
    return [
        (
            "/api/meters/readings",
            _at(device.signed(start), "created", 2**53 - 1),
            422,
            "TIMESTAMP_OUT_OF_RANGE",
        ),
        (
            "/api/meters/readings",
            _at(device.signed(start), "interval_start", 253402300800),
            422,
            "TIMESTAMP_OUT_OF_RANGE",
        ),
        (
            "/api/meters/readings",
            _at(device.signed(start), "expires", 2**53 - 1),
            422,
            "TIMESTAMP_OUT_OF_RANGE",
        ),
        ("/api/meters/readings", b'{"a":' * 5000 + b"1" + b"}" * 5000, 422, "SCHEMA_INVALID"),
        ("/api/meters/readings/batch", DEEP, 400, "JSON_TOO_DEEP"),
        ("/api/meters/submit-batch", b'{"readings":[' + DEEP + b"]}", 400, "JSON_TOO_DEEP"),
        ("/api/meters/submit-reading", DEEP, 400, "JSON_TOO_DEEP"),
        ("/api/v1/meters/batch/readings", b'{"readings":' + DEEP + b"}", 400, "JSON_TOO_DEEP"),
        (
            "/api/meters/submit-reading",
            orjson.dumps(_submit(extra=orjson.Fragment(deep_value))),
            400,
            "JSON_TOO_DEEP",
        ),
        (
            "/api/meters/submit-reading",
            orjson.dumps(_submit(kwh_amount="1e999999999")),
            422,
            "SCHEMA_INVALID",
        ),
        (
            "/api/meters/submit-reading",
            orjson.dumps(_submit(kwh_amount=orjson.Fragment(b"1e99999999"))),
            422,
            "SCHEMA_INVALID",
        ),
        (
            "/api/meters/submit-reading",
            orjson.dumps(_submit(reading_timestamp="9999-12-31T23:59:59-10:00")),
            422,
            "TIMESTAMP_OUT_OF_RANGE",
        ),
        (
            "/api/meters/submit-reading",
            orjson.dumps(_submit(reading_timestamp="0001-01-01T00:00:00+10:00")),
            422,
            "TIMESTAMP_OUT_OF_RANGE",
        ),
        (
            "/api/meters/submit-reading",
            orjson.dumps(_submit(reading_timestamp="2026-01-01T00:00:00")),
            422,
            "SCHEMA_INVALID",
        ),
        (
            "/api/v1/meters/MTR-100/readings",
            b'{"kwh":1,"timestamp":"0001-01-01T00:00:00+00:01"}',
            422,
            "TIMESTAMP_OUT_OF_RANGE",
        ),
        (
            "/api/v1/meters/readings",
            b'{"meter_id":"MTR-100","timestamp":"9999-12-31T23:59:59Z","energy_generated":1,"energy_consumed":0,"engineering_authority_signature":"x"}',
            422,
            "TIMESTAMP_OUT_OF_RANGE",
        ),
        (
            "/api/meters/submit-reading",
            orjson.dumps(_submit(**{f"x{i}": i for i in range(EXTRAS_MAX_KEYS + 1)})),
            413,
            "EXTRAS_TOO_LARGE",
        ),
        ("/api/meters/submit-reading", orjson.dumps(_submit(note="n" * 5000)), 413, "EXTRAS_TOO_LARGE"),
        (
            "/api/admin/meters",
            b'{"serial":"Z1","meter_key":"abcdefghijk","commissioned_at":' + b"[" * 5000 + b"]" * 5000 + b"}",
            400,
            "JSON_TOO_DEEP",
        ),
    ]


async def _stored_total(client: httpx.AsyncClient, device: Device) -> int:
    page = await client.get(f"/api/meters/{device.meter_id}/readings", headers=bearer(device.owner))
    assert page.status_code == 200, page.text
    return int(page.json()["total"])


async def test_hostile_bodies_get_their_own_4xx(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    for route, body, status, code in _cases(device):
        token = device.admin if route.startswith("/api/admin") else device.owner
        headers = {**bearer(token), "content-type": "application/json"}
        response = await client.post(route, content=body, headers=headers)
        assert (response.status_code, error_code(response)) == (status, code), (
            route,
            body[:120],
            response.text,
        )
    assert await _stored_total(client, device) == 0


async def test_a_bad_batch_item_fails_only_itself(client: httpx.AsyncClient, ctx: AppContext) -> None:
    device = await make_device(client, ctx)
    start = aligned_now(2)
    native = (
        b"["
        + _at(device.signed(start - 900), "interval_start", 2**53 - 1)
        + b","
        + device.signed(start)
        + b"]"
    )
    response = await client.post("/api/meters/readings/batch", content=native, headers=bearer(device.owner))
    assert response.status_code == 200, response.text
    assert [r.get("code") or r["status"] for r in response.json()["results"]] == [
        "TIMESTAMP_OUT_OF_RANGE",
        "accepted",
    ]

    good = {"meter_serial": device.serial, "kwh": "0.5", "timestamp": _iso(start + 900 + 60)}
    items = [
        {**good, "timestamp": "9999-12-31T23:59:59-10:00"},
        {**good, "deep": orjson.Fragment(b"[" * 40 + b"]" * 40)},
        {**good, **{f"x{i}": 1 for i in range(EXTRAS_MAX_KEYS + 1)}},
        {**good, "kwh": "1e999999"},
        good,
    ]
    response = await client.post(
        "/api/v1/meters/batch/readings",
        content=orjson.dumps({"readings": items}),
        headers=bearer(device.owner),
    )
    assert response.status_code == 200, response.text
    codes = [r.get("code") or r["status"] for r in response.json()["results"]]
    assert codes == [
        "TIMESTAMP_OUT_OF_RANGE",
        "JSON_TOO_DEEP",
        "EXTRAS_TOO_LARGE",
        "SCHEMA_INVALID",
        "accepted",
    ]
    assert await _stored_total(client, device) == 2


def _iso(epoch: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_query_datetimes_need_an_offset_inside_the_calendar(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    device = await make_device(client, ctx)
    base = f"/api/meters/{device.meter_id}"
    cases = [
        ("/readings?from=2026-01-01T00:00:00", "DATETIME_OFFSET_REQUIRED"),
        ("/readings?from=9999-12-31T23:59:59-10:00", "DATETIME_OUT_OF_RANGE"),
        ("/stats/hourly?from=0001-01-01T00:00:00%2B10:00", "DATETIME_OUT_OF_RANGE"),
        ("/gaps?to=0001-01-01T00:00:00Z", "DATETIME_OUT_OF_RANGE"),
        ("/stats/daily?to=2026-01-01T00:00:00", "DATETIME_OFFSET_REQUIRED"),
    ]
    for path, code in cases:
        response = await client.get(base + path, headers=bearer(device.owner))
        assert (response.status_code, error_code(response)) == (422, code), (path, response.text)
    ok = await client.get(base + "/readings?from=2026-01-01T00:00:00%2B07:00", headers=bearer(device.owner))
    assert ok.status_code == 200, ok.text


async def test_admin_bodies_refuse_null_naive_and_integer_booleans(
    client: httpx.AsyncClient, ctx: AppContext
) -> None:
    device = await make_device(client, ctx)
    path = f"/api/admin/meters/{device.meter_id}"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"status": None}, "NULL_NOT_ALLOWED"),
        ({"register_reset_at": "2026-01-01T00:00:00"}, "DATETIME_OFFSET_REQUIRED"),
        ({"register_reset_at": "9999-12-31T23:59:59-10:00"}, "DATETIME_OUT_OF_RANGE"),
        ({"attested_mintable": 1}, "NOT_A_BOOLEAN"),
        ({"attested_mintable": "true"}, "NOT_A_BOOLEAN"),
    ]
    for body, code in cases:
        response = await client.patch(path, json=body, headers=bearer(device.admin))
        assert (response.status_code, error_code(response)) == (422, code), (body, response.text)
    meter = (await client.get("/api/admin/meters", headers=bearer(device.admin))).json()[0]
    assert (
        meter["status"] == "active"
        and meter["attested_mintable"] is None
        and meter["register_reset_at"] is None
    )
    cleared = await client.patch(
        path, json={"attested_mintable": None, "location": None}, headers=bearer(device.admin)
    )
    assert cleared.status_code == 200, cleared.text  # nullable columns may still be cleared
    created = await client.post(
        "/api/admin/meters",
        json={"serial": "Z-1", "meter_key": "abcdefghijk", "commissioned_at": "2026-01-01T00:00:00"},
        headers=bearer(device.admin),
    )
    assert (created.status_code, error_code(created)) == (422, "DATETIME_OFFSET_REQUIRED")


def test_decoders_refuse_depth_and_range_per_item() -> None:
    """The MQTT transport hands the same decoders' verdicts back, so it refuses the same way."""
    for body, code in (
        (DEEP, ErrorCode.JSON_TOO_DEEP),
        (b'{"a":' * 3000 + b"1" + b"}" * 3000, ErrorCode.SCHEMA_INVALID),
    ):
        try:
            decode_reading(body)
        except ReadingError as error:
            assert error.code in (code, ErrorCode.SCHEMA_INVALID, ErrorCode.JSON_TOO_DEEP)
        else:
            raise AssertionError("a hostile body decoded")
    try:
        decode_batch(DEEP)
    except ReadingError as error:
        assert error.code is ErrorCode.JSON_TOO_DEEP
    results = parse_simulator_batch(
        b'{"readings":[{"meter_id":"M","kwh":1,"timestamp":"9999-12-31T23:59:59-01:00"},{"meter_id":"M","kwh":1}]}',
        received_at=1_767_225_600,
    )
    assert isinstance(results[0], ReadingError) and results[0].code is ErrorCode.TIMESTAMP_OUT_OF_RANGE
    assert not isinstance(results[1], ReadingError)


def test_mqtt_verdicts_refuse_the_same_way() -> None:
    from gridtokenx.readings.mqtt import parse_payload

    deep = parse_payload(DEEP, "gridtokenx-test", 100)
    assert len(deep) == 1 and isinstance(deep[0], ReadingError) and deep[0].code is ErrorCode.JSON_TOO_DEEP
    body = (
        b'{"consumption_wh":1,"created":9007199254740991,"device_id":"M","duration":900,"expires":1,'
        b'"export_wh":1,"firmware":"1","generation_wh":1,"import_wh":0,"interval_start":0,'
        b'"key_id":"0123456789abcdef","quality":0,"seq":1,"sig":"' + b"0" * 128 + b'"}'
    )
    items = parse_payload(b"[" + body + b"]", "gridtokenx-test", 100)
    assert isinstance(items[0], ReadingError) and items[0].code is ErrorCode.TIMESTAMP_OUT_OF_RANGE
    assert items[0].path == "$[0].created"
