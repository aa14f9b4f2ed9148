"""Wire types of the meters API."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from gridtokenx.core.wire import StrictBool, UtcDatetime, refuse_nulls
from gridtokenx.meters.models import MeterStatus, MeterType

Serial = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
PublicKeyText = Annotated[str, StringConstraints(min_length=32, max_length=64, pattern=r"^[0-9A-Za-z]+$")]
KeyIdText = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class MeterCreate(StrictModel):
    serial: Serial
    meter_key: Annotated[str, StringConstraints(min_length=8, max_length=128)] = Field(
        description="The utility-issued meter key the owner proves possession of; stored only as a hash."
    )
    meter_type: MeterType = MeterType.PROSUMER
    location: Annotated[str, StringConstraints(max_length=200)] | None = None
    zone_id: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None
    capacity_kw: Annotated[Decimal, Field(gt=0, le=100_000, decimal_places=3)] = Decimal(10)
    interval_seconds: Annotated[int, Field(ge=15, le=3600)] = 900
    commissioned_at: UtcDatetime | None = None
    status: MeterStatus = MeterStatus.ACTIVE
    attested_mintable: StrictBool | None = None


class MeterUpdate(StrictModel):
    """Only the fields sent change; `null` clears a field, except `status`, which is required."""

    status: MeterStatus | None = Field(default=None, description="May be left out, never null.")
    register_modulus_wh: Annotated[int, Field(gt=0, le=2**62)] | None = None
    register_reset_at: UtcDatetime | None = Field(default=None, description="When the meter was replaced.")
    zone_id: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    location: Annotated[str, StringConstraints(max_length=200)] | None = None
    attested_mintable: StrictBool | None = None

    @model_validator(mode="before")
    @classmethod
    def _required_columns(cls, data: Any) -> Any:
        return refuse_nulls(data, frozenset({"status"}))


class MeterOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    serial: str
    owner_id: uuid.UUID | None
    meter_type: str
    location: str | None
    zone_id: int | None
    latitude: float | None
    longitude: float | None
    capacity_w: int
    interval_seconds: int
    commissioned_at: datetime
    status: str
    attested_mintable: bool | None
    register_modulus_wh: int | None
    register_reset_at: datetime | None
    claimed_at: datetime | None


class ClaimRequest(StrictModel):
    serial: Serial
    meter_key: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class DeviceKeyRegister(StrictModel):
    meter_id: uuid.UUID | None = None
    serial: Serial | None = None
    public_key: PublicKeyText
    key_id: KeyIdText | None = None


class DeviceKeyRotate(StrictModel):
    public_key: PublicKeyText
    key_id: KeyIdText | None = None
    overlap_seconds: Annotated[int, Field(ge=0, le=30 * 86_400)] = 3600


class DeviceKeyRevoke(StrictModel):
    key_id: KeyIdText | None = Field(
        default=None, description="Omit to revoke every active key of the meter."
    )
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200)] = "revoked by admin"


class SignedRotation(StrictModel):
    old_key_id: KeyIdText
    new_public_key: PublicKeyText
    signature: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{128}$")]
    overlap_seconds: Annotated[int, Field(ge=0, le=30 * 86_400)] = 3600


class DeviceKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    meter_id: uuid.UUID
    key_id: str
    public_key: str
    status: str
    valid_from: datetime
    valid_until: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
