"""The FastAPI application factory: one app for embedded and distributed mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from gridtokenx import __version__
from gridtokenx.accounts.deps import AdminUser
from gridtokenx.core.context import AppContext
from gridtokenx.core.deps import Ctx
from gridtokenx.core.domain import BackgroundService
from gridtokenx.core.errors import install_error_handlers
from gridtokenx.core.lease import holders
from gridtokenx.core.logging import configure_logging
from gridtokenx.core.metrics import REGISTRY
from gridtokenx.core.middleware import BodyLimitMiddleware, RateLimitMiddleware, RequestContextMiddleware
from gridtokenx.core.migrate import upgrade
from gridtokenx.core.openapi import install_openapi
from gridtokenx.core.runtime import tune_gc_for_serving
from gridtokenx.core.settings import Settings, get_settings
from gridtokenx.domains import DOMAINS, gateway_services, wire


def _should_migrate(settings: Settings) -> bool:
    return settings.auto_migrate and (settings.is_sqlite or settings.environment != "distributed")


def create_app(settings: Settings | None = None, *, context: AppContext | None = None) -> FastAPI:
    settings = settings or (context.settings if context else get_settings())
    configure_logging(settings.log_level, json=settings.log_json)
    ctx = context or AppContext.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if _should_migrate(settings):
            await upgrade(ctx.db)
        started: list[BackgroundService] = []
        try:
            for service in gateway_services(ctx):
                await service.start()
                started.append(service)
            yield
        finally:
            for service in reversed(started):
                await service.stop()
            if context is None:
                await ctx.close()

    app = FastAPI(
        title="GridTokenX",
        version=__version__,
        docs_url="/api/docs",
        openapi_url="/api/docs/openapi.json",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    wire(ctx)
    for domain in DOMAINS:
        for router in domain.routers:
            app.include_router(router)
    _add_operational_routes(app)
    install_openapi(app)

    app.add_middleware(RateLimitMiddleware, limiter=ctx.limiter, limit=settings.rate_limit_default)
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            allow_credentials="*" not in settings.cors_origins,
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    return app


def create_server_app() -> FastAPI:
    """The app as `gridtokenx serve` (or `uvicorn --factory`) runs it: `create_app` plus the
    process tuning of a long-running server."""
    app = create_app()
    tune_gc_for_serving()
    return app


def _add_operational_routes(app: FastAPI) -> None:
    @app.get("/health", tags=["ops"])
    @app.get("/api/health", tags=["ops"], include_in_schema=False)
    async def health(ctx: Ctx) -> JSONResponse:
        try:
            async with ctx.db.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            database = "ok"
        except Exception as exc:  # the health check reports any failure instead of raising
            database = f"error: {type(exc).__name__}"
        healthy = database == "ok"
        return JSONResponse(
            {"status": "ok" if healthy else "degraded", "version": __version__, "database": database},
            status_code=200 if healthy else 503,
        )

    @app.get("/api/admin/leases", tags=["ops"], responses={401: {}, 403: {}})
    async def leases(ctx: Ctx, _admin: AdminUser) -> list[dict[str, str | int]]:
        """Who holds each background duty, and until when (a dead holder's lease just expires)."""
        return [
            {"name": s.name, "holder": s.holder, "token": s.token, "expires_at": s.expires_at.isoformat()}
            for s in await holders(ctx.db)
        ]

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
