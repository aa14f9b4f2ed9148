"""The original platform's reading shapes, parsed into `Reading` so its clients work unchanged.

Three shapes (field names and types as the original gateway and simulator used them):

- `parse_submit_reading`: `POST /api/meters/submit-reading` (simulator A2, e2e scripts).
  Required `meter_serial`, `wallet_address`, `kwh_amount` (net kWh: surplus >= 0 exports, negative
  imports), `reading_timestamp` (RFC 3339); optional `meter_signature` (base58 Ed25519) and
  telemetry (`energy_generated`, `energy_consumed`, `surplus_energy`, `deficit_energy`,
  `power_generated`, `power_consumed`, `voltage`, `current`, `power_factor`, `frequency`,
  `temperature`, `battery_level`, ...).
- `parse_energy_reading`: `POST /api/v1/meters/readings`. Required `meter_id`, `timestamp`,
  `energy_generated`, `energy_consumed` (kWh), `engineering_authority_signature` (non-empty);
  optional `solar_irradiance`, `temperature`, `metadata{location, device_type, weather_conditions}`.
  Net = generated - consumed: a positive net is export, a negative one import.
- `parse_simulator_reading` / `parse_simulator_batch`: `POST /api/v1/meters/{serial}/readings` and
  `POST /api/v1/[public/]meters/batch/readings` with `{"readings": [...]}` (simulator A1). Required
  `kwh` (signed net kWh: negative means import) and a serial (`meter_serial`, else `meter_id`; the
  URL's serial on the single route); optional `timestamp` (RFC 3339; when absent the gateway's
  receive time is used and the reading is flagged `TIMESTAMP_ASSIGNED`), `energy_generated`,
  `energy_consumed`, `meter_signature`, and telemetry (`voltage`, `frequency`, `power_factor`,
  `thd_voltage`, `thd_current`, `zone_id`, `latitude`, `longitude`, `battery_level`, ...).

Rules common to all three:

- kWh values may be JSON numbers or numeric strings. Numbers are read from their text as Decimal
  (never through float) and converted with `core.units.kwh_to_wh` (nearest Wh, ties to even).
- A reading's interval is `floor(timestamp / interval_s) * interval_s` with the meter's interval
  length, so an identical resend always lands on the same (meter, interval) key.
- Every field not turned into a `Reading` attribute is kept in `Reading.extras` (unknown ones too),
  numbers as Decimal/int. `msgspec.json.encode(extras, decimal_format="number")` re-emits them exactly.
  Kept, but bounded: at most `EXTRAS_MAX_KEYS` keys (nested ones counted) and `EXTRAS_MAX_BYTES` of
  JSON, else `EXTRAS_TOO_LARGE` (413); any body nests at most `MAX_DEPTH` levels (`JSON_TOO_DEEP`).
- Timestamps lie in 1970 .. 9999-12-30 UTC (`TIMESTAMP_OUT_OF_RANGE`).
- Duplicate keys are refused (the original gateway's serde refused them too); NaN/Infinity are not JSON.
- The trust hint is always `gateway-attested`. If a signature came with the reading, `signature`
  holds its 64 bytes and `signed_messages` the byte strings it may cover (see `submit_reading_message`
  and `device_kwh_message`); `verify_legacy_signature` tries them against a provisioned key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import base58
import msgspec
from nacl.signing import VerifyKey

from gridtokenx.core.units import UnitError, kwh_to_wh, parse_decimal
from gridtokenx.core.wire import MAX_EPOCH
from gridtokenx.readings.errors import ErrorCode, ReadingError
from gridtokenx.readings.intervals import floor_to_interval
from gridtokenx.readings.reading import Flag, Reading, Source, Trust
from gridtokenx.readings.signing import verify_detached

DEFAULT_INTERVAL_S = 900
MAX_DEPTH = 16  # the deepest real body is 4 levels (a batch, an item, `metadata`, a value)
EXTRAS_MAX_KEYS = 64
EXTRAS_MAX_BYTES = 4096
_EXTRAS_ENCODER = msgspec.json.Encoder(decimal_format="number")

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})\Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SIX_PLACES = Decimal("0.000001")


# --- signed-message builders ------------------------------------------------------------------


def submit_reading_message(meter_serial: str, timestamp_text: str, kwh: Decimal, wallet: str) -> bytes:
    """Bytes signed by the A-generation simulator (and rebuilt by the original gateway):
    `GRIDTOKENX_METER_READING\\nmeter_serial: <serial>\\ntimestamp: <timestamp as sent>\\n`
    `kwh_amount: <kwh with 6 decimals>\\nwallet: <wallet>` in UTF-8."""
    kwh_text = format(kwh.quantize(_SIX_PLACES, rounding=ROUND_HALF_EVEN), "f")
    lines = (
        "GRIDTOKENX_METER_READING",
        f"meter_serial: {meter_serial}",
        f"timestamp: {timestamp_text}",
        f"kwh_amount: {kwh_text}",
        f"wallet: {wallet}",
    )
    return "\n".join(lines).encode("utf-8")


def device_kwh_message(device_id: str, kwh: Decimal, timestamp_ms: int) -> bytes:
    """Bytes signed by the newest upstream simulator: `<device_id>:<kwh>:<timestamp_ms>`, where kwh is
    printed as Rust prints an f64 (shortest digits, no exponent, no trailing `.0`)."""
    kwh_text = format(kwh.normalize(), "f") if kwh else "0"
    return f"{device_id}:{kwh_text}:{timestamp_ms}".encode()


def decode_legacy_signature(text: str) -> bytes | None:
    """The 64 signature bytes from base58 (the original clients) or hex; None if neither fits."""
    for decode in (base58.b58decode, bytes.fromhex):
        try:
            raw = decode(text)
        except ValueError:
            continue
        if len(raw) == 64:
            return bytes(raw)
    return None


def verify_legacy_signature(reading: Reading, public_key: bytes | VerifyKey) -> bool:
    """True if `public_key` signed any of the reading's candidate messages (then the service may
    raise its trust to device-signed)."""
    signature = reading.signature
    if signature is None:
        return False
    return any(verify_detached(public_key, message, signature) for message in reading.signed_messages)


# --- the three shapes -------------------------------------------------------------------------


def parse_submit_reading(raw: bytes, *, interval_s: int = DEFAULT_INTERVAL_S) -> Reading:
    """`POST /api/meters/submit-reading`."""
    body = _Body(_load(raw), "$")
    serial = body.serial("meter_serial")
    wallet = body.require_text("wallet_address", keep=True)
    kwh = body.require_kwh("kwh_amount")
    observed, timestamp_text = body.require_timestamp("reading_timestamp")
    signature_text = body.text("meter_signature")
    messages = (submit_reading_message(serial, timestamp_text, kwh, wallet),) if signature_text else ()
    return body.reading(
        Source.SUBMIT_READING, serial, kwh_to_wh(kwh), observed, interval_s, signature_text, messages
    )


def parse_energy_reading(raw: bytes, *, interval_s: int = DEFAULT_INTERVAL_S) -> Reading:
    """`POST /api/v1/meters/readings` (net = energy_generated - energy_consumed)."""
    body = _Body(_load(raw), "$")
    serial = body.serial("meter_id")
    observed, _ = body.require_timestamp("timestamp")
    net_wh = kwh_to_wh(body.require_kwh("energy_generated")) - kwh_to_wh(body.require_kwh("energy_consumed"))
    body.require_text("engineering_authority_signature", keep=True)
    return body.reading(Source.ENERGY_READING, serial, net_wh, observed, interval_s, None, ())


def parse_simulator_reading(
    raw: bytes, *, serial: str, received_at: int, interval_s: int = DEFAULT_INTERVAL_S
) -> Reading:
    """`POST /api/v1/meters/{serial}/readings`; a body naming another serial is `SERIAL_MISMATCH`."""
    return _simulator_item(_load(raw), "$", serial, received_at, lambda _: interval_s)


def parse_simulator_batch(
    raw: bytes,
    *,
    received_at: int,
    interval_s: int | Callable[[str], int] = DEFAULT_INTERVAL_S,
    max_items: int | None = None,
) -> list[Reading | ReadingError]:
    """`{"readings": [...]}` of the batch routes: one result per item, a bad item never failing the rest.

    `interval_s` may be a function of the meter serial when meters differ (or re-map afterwards
    with `intervals.assign_interval`). Malformed JSON or a missing `readings` array fails the request.
    """
    document = _load(raw)
    if isinstance(document, _Flawed):
        raise ReadingError(document.code, document.message, "$")
    if not isinstance(document, dict) or not isinstance(document.get("readings"), list):
        message = "expected an object with a `readings` array"
        raise ReadingError(ErrorCode.SCHEMA_INVALID, message, "$.readings")
    items = document["readings"]
    if max_items is not None and len(items) > max_items:
        message = f"{len(items)} items; at most {max_items}"
        raise ReadingError(ErrorCode.BATCH_TOO_LARGE, message, "$.readings")
    interval_for = interval_s if callable(interval_s) else (lambda _: interval_s)
    results: list[Reading | ReadingError] = []
    for index, item in enumerate(items):
        try:
            results.append(_simulator_item(item, f"$.readings[{index}]", None, received_at, interval_for))
        except ReadingError as error:
            results.append(error)
    return results


def _simulator_item(
    item: Any, path: str, url_serial: str | None, received_at: int, interval_for: Callable[[str], int]
) -> Reading:
    body = _Body(item, path)
    if url_serial is None:
        serial = body.serial("meter_serial", "meter_id")
    else:
        serial = url_serial
        for named in (body.text("meter_serial"), body.text("meter_id")):
            if named and named != url_serial:
                message = f"body names meter {named!r}, URL {url_serial!r}"
                raise ReadingError(ErrorCode.SERIAL_MISMATCH, message, path)
    kwh = body.require_kwh("kwh")
    flags: frozenset[str] = frozenset()
    stamped = body.timestamp("timestamp") or body.timestamp("reading_timestamp")
    if stamped is None:
        stamped, flags = (received_at, ""), frozenset({Flag.TIMESTAMP_ASSIGNED})
    observed, timestamp_text = stamped
    signature_text = body.text("meter_signature")
    messages: tuple[bytes, ...] = ()
    if signature_text:
        messages = (device_kwh_message(serial, kwh, observed * 1000 + body.millis),)
        wallet = body.peek_text("wallet_address")
        signed_time = body.peek_text("reading_timestamp") or timestamp_text
        if wallet and signed_time:
            surplus = body.peek_kwh("surplus_energy")
            surplus = surplus if surplus is not None else max(kwh, Decimal(0))
            messages += (submit_reading_message(serial, signed_time, surplus, wallet),)
    interval_s = interval_for(serial)
    return body.reading(
        Source.SIMULATOR, serial, kwh_to_wh(kwh), observed, interval_s, signature_text, messages, flags
    )


# --- helpers ----------------------------------------------------------------------------------


class _Flawed:
    """Stands in for a JSON value that must be refused, so a batch can refuse just that item."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        self.code, self.message = code, message


def _unique_keys(pairs: list[tuple[str, Any]]) -> Any:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicate = next(key for i, key in enumerate(keys) if key in keys[:i])
        return _Flawed(ErrorCode.DUPLICATE_KEY, f"key {duplicate!r} appears more than once")
    return dict(pairs)


def _non_finite(name: str) -> _Flawed:
    return _Flawed(ErrorCode.MALFORMED_JSON, f"{name} is not a JSON number")


def _load(raw: bytes) -> Any:
    """The parsed body; depth beyond MAX_DEPTH is refused per item by `_Body` (`_first_flaw`), so a
    batch refuses only the deep item, unless the parser's own recursion limit is reached."""
    try:
        return json.loads(
            raw, parse_float=Decimal, parse_constant=_non_finite, object_pairs_hook=_unique_keys
        )
    except RecursionError:
        raise ReadingError(ErrorCode.JSON_TOO_DEEP, f"nested deeper than {MAX_DEPTH} levels", "$") from None
    except ValueError:
        raise ReadingError(ErrorCode.MALFORMED_JSON, "the body is not valid JSON", "$") from None


def _first_flaw(value: Any) -> _Flawed | None:
    """The first value that must be refused, nesting deeper than MAX_DEPTH included (walked
    without recursion, so no depth can raise RecursionError here or in what handles it next)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, _Flawed):
            return item
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        if children and depth >= MAX_DEPTH:
            return _Flawed(ErrorCode.JSON_TOO_DEEP, f"nested deeper than {MAX_DEPTH} levels")
        stack.extend((child, depth + 1) for child in reversed(list(children)))
    return None


def _key_count(value: Any) -> int:
    """Keys of every object inside `value` (depth is bounded by `_first_flaw` before this runs)."""
    if isinstance(value, dict):
        return len(value) + sum(_key_count(v) for v in value.values())
    if isinstance(value, list):
        return sum(_key_count(v) for v in value)
    return 0


class _Body:
    """One JSON object being mapped onto a Reading; what is not consumed becomes `extras`."""

    def __init__(self, value: Any, path: str) -> None:
        flaw = _first_flaw(value)
        if flaw is not None:
            raise ReadingError(flaw.code, flaw.message, path)
        if not isinstance(value, dict):
            raise ReadingError(ErrorCode.SCHEMA_INVALID, "expected a JSON object", path)
        self.fields: dict[str, Any] = value
        self.path = path
        self.consumed: set[str] = set()
        self.millis = 0

    def _error(self, key: str, message: str) -> ReadingError:
        return ReadingError(ErrorCode.SCHEMA_INVALID, message, f"{self.path}.{key}")

    def _take(self, key: str, keep: bool = False) -> Any:
        if not keep and key in self.fields:
            self.consumed.add(key)
        return self.fields.get(key)

    def text(self, key: str, *, keep: bool = False) -> str | None:
        value = self._take(key, keep)
        if value is not None and not isinstance(value, str):
            raise self._error(key, "expected a string")
        return value

    def require_text(self, key: str, *, keep: bool = False) -> str:
        value = self.text(key, keep=keep)
        if not value:
            raise self._error(key, "required field is missing or empty")
        return value

    def serial(self, *keys: str) -> str:
        """The first non-empty of `keys`, all of which are consumed."""
        values = [(key, self.text(key)) for key in keys]
        for key, value in values:
            if value:
                if len(value) > 64 or not value.isprintable():
                    raise self._error(key, "a meter serial is 1-64 printable characters")
                return value
        raise self._error(keys[0], "required field is missing or empty")

    def kwh(self, key: str) -> Decimal | None:
        value = self._take(key)
        return None if value is None else self._decimal(key, value)

    def require_kwh(self, key: str) -> Decimal:
        value = self.kwh(key)
        if value is None:
            raise self._error(key, "required field is missing")
        return value

    def _decimal(self, key: str, value: Any) -> Decimal:
        try:
            kwh = parse_decimal(value)
            kwh_to_wh(kwh)  # range check now, so the error names this field
        except UnitError as exc:
            raise self._error(key, f"expected kWh as a number or numeric string: {exc}") from None
        return kwh

    def peek_text(self, key: str) -> str | None:
        value = self.fields.get(key)
        return value if isinstance(value, str) and value else None

    def peek_kwh(self, key: str) -> Decimal | None:
        value = self.fields.get(key)
        return None if value is None else self._decimal(key, value)

    def timestamp(self, key: str) -> tuple[int, str] | None:
        """(UTC epoch seconds rounded down, the text as sent); remembers the milliseconds part."""
        value = self._take(key)
        if value is None:
            return None
        if not isinstance(value, str) or not _RFC3339.match(value):
            raise self._error(key, "expected an RFC 3339 timestamp with a UTC offset")
        try:
            moment = datetime.fromisoformat(value.upper()) - _EPOCH  # RFC 3339 allows "t" and "z"
        except ValueError:
            raise self._error(key, "not a valid date and time") from None
        seconds = moment // timedelta(seconds=1)
        if not 0 <= seconds <= MAX_EPOCH:
            message = "a timestamp must lie between 1970-01-01 and 9999-12-30 UTC"
            raise ReadingError(ErrorCode.TIMESTAMP_OUT_OF_RANGE, message, f"{self.path}.{key}")
        self.millis = moment // timedelta(milliseconds=1) % 1000
        return seconds, value

    def require_timestamp(self, key: str) -> tuple[int, str]:
        stamped = self.timestamp(key)
        if stamped is None:
            raise self._error(key, "required field is missing")
        return stamped

    def reading(
        self,
        source: Source,
        serial: str,
        net_wh: int,
        observed: int,
        interval_s: int,
        signature_text: str | None,
        messages: tuple[bytes, ...],
        flags: frozenset[str] = frozenset(),
    ) -> Reading:
        generation, consumption = self.kwh("energy_generated"), self.kwh("energy_consumed")
        extras = {k: v for k, v in self.fields.items() if k not in self.consumed}
        self._check_extras(extras)
        return Reading(
            meter_serial=serial,
            interval_start=floor_to_interval(observed, interval_s),
            duration=interval_s,
            observed_at=observed,
            import_wh=max(-net_wh, 0),
            export_wh=max(net_wh, 0),
            generation_wh=None if generation is None else kwh_to_wh(generation),
            consumption_wh=None if consumption is None else kwh_to_wh(consumption),
            source=source,
            trust=Trust.GATEWAY_ATTESTED,
            signature=decode_legacy_signature(signature_text) if signature_text else None,
            signature_text=signature_text,
            signed_messages=messages if signature_text else (),
            extras=extras,
            flags=flags,
        )

    def _check_extras(self, extras: dict[str, Any]) -> None:
        keys = _key_count(extras)
        if keys > EXTRAS_MAX_KEYS:
            message = f"{keys} extra keys; at most {EXTRAS_MAX_KEYS} are kept with a reading"
            raise ReadingError(ErrorCode.EXTRAS_TOO_LARGE, message, self.path)
        size = len(_EXTRAS_ENCODER.encode(extras))
        if size > EXTRAS_MAX_BYTES:
            message = f"{size} bytes of extra fields; at most {EXTRAS_MAX_BYTES} are kept with a reading"
            raise ReadingError(ErrorCode.EXTRAS_TOO_LARGE, message, self.path)
