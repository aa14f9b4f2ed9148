"""Meter use cases: registry, ownership claims, device-key provisioning, rotation and revocation."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.accounts.models import User
from gridtokenx.accounts.rules import may_act_for
from gridtokenx.core.errors import ApiError, Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized
from gridtokenx.core.security import hash_password, verify_password
from gridtokenx.core.types import utcnow
from gridtokenx.meters import rules
from gridtokenx.meters.models import DeviceKey, KeyStatus, Meter, MeterClaimAttempt, MeterStatus
from gridtokenx.meters.schemas import MeterCreate, MeterUpdate

CLAIM_ATTEMPTS_PER_HOUR = 5


async def create_meter(session: AsyncSession, req: MeterCreate) -> Meter:
    if not rules.interval_valid(req.interval_seconds):
        raise ApiError(
            "interval must be 15 s to 1 h and divide a day evenly", code="INTERVAL_INVALID", status_code=422
        )
    meter = Meter(
        serial=req.serial,
        meter_type=req.meter_type.value,
        location=req.location,
        zone_id=req.zone_id,
        latitude=req.latitude,
        longitude=req.longitude,
        capacity_w=int(req.capacity_kw * 1000),
        interval_seconds=req.interval_seconds,
        commissioned_at=req.commissioned_at or utcnow(),
        status=req.status.value,
        meter_key_hash=hash_password(req.meter_key),
        attested_mintable=req.attested_mintable,
    )
    session.add(meter)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("a meter with this serial exists", code="METER_EXISTS") from None
    return meter


async def get_meter(session: AsyncSession, meter_id: uuid.UUID) -> Meter:
    meter = await session.get(Meter, meter_id)
    if meter is None:
        raise NotFound("no such meter", code="METER_NOT_FOUND")
    return meter


async def meter_by_serial(session: AsyncSession, serial: str) -> Meter | None:
    return await session.scalar(select(Meter).where(Meter.serial == serial))


async def owned_meter(session: AsyncSession, user: User, meter_id: uuid.UUID) -> Meter:
    """The meter if the user owns it (admins see all); another user's meter is a 404, not a hint."""
    meter = await session.get(Meter, meter_id)
    if meter is None or not may_act_for(user, meter.owner_id):
        raise NotFound("no such meter", code="METER_NOT_FOUND")
    return meter


async def update_meter(session: AsyncSession, meter_id: uuid.UUID, req: MeterUpdate) -> Meter:
    meter = await get_meter(session, meter_id)
    for name, value in req.model_dump(exclude_unset=True).items():
        setattr(meter, name, value.value if hasattr(value, "value") else value)
    await session.flush()
    return meter


async def list_meters(session: AsyncSession, owner: User | None = None) -> list[Meter]:
    query = select(Meter).order_by(Meter.serial)
    if owner is not None:
        query = query.where(Meter.owner_id == owner.id)
    return list(await session.scalars(query))


async def _recent_attempts(session: AsyncSession, column: Any, value: object) -> tuple[int, int]:
    since = utcnow() - timedelta(hours=1)
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(MeterClaimAttempt.created_at)).where(
                column == value,
                MeterClaimAttempt.created_at > since,
            )
        )
    ).one()
    retry = int((oldest + timedelta(hours=1) - utcnow()).total_seconds()) + 1 if oldest else 1
    return int(count), retry


async def claim_meter(
    session: AsyncSession, user: User, serial: str, meter_key: str, client_ip: str
) -> Meter:
    """Prove ownership with the utility-issued meter key. Every attempt is logged (the caller commits
    even when this raises); 5 attempts per hour per user and per meter serial."""
    for column, value in ((MeterClaimAttempt.user_id, user.id), (MeterClaimAttempt.serial, serial)):
        count, retry = await _recent_attempts(session, column, value)
        if count >= CLAIM_ATTEMPTS_PER_HOUR:
            raise TooManyRequests(
                "too many meter verification attempts; try again later",
                code="METER_CLAIM_RATE_LIMITED",
                retry_after=retry,
            )

    def attempt(succeeded: bool, reason: str) -> None:
        session.add(
            MeterClaimAttempt(
                user_id=user.id, serial=serial, succeeded=succeeded, reason=reason, client_ip=client_ip
            )
        )

    meter = await meter_by_serial(session, serial)
    if not verify_password(meter.meter_key_hash if meter else None, meter_key) or meter is None:
        attempt(False, "bad_serial_or_key")
        raise Unauthorized("serial or meter key is wrong", code="METER_KEY_INVALID")
    if meter.owner_id == user.id:
        attempt(True, "already_owner")
        return meter
    if meter.owner_id is not None:
        attempt(False, "claimed_by_other")
        raise Conflict("this meter is already registered to another account", code="METER_ALREADY_CLAIMED")
    if meter.status == MeterStatus.DECOMMISSIONED:
        attempt(False, "decommissioned")
        raise Forbidden("this meter is decommissioned", code="METER_DECOMMISSIONED")
    claimed = await session.execute(
        update(Meter)
        .where(Meter.id == meter.id, Meter.owner_id.is_(None))
        .values(owner_id=user.id, claimed_at=utcnow())
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        attempt(False, "claimed_by_other")
        raise Conflict("this meter is already registered to another account", code="METER_ALREADY_CLAIMED")
    attempt(True, "claimed")
    await session.refresh(meter)
    return meter


def _key_bytes(text: str) -> bytes:
    raw = rules.parse_public_key(text)
    if raw is None:
        raise ApiError(
            "public key must be 32 bytes, hex or base58", code="PUBLIC_KEY_INVALID", status_code=422
        )
    try:
        VerifyKey(raw)
    except ValueError:
        raise ApiError("not an Ed25519 public key", code="PUBLIC_KEY_INVALID", status_code=422) from None
    return raw


async def add_device_key(
    session: AsyncSession, meter: Meter, public_key: str, key_id: str | None
) -> DeviceKey:
    raw = _key_bytes(public_key)
    derived = rules.key_id(raw)
    if key_id is not None and key_id != derived:
        raise ApiError(
            f"key_id must be {derived} for this public key", code="KEY_ID_MISMATCH", status_code=422
        )
    row = DeviceKey(meter_id=meter.id, key_id=derived, public_key=raw.hex())
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("this public key is already provisioned", code="DEVICE_KEY_EXISTS") from None
    return row


async def active_keys(session: AsyncSession, meter_id: uuid.UUID) -> list[DeviceKey]:
    query = select(DeviceKey).where(DeviceKey.meter_id == meter_id, DeviceKey.status == KeyStatus.ACTIVE)
    return list(await session.scalars(query.order_by(DeviceKey.valid_from)))


async def all_keys(session: AsyncSession, meter_id: uuid.UUID) -> list[DeviceKey]:
    return list(await session.scalars(select(DeviceKey).where(DeviceKey.meter_id == meter_id)))


async def rotate_key(
    session: AsyncSession, meter: Meter, public_key: str, key_id: str | None, overlap_seconds: int
) -> DeviceKey:
    """Provision a new key; the current keys stay valid for `overlap_seconds` more."""
    until = utcnow() + timedelta(seconds=overlap_seconds)
    for old in await active_keys(session, meter.id):
        if old.valid_until is None or old.valid_until > until:
            old.valid_until = until
    return await add_device_key(session, meter, public_key, key_id)


async def rotate_key_signed(
    session: AsyncSession,
    network_id: str,
    meter: Meter,
    old_key_id: str,
    new_public_key: str,
    signature_hex: str,
    overlap_seconds: int,
) -> DeviceKey:
    """Device-initiated rotation: the current key signs the hand-over to the new one."""
    old = next((k for k in await active_keys(session, meter.id) if k.key_id == old_key_id), None)
    if old is None or not rules.key_covers(old, utcnow()):
        raise Unauthorized("the signing key is not an active key of this meter", code="DEVICE_KEY_UNKNOWN")
    new_raw = _key_bytes(new_public_key)
    message = rules.rotation_message(
        network_id, meter.serial, old_key_id, rules.key_id(new_raw), new_raw.hex()
    )
    try:
        VerifyKey(bytes.fromhex(old.public_key)).verify(message, bytes.fromhex(signature_hex))
    except BadSignatureError:
        raise Unauthorized("rotation signature does not verify", code="SIGNATURE_INVALID") from None
    return await rotate_key(session, meter, new_public_key, None, overlap_seconds)


async def revoke_keys(
    session: AsyncSession, meter: Meter, key_id: str | None, reason: str
) -> list[DeviceKey]:
    keys = [k for k in await active_keys(session, meter.id) if key_id is None or k.key_id == key_id]
    if not keys:
        raise NotFound("no active key matches", code="DEVICE_KEY_NOT_FOUND")
    now = utcnow()
    for key in keys:
        key.status = KeyStatus.REVOKED.value
        key.revoked_at = now
        key.revoke_reason = reason
    await session.flush()
    return keys
