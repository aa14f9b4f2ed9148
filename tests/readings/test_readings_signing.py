"""The native signed reading: canonical bytes, sign/verify, strict decoding with exact error codes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import base58
import msgspec
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from gridtokenx.core.wire import MAX_EPOCH
from gridtokenx.readings.errors import ErrorCode, ReadingError
from gridtokenx.readings.native import (
    MAX_SAFE_INT,
    NativeReading,
    canonical_json,
    decode_batch,
    decode_reading,
    encode_batch,
    encode_reading,
    to_reading,
)
from gridtokenx.readings.reading import Source, Trust
from gridtokenx.readings.signing import (
    DOMAIN_TAG,
    DeviceSigner,
    key_id,
    sign_reading,
    signing_message,
    verify_detached,
    verify_reading,
)

NETWORK = "gridtokenx-localnet"
KEY = DeviceSigner.from_seed(hashlib.sha256(b"meter SIM-METER-001").digest())
OTHER_KEY = DeviceSigner.from_seed(hashlib.sha256(b"meter SIM-METER-002").digest())
FAST = settings(max_examples=60, deadline=None)


def fields(**changes: Any) -> dict[str, Any]:
    base = {
        "device_id": "SIM-METER-001",
        "seq": 42,
        "interval_start": 1_767_225_600,
        "duration": 900,
        "import_wh": 0,
        "export_wh": 1234,
        "generation_wh": 2000,
        "consumption_wh": 766,
        "import_register_wh": 812_000,
        "export_register_wh": 5_012_345,
        "quality": 0,
        "firmware": "1.2.3",
        "created": 1_767_226_500,
        "expires": 1_767_226_800,
    }
    return base | changes


def signed_body(**changes: Any) -> bytes:
    return encode_reading(sign_reading(fields(**changes), KEY, NETWORK))


def wire(raw: bytes) -> dict[str, Any]:
    return json.loads(raw)


def refused(raw: bytes) -> ReadingError:
    with pytest.raises(ReadingError) as caught:
        decode_reading(raw)
    return caught.value


# --- canonical bytes and the signed message ---------------------------------------------------


def test_signed_message_is_domain_tag_network_and_jcs_of_all_but_sig() -> None:
    reading = sign_reading(fields(), KEY, NETWORK)
    message = signing_message(reading, NETWORK)
    body = {k: v for k, v in wire(encode_reading(reading)).items() if k != "sig"}
    assert message == b"gridtokenx/reading/v1\x00gridtokenx-localnet\x00" + rfc8785.dumps(body)
    assert message.startswith(DOMAIN_TAG)
    assert b'"sig"' not in message
    assert key_id(KEY.public_key) == hashlib.sha256(KEY.public_key).hexdigest()[:16] == reading.key_id


def test_absent_registers_are_left_out_of_the_canonical_bytes() -> None:
    reading = sign_reading({k: v for k, v in fields().items() if not k.endswith("register_wh")}, KEY, NETWORK)
    assert b"register" not in canonical_json(reading)
    verify_reading(decode_reading(encode_reading(reading)), KEY.public_key, NETWORK)


def test_verification_rebuilds_the_bytes_so_wire_formatting_does_not_matter() -> None:
    signed = wire(signed_body())
    reordered = json.dumps(dict(reversed(list(signed.items()))), indent=2).encode()
    escaped = reordered.replace(b'"seq"', b'"\\u0073eq"')
    verify_reading(decode_reading(escaped), KEY.public_key, NETWORK)


readings_strategy = st.fixed_dictionaries(
    {
        "device_id": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}", fullmatch=True),
        "seq": st.integers(0, MAX_SAFE_INT),
        "interval_start": st.integers(0, MAX_EPOCH),
        "duration": st.integers(1, 86_400),
        "import_wh": st.integers(-MAX_SAFE_INT, MAX_SAFE_INT),
        "export_wh": st.integers(-MAX_SAFE_INT, MAX_SAFE_INT),
        "generation_wh": st.integers(-MAX_SAFE_INT, MAX_SAFE_INT),
        "consumption_wh": st.integers(-MAX_SAFE_INT, MAX_SAFE_INT),
        "quality": st.integers(0, 2**32 - 1),
        "firmware": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,31}", fullmatch=True),
        "created": st.integers(0, MAX_EPOCH),
        "expires": st.integers(0, MAX_EPOCH),
    },
    optional={
        "channel": st.integers(0, 32_767),
        "import_register_wh": st.integers(0, MAX_SAFE_INT),
        "export_register_wh": st.integers(0, MAX_SAFE_INT),
    },
)


@FAST
@given(readings_strategy)
def test_canonical_json_equals_rfc8785_and_sign_verify_round_trips(values: dict[str, Any]) -> None:
    signed = sign_reading(values, KEY, NETWORK)
    assert canonical_json(signed) == rfc8785.dumps({**values, "key_id": KEY.key_id})
    decoded = decode_reading(encode_reading(signed))
    assert decoded == signed
    verify_reading(decoded, KEY.public_key, NETWORK)


@FAST
@given(readings_strategy, st.data())
def test_any_single_byte_change_to_the_signed_message_fails(
    values: dict[str, Any], data: st.DataObject
) -> None:
    signed = sign_reading(values, KEY, NETWORK)
    message = signing_message(signed, NETWORK)
    signature = bytes.fromhex(str(signed.sig))
    position = data.draw(st.integers(0, len(message) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = message[:position] + bytes([message[position] ^ flip]) + message[position + 1 :]
    assert verify_detached(KEY.public_key, message, signature)
    assert not verify_detached(KEY.public_key, tampered, signature)


@FAST
@given(readings_strategy, st.data())
def test_any_single_byte_change_to_the_signature_fails(values: dict[str, Any], data: st.DataObject) -> None:
    signed = sign_reading(values, KEY, NETWORK)
    signature = bytearray.fromhex(str(signed.sig))
    signature[data.draw(st.integers(0, 63))] ^= data.draw(st.integers(1, 255))
    forged = msgspec.structs.replace(signed, sig=signature.hex())
    with pytest.raises(ReadingError) as caught:
        verify_reading(forged, KEY.public_key, NETWORK)
    assert caught.value.code is ErrorCode.SIGNATURE_INVALID


# --- forged, wrong key, wrong network ---------------------------------------------------------


def test_forged_value_fails_verification() -> None:
    forged = signed_body().replace(b'"export_wh":1234', b'"export_wh":9234')
    with pytest.raises(ReadingError) as caught:
        verify_reading(decode_reading(forged), KEY.public_key, NETWORK)
    assert caught.value.code is ErrorCode.SIGNATURE_INVALID


def test_signature_by_another_key_fails_against_the_provisioned_key() -> None:
    claims_our_key = sign_reading(fields(key_id=OTHER_KEY.key_id), OTHER_KEY, NETWORK)
    other = msgspec.structs.replace(claims_our_key, key_id=KEY.key_id)
    for reading in (claims_our_key, other):
        with pytest.raises(ReadingError) as caught:
            verify_reading(reading, KEY.public_key, NETWORK)
        assert caught.value.code is ErrorCode.SIGNATURE_INVALID


def test_signature_from_another_network_fails() -> None:
    reading = decode_reading(signed_body())
    with pytest.raises(ReadingError) as caught:
        verify_reading(reading, KEY.public_key, "gridtokenx-mainnet")
    assert caught.value.code is ErrorCode.SIGNATURE_INVALID


def test_signing_with_a_key_the_reading_does_not_name_is_refused() -> None:
    with pytest.raises(ValueError, match="signed with key"):
        sign_reading(fields(key_id=OTHER_KEY.key_id), KEY, NETWORK)


def test_invalid_network_id_is_refused() -> None:
    with pytest.raises(ValueError, match="network id"):
        sign_reading(fields(), KEY, "bad\x00net")


def test_device_key_helpers() -> None:
    key = DeviceSigner.from_seed(KEY.seed)
    assert key.public_key == KEY.public_key and len(key.public_key_hex) == 64
    assert base58.b58decode(key.public_key_base58) == key.public_key
    assert verify_detached(key.public_key, b"hello", key.sign(b"hello"))
    assert DeviceSigner.generate().public_key != key.public_key


def test_to_reading_normalises_the_native_reading() -> None:
    native = decode_reading(signed_body(channel=2))
    reading = to_reading(native, NETWORK)
    assert (reading.meter_serial, reading.channel, reading.interval_start, reading.duration) == (
        "SIM-METER-001",
        2,
        1_767_225_600,
        900,
    )
    assert reading.observed_at == reading.interval_end == 1_767_226_500
    assert reading.stored_values() == {
        "import_wh": 0,
        "export_wh": 1234,
        "generation_wh": 2000,
        "consumption_wh": 766,
        "import_register_wh": 812_000,
        "export_register_wh": 5_012_345,
    }
    assert reading.source is Source.NATIVE and reading.trust is Trust.GATEWAY_ATTESTED  # until verified
    assert reading.signature == bytes.fromhex(str(native.sig)) and reading.seq == 42
    assert reading.signed_messages == (signing_message(native, NETWORK),)
    assert verify_detached(KEY.public_key, reading.signed_messages[0], reading.signature)
    assert to_reading(native, NETWORK, Trust.DEVICE_SIGNED).trust is Trust.DEVICE_SIGNED
    elsewhere = to_reading(native, "gridtokenx-mainnet")
    assert not verify_detached(KEY.public_key, elsewhere.signed_messages[0], reading.signature)


# --- strict decoding: each refusal with its code ----------------------------------------------


@pytest.mark.parametrize(
    ("replace", "by", "path"),
    [
        (b'"export_wh":1234', b'"export_wh":1234.0', "$.export_wh"),
        (b'"export_wh":1234', b'"export_wh":1.234e3', "$.export_wh"),
        (b'"seq":42', b'"seq":42.5', "$.seq"),
        (b'"firmware":"1.2.3"', b'"firmware":1.5', "$.firmware"),
    ],
)
def test_floats_are_refused(replace: bytes, by: bytes, path: str) -> None:
    error = refused(signed_body().replace(replace, by))
    assert (error.code, error.path) == (ErrorCode.FLOAT_NOT_ALLOWED, path)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_refused_as_floats(constant: bytes) -> None:
    error = refused(signed_body().replace(b'"import_wh":0', b'"import_wh":' + constant))
    assert error.code is ErrorCode.FLOAT_NOT_ALLOWED
    assert constant.decode().lstrip("-") in error.message


def test_duplicate_keys_are_refused_and_named() -> None:
    body = signed_body()
    error = refused(body.replace(b'"export_wh":1234', b'"export_wh":1234,"export_wh":99999'))
    assert error.code is ErrorCode.DUPLICATE_KEY and "export_wh" in error.message
    escaped = body.replace(b'"seq":42', b'"seq":42,"\\u0073eq":41')
    assert refused(escaped).code is ErrorCode.DUPLICATE_KEY
    same_value = body.replace(b'"quality":0', b'"quality":0,"quality":0')
    assert refused(same_value).code is ErrorCode.DUPLICATE_KEY


def test_commas_inside_strings_cannot_hide_a_duplicate() -> None:
    body = signed_body().replace(b'"firmware":"1.2.3"', b'"firmware":"1,2"')
    error = refused(body)
    assert (error.code, error.path) == (ErrorCode.SCHEMA_INVALID, "$.firmware")


@pytest.mark.parametrize(
    ("replace", "by", "code", "path"),
    [
        (
            b'"export_register_wh":5012345',
            b'"export_register_wh":null',
            ErrorCode.SCHEMA_INVALID,
            "$.export_register_wh",
        ),
        (b'"quality":0', b'"quality":0,"extra":1', ErrorCode.SCHEMA_INVALID, "$"),
        (b'"device_id":"SIM-METER-001",', b"", ErrorCode.SCHEMA_INVALID, "$"),
        (b'"seq":42', b'"seq":-1', ErrorCode.SCHEMA_INVALID, "$.seq"),
        (b'"seq":42', b'"seq":9007199254740992', ErrorCode.SCHEMA_INVALID, "$.seq"),
        (b'"seq":42', b'"seq":"42"', ErrorCode.SCHEMA_INVALID, "$.seq"),
        (b'"device_id":"SIM-METER-001"', b'"device_id":"SIM METER"', ErrorCode.SCHEMA_INVALID, "$.device_id"),
        (b'"key_id":"', b'"key_id":"A', ErrorCode.SCHEMA_INVALID, "$.key_id"),
    ],
)
def test_schema_violations_name_the_field(replace: bytes, by: bytes, code: ErrorCode, path: str) -> None:
    body = signed_body()
    assert replace in body
    error = refused(body.replace(replace, by, 1))
    assert (error.code, error.path) == (code, path)


def test_missing_signature_and_malformed_json() -> None:
    unsigned = encode_reading(msgspec.convert({**fields(), "key_id": KEY.key_id}, NativeReading))
    error = refused(unsigned)
    assert (error.code, error.path) == (ErrorCode.SIGNATURE_MISSING, "$.sig")
    assert refused(b'{"device_id": ').code is ErrorCode.MALFORMED_JSON
    assert refused(b"\xff\xfe").code is ErrorCode.MALFORMED_JSON
    assert refused(b"[]").code is ErrorCode.SCHEMA_INVALID


# --- batches ----------------------------------------------------------------------------------


def test_mixed_batch_gives_one_result_per_item_in_order() -> None:
    good = signed_body()
    second = signed_body(seq=43)
    items = [
        good,
        good.replace(b'"export_wh":1234', b'"export_wh":1234.5'),
        second,
        good.replace(b'"seq":42', b'"seq":42,"seq":7'),
        b'{"hello":"world"}',
        b"17",
    ]
    results = decode_batch(b"[" + b",".join(items) + b"]")
    assert [r.code if isinstance(r, ReadingError) else "ok" for r in results] == [
        "ok",
        ErrorCode.FLOAT_NOT_ALLOWED,
        "ok",
        ErrorCode.DUPLICATE_KEY,
        ErrorCode.SCHEMA_INVALID,
        ErrorCode.SCHEMA_INVALID,
    ]
    assert [r.path for r in results if isinstance(r, ReadingError)] == [
        "$[1].export_wh",
        "$[3]",
        "$[4]",
        "$[5]",
    ]
    assert isinstance(results[2], NativeReading) and results[2].seq == 43
    verify_reading(results[0], KEY.public_key, NETWORK)  # type: ignore[arg-type]


def test_all_good_batch_takes_the_fast_path_and_matches_item_decoding() -> None:
    readings = [sign_reading(fields(seq=i), KEY, NETWORK) for i in range(5)]
    assert decode_batch(encode_batch(readings)) == readings
    assert decode_batch(b"[]") == []


def test_duplicate_in_an_otherwise_valid_batch_is_isolated() -> None:
    good = signed_body()
    results = decode_batch(
        b"[" + good + b"," + good.replace(b'"quality":0', b'"quality":0,"quality":1') + b"]"
    )
    assert isinstance(results[0], NativeReading)
    assert isinstance(results[1], ReadingError) and results[1].code is ErrorCode.DUPLICATE_KEY


def test_whole_request_errors_for_a_batch() -> None:
    with pytest.raises(ReadingError) as caught:
        decode_batch(b"[" + signed_body() + b",")
    assert caught.value.code is ErrorCode.MALFORMED_JSON
    with pytest.raises(ReadingError) as caught:
        decode_batch(b'{"readings": []}')
    assert caught.value.code is ErrorCode.SCHEMA_INVALID
    with pytest.raises(ReadingError) as caught:
        decode_batch(b"[" + signed_body().replace(b'"import_wh":0', b'"import_wh":NaN') + b"]")
    assert caught.value.code is ErrorCode.FLOAT_NOT_ALLOWED
    with pytest.raises(ReadingError) as caught:
        decode_batch(encode_batch([sign_reading(fields(), KEY, NETWORK)] * 3), max_items=2)
    assert caught.value.code is ErrorCode.BATCH_TOO_LARGE


@pytest.mark.parametrize("field", ["device_id", "firmware"])
def test_a_line_break_inside_a_string_field_is_refused_in_a_batch(field: str) -> None:
    # the whole-batch pattern check joins values by line breaks: one inside a value must not split
    # it into two values that each look valid
    readings = [sign_reading(fields(seq=i), KEY, NETWORK) for i in range(3)]
    value = {"device_id": "SIM-METER-001", "firmware": "1.2.3"}[field]
    body = encode_batch(readings)
    body = body.replace(f'"{field}":"{value}"'.encode(), f'"{field}":"{value}\\nX"'.encode(), 1)
    results = decode_batch(body)
    assert isinstance(results[0], ReadingError)
    assert (results[0].code, results[0].path) == (ErrorCode.SCHEMA_INVALID, f"$[0].{field}")
    assert all(isinstance(r, NativeReading) for r in results[1:])
