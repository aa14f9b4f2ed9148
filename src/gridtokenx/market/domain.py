"""The market as the app composes it: routes, the escrow vault, the epoch duty and its audit."""

from __future__ import annotations

from collections.abc import Sequence

from gridtokenx.core.context import AppContext
from gridtokenx.core.domain import BackgroundService, Domain
from gridtokenx.market.api import router
from gridtokenx.market.queries import traded_wallets
from gridtokenx.market.scheduler import duty
from gridtokenx.market.settlement import audit
from gridtokenx.market.tokens import check_energy_scale
from gridtokenx.market.vault import Vaults
from gridtokenx.tokenization.audit import energy_moved_by


async def _traders(ctx: AppContext) -> set[str]:
    async with ctx.db.session() as session:
        return await traded_wallets(session)


def _wire(ctx: AppContext) -> None:
    check_energy_scale(ctx.settings)
    energy_moved_by(_traders)
    ctx.services.add(Vaults(ctx))


def _duties(ctx: AppContext) -> Sequence[BackgroundService]:
    return (duty(ctx),)


domain = Domain(name="market", routers=(router,), wire=_wire, duties=_duties, audit=audit)
