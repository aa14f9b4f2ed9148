"""The first admin, made from outside the HTTP API (`gridtokenx admin create` and the demo)."""

from __future__ import annotations

from gridtokenx.accounts.service import create_admin
from gridtokenx.core.db import open_database
from gridtokenx.core.migrate import upgrade
from gridtokenx.core.settings import Settings


async def create_admin_account(settings: Settings, email: str, password: str) -> str:
    """Create (or promote) an admin and return its id; the embedded database is migrated first,
    since this may be the very first command run on it."""
    async with open_database(settings.effective_database_url) as db:
        if settings.is_sqlite:
            await upgrade(db)
        async with db.session() as session:
            user = await create_admin(session, email, password)
            return str(user.id)
