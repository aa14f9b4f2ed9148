"""The certificates domain as the app composes it: routes, the service, its duty and audit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from gridtokenx.certificates import verification
from gridtokenx.certificates.api import router
from gridtokenx.certificates.service import Certificates, IssueConfig
from gridtokenx.certificates.worker import certificate_duty
from gridtokenx.core.context import AppContext
from gridtokenx.core.domain import BackgroundService, Domain
from gridtokenx.ledger.domain import LedgerHandle
from gridtokenx.wallets.sealing import Sealer


def _wire(ctx: AppContext) -> None:
    ctx.services.add(
        Certificates(
            ctx.db,
            ctx.bus,
            ctx.services.get(LedgerHandle),
            ctx.services.get(Sealer),
            IssueConfig.from_settings(ctx.settings),
        )
    )


def _duties(ctx: AppContext) -> Sequence[BackgroundService]:
    return (
        certificate_duty(
            ctx.db,
            ctx.services.get(Certificates),
            auto_issue=ctx.settings.erc_auto_issue,
            lookback=timedelta(hours=ctx.settings.erc_lookback_hours),
        ),
    )


async def _audit(ctx: AppContext) -> list[str]:
    return await verification.audit(ctx.db, await ctx.services.get(LedgerHandle).get())


domain = Domain(name="certificates", routers=(router,), wire=_wire, duties=_duties, audit=_audit)
