"""Device-signature verdicts: which provisioned key signed a reading, and whether that key
covered the moment the reading claims when it arrived. Pure (no database): the pipeline gathers
each meter's keys once per batch and asks for a verdict per reading."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from nacl.signing import VerifyKey

from gridtokenx.meters.facts import KeyFacts
from gridtokenx.meters.models import KeyStatus
from gridtokenx.meters.rules import key_covers
from gridtokenx.readings.reading import Reading
from gridtokenx.readings.signing import verify_detached


class SignatureVerdict(StrEnum):
    SIGNED = "signed"
    MISSING = "missing"
    UNKNOWN_KEY = "unknown_key"
    REVOKED = "revoked"
    EXPIRED = "expired"
    INVALID = "invalid"


FAILURES: dict[SignatureVerdict, tuple[str, str]] = {  # (code, message) of each refusal
    SignatureVerdict.MISSING: ("SIGNATURE_MISSING", "a device signature is required"),
    SignatureVerdict.UNKNOWN_KEY: ("DEVICE_KEY_UNKNOWN", "no provisioned key of this meter matches key_id"),
    SignatureVerdict.REVOKED: (
        "DEVICE_KEY_REVOKED",
        "the signing key was revoked before this reading arrived",
    ),
    SignatureVerdict.EXPIRED: (
        "DEVICE_KEY_EXPIRED",
        "the signing key was rotated out before this reading was taken",
    ),
    SignatureVerdict.INVALID: ("SIGNATURE_INVALID", "the signature does not verify"),
}


def verdict(
    reading: Reading, moment: datetime, candidates: list[tuple[KeyFacts, VerifyKey]], received: datetime
) -> tuple[SignatureVerdict, KeyFacts | None]:
    """Which candidate key signed `reading` and whether it was valid at `moment` (the time the
    reading claims) when `received`."""
    if reading.signature is None:
        return (SignatureVerdict.MISSING, None)
    if not candidates:
        return (SignatureVerdict.UNKNOWN_KEY, None)
    found: tuple[SignatureVerdict, KeyFacts | None] = (SignatureVerdict.INVALID, None)
    signature = reading.signature
    messages = reading.signed_messages
    for key, verify_key in candidates:
        for message in messages:  # a loop, not any(<generator>): this runs for every reading
            if verify_detached(verify_key, message, signature):
                break
        else:
            continue
        if key_covers(key, moment, received):
            return (SignatureVerdict.SIGNED, key)
        found = (
            (SignatureVerdict.REVOKED, None)
            if key.status == KeyStatus.REVOKED
            else (SignatureVerdict.EXPIRED, None)
        )
    return found
