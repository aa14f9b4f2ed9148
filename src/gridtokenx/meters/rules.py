"""Pure meter rules: public-key parsing, which key may sign a reading at a given time, and the
message a device signs to rotate its own key."""

from __future__ import annotations

import binascii
import hashlib
from datetime import datetime
from typing import Protocol

import base58

from gridtokenx.meters.models import KeyStatus

MIN_INTERVAL_SECONDS = 15
MAX_INTERVAL_SECONDS = 3600
ROTATION_DOMAIN = "gridtokenx/key-rotation/v1"


def key_id(public_key: bytes) -> str:
    """A short, stable name for a device's public key: first 16 hex chars of its SHA-256."""
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return hashlib.sha256(public_key).hexdigest()[:16]


def parse_public_key(text: str) -> bytes | None:
    """A 32-byte Ed25519 key given as 64 hex chars or base58 (a Solana-style address)."""
    text = text.strip()
    if len(text) == 64:
        try:
            return binascii.unhexlify(text)
        except binascii.Error:
            return None
    try:
        raw = base58.b58decode(text)
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


class KeyValidity(Protocol):
    """What decides which readings a device key may sign (a `DeviceKey` or a batch's key row)."""

    @property
    def status(self) -> str: ...
    @property
    def valid_until(self) -> datetime | None: ...
    @property
    def revoked_at(self) -> datetime | None: ...


def key_covers(key: KeyValidity, reading_time: datetime, received_at: datetime | None = None) -> bool:
    """May this key sign a reading taken at `reading_time` and received at `received_at`?

    A revoked key covers nothing received after its revocation, whatever time the reading claims:
    a stolen key can backdate `created`. Readings it signed that arrived before the revocation
    stay as they were. A rotated-out key covers readings taken until the end of its overlap
    period (planned rotation: the device may still flush buffered data). A new key may sign data
    the device buffered before the key was provisioned.
    """
    if key.status == KeyStatus.REVOKED:
        if key.revoked_at is None:
            return False
        # Readings carry whole seconds: one signed in the second of the revocation is refused.
        cutoff = key.revoked_at.replace(microsecond=0)
        return reading_time < cutoff and (received_at is None or received_at < key.revoked_at)
    return key.valid_until is None or reading_time < key.valid_until


def attested_mintable(explicit: bool | None, has_device_key: bool) -> bool:
    """May gateway-attested readings of a meter be minted? The meter's explicit policy, else only
    while the meter has no device key (a signed source exists, so unsigned data must not mint)."""
    return explicit if explicit is not None else not has_device_key


def interval_valid(seconds: int) -> bool:
    return MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS and 86_400 % seconds == 0


def rotation_message(
    network_id: str, serial: str, old_key_id: str, new_key_id: str, new_public_hex: str
) -> bytes:
    """What the old key signs to hand over to a new key (device-initiated rotation)."""
    return "\n".join((ROTATION_DOMAIN, network_id, serial, old_key_id, new_key_id, new_public_hex)).encode()
