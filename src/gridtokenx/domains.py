"""Every domain of the platform, composed once for the gateway (`app.py`) and the worker."""

from __future__ import annotations

from gridtokenx.accounts.domain import domain as accounts
from gridtokenx.certificates.domain import domain as certificates
from gridtokenx.core.context import AppContext
from gridtokenx.core.domain import BackgroundService, Domain
from gridtokenx.events.domain import domain as events
from gridtokenx.ledger.domain import domain as ledger
from gridtokenx.market.domain import domain as market
from gridtokenx.meters.domain import domain as meters
from gridtokenx.readings.domain import domain as readings
from gridtokenx.tokenization.domain import domain as tokenization
from gridtokenx.wallets.domain import domain as wallets
from gridtokenx.web.domain import domain as web

DOMAINS: tuple[Domain, ...] = (
    ledger,
    accounts,
    wallets,
    meters,
    tokenization,
    readings,
    market,
    certificates,
    events,
    web,
)
"""In start order: the ledger first, since later domains' background work uses it."""


def wire(ctx: AppContext) -> None:
    for domain in DOMAINS:
        if domain.wire is not None:
            domain.wire(ctx)


def gateway_services(ctx: AppContext) -> list[BackgroundService]:
    """What `serve` runs beside its routes: each domain's background, plus the duties where the
    gateway also runs them (embedded mode)."""
    services = [s for d in DOMAINS if d.background is not None for s in d.background(ctx)]
    if ctx.settings.duties_in_gateway:
        services += duty_services(ctx)
    return services


def duty_services(ctx: AppContext) -> list[BackgroundService]:
    return [s for d in DOMAINS if d.duties is not None for s in d.duties(ctx)]


async def audit(ctx: AppContext) -> list[str]:
    """Every domain's reconciliation against the ledger; an empty list means all agrees."""
    problems: list[str] = []
    for domain in DOMAINS:
        if domain.audit is not None:
            problems += [f"{domain.name}: {line}" for line in await domain.audit(ctx)]
    return problems
