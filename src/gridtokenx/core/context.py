"""The per-process container of shared resources, picked from settings at start-up."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from gridtokenx.core.db import Database
from gridtokenx.core.ratelimit import RateLimiter
from gridtokenx.core.security import JwtCodec
from gridtokenx.core.services import Services
from gridtokenx.core.settings import Settings, SettingsError
from gridtokenx.events.bus import EventBus
from gridtokenx.events.redis_bus import build_bus


def _persisted_secret(path: Path) -> str:
    """Embedded mode keeps a generated JWT secret in var/ (0600) so restarts keep sessions valid."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


def jwt_secret(settings: Settings) -> str:
    if settings.jwt_secret:
        if len(settings.jwt_secret) < 32:
            raise SettingsError(
                "invalid configuration: GRIDTOKENX_JWT_SECRET: must be at least 32 characters"
            )
        return settings.jwt_secret
    if settings.environment == "distributed":
        raise SettingsError("invalid configuration: GRIDTOKENX_JWT_SECRET: required in distributed mode")
    return _persisted_secret(settings.data_dir / "jwt_secret")


@dataclass
class AppContext:
    settings: Settings
    db: Database
    jwt: JwtCodec
    limiter: RateLimiter
    bus: EventBus = field(default_factory=EventBus)
    services: Services = field(default_factory=Services)

    @classmethod
    def from_settings(cls, settings: Settings) -> AppContext:
        return cls(
            settings=settings,
            db=Database(settings.effective_database_url, pool_size=settings.database_pool_size),
            jwt=JwtCodec(jwt_secret(settings), settings.jwt_issuer, settings.access_token_ttl_seconds),
            limiter=RateLimiter(settings.redis_url),
            bus=build_bus(
                settings.redis_url, prefix=settings.events_prefix, replay_size=settings.events_replay_size
            ),
        )

    async def close(self) -> None:
        await self.db.dispose()
