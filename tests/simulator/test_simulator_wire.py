"""Wire shapes and the fleet file (pure or local SQLite: no services)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson

from gridtokenx.readings.legacy import parse_simulator_reading, parse_submit_reading, verify_legacy_signature
from gridtokenx.readings.native import decode_reading, to_reading
from gridtokenx.readings.signing import DeviceSigner, verify_reading
from gridtokenx.simulator.fleet import build_fleet
from gridtokenx.simulator.fleetfile import FleetFile, MeterRecord
from gridtokenx.simulator.physics import Site, initial_state, step
from gridtokenx.simulator.transport import RetryPolicy, single_answer, transient
from gridtokenx.simulator.wire import Route, Shape, body_for, resign

NETWORK = "gridtokenx-localnet"
NOON = 1_767_225_600 + 5 * 3600  # 12:00 in Bangkok


def interval():
    spec = build_fleet(25, 7)[0]
    reading, _ = step(spec, initial_state(spec), Site(), 7, NOON, 900)
    return reading


def test_native_body_is_signed_and_resigning_keeps_the_reading() -> None:
    key = DeviceSigner.generate()
    r = interval()
    body = body_for(Shape.NATIVE, r, key, 7, NOON + 900, NETWORK)
    native = decode_reading(body)
    verify_reading(native, key.public_key, NETWORK)
    assert (native.import_wh, native.export_wh, native.seq) == (r.import_wh, r.export_wh, 7)
    assert native.import_register_wh == r.import_register_wh
    fresh = decode_reading(resign(body, key, NETWORK, 8, NOON + 2000))
    verify_reading(fresh, key.public_key, NETWORK)
    assert (fresh.seq, fresh.created) == (8, NOON + 2000)
    assert to_reading(fresh, NETWORK).stored_values() == to_reading(native, NETWORK).stored_values()


def test_a1_and_a2_bodies_parse_to_the_same_energy_and_verify() -> None:
    key = DeviceSigner.generate()
    r = interval()
    a1 = parse_simulator_reading(
        body_for(Shape.A1, r, key, 0, 0, NETWORK), serial=r.serial, received_at=NOON, interval_s=900
    )
    a2 = parse_submit_reading(body_for(Shape.A2, r, key, 0, 0, NETWORK), interval_s=900)
    for parsed in (a1, a2):
        assert (parsed.import_wh, parsed.export_wh) == (r.import_wh, r.export_wh)
        assert parsed.interval_start == r.interval_start
        assert verify_legacy_signature(parsed, key.public_key)
    raw = orjson.loads(body_for(Shape.A1, r, key, 0, 0, NETWORK))
    assert Decimal(str(raw["kwh"])) == Decimal(r.export_wh - r.import_wh) / 1000
    assert Route(Shape.A1).frame([b"{}", b"{}"]) == b'{"readings":[{},{}]}'
    assert Route(Shape.NATIVE).frame([b"{}"]) == b"[{}]"
    assert Route(Shape.A1).single("M-1") == "/api/v1/meters/M-1/readings"


def test_retry_rules() -> None:
    assert transient(429) and transient(503) and transient(408)
    assert not transient(422) and not transient(401) and not transient(403)
    policy = RetryPolicy(base_s=1, cap_s=4)
    assert all(0 <= policy.delay(a) <= 4 for a in range(10))
    assert policy.delay(0, retry_after=3) >= 3


def test_single_answer_reads_both_families() -> None:
    import httpx

    ok = httpx.Response(201, json={"status": "accepted", "flags": ["LATE"]})
    assert single_answer(ok).status == "accepted" and single_answer(ok).flags == ("LATE",)
    compat = httpx.Response(200, json={"duplicate": True})
    assert single_answer(compat).status == "duplicate"
    refused = httpx.Response(403, json={"error": {"code": "METER_NOT_OWNED", "message": "", "details": {}}})
    assert (single_answer(refused).status, single_answer(refused).code) == ("rejected", "METER_NOT_OWNED")


def test_fleet_file_spool_is_bounded_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "fleet.db"
    fleet = FleetFile(path, spool_limit=3)
    spec = build_fleet(1, 1)[0]
    fleet.add_meters([MeterRecord(spec, "o", b"\x01" * 32, "k", None, False, 0, initial_state(spec), None)])
    dropped = 0
    with fleet.transaction() as db:
        for i in range(5):
            assert fleet.spool(db, spec.serial, i * 15, b"%d" % i, 10)
        assert not fleet.spool(db, spec.serial, 0, b"again", 10)  # one reading per interval
        dropped = fleet.trim(db)
    assert dropped == 2
    fleet.close()
    again = FleetFile(path, spool_limit=3)
    assert [i.body for i in again.pending(10)] == [b"2", b"3", b"4"]
    assert again.meters()[0].spec == spec
    again.done([again.pending(1)[0].id])
    assert again.depth() == 2
