"""HTTP routes of the accounts domain (paths follow the original platform)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, status

from gridtokenx.accounts import mailer, service
from gridtokenx.accounts.deps import AdminUser, CurrentUser
from gridtokenx.accounts.schemas import (
    AdminUserUpdate,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    LinkWalletRequest,
    LoginRequest,
    MessageOut,
    NonceOut,
    NonceRequest,
    RefreshRequest,
    RegisterRequest,
    RegisterResponse,
    ResendVerificationRequest,
    TokenPair,
    UserOut,
    UserPage,
)
from gridtokenx.core.deps import ClientIp, Ctx, DbSession

router = APIRouter()
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not authenticated"},
    403: {"description": "Forbidden"},
}


def _pair(session_: service.Session) -> TokenPair:
    return TokenPair(
        access_token=session_.access_token,
        expires_in=session_.expires_in,
        refresh_token=session_.refresh_token,
        user=service.user_out(session_.user),
    )


@router.post("/api/auth/register", status_code=status.HTTP_201_CREATED, tags=["auth"])
async def register(
    body: RegisterRequest, ctx: Ctx, session: DbSession, background: BackgroundTasks
) -> RegisterResponse:
    user, issued = await service.register(session, ctx.settings, body)
    await session.commit()
    if issued is not None:
        background.add_task(
            mailer.deliver_verification,
            ctx.db,
            ctx.settings,
            issued.verification_id,
            user.email,
            issued.token,
        )
    return RegisterResponse(
        user=service.user_out(user),
        email_verification_sent=issued is not None,
        message="check your email to verify your address" if issued else "account created",
    )


@router.get("/api/auth/verify-email", tags=["auth"])
async def verify_email(
    token: Annotated[str, Query(min_length=1, max_length=256)], session: DbSession
) -> UserOut:
    user = await service.verify_email(session, token)
    await session.commit()
    return service.user_out(user)


@router.post("/api/auth/resend-verification", status_code=status.HTTP_202_ACCEPTED, tags=["auth"])
async def resend_verification(
    body: ResendVerificationRequest, ctx: Ctx, session: DbSession, background: BackgroundTasks
) -> MessageOut:
    issued = await service.resend_verification(session, ctx.settings, body.email)
    await session.commit()
    if issued is not None:
        user, verification = issued
        background.add_task(
            mailer.deliver_verification,
            ctx.db,
            ctx.settings,
            verification.verification_id,
            user.email,
            verification.token,
        )
    return MessageOut(message="if the account exists and is unverified, a new link was sent")


@router.post("/api/auth/login", tags=["auth"])
async def login(body: LoginRequest, ctx: Ctx, session: DbSession, ip: ClientIp) -> TokenPair:
    result = await service.login(session, ctx.settings, ctx.jwt, ctx.limiter, body.email, body.password, ip)
    await session.commit()
    return _pair(result)


@router.post("/api/auth/refresh", tags=["auth"])
async def refresh(body: RefreshRequest, ctx: Ctx, session: DbSession) -> TokenPair:
    result = await service.refresh(session, ctx.settings, ctx.jwt, body.refresh_token)
    await session.commit()
    return _pair(result)


@router.post("/api/auth/logout", tags=["auth"])
async def logout(body: RefreshRequest, session: DbSession) -> MessageOut:
    await service.logout(session, body.refresh_token)
    await session.commit()
    return MessageOut(message="logged out")


@router.get("/api/users/me", tags=["users"], responses=ERRORS)
async def me(user: CurrentUser) -> UserOut:
    return service.user_out(user)


@router.post("/api/users/me/api-keys", status_code=status.HTTP_201_CREATED, tags=["users"], responses=ERRORS)
async def create_api_key(body: ApiKeyCreate, user: CurrentUser, session: DbSession) -> ApiKeyCreated:
    row, key = await service.create_api_key(session, user, body.name, body.scopes)
    await session.commit()
    return ApiKeyCreated(**ApiKeyOut.model_validate(row).model_dump(), key=key)


@router.get("/api/users/me/api-keys", tags=["users"], responses=ERRORS)
async def list_api_keys(user: CurrentUser, session: DbSession) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(row) for row in await service.list_api_keys(session, user)]


@router.delete("/api/users/me/api-keys/{key_id}", tags=["users"], responses=ERRORS)
async def revoke_api_key(key_id: uuid.UUID, user: CurrentUser, session: DbSession) -> ApiKeyOut:
    row = await service.revoke_api_key(session, user, key_id)
    await session.commit()
    return ApiKeyOut.model_validate(row)


@router.post("/api/wallets/nonce", status_code=status.HTTP_201_CREATED, tags=["wallets"], responses=ERRORS)
async def wallet_nonce(body: NonceRequest, ctx: Ctx, user: CurrentUser, session: DbSession) -> NonceOut:
    row = await service.issue_wallet_nonce(session, ctx.settings, user, body.wallet_address)
    await session.commit()
    return NonceOut(
        wallet_address=row.wallet_address, nonce=row.nonce, message=row.message, expires_at=row.expires_at
    )


@router.post("/api/wallets/link", tags=["wallets"], responses=ERRORS)
async def link_wallet(body: LinkWalletRequest, user: CurrentUser, session: DbSession) -> UserOut:
    linked = await service.link_wallet(session, user, body.wallet_address, body.nonce, body.signature)
    await session.commit()
    return service.user_out(linked)


@router.get("/api/admin/users", tags=["admin"], responses=ERRORS)
async def admin_list_users(
    _admin: AdminUser,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> UserPage:
    users, total = await service.list_users(session, limit, offset)
    return UserPage(items=[service.user_out(u) for u in users], total=total, limit=limit, offset=offset)


@router.get("/api/admin/users/{user_id}", tags=["admin"], responses=ERRORS)
async def admin_get_user(user_id: uuid.UUID, _admin: AdminUser, session: DbSession) -> UserOut:
    return service.user_out(await service.get_user(session, user_id))


@router.patch("/api/admin/users/{user_id}", tags=["admin"], responses=ERRORS)
async def admin_update_user(
    user_id: uuid.UUID, body: AdminUserUpdate, admin: AdminUser, session: DbSession
) -> UserOut:
    user = await service.update_user(session, admin, user_id, body)
    await session.commit()
    return service.user_out(user)
