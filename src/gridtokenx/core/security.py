"""Password hashing, JWTs and opaque tokens: the only place secrets are made or checked."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
# A real hash of a random password: verifying against it when the account does not exist keeps
# the response time of "unknown email" equal to "wrong password".
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token(nbytes: int = 32) -> str:
    """An unguessable URL-safe token (email verification, refresh tokens, API keys, nonces)."""
    return secrets.token_urlsafe(nbytes)


def token_digest(token: str) -> str:
    """What we store instead of a token: its SHA-256, so a database leak reveals no credential."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    role: str
    email: str
    token_id: str


class TokenError(Exception):
    """The access token is missing, malformed, forged or expired; `code` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class JwtCodec:
    secret: str
    issuer: str
    ttl_seconds: int
    algorithm: str = "HS256"

    def issue(self, user_id: uuid.UUID, role: str, email: str, now: datetime | None = None) -> str:
        now = now or datetime.now(UTC)
        payload: dict[str, Any] = {
            "sub": str(user_id),
            "role": role,
            "email": email,
            "iss": self.issuer,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=self.ttl_seconds)).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(payload, self.secret, algorithm=self.algorithm)

    def decode(self, token: str) -> AccessClaims:
        try:
            payload = jwt.decode(
                token,
                self.secret,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                options={"require": ["sub", "exp", "iat", "iss", "role"]},
            )
            return AccessClaims(
                user_id=uuid.UUID(str(payload["sub"])),
                role=str(payload["role"]),
                email=str(payload.get("email", "")),
                token_id=str(payload.get("jti", "")),
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("TOKEN_EXPIRED", "access token has expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise TokenError("TOKEN_INVALID", "access token is invalid") from None
