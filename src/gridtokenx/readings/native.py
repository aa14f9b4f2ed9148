"""The native signed reading: its wire schema, fast strict decoding, and its canonical JSON.

A native reading is one flat JSON object (a batch is a JSON array of them)::

    {"consumption_wh": 766, "created": 1767226500, "device_id": "SIM-METER-001", "duration": 900,
     "expires": 1767226800, "export_register_wh": 5012345, "export_wh": 1234, "firmware": "1.2.3",
     "generation_wh": 2000, "import_register_wh": 812000, "import_wh": 0,
     "interval_start": 1767225600, "key_id": "4f1c0e4c9b3a7d21", "quality": 0, "seq": 42,
     "sig": "<128 lowercase hex chars>"}

Fields (all required except `channel` and the two registers):

- `device_id`: the meter serial, `[A-Za-z0-9][A-Za-z0-9._:-]{0,63}`; `channel` (optional, 0..32767,
  absent = 0): the meter's measurement channel (0 the main meter; sub-meters and batteries others).
- `key_id`: 16 lowercase hex chars, `meters.rules.key_id(public_key)`; names the key that signed.
- `seq`: a per-device counter, incremented for every message the device signs.
- `interval_start`: UTC seconds since the epoch, aligned to the meter's interval; `duration`: seconds.
- `import_wh`, `export_wh`, `generation_wh`, `consumption_wh`: integer Wh measured in the interval.
- `import_register_wh`, `export_register_wh` (optional): cumulative register values at interval end,
  in Wh. Absent optional fields are left out; `null` is refused (it would be signed differently).
- `quality`: a bit set, see `QualityBit` (0 when all is well); `firmware`: `[A-Za-z0-9][A-Za-z0-9._+-]{0,31}`.
- `created`, `expires`: UTC seconds; the window in which the gateway accepts this message.
- `sig`: the Ed25519 signature, lowercase hex; see `gridtokenx.readings.signing` for the signed bytes.

Every integer must lie in the I-JSON safe range |n| <= 2**53 - 1 (JCS requires it), and the epoch
fields in 1970 .. 9999-12-30 (`TIMESTAMP_OUT_OF_RANGE`). Floats anywhere, NaN/Infinity, `null`,
unknown keys, duplicate keys and nesting (`JSON_TOO_DEEP`) are refused, each with its own `ErrorCode`.

Because every string is restricted to characters JSON never escapes and the fields are declared in
sorted order, msgspec's compact encoding of the fields *is* their RFC 8785 (JCS) form; a property
test checks this against the `rfc8785` package. The same restriction makes duplicate keys cheap to
detect: no string can contain a comma, so an object has `count(",") + 1` members, which must equal
the number of distinct fields decoded.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from enum import IntFlag
from functools import lru_cache
from operator import attrgetter
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from gridtokenx.core.wire import MAX_EPOCH
from gridtokenx.readings.errors import ErrorCode, ReadingError
from gridtokenx.readings.reading import Reading, Source, Trust

MAX_SAFE_INT = 2**53 - 1
DOMAIN_TAG = b"gridtokenx/reading/v1"
_NETWORK_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")

Wh = Annotated[int, Meta(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]
RegisterWh = Annotated[int, Meta(ge=0, le=MAX_SAFE_INT)]
EpochSeconds = Annotated[int, Meta(ge=0, le=MAX_EPOCH)]  # a datetime must hold it (see `core.wire`)
_EPOCH_FIELDS = frozenset({"$.created", "$.expires", "$.interval_start"})
# The string fields' character rules are checked by `_check_patterns`, not by msgspec: a `pattern`
# constraint runs a Python regex per value, while one regex over a whole batch's values of a field,
# joined by newlines, costs next to nothing (figures: docs/decisions/2026-12-04-ingest-hot-path-figures.md).
DeviceId = Annotated[str, Meta(min_length=1, max_length=64)]
KeyId = Annotated[str, Meta(min_length=16, max_length=16)]
Firmware = Annotated[str, Meta(min_length=1, max_length=32)]
SignatureHex = Annotated[str, Meta(min_length=128, max_length=128)]
_PATTERNS = {  # in the order the fields are declared
    "device_id": r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}",
    "firmware": r"[A-Za-z0-9][A-Za-z0-9._+-]{0,31}",
    "key_id": r"[0-9a-f]{16}",
    "sig": r"[0-9a-f]{128}",
}
_ONE = {name: re.compile(pattern + r"\Z") for name, pattern in _PATTERNS.items()}
_EVERY = {name: re.compile(rf"(?:{pattern}\n)*\Z") for name, pattern in _PATTERNS.items()}


class QualityBit(IntFlag):
    """Device-reported conditions during the interval (bits of `quality`; other bits are reserved)."""

    CLOCK_INVALID = 1
    CLOCK_ADJUSTED = 2
    POWER_OUTAGE = 4
    TAMPER = 8


class NativeReading(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A native reading; fields are declared in JCS (sorted) order, which `canonical_json` relies on."""

    channel: Annotated[int, Meta(ge=0, le=32_767)] | UnsetType = UNSET
    consumption_wh: Wh
    created: EpochSeconds
    device_id: DeviceId
    duration: Annotated[int, Meta(ge=1, le=86_400)]
    expires: EpochSeconds
    export_register_wh: RegisterWh | UnsetType = UNSET
    export_wh: Wh
    firmware: Firmware
    generation_wh: Wh
    import_register_wh: RegisterWh | UnsetType = UNSET
    import_wh: Wh
    interval_start: EpochSeconds
    key_id: KeyId
    quality: Annotated[int, Meta(ge=0, le=2**32 - 1)]
    seq: Annotated[int, Meta(ge=0, le=MAX_SAFE_INT)]
    sig: SignatureHex | UnsetType = UNSET


_REQUIRED_FIELDS = 13
_SIG_MEMBER_OVERHEAD = len(b',"sig":""}')  # around the hex of the last member
_reading_decoder = msgspec.json.Decoder(NativeReading)
_batch_decoder = msgspec.json.Decoder(list[NativeReading])
_raw_items_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_encoder = msgspec.json.Encoder()


def _members(reading: NativeReading) -> int:
    """How many keys the reading's JSON object has when no key is repeated."""
    return (
        _REQUIRED_FIELDS
        + (reading.channel is not UNSET)
        + (reading.sig is not UNSET)
        + (reading.import_register_wh is not UNSET)
        + (reading.export_register_wh is not UNSET)
    )


def native_schema() -> dict[str, Any]:
    """The JSON schema of one native reading (the OpenAPI document's request body), with the
    character rules that `_check_patterns` applies."""
    schema = msgspec.json.schema(NativeReading)["$defs"]["NativeReading"]
    for name, pattern in _PATTERNS.items():
        schema["properties"][name]["pattern"] = f"^{pattern}$"
    schema["additionalProperties"] = False
    schema["required"] = sorted({*schema.get("required", ()), "sig"})
    return dict(schema)


def canonical_json(reading: NativeReading) -> bytes:
    """RFC 8785 (JCS) bytes of every field except `sig`: sorted keys, no whitespace, integers only.

    `sig` sorts last, so a signed reading's encoding is its canonical bytes followed by
    `,"sig":"<128 hex>"`: cutting that off is cheaper than copying the struct without it."""
    encoded = _encoder.encode(reading)
    if reading.sig is UNSET:
        return encoded
    return encoded[: -len(reading.sig) - _SIG_MEMBER_OVERHEAD] + b"}"


@lru_cache(maxsize=16)
def _prefix(network_id: str) -> bytes:
    if not _NETWORK_ID.match(network_id):
        raise ValueError(f"invalid network id {network_id!r}: 1-64 chars of [A-Za-z0-9._:-]")
    return DOMAIN_TAG + b"\x00" + network_id.encode("ascii") + b"\x00"


def signing_message(reading: NativeReading, network_id: str) -> bytes:
    """The exact bytes an Ed25519 signature of `reading` covers on network `network_id`
    (domain tag, network id, JCS; see `gridtokenx.readings.signing`)."""
    return _prefix(network_id) + canonical_json(reading)


def encode_reading(reading: NativeReading) -> bytes:
    """Wire JSON of one reading (compact, sorted keys; `sig` included when set)."""
    return _encoder.encode(reading)


def encode_batch(readings: Sequence[NativeReading]) -> bytes:
    """Wire JSON of a batch: a top-level array of readings."""
    return _encoder.encode(list(readings))


def reading_from_fields(fields: dict[str, Any]) -> NativeReading:
    """Build (and validate) a reading from Python values, as a device or the simulator would."""
    try:
        reading = msgspec.convert(fields, NativeReading)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc) from None
    _check_patterns(reading)
    return reading


def decode_reading(raw: bytes) -> NativeReading:
    """Decode one signed native reading; raise `ReadingError` with the precise code if it is refused.

    This checks the bytes only; the signature is checked by `signing.verify_reading`.
    """
    data = bytes(raw)
    try:
        reading = _reading_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise _validation_error(exc) from None
    except msgspec.DecodeError:
        raise _undecodable(data) from None
    except RecursionError:
        raise _too_deep() from None
    _check_item(data, reading)
    return reading


def decode_batch(raw: bytes, *, max_items: int | None = None) -> list[NativeReading | ReadingError]:
    """Decode a JSON array of native readings into one result per item, in order.

    A bad item yields its `ReadingError` (path `$[i]...`) and never affects the others. Only a body
    that is not a JSON array at all, or has too many items, raises (a whole-request error).
    The common all-good batch is decoded in one msgspec call; item by item only when needed.
    """
    data = bytes(raw)
    try:
        readings = _batch_decoder.decode(data)
    except msgspec.ValidationError:  # a subclass of DecodeError: test it first
        pass
    except msgspec.DecodeError:
        raise _undecodable(data) from None
    except RecursionError:
        raise _too_deep() from None
    else:
        _check_size(len(readings), max_items)
        if not readings:
            return []
        # n objects with m_i members each are written with (n - 1) + sum(m_i - 1) commas
        optional = sum(
            (r.channel is not UNSET)
            + (r.import_register_wh is not UNSET)
            + (r.export_register_wh is not UNSET)
            for r in readings
        )
        signed = sum(r.sig is not UNSET for r in readings)
        commas = len(readings) * _REQUIRED_FIELDS - 1 + optional + signed
        if signed == len(readings) and _all_match(readings) and data.count(b",") == commas:
            return list(readings)
    try:
        items = _raw_items_decoder.decode(data)
    except msgspec.ValidationError:
        message = "a batch must be a JSON array of readings"
        raise ReadingError(ErrorCode.SCHEMA_INVALID, message, "$") from None
    except msgspec.DecodeError:
        raise _undecodable(data) from None
    except RecursionError:
        raise _too_deep() from None
    _check_size(len(items), max_items)
    results: list[NativeReading | ReadingError] = []
    for index, item in enumerate(items):
        try:
            results.append(decode_reading(bytes(item)))
        except ReadingError as error:
            results.append(error.located(f"$[{index}]"))
    return results


def to_reading(native: NativeReading, network_id: str, trust: Trust = Trust.GATEWAY_ATTESTED) -> Reading:
    """The normalised reading. `signed_messages` holds the bytes its `signature` must verify over on
    `network_id`; the trust stays a hint until the service has verified it with a provisioned key
    (then `msgspec.structs.replace(reading, trust=Trust.DEVICE_SIGNED)`)."""
    return Reading(
        meter_serial=native.device_id,
        channel=0 if native.channel is UNSET else native.channel,
        interval_start=native.interval_start,
        duration=native.duration,
        observed_at=native.interval_start + native.duration,
        import_wh=native.import_wh,
        export_wh=native.export_wh,
        generation_wh=native.generation_wh,
        consumption_wh=native.consumption_wh,
        import_register_wh=None if native.import_register_wh is UNSET else native.import_register_wh,
        export_register_wh=None if native.export_register_wh is UNSET else native.export_register_wh,
        source=Source.NATIVE,
        trust=trust,
        seq=native.seq,
        key_id=native.key_id,
        quality=native.quality,
        firmware=native.firmware,
        created=native.created,
        expires=native.expires,
        signature=None if native.sig is UNSET else bytes.fromhex(native.sig),
        signature_text=None if native.sig is UNSET else native.sig,
        signed_messages=(signing_message(native, network_id),),
    )


def _all_match(readings: list[NativeReading]) -> bool:
    """Whether every string field of every reading (all signed) follows its character rules: one
    regex over each field's values joined by line breaks. No rule allows a line break, and the
    count makes sure none hides inside a value (it would split it into two that each look fine)."""
    for name in _PATTERNS:
        joined = "\n".join(map(attrgetter(name), readings)) + "\n"
        if joined.count("\n") != len(readings) or not _EVERY[name].match(joined):
            return False
    return True


def _check_patterns(reading: NativeReading) -> None:
    for name, pattern in _ONE.items():
        value = getattr(reading, name)
        if value is not UNSET and not pattern.match(value):
            message = f"Expected `str` matching regex '^{_PATTERNS[name]}\\Z'"
            raise ReadingError(ErrorCode.SCHEMA_INVALID, message, f"$.{name}")


def _check_item(data: bytes, reading: NativeReading) -> None:
    _check_patterns(reading)  # first: a comma inside a bad string must not read as a duplicate key
    if data.count(b",") + 1 != _members(reading):
        key = _first_duplicate_key(data)
        raise ReadingError(ErrorCode.DUPLICATE_KEY, f"key {key!r} appears more than once", "$")
    if reading.sig is UNSET:
        raise ReadingError(ErrorCode.SIGNATURE_MISSING, "a native reading must carry `sig`", "$.sig")


def _check_size(count: int, max_items: int | None) -> None:
    if max_items is not None and count > max_items:
        raise ReadingError(ErrorCode.BATCH_TOO_LARGE, f"{count} items; at most {max_items} per batch", "$")


def _validation_error(exc: msgspec.ValidationError) -> ReadingError:
    text, _, where = str(exc).partition(" - at `")
    path = where.rstrip("`") or "$"
    if "got `float`" in text:
        return ReadingError(ErrorCode.FLOAT_NOT_ALLOWED, "floats are not allowed; send integers", path)
    if path in _EPOCH_FIELDS and "<=" in text:
        message = f"{path[2:]} must be epoch seconds in 0..{MAX_EPOCH}"
        return ReadingError(ErrorCode.TIMESTAMP_OUT_OF_RANGE, message, path)
    return ReadingError(ErrorCode.SCHEMA_INVALID, text, path)


class _NonFinite(Exception):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonFinite(name)


def _too_deep() -> ReadingError:
    return ReadingError(ErrorCode.JSON_TOO_DEEP, "the body nests JSON deeper than any reading", "$")


def _undecodable(data: bytes) -> ReadingError:
    """Tell NaN/Infinity (which Python's json would accept) apart from plain malformed JSON."""
    try:
        json.loads(data, parse_constant=_reject_constant)
    except _NonFinite as exc:
        return ReadingError(ErrorCode.FLOAT_NOT_ALLOWED, f"{exc} is not a JSON number, nor an allowed float")
    except RecursionError:
        return _too_deep()
    except ValueError:
        pass
    return ReadingError(ErrorCode.MALFORMED_JSON, "the body is not valid JSON")


def _first_duplicate_key(data: bytes) -> str:
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and not found:
                found.append(key)
            seen.add(key)
        return dict(items)

    with contextlib.suppress(ValueError, RecursionError):
        json.loads(data, object_pairs_hook=pairs)
    return found[0] if found else "?"
