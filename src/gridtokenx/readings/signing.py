"""Signing and verifying native readings: the one recipe shared by devices, the simulator and the gateway.

The signed bytes (what device firmware must reproduce exactly)::

    message = b"gridtokenx/reading/v1" + b"\\x00" + network_id (ASCII) + b"\\x00" + JCS(reading without "sig")

- `network_id` names the deployment (setting `GRIDTOKENX_NETWORK_ID`, e.g. `gridtokenx-localnet`);
  1-64 chars of `[A-Za-z0-9._:-]`. It and the domain tag stop a signature being replayed on another
  network or reused for another kind of message.
- JCS is RFC 8785. For our flat schema it is simply: the JSON object of all fields except `sig`,
  keys in ascending byte order, no whitespace, integers in plain decimal (no leading zeros, no `+`,
  no exponent), strings in double quotes with no escapes (the schema only allows unescaped
  characters), absent optional registers left out entirely. Example::

    {"consumption_wh":766,"created":1767226500,"device_id":"SIM-METER-001","duration":900,...,"seq":42}

- The signature is Ed25519 (RFC 8032) over `message`, 64 bytes, sent as 128 lowercase hex chars in
  `sig`. Verification is libsodium's strict verify (canonical S, no small-order points).
- `key_id` = first 16 hex chars of SHA-256(32-byte Ed25519 public key) (`meters.rules.key_id`:
  meters name the keys they provision).

The gateway never trusts the bytes it received: it re-derives the canonical bytes from the decoded
fields, so whitespace, key order or escapes on the wire cannot change what is verified.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import base58
import msgspec
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from gridtokenx.meters.rules import key_id
from gridtokenx.readings.errors import ErrorCode, ReadingError
from gridtokenx.readings.native import DOMAIN_TAG, NativeReading, reading_from_fields, signing_message

__all__ = [
    "DOMAIN_TAG",
    "DeviceSigner",
    "NativeReading",
    "sign_reading",
    "signing_message",
    "verify_detached",
    "verify_reading",
]


@dataclass(frozen=True)
class DeviceSigner:
    """A meter's Ed25519 key pair, as firmware or the simulator holds it: the signer (the platform
    stores only its public half, as a `meters.models.DeviceKey` row)."""

    signing_key: SigningKey

    @classmethod
    def generate(cls) -> DeviceSigner:
        return cls(SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> DeviceSigner:
        """Deterministic key from a 32-byte seed (e.g. a simulator's sha256 of the meter id)."""
        return cls(SigningKey(seed))

    @property
    def seed(self) -> bytes:
        return bytes(self.signing_key)

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def public_key_hex(self) -> str:
        return self.public_key.hex()

    @property
    def public_key_base58(self) -> str:
        return base58.b58encode(self.public_key).decode("ascii")

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """A detached 64-byte signature."""
        return self.signing_key.sign(message).signature

    def sign_reading(self, reading: NativeReading | Mapping[str, Any], network_id: str) -> NativeReading:
        return sign_reading(reading, self, network_id)


def sign_reading(
    reading: NativeReading | Mapping[str, Any], key: DeviceSigner | SigningKey, network_id: str
) -> NativeReading:
    """Return `reading` with `sig` set. A mapping is validated like a decoded reading, and its
    `key_id` filled in from `key` when missing; a `key_id` naming another key is a ValueError."""
    device_key = key if isinstance(key, DeviceSigner) else DeviceSigner(key)
    if isinstance(reading, NativeReading):
        native = reading
    else:
        native = reading_from_fields({"key_id": device_key.key_id, **reading})
    if native.key_id != device_key.key_id:
        raise ValueError(f"reading names key {native.key_id} but is signed with key {device_key.key_id}")
    signature = device_key.sign(signing_message(native, network_id))
    return msgspec.structs.replace(native, sig=signature.hex())


def verify_detached(public_key: bytes | VerifyKey, message: bytes, signature: bytes) -> bool:
    """Strict Ed25519 check of a detached signature; any malformed input is simply `False`."""
    try:
        verify_key = public_key if isinstance(public_key, VerifyKey) else VerifyKey(public_key)
        verify_key.verify(message, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def verify_reading(reading: NativeReading, public_key: bytes | VerifyKey, network_id: str) -> None:
    """Raise `ReadingError(SIGNATURE_INVALID)` unless `public_key` signed `reading` on `network_id`.

    Pass a cached `VerifyKey` on hot paths. The caller looks the key up by (`device_id`, `key_id`)
    and checks it is provisioned and not revoked; this function only does the cryptography.
    """
    if not isinstance(reading.sig, str):
        raise ReadingError(ErrorCode.SIGNATURE_MISSING, "a native reading must carry `sig`", "$.sig")
    if not verify_detached(public_key, signing_message(reading, network_id), bytes.fromhex(reading.sig)):
        raise ReadingError(ErrorCode.SIGNATURE_INVALID, "signature does not verify for this key and network")
