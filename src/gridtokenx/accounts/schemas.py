"""Wire types of the accounts API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from gridtokenx.accounts.models import Role
from gridtokenx.core.wire import StrictBool, refuse_nulls

Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]
WalletAddress = Annotated[
    str, StringConstraints(min_length=32, max_length=44, pattern=r"^[1-9A-HJ-NP-Za-km-z]+$")
]
Scope = Annotated[str, StringConstraints(pattern=r"^[a-z_]+:[a-z_*]+$", max_length=64)]
SELF_SERVICE_ROLES = (Role.USER, Role.PRODUCER, Role.CONSUMER, Role.PROSUMER)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RegisterRequest(StrictModel):
    email: EmailStr
    password: Password
    role: Role = Role.USER
    username: (
        Annotated[str, StringConstraints(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")] | None
    ) = None
    first_name: Annotated[str, StringConstraints(max_length=100)] | None = None
    last_name: Annotated[str, StringConstraints(max_length=100)] | None = None

    @field_validator("password")
    @classmethod
    def _strength(cls, value: str) -> str:
        if not any(c.isalpha() for c in value) or not any(c.isdigit() for c in value):
            raise ValueError("password must contain letters and digits")
        return value


class LoginRequest(StrictModel):
    email: Annotated[str, StringConstraints(min_length=1, max_length=320)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class RefreshRequest(StrictModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class ResendVerificationRequest(StrictModel):
    email: EmailStr


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    username: str | None
    role: str
    first_name: str | None
    last_name: str | None
    is_active: bool
    email_verified: bool
    wallet_address: str | None
    created_at: datetime


class RegisterResponse(BaseModel):
    user: UserOut
    email_verification_sent: bool
    message: str


class TokenPair(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str
    user: UserOut


class MessageOut(BaseModel):
    message: str


class NonceRequest(StrictModel):
    wallet_address: WalletAddress


class NonceOut(BaseModel):
    wallet_address: str
    nonce: str
    message: str = Field(description="Sign these exact UTF-8 bytes with the wallet's Ed25519 key.")
    expires_at: datetime


class LinkWalletRequest(StrictModel):
    wallet_address: WalletAddress
    nonce: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    signature: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="Ed25519 signature of the nonce message, base58 (Solana wallets) or base64."
    )


class ApiKeyCreate(StrictModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    scopes: list[Scope] = Field(default_factory=lambda: ["readings:write"], max_length=20)


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="Shown once; only its hash is stored.")


class AdminUserUpdate(StrictModel):
    """Only the fields sent change; none of them may be null (each is a required column)."""

    role: Role | None = None
    is_active: StrictBool | None = None
    email_verified: StrictBool | None = None

    @model_validator(mode="before")
    @classmethod
    def _required_columns(cls, data: Any) -> Any:
        return refuse_nulls(data, frozenset({"role", "is_active", "email_verified"}))


class UserPage(BaseModel):
    items: list[UserOut]
    total: int
    limit: int
    offset: int
