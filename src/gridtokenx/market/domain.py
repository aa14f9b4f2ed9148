"""The market as the app composes it: routes, the escrow vault, the epoch duty and its audit."""

from __future__ import annotations

from collections.abc import Sequence

from gridtokenx.core.context import AppContext
from gridtokenx.core.domain import BackgroundService, Domain
from gridtokenx.market.api import router
from gridtokenx.market.scheduler import duty
from gridtokenx.market.settlement import audit
from gridtokenx.market.vault import Vaults


def _wire(ctx: AppContext) -> None:
    ctx.services.add(Vaults(ctx))


def _duties(ctx: AppContext) -> Sequence[BackgroundService]:
    return (duty(ctx),)


domain = Domain(name="market", routers=(router,), wire=_wire, duties=_duties, audit=audit)
