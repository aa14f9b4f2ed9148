"""Delivers verification links: by SMTP when configured, otherwise to the log (embedded mode).

Only the hash of a verification token is stored, so delivery happens right after the commit with
the raw token in memory; a failed delivery is recorded on the outbox row and the user asks for a
new link (`POST /api/auth/resend-verification`).
"""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from email.message import EmailMessage

import structlog

from gridtokenx.accounts.models import EmailVerification
from gridtokenx.core.db import Database
from gridtokenx.core.settings import Settings
from gridtokenx.core.types import utcnow

log = structlog.get_logger(__name__)


def verification_link(settings: Settings, token: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/api/auth/verify-email?token={token}"


def _send_smtp(settings: Settings, to: str, link: str) -> None:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = "Verify your GridTokenX email"
    message.set_content(f"Open this link to verify your email address:\n\n{link}\n")
    assert settings.smtp_host
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=15) as smtp:
        smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(message)


async def deliver_verification(
    db: Database, settings: Settings, verification_id: uuid.UUID, email: str, token: str
) -> None:
    link = verification_link(settings, token)
    error: str | None = None
    if settings.smtp_host:
        try:
            await asyncio.to_thread(_send_smtp, settings, email, link)
        except (OSError, smtplib.SMTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("verification_email_failed", email=email, error=error)
    else:
        log.info("verification_link", email=email, link=link)
    async with db.session() as session:
        row = await session.get(EmailVerification, verification_id)
        if row is not None:
            row.delivery_attempts += 1
            row.last_error = error
            if error is None:
                row.delivered_at = utcnow()
