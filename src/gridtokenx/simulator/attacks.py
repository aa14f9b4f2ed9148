"""Attack scenarios: messages a hostile or broken device would send, each with the gateway's
expected answer. They travel the fleet's own way, so the defences of that ingest path are the ones
tested: with the MQTT transport published QoS 1 on a meter's readings topic, the verdict read from
its results topic (none within the transport's timeout is "no answer"); otherwise posted to the
native single-reading route with the meter owner's API key. They are signed with a real provisioned
device key unless the point is that they are not, and never disturb the fleet's own readings (past
slots before the run, fresh sequence numbers taken from the fleet file).

- replay: a stored reading resent verbatim (answered `duplicate`, nothing stored), then a new
  interval signed with that reading's already used `seq`: SEQ_REPLAYED.
- forged: a signed reading whose export was raised after signing: SIGNATURE_INVALID.
- other_meter: a validly signed reading of a meter the sender may not report for. Over HTTP another
  account posts it: METER_NOT_OWNED. Over MQTT, where the signature is the only credential, another
  meter publishes it on its own topic: SERIAL_MISMATCH.
- future: an interval an hour ahead: FUTURE_READING.
- beyond_capacity: generation and export at twice the nameplate: EXCEEDS_CAPACITY.
- frozen_register: the next interval with energy but registers stuck at the last: REGISTER_SUM_MISMATCH.
- pv_at_night: PV generation while the sun is below the horizon: accepted but flagged PV_AT_NIGHT
  (so never minted).
- flood: more requests than the per-credential budget, from one account: RATE_LIMITED. The budget
  is HTTP's (MQTT devices have no account), so this one always goes over HTTP, and says so in its
  detail when the fleet is on MQTT.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx
import msgspec

from gridtokenx.readings.native import NativeReading, decode_reading, encode_reading
from gridtokenx.readings.solar import solar_elevation_deg
from gridtokenx.simulator.clock import aligned
from gridtokenx.simulator.provision import ATTACKER
from gridtokenx.simulator.stats import AttackResult
from gridtokenx.simulator.transport import Answer, MqttTransport, single_answer
from gridtokenx.simulator.wire import FIRMWARE, MESSAGE_LIFETIME_S

if TYPE_CHECKING:
    from gridtokenx.simulator.driver import FleetDriver

ROUTE = "/api/meters/readings"


async def _post(driver: FleetDriver, body: bytes, key: str) -> Answer:
    assert driver.http is not None
    return single_answer(await driver.http.post(ROUTE, content=body, headers={"x-api-key": key}))


async def _send(driver: FleetDriver, body: bytes, serial: str, *, account: str | None = None) -> Answer:
    """Send a reading as meter `serial` would on the fleet's transport: published on its topic
    over MQTT, else posted with its owner's API key (or `account`'s)."""
    if isinstance(driver.transport, MqttTransport):
        return await driver.transport.publish(serial, decode_reading(body).interval_start, body)
    return await _post(driver, body, driver.owner_key(account or driver.records[serial].owner))


def _outcome(answer: Answer) -> str:
    if answer.status == "failed":
        return "no answer"
    return (answer.code or "?") if answer.status == "rejected" else answer.status


def _signed(driver: FleetDriver, serial: str, **fields: Any) -> NativeReading:
    """A reading of `serial` signed with its real device key and a fresh sequence number."""
    now = int(time.time())
    interval = driver.config.interval_s
    values: dict[str, Any] = {
        "device_id": serial,
        "duration": interval,
        "import_wh": 0,
        "export_wh": 0,
        "generation_wh": 0,
        "consumption_wh": 10,
        "quality": 0,
        "firmware": FIRMWARE,
        "created": now,
        "expires": now + MESSAGE_LIFETIME_S,
        **fields,
    }
    values.setdefault("seq", driver.next_seq(serial))
    key = driver.keys[serial]
    return key.sign_reading(values, driver.config.network_id)


def _pv_meters(driver: FleetDriver) -> list[str]:
    return sorted(
        (s for s, r in driver.records.items() if r.spec.pv_w), key=lambda s: driver.records[s].spec.pv_w
    )


def _past_slot(driver: FleetDriver, serial: str, k: int) -> int:
    """An interval k intervals before the first one this run measured for the meter."""
    interval = driver.config.interval_s
    first = driver.first_interval.get(serial, aligned(driver.clock.now(), interval))
    return first - k * interval


async def replay(driver: FleetDriver) -> AttackResult:
    serial = next(s for s, kept in sorted(driver.stored.items()) if kept)
    captured = driver.stored[serial][-1]
    resend = _outcome(await _send(driver, captured, serial))
    old = decode_reading(captured)
    cloned = _signed(driver, serial, interval_start=_past_slot(driver, serial, 3), seq=old.seq)
    got = _outcome(await _send(driver, encode_reading(cloned), serial))
    return AttackResult("replay", "SEQ_REPLAYED", got if resend == "duplicate" else f"resend:{resend}")


async def forged(driver: FleetDriver) -> AttackResult:
    serial = sorted(driver.records)[0]
    signed = _signed(
        driver, serial, interval_start=_past_slot(driver, serial, 5), consumption_wh=40, import_wh=40
    )
    tampered = msgspec.structs.replace(signed, import_wh=0, export_wh=900, generation_wh=900)
    got = _outcome(await _send(driver, encode_reading(tampered), serial))
    return AttackResult("forged", "SIGNATURE_INVALID", got)


async def other_meter(driver: FleetDriver) -> AttackResult:
    victim, thief = sorted(driver.records)[-1], sorted(driver.records)[0]
    body = encode_reading(_signed(driver, victim, interval_start=_past_slot(driver, victim, 7)))
    if isinstance(driver.transport, MqttTransport):
        return AttackResult("other_meter", "SERIAL_MISMATCH", _outcome(await _send(driver, body, thief)))
    got = _outcome(await _send(driver, body, victim, account=ATTACKER))
    return AttackResult("other_meter", "METER_NOT_OWNED", got)


async def future(driver: FleetDriver) -> AttackResult:
    serial = sorted(driver.records)[0]
    interval = driver.config.interval_s
    start = aligned(time.time() + 3600, interval)
    signed = _signed(driver, serial, interval_start=start)
    got = _outcome(await _send(driver, encode_reading(signed), serial))
    return AttackResult("future", "FUTURE_READING", got)


async def beyond_capacity(driver: FleetDriver) -> AttackResult:
    serial = _pv_meters(driver)[0]
    interval = driver.config.interval_s
    too_much = driver.records[serial].spec.capacity_w * interval // 3600 * 2 + 10
    signed = _signed(
        driver,
        serial,
        interval_start=_past_slot(driver, serial, 9),
        generation_wh=too_much,
        export_wh=too_much,
        consumption_wh=0,
    )
    got = _outcome(await _send(driver, encode_reading(signed), serial))
    return AttackResult("beyond_capacity", "EXCEEDS_CAPACITY", got)


async def frozen_register(driver: FleetDriver) -> AttackResult:
    """The interval after the last stored one, energy flowing but registers stuck where they were.
    (With intervals over 120 s and no acceleration that interval may still be in the future.)"""
    interval = driver.config.interval_s
    serial = next(s for s, kept in sorted(driver.stored.items()) if kept)
    last = decode_reading(driver.stored[serial][-1])
    imported = max(last.import_wh, 5)  # more than the gateway's 1 Wh register tolerance
    signed = _signed(
        driver,
        serial,
        interval_start=last.interval_start + interval,
        import_wh=imported,
        export_wh=0,
        generation_wh=0,
        consumption_wh=imported,
        import_register_wh=last.import_register_wh,  # stuck
        export_register_wh=last.export_register_wh,
    )
    got = _outcome(await _send(driver, encode_reading(signed), serial))
    return AttackResult("frozen_register", "REGISTER_SUM_MISMATCH", got)


def night_slot(driver: FleetDriver, rng: random.Random) -> int:
    """A random interval of a recent night (sun well below the horizon all through it)."""
    site, interval = driver.config.site, driver.config.interval_s
    latest = min(aligned(driver.clock.now(), interval), min(driver.first_interval.values(), default=10**12))
    for _ in range(10_000):
        start = aligned(latest - rng.randrange(interval * 4, 6 * 86_400), interval)
        instants = (start, start + interval // 2, start + interval)
        if max(solar_elevation_deg(site.latitude, site.longitude, t) for t in instants) < -6:
            return start
    raise RuntimeError("no night found at this site in the last six days")


async def pv_at_night(driver: FleetDriver) -> AttackResult:
    serial = _pv_meters(driver)[-1]
    rng = random.Random(time.time_ns())
    produced = max(
        1, driver.records[serial].spec.pv_w * driver.config.interval_s // 3600 // 3
    ) + rng.randrange(5)
    signed = _signed(
        driver,
        serial,
        interval_start=night_slot(driver, rng),
        generation_wh=produced,
        export_wh=produced,
        consumption_wh=0,
    )
    answer = await _send(driver, encode_reading(signed), serial)
    got = "PV_AT_NIGHT" if "PV_AT_NIGHT" in answer.flags else _outcome(answer)
    if got == "PV_AT_NIGHT" and answer.mintable_wh:
        got = "PV_AT_NIGHT but mintable"
    return AttackResult("pv_at_night", "PV_AT_NIGHT", got)


async def flood(driver: FleetDriver) -> AttackResult:
    """Always over HTTP: the budget is per API credential, which MQTT devices do not have."""
    key = driver.owner_key(ATTACKER)
    body = b"{}"  # cheap for both sides; only the budget is under test
    limited = 0
    sent = 0
    while sent < driver.config.flood_requests and not limited:
        batch = min(50, driver.config.flood_requests - sent)
        answers = await asyncio.gather(*(_post(driver, body, key) for _ in range(batch)))
        sent += batch
        limited += sum(1 for answer in answers if answer.code == "RATE_LIMITED")
    got = "RATE_LIMITED" if limited else f"no 429 in {sent} requests"
    detail = f"{sent} requests"
    if isinstance(driver.transport, MqttTransport):
        detail += " over HTTP (the fleet is on MQTT, which has no such budget)"
    return AttackResult("flood", "RATE_LIMITED", got, detail)


SCENARIOS: dict[str, Callable[[FleetDriver], Awaitable[AttackResult]]] = {
    "replay": replay,
    "forged": forged,
    "other_meter": other_meter,
    "future": future,
    "beyond_capacity": beyond_capacity,
    "frozen_register": frozen_register,
    "pv_at_night": pv_at_night,
    "flood": flood,  # last: it spends the attacker account's budget
}


async def run(driver: FleetDriver, names: tuple[str, ...]) -> list[AttackResult]:
    results = []
    for name, scenario in SCENARIOS.items():
        if name in names:
            try:
                results.append(await scenario(driver))
            except httpx.HTTPError as exc:  # the gateway went away: the attack has no answer
                results.append(AttackResult(name, "?", f"no answer: {type(exc).__name__}"))
    return results
