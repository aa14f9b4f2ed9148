"""Account use cases: registration, email verification, login/refresh/logout, API keys, wallets."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gridtokenx.accounts import rules
from gridtokenx.accounts.models import ApiKey, EmailVerification, RefreshToken, Role, User, WalletNonce
from gridtokenx.accounts.schemas import SELF_SERVICE_ROLES, AdminUserUpdate, RegisterRequest, UserOut
from gridtokenx.core.errors import ApiError, Conflict, Forbidden, NotFound, TooManyRequests, Unauthorized
from gridtokenx.core.ratelimit import RateLimiter
from gridtokenx.core.security import JwtCodec, hash_password, new_token, token_digest, verify_password
from gridtokenx.core.settings import Settings
from gridtokenx.core.types import last_use_due, utcnow

API_KEY_PREFIX = "gtx_"


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        username=user.username,
        role=user.role,
        first_name=user.first_name,
        last_name=user.last_name,
        is_active=user.is_active,
        email_verified=user.email_verified_at is not None,
        wallet_address=user.wallet_address,
        created_at=user.created_at,
    )


def normalise_email(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True)
class IssuedVerification:
    verification_id: uuid.UUID
    token: str


async def _issue_verification(session: AsyncSession, settings: Settings, user: User) -> IssuedVerification:
    token = new_token()
    row = EmailVerification(
        user_id=user.id,
        token_hash=token_digest(token),
        expires_at=utcnow() + timedelta(seconds=settings.email_token_ttl_seconds),
    )
    session.add(row)
    await session.flush()
    return IssuedVerification(row.id, token)


async def register(
    session: AsyncSession, settings: Settings, req: RegisterRequest
) -> tuple[User, IssuedVerification | None]:
    if req.role not in SELF_SERVICE_ROLES:
        raise Forbidden("this role cannot be chosen at registration", code="ROLE_NOT_ALLOWED")
    email = normalise_email(req.email)
    if await session.scalar(select(User.id).where(User.email == email)):
        raise Conflict("an account with this email already exists", code="EMAIL_TAKEN")
    if req.username and await session.scalar(select(User.id).where(User.username == req.username)):
        raise Conflict("this username is taken", code="USERNAME_TAKEN")
    user = User(
        email=email,
        username=req.username,
        password_hash=hash_password(req.password),
        role=req.role.value,
        first_name=req.first_name,
        last_name=req.last_name,
        email_verified_at=None if settings.require_email_verification else utcnow(),
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("an account with this email or username already exists", code="EMAIL_TAKEN") from None
    issued = (
        await _issue_verification(session, settings, user) if settings.require_email_verification else None
    )
    return user, issued


async def resend_verification(
    session: AsyncSession, settings: Settings, email: str
) -> tuple[User, IssuedVerification] | None:
    """A new link for an unverified account; None (and no hint) for unknown or verified emails."""
    user = await session.scalar(select(User).where(User.email == normalise_email(email)))
    if user is None or user.email_verified_at is not None:
        return None
    return user, await _issue_verification(session, settings, user)


async def verify_email(session: AsyncSession, token: str) -> User:
    row = await session.scalar(
        select(EmailVerification).where(EmailVerification.token_hash == token_digest(token)).with_for_update()
    )
    if row is None:
        raise ApiError("verification token is invalid", code="VERIFICATION_TOKEN_INVALID")
    if row.used_at is not None:
        raise ApiError("verification token was already used", code="VERIFICATION_TOKEN_USED")
    if row.expires_at <= utcnow():
        raise ApiError("verification token has expired", code="VERIFICATION_TOKEN_EXPIRED")
    claimed = await session.execute(
        update(EmailVerification)
        .where(EmailVerification.id == row.id, EmailVerification.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ApiError("verification token was already used", code="VERIFICATION_TOKEN_USED")
    user = await session.get(User, row.user_id)
    assert user is not None
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    return user


async def _issue_refresh(session: AsyncSession, settings: Settings, user: User) -> str:
    token = new_token()
    session.add(
        RefreshToken(
            user_id=user.id,
            token_hash=token_digest(token),
            expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    await session.flush()
    return token


@dataclass(frozen=True)
class Session:
    access_token: str
    refresh_token: str
    expires_in: int
    user: User


async def _open_session(session: AsyncSession, settings: Settings, jwt: JwtCodec, user: User) -> Session:
    access = jwt.issue(user.id, user.role, user.email)
    refresh = await _issue_refresh(session, settings, user)
    return Session(access, refresh, jwt.ttl_seconds, user)


async def login(
    session: AsyncSession,
    settings: Settings,
    jwt: JwtCodec,
    limiter: RateLimiter,
    email: str,
    password: str,
    client_ip: str,
) -> Session:
    """Check credentials; failed attempts are limited per account and per IP (429 + Retry-After)."""
    email = normalise_email(email)
    account_key, ip_key = f"login:acct:{email}", f"login:ip:{client_ip}"
    for limit, key in (
        (settings.login_rate_limit_account, account_key),
        (settings.login_rate_limit_ip, ip_key),
    ):
        verdict = await limiter.check(limit, key)
        if not verdict.allowed:
            raise TooManyRequests(
                "too many failed logins; try again later",
                code="LOGIN_RATE_LIMITED",
                retry_after=verdict.retry_after,
            )
    user = await session.scalar(select(User).where((User.email == email) | (User.username == email)))
    if not verify_password(user.password_hash if user else None, password) or user is None:
        await limiter.hit(settings.login_rate_limit_account, account_key)
        await limiter.hit(settings.login_rate_limit_ip, ip_key)
        raise Unauthorized("email or password is wrong", code="INVALID_CREDENTIALS")
    if not user.is_active:
        raise Forbidden("this account is disabled", code="ACCOUNT_DISABLED")
    if settings.require_email_verification and user.email_verified_at is None:
        raise Forbidden("verify your email address before logging in", code="EMAIL_NOT_VERIFIED")
    await limiter.clear(settings.login_rate_limit_account, account_key)
    return await _open_session(session, settings, jwt, user)


async def _claim_refresh(session: AsyncSession, token: str) -> RefreshToken:
    row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_digest(token)))
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        raise Unauthorized("refresh token is invalid, revoked or expired", code="REFRESH_TOKEN_INVALID")
    revoked = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if revoked.rowcount != 1:  # type: ignore[attr-defined]
        raise Unauthorized("refresh token is invalid, revoked or expired", code="REFRESH_TOKEN_INVALID")
    return row


async def refresh(session: AsyncSession, settings: Settings, jwt: JwtCodec, token: str) -> Session:
    """Rotate: the presented refresh token is revoked and a new pair issued."""
    row = await _claim_refresh(session, token)
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("account is disabled", code="ACCOUNT_DISABLED")
    return await _open_session(session, settings, jwt, user)


async def logout(session: AsyncSession, token: str) -> None:
    await _claim_refresh(session, token)


async def create_api_key(
    session: AsyncSession, user: User, name: str, scopes: list[str], raw_key: str | None = None
) -> tuple[ApiKey, str]:
    """A new key; `raw_key` lets an operator import a legacy head-end key (only its hash is kept)."""
    key = raw_key or API_KEY_PREFIX + new_token(30)
    row = ApiKey(
        user_id=user.id, name=name, prefix=key[:12], key_hash=token_digest(key), scopes=sorted(set(scopes))
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("this API key already exists", code="API_KEY_EXISTS") from None
    return row, key


async def list_api_keys(session: AsyncSession, user: User) -> list[ApiKey]:
    rows = await session.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.created_at))
    return list(rows)


async def revoke_api_key(session: AsyncSession, user: User, key_id: uuid.UUID) -> ApiKey:
    row = await session.get(ApiKey, key_id)
    if row is None or not rules.may_act_for(user, row.user_id):
        raise NotFound("no such API key", code="API_KEY_NOT_FOUND")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


async def authenticate_api_key(session: AsyncSession, raw_key: str) -> tuple[User, ApiKey]:
    """The key's owner and the key (one query for both: this runs on every head-end request)."""
    query = select(ApiKey, User).join(User, User.id == ApiKey.user_id)
    found = (await session.execute(query.where(ApiKey.key_hash == token_digest(raw_key)))).first()
    if found is None or found[0].revoked_at is not None:
        raise Unauthorized("API key is invalid or revoked", code="API_KEY_INVALID")
    row, user = found
    if not user.is_active:
        raise Unauthorized("API key owner is disabled", code="API_KEY_INVALID")
    now = utcnow()
    if last_use_due(row.last_used_at, now):
        row.last_used_at = now
    return user, row


async def issue_wallet_nonce(
    session: AsyncSession, settings: Settings, user: User, wallet: str
) -> WalletNonce:
    if rules.decode_wallet_address(wallet) is None:
        raise ApiError("not a valid Solana address", code="WALLET_ADDRESS_INVALID", status_code=422)
    nonce = new_token(24)
    expires_at = utcnow() + timedelta(seconds=settings.wallet_nonce_ttl_seconds)
    message = rules.wallet_link_message(
        settings.network_id, str(user.id), wallet, nonce, expires_at.isoformat()
    )
    row = WalletNonce(
        user_id=user.id, wallet_address=wallet, nonce=nonce, message=message, expires_at=expires_at
    )
    session.add(row)
    await session.flush()
    return row


async def link_wallet(session: AsyncSession, user: User, wallet: str, nonce: str, signature: str) -> User:
    """Link only after the wallet's key signed our single-use challenge."""
    row = await session.scalar(select(WalletNonce).where(WalletNonce.nonce == nonce))
    if row is None or row.user_id != user.id or row.wallet_address != wallet:
        raise ApiError("unknown nonce for this wallet", code="NONCE_INVALID")
    if row.used_at is not None:
        raise ApiError("this nonce was already used", code="NONCE_USED")
    if row.expires_at <= utcnow():
        raise ApiError("this nonce has expired", code="NONCE_EXPIRED")
    public_key = rules.decode_wallet_address(wallet)
    raw_signature = rules.decode_signature(signature)
    if public_key is None or raw_signature is None:
        raise ApiError(
            "signature is not 64 bytes of base58 or base64", code="SIGNATURE_MALFORMED", status_code=422
        )
    if not rules.signature_valid(public_key, row.message.encode(), raw_signature):
        raise Unauthorized("signature does not verify against this wallet", code="SIGNATURE_INVALID")
    claimed = await session.execute(
        update(WalletNonce)
        .where(WalletNonce.id == row.id, WalletNonce.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ApiError("this nonce was already used", code="NONCE_USED")
    owner = await session.scalar(select(User.id).where(User.wallet_address == wallet))
    if owner is not None and owner != user.id:
        raise Conflict("this wallet is linked to another account", code="WALLET_ALREADY_LINKED")
    user.wallet_address = wallet
    user.wallet_linked_at = utcnow()
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("this wallet is linked to another account", code="WALLET_ALREADY_LINKED") from None
    return user


async def list_users(session: AsyncSession, limit: int, offset: int) -> tuple[list[User], int]:
    total = await session.scalar(select(func.count()).select_from(User)) or 0
    rows = await session.scalars(select(User).order_by(User.created_at, User.id).limit(limit).offset(offset))
    return list(rows), total


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("no such user", code="USER_NOT_FOUND")
    return user


async def update_user(session: AsyncSession, actor: User, user_id: uuid.UUID, req: AdminUserUpdate) -> User:
    """An admin changes an account. Nobody deactivates their own account (they would lock
    themselves out mid-request), and the last active admin is never demoted or deactivated: the
    platform would be left without anyone able to undo it."""
    user = await get_user(session, user_id)
    if req.is_active is False and user.id == actor.id:
        raise Conflict("you cannot deactivate your own account", code="CANNOT_DEACTIVATE_SELF")
    stays_admin = (req.role in (None, Role.ADMIN)) and req.is_active is not False
    if user.role == Role.ADMIN.value and user.is_active and not stays_admin:
        # locked on PostgreSQL, so two admins demoting each other at once cannot both pass
        others = await session.scalars(
            select(User.id)
            .where(User.role == Role.ADMIN.value, User.is_active.is_(True), User.id != user.id)
            .with_for_update()
        )
        if not others.first():
            raise Conflict("the last active admin cannot be demoted or deactivated", code="LAST_ADMIN")
    if req.role is not None:
        user.role = req.role.value
    if req.is_active is not None:
        user.is_active = req.is_active
    if req.email_verified is not None:
        user.email_verified_at = (user.email_verified_at or utcnow()) if req.email_verified else None
    await session.flush()
    return user


async def create_admin(session: AsyncSession, email: str, password: str) -> User:
    """Bootstrap an admin (CLI); idempotent on the email: an existing account is promoted."""
    email = normalise_email(email)
    user = await session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, password_hash=hash_password(password), role=Role.ADMIN.value)
        session.add(user)
    else:
        user.role = Role.ADMIN.value
        user.password_hash = hash_password(password)
    user.email_verified_at = user.email_verified_at or utcnow()
    user.is_active = True
    await session.flush()
    return user
