"""The tokenization domain as the app composes it: the outbox hook on stored readings, the leased
mint duty (woken by each verified reading, polling as the fallback) and the audit."""

from __future__ import annotations

from collections.abc import Sequence

from gridtokenx.core.context import AppContext
from gridtokenx.core.domain import BackgroundService, Domain
from gridtokenx.core.settings import SettingsError
from gridtokenx.readings.hooks import on_stored
from gridtokenx.tokenization.api import router
from gridtokenx.tokenization.audit import audit
from gridtokenx.tokenization.rules import ConversionError
from gridtokenx.tokenization.service import record_stored
from gridtokenx.tokenization.tokens import units_per_wh
from gridtokenx.tokenization.worker import MintDuty, Minter


def _wire(ctx: AppContext) -> None:
    try:
        units_per_wh(ctx.settings)
    except ConversionError as exc:
        raise SettingsError(f"invalid configuration: TOKENIZATION_KWH_TO_TOKEN_RATIO: {exc}") from None
    minter = Minter(ctx)
    ctx.services.add(minter)
    ctx.services.add(MintDuty(ctx, minter))
    on_stored(record_stored)


def _duties(ctx: AppContext) -> Sequence[BackgroundService]:
    if not ctx.settings.tokenization_auto_mint_enabled:
        return ()
    return (ctx.services.get(MintDuty),)


async def _audit(ctx: AppContext) -> list[str]:
    return await audit(ctx)


domain = Domain(name="tokenization", routers=(router,), wire=_wire, duties=_duties, audit=_audit)
