"""HTTP routes of the meters domain: registry, ownership claims, device keys."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, status

from gridtokenx.accounts.deps import AdminUser, CurrentUser
from gridtokenx.core.deps import ClientIp, Ctx, DbSession
from gridtokenx.core.errors import ApiError, NotFound
from gridtokenx.meters import service
from gridtokenx.meters.schemas import (
    ClaimRequest,
    DeviceKeyOut,
    DeviceKeyRegister,
    DeviceKeyRevoke,
    DeviceKeyRotate,
    MeterCreate,
    MeterOut,
    MeterUpdate,
    SignedRotation,
)

router = APIRouter()
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    403: {"description": "Forbidden"},
}


@router.post("/api/admin/meters", status_code=status.HTTP_201_CREATED, tags=["admin"], responses=AUTH_ERRORS)
async def admin_create_meter(body: MeterCreate, _admin: AdminUser, session: DbSession) -> MeterOut:
    meter = await service.create_meter(session, body)
    await session.commit()
    return MeterOut.model_validate(meter)


@router.get("/api/admin/meters", tags=["admin"], responses=AUTH_ERRORS)
async def admin_list_meters(_admin: AdminUser, session: DbSession) -> list[MeterOut]:
    return [MeterOut.model_validate(m) for m in await service.list_meters(session)]


@router.patch("/api/admin/meters/{meter_id}", tags=["admin"], responses=AUTH_ERRORS)
async def admin_update_meter(
    meter_id: uuid.UUID, body: MeterUpdate, _admin: AdminUser, session: DbSession
) -> MeterOut:
    meter = await service.update_meter(session, meter_id, body)
    await session.commit()
    return MeterOut.model_validate(meter)


@router.post("/api/meters/verify", tags=["meters"], responses=AUTH_ERRORS)
async def verify_meter(body: ClaimRequest, user: CurrentUser, session: DbSession, ip: ClientIp) -> MeterOut:
    """Claim a meter with its utility-issued key; every attempt is recorded."""
    try:
        meter = await service.claim_meter(session, user, body.serial, body.meter_key, ip)
    except ApiError:
        await session.commit()  # keep the attempt log of a failed claim
        raise
    await session.commit()
    return MeterOut.model_validate(meter)


@router.get("/api/meters/registered", tags=["meters"], responses=AUTH_ERRORS)
async def my_meters(user: CurrentUser, session: DbSession) -> list[MeterOut]:
    return [MeterOut.model_validate(m) for m in await service.list_meters(session, owner=user)]


@router.post(
    "/api/admin/devices/register", status_code=status.HTTP_201_CREATED, tags=["admin"], responses=AUTH_ERRORS
)
async def admin_register_device(
    body: DeviceKeyRegister, _admin: AdminUser, session: DbSession
) -> DeviceKeyOut:
    if body.meter_id is not None:
        meter = await service.get_meter(session, body.meter_id)
    elif body.serial is not None:
        found = await service.meter_by_serial(session, body.serial)
        if found is None:
            raise NotFound("no such meter", code="METER_NOT_FOUND")
        meter = found
    else:
        raise ApiError("give meter_id or serial", code="METER_REQUIRED", status_code=422)
    key = await service.add_device_key(session, meter, body.public_key, body.key_id)
    await session.commit()
    return DeviceKeyOut.model_validate(key)


@router.get("/api/admin/devices/{meter_id}/keys", tags=["admin"], responses=AUTH_ERRORS)
async def admin_list_keys(meter_id: uuid.UUID, _admin: AdminUser, session: DbSession) -> list[DeviceKeyOut]:
    await service.get_meter(session, meter_id)
    return [DeviceKeyOut.model_validate(k) for k in await service.all_keys(session, meter_id)]


@router.post(
    "/api/admin/devices/{meter_id}/rotate",
    status_code=status.HTTP_201_CREATED,
    tags=["admin"],
    responses=AUTH_ERRORS,
)
async def admin_rotate_key(
    meter_id: uuid.UUID, body: DeviceKeyRotate, _admin: AdminUser, session: DbSession
) -> DeviceKeyOut:
    meter = await service.get_meter(session, meter_id)
    key = await service.rotate_key(session, meter, body.public_key, body.key_id, body.overlap_seconds)
    await session.commit()
    return DeviceKeyOut.model_validate(key)


@router.post("/api/admin/devices/{meter_id}/revoke", tags=["admin"], responses=AUTH_ERRORS)
async def admin_revoke_key(
    meter_id: uuid.UUID, body: DeviceKeyRevoke, _admin: AdminUser, session: DbSession
) -> list[DeviceKeyOut]:
    meter = await service.get_meter(session, meter_id)
    keys = await service.revoke_keys(session, meter, body.key_id, body.reason)
    await session.commit()
    return [DeviceKeyOut.model_validate(k) for k in keys]


@router.post("/api/devices/{serial}/rotate", status_code=status.HTTP_201_CREATED, tags=["meters"])
async def device_rotate_key(serial: str, body: SignedRotation, ctx: Ctx, session: DbSession) -> DeviceKeyOut:
    """A device hands over to a new key by signing the rotation message with its current key."""
    meter = await service.meter_by_serial(session, serial)
    if meter is None:
        raise NotFound("no such meter", code="METER_NOT_FOUND")
    key = await service.rotate_key_signed(
        session,
        ctx.settings.network_id,
        meter,
        body.old_key_id,
        body.new_public_key,
        body.signature,
        body.overlap_seconds,
    )
    await session.commit()
    return DeviceKeyOut.model_validate(key)
